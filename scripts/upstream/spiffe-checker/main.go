// Command spiffe-checker checks X.509 SVIDs with go-spiffe v2, the library SPIFFE
// workloads use, so the e2e tests can prove that what csi-driver-spiffe writes is
// accepted by a real SPIFFE consumer.
//
//	spiffe-checker verify --dir DIR | --cert FILE --key FILE  --bundle CA.pem [--expect-id ID]
//	    x509svid.Load (Parse) the SVID, then x509svid.Verify it against the bundle.
//	spiffe-checker mtls --server-dir A --client-dir B --bundle CA.pem
//	                    [--server-authorize-id ID] [--client-authorize-id ID]
//	    A mutual-TLS exchange on 127.0.0.1: the server presents SVID A and authorizes
//	    the client with tlsconfig.AuthorizeID (default: B's ID), the client presents
//	    SVID B and authorizes the server (default: A's ID).
//
// A directory holds tls.crt and tls.key, as a csi-driver-spiffe volume does.
// Exit status: 0 success, 1 check failed (the message says why), 2 usage error.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "verify":
		err = verify(os.Args[2:])
	case "mtls":
		err = mtls(os.Args[2:])
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "spiffe-checker: unknown mode %q\n", os.Args[1])
		usage()
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "spiffe-checker: %v\n", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  spiffe-checker verify (--dir DIR | --cert FILE --key FILE) --bundle CA.pem [--expect-id ID]
  spiffe-checker mtls --server-dir A --client-dir B --bundle CA.pem [--server-authorize-id ID] [--client-authorize-id ID]
`)
	os.Exit(2)
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseFlags(fs *flag.FlagSet, args []string) {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
}

func loadSVID(dir, cert, key string) (*x509svid.SVID, error) {
	if dir != "" {
		cert, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	}
	if cert == "" || key == "" {
		fmt.Fprintln(os.Stderr, "spiffe-checker: need --dir or both --cert and --key")
		os.Exit(2)
	}
	svid, err := x509svid.Load(cert, key)
	if err != nil {
		return nil, fmt.Errorf("parse SVID %s + %s: %w", cert, key, err)
	}
	return svid, nil
}

func loadBundle(td spiffeid.TrustDomain, path string) (*x509bundle.Bundle, error) {
	if path == "" {
		fmt.Fprintln(os.Stderr, "spiffe-checker: --bundle is required")
		os.Exit(2)
	}
	b, err := x509bundle.Load(td, path)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle %s for trust domain %s: %w", path, td, err)
	}
	return b, nil
}

func verify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory holding tls.crt and tls.key")
	cert := fs.String("cert", "", "certificate chain PEM")
	key := fs.String("key", "", "PKCS#8 private key PEM")
	bundlePath := fs.String("bundle", "", "CA bundle PEM")
	expect := fs.String("expect-id", "", "SPIFFE ID the SVID must carry")
	parseFlags(fs, args)

	svid, err := loadSVID(*dir, *cert, *key)
	if err != nil {
		return err
	}
	bundle, err := loadBundle(svid.ID.TrustDomain(), *bundlePath)
	if err != nil {
		return err
	}
	id, chains, err := x509svid.Verify(svid.Certificates, bundle)
	if err != nil {
		return fmt.Errorf("verify %s against %s: %w", svid.ID, *bundlePath, err)
	}
	if *expect != "" && id.String() != *expect {
		return fmt.Errorf("SVID has ID %s, expected %s", id, *expect)
	}
	leaf := svid.Certificates[0]
	fmt.Printf("OK verify: id=%s chains=%d notBefore=%s notAfter=%s issuer=%q\n",
		id, len(chains), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339),
		leaf.Issuer.String())
	return nil
}

func mtls(args []string) error {
	fs := flag.NewFlagSet("mtls", flag.ContinueOnError)
	serverDir := fs.String("server-dir", "", "directory with the server's SVID (A)")
	clientDir := fs.String("client-dir", "", "directory with the client's SVID (B)")
	bundlePath := fs.String("bundle", "", "CA bundle PEM")
	serverAuthz := fs.String("server-authorize-id", "", "ID the server accepts from the client (default: B's ID)")
	clientAuthz := fs.String("client-authorize-id", "", "ID the client accepts from the server (default: A's ID)")
	timeout := fs.Duration("timeout", 10*time.Second, "overall timeout")
	parseFlags(fs, args)
	if *serverDir == "" || *clientDir == "" {
		fmt.Fprintln(os.Stderr, "spiffe-checker: --server-dir and --client-dir are required")
		os.Exit(2)
	}

	a, err := loadSVID(*serverDir, "", "")
	if err != nil {
		return err
	}
	b, err := loadSVID(*clientDir, "", "")
	if err != nil {
		return err
	}
	bundle, err := loadBundle(a.ID.TrustDomain(), *bundlePath)
	if err != nil {
		return err
	}
	serverWants, clientWants := b.ID, a.ID
	if *serverAuthz != "" {
		if serverWants, err = spiffeid.FromString(*serverAuthz); err != nil {
			return usageError{fmt.Sprintf("--server-authorize-id: %v", err)}
		}
	}
	if *clientAuthz != "" {
		if clientWants, err = spiffeid.FromString(*clientAuthz); err != nil {
			return usageError{fmt.Sprintf("--client-authorize-id: %v", err)}
		}
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(a, bundle, tlsconfig.AuthorizeID(serverWants)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	deadline := time.Now().Add(*timeout)

	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		if err := c.(*tls.Conn).Handshake(); err != nil {
			serverErr <- err
			return
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			serverErr <- err
			return
		}
		_, err = c.Write([]byte("pong"))
		serverErr <- err
	}()

	clientErr := func() error {
		d := net.Dialer{Deadline: deadline}
		c, err := tls.DialWithDialer(&d, "tcp", ln.Addr().String(),
			tlsconfig.MTLSClientConfig(b, bundle, tlsconfig.AuthorizeID(clientWants)))
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != "pong" {
			return fmt.Errorf("unexpected reply %q", buf)
		}
		return nil
	}()
	if clientErr != nil {
		ln.Close()
	}
	var sErr error
	select {
	case sErr = <-serverErr:
	case <-time.After(time.Until(deadline) + time.Second):
		sErr = errors.New("server timed out")
	}
	if clientErr != nil || sErr != nil {
		return fmt.Errorf("mTLS between server %s (authorizing %s) and client %s (authorizing %s) failed: client: %v; server: %v",
			a.ID, serverWants, b.ID, clientWants, clientErr, sErr)
	}
	fmt.Printf("OK mtls: server=%s client=%s\n", a.ID, b.ID)
	return nil
}
