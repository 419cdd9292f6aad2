package cli

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi/controller"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi/weights"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// gatewayAPIFlags turn the gateway into a Gateway API implementation
// (docs/gateway-api.md). --publish-service, --publish-address and
// --leader-elect are shared with the Ingress controller (ingressFlags).
type gatewayAPIFlags struct {
	class, controllerName string
	secretDir             string
	lease                 string
	portRange             string
}

func (f *gatewayAPIFlags) flags(fs *pflag.FlagSet) {
	fs.StringVar(&f.class, "gateway-class", "", `serve the Gateways of this GatewayClass, e.g. "flotilla", or "*" for every class whose spec.controllerName is --gateway-controller-name ("" = no Gateway API controller); see docs/gateway-api.md`)
	fs.StringVar(&f.controllerName, "gateway-controller-name", gatewayapi.DefaultControllerName, "the GatewayClass spec.controllerName this gateway answers to")
	fs.StringVar(&f.secretDir, "gateway-secret-dir", "", "directory for TLS keys from the Secrets Gateway listeners name, mode 0700 (default: a new private temporary directory)")
	fs.StringVar(&f.portRange, "gateway-port-range", "", `give every Gateway its own Service and listeners, on local ports of this range, e.g. "20000-20999" ("" = every Gateway shares --addr and --tls-addr; needs --publish-service); see docs/gateway-api.md`)
	fs.StringVar(&f.lease, "gateway-leader-election-lease", "flotilla-gateway-api-leader", "name of the Lease of the Gateway API status writers, in the gateway's namespace")
}

func (f *gatewayAPIFlags) validate(leaderElect bool, publishService string, ownAddrs ...string) []error {
	var errs []error
	if f.class == "" {
		return nil
	}
	if f.portRange != "" {
		if _, err := controller.ParsePortRange(f.portRange); err != nil {
			errs = append(errs, flagenv.Errorf("gateway-port-range", "%v", err))
		} else if publishService == "" {
			errs = append(errs, flagenv.Errorf("gateway-port-range", "needs --publish-service (the per-Gateway Services copy its namespace, selector and type)"))
		} else {
			r, _ := controller.ParsePortRange(f.portRange)
			for _, a := range ownAddrs {
				if _, p, err := net.SplitHostPort(a); err == nil {
					if n, err := strconv.Atoi(p); err == nil && n >= int(r.Low) && n <= int(r.High) {
						errs = append(errs, flagenv.Errorf("gateway-port-range", "%s includes the gateway's own port %s", f.portRange, a))
					}
				}
			}
		}
	}
	if f.controllerName == "" {
		errs = append(errs, flagenv.Errorf("gateway-controller-name", "required with --gateway-class"))
	}
	if leaderElect && f.lease == "" {
		errs = append(errs, flagenv.Errorf("gateway-leader-election-lease", "required with --leader-elect"))
	}
	return errs
}

// startGatewayAPI starts the Gateway API controller when --gateway-class
// is set; the returned channel is closed once the first objects are
// applied (at once when there is no controller).
func startGatewayAPI(ctx context.Context, wg *sync.WaitGroup, cfg gatewayConfig, g *globals, gw *gateway.Gateway, dyn *httpserver.Dynamic, log *slog.Logger) (<-chan struct{}, error) {
	f := cfg.gatewayAPI
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
	gwc, err := controller.NewGatewayClient(rc)
	if err != nil {
		return nil, err
	}
	dir := f.secretDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "flotilla-gateway-api-"); err != nil {
			return nil, err
		}
		wg.Go(func() { <-ctx.Done(); os.RemoveAll(dir) })
	}
	class := f.class
	if class == "*" {
		class = "" // every class with our controllerName
	}
	opts := controller.Options{Client: client, GatewayClient: gwc, SecretDir: dir,
		Apply:            func(x *gateway.Extra) error { return gw.SetExtraPart(weights.ExtraPart, x) },
		Translate:        gatewayapi.Options{ClassName: class, ControllerName: f.controllerName, NoHTTPS: cfg.tlsAddr == ""},
		PublishService:   cfg.ingress.publishService,
		PublishAddresses: cfg.ingress.publishAddresses,
		Logger:           log.With(slog.String("component", "gateway-api"))}
	if f.portRange != "" {
		r, _ := controller.ParsePortRange(f.portRange) // validated
		opts.Ports = &r
		opts.Listen = func(ls []gatewayapi.Listener) error {
			ports := make(map[int]bool, len(ls))
			for _, l := range ls {
				ports[int(l.Port)] = l.TLS
			}
			return dyn.Set(ctx, ports)
		}
	}
	if cfg.ingress.leaderElect {
		opts.Lease = &kubeshared.Lease{Namespace: ns, Name: f.lease, Identity: g.env.Getenv("POD_NAME")}
	}
	c, err := controller.New(opts)
	if err != nil {
		return nil, err
	}
	// The admin API's weights of a route from an HTTPRoute are written to
	// the HTTPRoute (every replica follows); the file's stay local.
	ww, err := weights.New(weights.Options{Local: gw, Routes: gwc.V1, Services: client.Core,
		Logger: log.With(slog.String("component", "gateway-api-weights"))})
	if err != nil {
		return nil, err
	}
	gw.SetWeightWriter(ww)
	wg.Go(func() {
		if err := c.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("gateway API controller stopped", slog.String("error", err.Error()))
		}
	})
	return c.Synced(), nil
}
