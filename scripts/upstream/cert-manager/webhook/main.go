// Command cm-webhook runs cert-manager's admission webhook for the csi-driver-spiffe
// e2e harness. cert-manager's own main lives in a module the Go module proxy cannot
// serve; this main takes the same flags (pkg/webhook/options) and starts the same
// server (internal/webhook, importable because this module's path sits under
// github.com/cert-manager/cert-manager).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	cmwebhook "github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/webhook/options"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cm-webhook: %v\n", err)
		logf.FlushLogs()
		os.Exit(1)
	}
}

func run() error {
	cfg, err := options.NewWebhookConfiguration()
	if err != nil {
		return fmt.Errorf("default configuration: %w", err)
	}
	fs := pflag.NewFlagSet("cm-webhook", pflag.ContinueOnError)
	options.AddConfigFlags(fs, cfg)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}

	logf.InitLogs()
	defer logf.FlushLogs()
	if err := logf.ValidateAndApply(&cfg.Logging); err != nil {
		return fmt.Errorf("logging flags: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := cmwebhook.NewCertManagerWebhookServer(logf.Log.WithName("cm-webhook"), *cfg)
	if err != nil {
		return fmt.Errorf("building webhook server: %w", err)
	}
	return srv.Run(ctx)
}
