package cli

import (
	"context"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/flotilla-dev/flotilla/internal/counter"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
	"github.com/flotilla-dev/flotilla/internal/memlimit"
	"github.com/flotilla-dev/flotilla/internal/metrics"
)

func newCounterCmd(g *globals) *cobra.Command {
	var cfg counter.Config
	cmd := &cobra.Command{
		Use:   "counter",
		Short: "Run the Redis-backed counter (the talk's flask-app)",
		Long: `Run the counter. GET / increments the Redis key and answers
"[<instance>] Redis counter value=<N>" to terminal clients, an HTML page to
browsers and JSON to clients that accept application/json.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return usage(err)
			}
			log := g.logger().With(slog.String("component", "counter"), slog.String("instance", cfg.Instance))
			return runCounter(cmd.Context(), cfg, log)
		},
	}
	cfg.Flags(cmd.Flags(), buildinfo.DefaultInstance(g.env.Getenv, "counter"), buildinfo.Version())
	return cmd
}

func runCounter(ctx context.Context, cfg counter.Config, log *slog.Logger) error {
	memlimit.Set(log)
	reg := metrics.NewRegistry("counter")
	var store counter.Store = &counter.Memory{}
	if cfg.Store == "redis" {
		o, err := cfg.Redis.Options()
		if err != nil {
			return usage(err)
		}
		o.Registerer = reg
		store = counter.NewRedis(o)
	}
	svc := counter.New(counter.Options{Instance: cfg.Instance, Version: cfg.Version, Store: store, Registry: reg, Logger: log})
	defer svc.Close(ctx)

	ln, err := httpserver.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	log.Info("counter listening", slog.String("addr", ln.Addr().String()), slog.String("store", store.String()), slog.String("version", cfg.Version))
	err = httpserver.Serve(ctx, httpserver.New(svc.Handler(), cfg.Server, log), ln, cfg.Server, svc.Probes().Drain)
	log.Info("counter stopped")
	return err
}
