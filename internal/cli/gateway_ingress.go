package cli

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/ingress"
	"github.com/flotilla-dev/flotilla/internal/gateway/ingress/controller"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// ingressFlags turn the gateway into an Ingress controller (docs/ingress.md).
type ingressFlags struct {
	class, controllerName string
	withoutClass, nginx   bool
	namespaces            []string
	publishService        string
	publishAddresses      []string
	secretDir             string
	leaderElect           bool
	lease                 string
}

func (f *ingressFlags) flags(fs *pflag.FlagSet) {
	fs.StringVar(&f.class, "ingress-class", "", `serve Ingresses of this IngressClass, e.g. "flotilla" ("" = no Ingress controller); see docs/ingress.md`)
	fs.StringVar(&f.controllerName, "ingress-controller-name", ingress.DefaultControllerName, "the IngressClass spec.controller value this gateway answers to")
	fs.BoolVar(&f.withoutClass, "watch-ingress-without-class", false, "also serve Ingresses naming no class (they are served anyway when our IngressClass is the cluster default)")
	fs.BoolVar(&f.nginx, "ingress-class-nginx", false, `also serve class "nginx", for a drop-in migration once ingress-nginx is gone`)
	fs.StringSliceVar(&f.namespaces, "ingress-namespaces", nil, "namespaces whose Ingresses, Services and Secrets are read (default: all)")
	fs.StringVar(&f.publishService, "publish-service", "", "namespace/name of the gateway's Service, whose address goes to the status of served Ingresses and Gateways")
	fs.StringSliceVar(&f.publishAddresses, "publish-address", nil, "IPs or host names written to the status of served Ingresses and Gateways instead of --publish-service's")
	fs.StringVar(&f.secretDir, "ingress-secret-dir", "", "directory for TLS keys and htpasswd files from Secrets, mode 0700 (default: a new private temporary directory)")
	fs.BoolVar(&f.leaderElect, "leader-elect", true, "only the replica holding the Lease writes Ingress and Gateway API status (false: every replica writes the same status)")
	fs.StringVar(&f.lease, "leader-election-lease", "flotilla-ingress-leader", "name of the Lease, in the gateway's namespace")
}

// validate checks the Ingress flags; gatewayAPI says whether the Gateway
// API controller runs, which shares --publish-* and --leader-elect.
func (f *ingressFlags) validate(gatewayAPI bool) []error {
	var errs []error
	if f.class == "" {
		for _, set := range []struct {
			flag string
			on   bool
		}{{"watch-ingress-without-class", f.withoutClass}, {"ingress-class-nginx", f.nginx}} {
			if set.on {
				errs = append(errs, flagenv.Errorf(set.flag, "needs --ingress-class"))
			}
		}
		if !gatewayAPI {
			for _, set := range []struct {
				flag string
				on   bool
			}{{"publish-service", f.publishService != ""}, {"publish-address", len(f.publishAddresses) > 0}} {
				if set.on {
					errs = append(errs, flagenv.Errorf(set.flag, "needs --ingress-class or --gateway-class"))
				}
			}
			return errs
		}
	}
	if f.class == "" {
		// Only the shared flags matter to the Gateway API controller.
		if ns, name, ok := strings.Cut(f.publishService, "/"); f.publishService != "" && (!ok || ns == "" || name == "" || strings.Contains(name, "/")) {
			errs = append(errs, flagenv.Errorf("publish-service", "want namespace/name, got %q", f.publishService))
		}
		return errs
	}
	if ns, name, ok := strings.Cut(f.publishService, "/"); f.publishService != "" && (!ok || ns == "" || name == "" || strings.Contains(name, "/")) {
		errs = append(errs, flagenv.Errorf("publish-service", "want namespace/name, got %q", f.publishService))
	}
	if f.leaderElect && f.lease == "" {
		errs = append(errs, flagenv.Errorf("leader-election-lease", "required with --leader-elect"))
	}
	return errs
}

// startIngress starts the Ingress controller when --ingress-class is set;
// the returned channel is closed once the first Ingresses are applied
// (at once when there is no controller).
func startIngress(ctx context.Context, wg *sync.WaitGroup, cfg gatewayConfig, g *globals, gw *gateway.Gateway, log *slog.Logger) (<-chan struct{}, error) {
	f := cfg.ingress
	if f.class == "" {
		done := make(chan struct{})
		close(done)
		return done, nil
	}
	rc, ns, err := discovery.RESTConfig(cfg.kubeconfig, g.env.Getenv)
	if err != nil {
		return nil, err
	}
	client, err := kubeshared.NewClients(rc)
	if err != nil {
		return nil, err
	}
	dir := f.secretDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "flotilla-ingress-"); err != nil {
			return nil, err
		}
		wg.Go(func() { <-ctx.Done(); os.RemoveAll(dir) })
	}
	opts := controller.Options{Client: client, Namespaces: f.namespaces, SecretDir: dir, Apply: func(x *gateway.Extra) error { return gw.SetExtraPart("ingress", x) },
		Translate:      ingress.Options{ClassName: f.class, ControllerName: f.controllerName, WithoutClass: f.withoutClass, NginxClass: f.nginx, NoHTTPS: cfg.tlsAddr == ""},
		PublishService: f.publishService, PublishAddresses: f.publishAddresses, Logger: log.With(slog.String("component", "ingress"))}
	if f.leaderElect {
		opts.Lease = &controller.Lease{Namespace: ns, Name: f.lease, Identity: g.env.Getenv("POD_NAME")}
	}
	c, err := controller.New(opts)
	if err != nil {
		return nil, err
	}
	wg.Go(func() {
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("ingress controller stopped", slog.String("error", err.Error()))
		}
	})
	return c.Synced(), nil
}
