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
//	spiffe-checker x509source --socket unix:///PATH [--updates N] [--timeout D]
//	    workloadapi.NewX509Source on the Workload API socket: prints the SVID's ID and
//	    serial once it has one, then a line on every update, until N updates were seen.
//	spiffe-checker x509stream --socket unix:///PATH [--updates N] [--timeout D]
//	    One FetchX509SVID stream with the generated go-spiffe client (header set):
//	    prints every message's ID and serial; fails if the stream ends before N updates,
//	    which shows that the updates arrive on one stream, without reconnecting.
//	spiffe-checker noheader --socket unix:///PATH
//	    FetchX509SVID with the generated client and no workload.spiffe.io header; succeeds
//	    only if the server answers InvalidArgument.
//	spiffe-checker mtls-server --socket unix:///PATH --listen ADDR --authorize-id ID [--timeout D]
//	    spiffetls.ListenWithMode(MTLSServerWithSourceOptions) with tlsconfig.AuthorizeID:
//	    answers each authorized client "pong"; prints the peer's ID per connection.
//	spiffe-checker mtls-client --socket unix:///PATH --connect ADDR --authorize-id ID [--timeout D]
//	    spiffetls.DialWithMode(MTLSClientWithSourceOptions) with tlsconfig.AuthorizeID:
//	    sends "ping", expects "pong".
//
// A directory holds tls.crt and tls.key, as a csi-driver-spiffe volume does.
// Exit status: 0 success, 1 check failed (the message says why), 2 usage error.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
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
	case "x509source":
		err = x509source(os.Args[2:])
	case "x509stream":
		err = x509stream(os.Args[2:])
	case "noheader":
		err = noheader(os.Args[2:])
	case "mtls-server":
		err = mtlsServer(os.Args[2:])
	case "mtls-client":
		err = mtlsClient(os.Args[2:])
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
  spiffe-checker x509source --socket unix:///PATH [--updates N] [--timeout D]
  spiffe-checker x509stream --socket unix:///PATH [--updates N] [--timeout D]
  spiffe-checker noheader --socket unix:///PATH
  spiffe-checker mtls-server --socket unix:///PATH --listen ADDR --authorize-id ID [--timeout D]
  spiffe-checker mtls-client --socket unix:///PATH --connect ADDR --authorize-id ID [--timeout D]
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
		return pingPong(c)
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

// ------------------------------------------------------------------ Workload API modes

func serialOf(c *x509.Certificate) string { return fmt.Sprintf("%x", c.SerialNumber) }

func socketFlag(fs *flag.FlagSet) *string {
	return fs.String("socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address, unix:///path (default $SPIFFE_ENDPOINT_SOCKET)")
}

// parseSocketFlags parses a Workload API mode's flags (fs holds socketFlag's) and
// checks --socket.
func parseSocketFlags(fs *flag.FlagSet, socket *string, args []string) error {
	parseFlags(fs, args)
	if !strings.HasPrefix(*socket, "unix://") {
		return usageError{"--socket must be unix:///path"}
	}
	return nil
}

func x509source(args []string) error {
	fs := flag.NewFlagSet("x509source", flag.ContinueOnError)
	socket := socketFlag(fs)
	updates := fs.Int("updates", 0, "exit after this many updates after the first SVID (0: after the first SVID)")
	timeout := fs.Duration("timeout", 5*time.Minute, "overall timeout")
	if err := parseSocketFlags(fs, socket, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	source, err := workloadapi.NewX509Source(ctx, sourceOf(*socket))
	if err != nil {
		return fmt.Errorf("NewX509Source(%s): %w", *socket, err)
	}
	defer source.Close()
	svid, err := source.GetX509SVID()
	if err != nil {
		return err
	}
	fmt.Printf("SVID id=%s serial=%s notAfter=%s firstAfterMs=%d\n", svid.ID, serialOf(svid.Certificates[0]),
		svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339), time.Since(start).Milliseconds())
	last := serialOf(svid.Certificates[0])
	for seen := 0; seen < *updates; {
		select {
		case <-source.Updated():
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d updates before the timeout", seen, *updates)
		}
		svid, err := source.GetX509SVID()
		if err != nil {
			return err
		}
		serial := serialOf(svid.Certificates[0])
		kind := "bundle"
		if serial != last {
			kind = "svid"
		}
		last = serial
		seen++
		fmt.Printf("UPDATE %d kind=%s id=%s serial=%s notAfter=%s\n", seen, kind, svid.ID, serial,
			svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
	}
	fmt.Println("OK x509source")
	return nil
}

// fetchX509 opens one FetchX509SVID stream with the generated client, with the
// workload.spiffe.io header the SPIFFE Workload API requires when header is true;
// done ends the stream's context and closes the connection.
func fetchX509(socket string, timeout time.Duration, header bool) (stream workload.SpiffeWorkloadAPI_FetchX509SVIDClient, done func(), err error) {
	conn, err := grpc.NewClient(socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	done = func() { cancel(); conn.Close() }
	if header {
		ctx = metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
	}
	stream, err = workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		done()
		return nil, nil, err
	}
	return stream, done, nil
}

// pingPong is the client's half of the mTLS exchange: "ping", then "pong" back.
func pingPong(c net.Conn) error {
	if _, err := c.Write([]byte("ping")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("the server closed the connection (refused us?): %w", err)
	}
	if string(buf) != "pong" {
		return fmt.Errorf("unexpected reply %q", buf)
	}
	return nil
}

func x509stream(args []string) error {
	fs := flag.NewFlagSet("x509stream", flag.ContinueOnError)
	socket := socketFlag(fs)
	updates := fs.Int("updates", 1, "messages to receive after the first")
	timeout := fs.Duration("timeout", 5*time.Minute, "overall timeout")
	if err := parseSocketFlags(fs, socket, args); err != nil {
		return err
	}
	stream, done, err := fetchX509(*socket, *timeout, true)
	if err != nil {
		return err
	}
	defer done()
	for i := 0; i <= *updates; i++ {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("the stream ended after %d messages: %w", i, err)
		}
		if len(resp.Svids) == 0 {
			return fmt.Errorf("message %d carries no SVID", i)
		}
		certs, err := x509.ParseCertificates(resp.Svids[0].X509Svid)
		if err != nil || len(certs) == 0 {
			return fmt.Errorf("message %d: x509_svid does not parse: %v", i, err)
		}
		fmt.Printf("MESSAGE %d id=%s serial=%s svids=%d bundleBytes=%d\n", i, resp.Svids[0].SpiffeId, serialOf(certs[0]), len(resp.Svids), len(resp.Svids[0].Bundle))
	}
	fmt.Println("OK x509stream: every message on one stream")
	return nil
}

func noheader(args []string) error {
	fs := flag.NewFlagSet("noheader", flag.ContinueOnError)
	socket := socketFlag(fs)
	if err := parseSocketFlags(fs, socket, args); err != nil {
		return err
	}
	stream, done, err := fetchX509(*socket, 30*time.Second, false)
	if err == nil {
		defer done()
		_, err = stream.Recv()
	}
	if err == nil {
		return errors.New("the server sent an SVID to a call without the workload.spiffe.io header")
	}
	if status.Code(err) != codes.InvalidArgument {
		return fmt.Errorf("expected InvalidArgument, got %v", err)
	}
	fmt.Printf("OK noheader: %s %q\n", status.Code(err), status.Convert(err).Message())
	return nil
}

func sourceOf(socket string) workloadapi.SourceOption {
	return workloadapi.WithClientOptions(workloadapi.WithAddr(socket))
}

func mtlsServer(args []string) error {
	fs := flag.NewFlagSet("mtls-server", flag.ContinueOnError)
	socket := socketFlag(fs)
	listen := fs.String("listen", ":8443", "TCP address to listen on")
	authz := fs.String("authorize-id", "", "SPIFFE ID a client must present (required)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to serve")
	if err := parseSocketFlags(fs, socket, args); err != nil {
		return err
	}
	id, err := spiffeid.FromString(*authz)
	if err != nil {
		return usageError{fmt.Sprintf("--authorize-id: %v", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ln, err := spiffetls.ListenWithMode(ctx, "tcp", *listen,
		spiffetls.MTLSServerWithSourceOptions(tlsconfig.AuthorizeID(id), sourceOf(*socket)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	go func() { <-ctx.Done(); ln.Close() }()
	fmt.Printf("LISTENING %s authorizing %s\n", ln.Addr(), id)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				fmt.Println("OK mtls-server: timeout reached")
				return nil
			}
			return err
		}
		go func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			// The TLS 1.3 handshake (and so the client's authorization) completes here, not in Accept.
			if hs, ok := c.(interface{ Handshake() error }); ok {
				if err := hs.Handshake(); err != nil {
					fmt.Printf("REFUSED %s: %v\n", c.RemoteAddr(), err)
					return
				}
			}
			peer, err := spiffetls.PeerIDFromConn(c)
			if err != nil {
				fmt.Printf("REFUSED %s: %v\n", c.RemoteAddr(), err)
				return
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				fmt.Printf("REFUSED %s: %v\n", c.RemoteAddr(), err)
				return
			}
			_, _ = c.Write([]byte("pong"))
			fmt.Printf("SERVED %s\n", peer)
		}(c)
	}
}

func mtlsClient(args []string) error {
	fs := flag.NewFlagSet("mtls-client", flag.ContinueOnError)
	socket := socketFlag(fs)
	connect := fs.String("connect", "", "TCP address of the server (required)")
	authz := fs.String("authorize-id", "", "SPIFFE ID the server must present (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "overall timeout")
	if err := parseSocketFlags(fs, socket, args); err != nil {
		return err
	}
	if *connect == "" {
		return usageError{"--connect is required"}
	}
	id, err := spiffeid.FromString(*authz)
	if err != nil {
		return usageError{fmt.Sprintf("--authorize-id: %v", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := spiffetls.DialWithMode(ctx, "tcp", *connect,
		spiffetls.MTLSClientWithSourceOptions(tlsconfig.AuthorizeID(id), sourceOf(*socket)))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *connect, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	if err := pingPong(c); err != nil {
		return err
	}
	fmt.Printf("OK mtls-client: server %s\n", id)
	return nil
}
