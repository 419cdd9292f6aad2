package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/flotilla-dev/flotilla/internal/demo"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
	"github.com/flotilla-dev/flotilla/internal/memlimit"
	"github.com/flotilla-dev/flotilla/internal/metrics"
)

func newDemoCmd(g *globals) *cobra.Command {
	var cfg demo.Config
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the URL-driven demo app (the talk's k8s-demo)",
		Long: `Run the demo app: / shows a logo with the serving instance, /map lists
every endpoint, /ws/echo echoes WebSocket messages, and the same port serves
gRPC over h2c (health, flotilla.demo.v1.Echo, reflection). The health-demo
flags make probes fail or the process die on purpose, to watch Kubernetes
react.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return usage(err)
			}
			log := g.logger().With(slog.String("component", "demo"), slog.String("instance", cfg.Instance))
			return runDemo(cmd.Context(), cfg, g.env.Getenv("POD_IP"), log)
		},
	}
	cfg.Flags(cmd.Flags(), buildinfo.DefaultInstance(g.env.Getenv, "demo"), buildinfo.Version())
	return cmd
}

func runDemo(ctx context.Context, cfg demo.Config, podIP string, log *slog.Logger) error {
	memlimit.Set(log)
	svc := demo.New(demo.Options{Config: cfg, Registry: metrics.NewRegistry("demo"), Logger: log, PodIP: podIP})
	ln, err := httpserver.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	svc.Start(ctx)
	log.Info("demo listening", slog.String("addr", ln.Addr().String()), slog.String("version", cfg.Version))

	srv := svc.NewServer(cfg.Server, log)
	errc := make(chan error, 1)
	go func() { errc <- httpserver.Serve(ctx, srv, ln, cfg.Server, svc.Drain) }()
	select {
	case err := <-errc:
		// Shutdown sent WebSocket connections their close frames; wait
		// for the handshakes (a few seconds at most).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
		defer cancel()
		return errors.Join(err, svc.Close(cctx))
	case <-svc.Died():
		srv.Close() // a crash, on purpose: no drain
		<-errc
		return fmt.Errorf("died on purpose: %s", svc.Reason())
	}
}
