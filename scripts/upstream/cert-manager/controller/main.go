// Command cm-controller runs cert-manager's controllers for the csi-driver-spiffe
// e2e harness. cert-manager's own main lives in a module the Go module proxy cannot
// serve, so this small main drives cert-manager's public pkg/controller API instead.
//
// It has no leader election, no metrics and no healthz server (the harness runs
// exactly one replica on loopback). The --controllers flag follows upstream's
// syntax: "*" is the default set, "-name" removes one, "name" adds one; the
// harness passes "*,-certificaterequests-approver" so that only the SPIFFE
// approver decides on CertificateRequests.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Controllers register themselves with controller.Known() in init.
	challenges "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	orders "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	shimgateways "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/gateways"
	shimingresses "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	cracme "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	crvault "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/vault"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	certmetrics "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"

	// Issuer implementations register with the issuer factory in init.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/vault"
)

// defaultControllers is upstream's DefaultEnabledControllers
// (internal/apis/config/controller/v1alpha1/defaults.go) without the Venafi
// CertificateRequest controller: the Go module proxy reachable here does not
// serve github.com/Venafi/vcert/v5, so the Venafi issuer is not linked at all.
var defaultControllers = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	certmetrics.ControllerName,
	shimingresses.ControllerName,
	orders.ControllerName,
	challenges.ControllerName,
	cracme.CRControllerName,
	crapprover.ControllerName,
	crca.CRControllerName,
	crselfsigned.CRControllerName,
	crvault.CRControllerName,
	trigger.ControllerName,
	issuing.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
}

// The Gateway API shim is registered (linked) but, as upstream, off by default.
var _ = shimgateways.ControllerName

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cm-controller: %v\n", err)
		logf.FlushLogs()
		os.Exit(1)
	}
}

// enabledControllers expands upstream's --controllers syntax.
func enabledControllers(spec []string) ([]string, error) {
	known := controller.Known()
	set := map[string]bool{}
	for _, item := range spec {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
		case item == "*":
			for _, n := range defaultControllers {
				set[n] = true
			}
		case strings.HasPrefix(item, "-"):
			name := item[1:]
			if _, ok := known[name]; !ok {
				return nil, fmt.Errorf("unknown controller %q in --controllers", name)
			}
			delete(set, name)
		default:
			if _, ok := known[item]; !ok {
				return nil, fmt.Errorf("unknown controller %q in --controllers", item)
			}
			set[item] = true
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func run() error {
	var (
		kubeconfig               string
		namespace                string
		clusterResourceNamespace string
		controllers              []string
		workers                  int
		qps                      float32
		burst                    int
		logging                  = logsapi.NewLoggingConfiguration()
	)
	fs := pflag.NewFlagSet("cm-controller", pflag.ContinueOnError)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "path to the kubeconfig used to reach the apiserver")
	fs.StringVar(&namespace, "namespace", "", "limit cert-manager to one namespace (empty: all)")
	fs.StringVar(&clusterResourceNamespace, "cluster-resource-namespace", "cert-manager",
		"namespace holding the Secrets that ClusterIssuers reference")
	fs.StringSliceVar(&controllers, "controllers", []string{"*"},
		`controllers to run: "*" = upstream defaults, "-name" removes, "name" adds`)
	fs.IntVar(&workers, "concurrent-workers", 5, "workers per controller")
	fs.Float32Var(&qps, "kube-api-qps", 50, "client QPS when API Priority and Fairness is off")
	fs.IntVar(&burst, "kube-api-burst", 100, "client burst when API Priority and Fairness is off")
	logf.AddFlags(logging, fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}

	logf.InitLogs()
	defer logf.FlushLogs()
	if err := logf.ValidateAndApply(logging); err != nil {
		return fmt.Errorf("logging flags: %w", err)
	}

	names, err := enabledControllers(controllers)
	if err != nil {
		return err
	}
	if namespace != "" {
		names = slices.DeleteFunc(names, func(n string) bool { return n == clusterissuers.ControllerName })
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "cm-controller")
	log := logf.FromContext(ctx)

	opts := controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   qps,
		KubernetesAPIBurst: burst,
		Namespace:          namespace,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace:        clusterResourceNamespace,
			ClusterIssuerAmbientCredentials: true,
		},
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 "quay.io/jetstack/cert-manager-acmesolver:unused",
			HTTP01SolverResourceRequestCPU:    resource.MustParse("10m"),
			HTTP01SolverResourceRequestMemory: resource.MustParse("64Mi"),
			HTTP01SolverResourceLimitsCPU:     resource.MustParse("100m"),
			HTTP01SolverResourceLimitsMemory:  resource.MustParse("64Mi"),
			ACMEHTTP01SolverRunAsNonRoot:      true,
			DNS01CheckAuthoritative:           true,
			DNS01CheckRetryPeriod:             10 * time.Second,
		},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerKind:                 "Issuer",
			DefaultIssuerGroup:                "cert-manager.io",
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
	}

	factory, err := controller.NewContextFactory(ctx, opts)
	if err != nil {
		return fmt.Errorf("building controller context: %w", err)
	}
	base, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building controller context: %w", err)
	}

	log.Info("starting controllers", "controllers", names)
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		iface, err := controller.Known()[n](factory)
		if err != nil {
			return fmt.Errorf("constructing controller %s: %w", n, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := iface.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", n, err)
				stop()
			}
		}()
	}

	// Informers start only after every controller registered the ones it needs.
	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	if base.GatewaySolverEnabled {
		base.GWShared.Start(ctx.Done())
	}
	log.Info("controllers running")

	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	log.Info("control loops exited")
	return nil
}
