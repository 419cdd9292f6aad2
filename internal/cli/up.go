package cli

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/flotilla-dev/flotilla/internal/counter"
	"github.com/flotilla-dev/flotilla/internal/demo"
	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
	"github.com/flotilla-dev/flotilla/internal/metrics"
)

type upConfig struct {
	addr      string
	counters  int
	redisAddr string
	server    httpserver.Options
}

func (c upConfig) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		errs = append(errs, flagenv.Errorf("addr", "want host:port or :port, got %q", c.addr))
	}
	if c.counters < 1 || c.counters > 16 {
		errs = append(errs, flagenv.Errorf("counters", "must be 1..16, got %d", c.counters))
	}
	if c.redisAddr != "" {
		if h, p, err := net.SplitHostPort(c.redisAddr); err != nil || h == "" || p == "" {
			errs = append(errs, flagenv.Errorf("redis-addr", "want host:port, got %q", c.redisAddr))
		}
	}
	return errors.Join(errs...)
}

func newUpCmd(g *globals) *cobra.Command {
	var cfg upConfig
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole system on this machine: counters, demo and one entry port",
		Long: `Run the whole system in one process: counter replicas (counter-1,
counter-2, …), one demo, and one entry port where /counter is balanced
round-robin across the counters, /demo goes to the demo and / lists both.
The count is kept in-process unless --redis-addr names a real Redis.
Ctrl-C stops everything.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return usage(err)
			}
			return runUp(cmd.Context(), cfg, g)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.addr, "addr", ":8080", "entry address")
	fs.IntVar(&cfg.counters, "counters", 2, "number of counter replicas")
	fs.StringVar(&cfg.redisAddr, "redis-addr", "", "Redis host:port (default: an in-process store)")
	cfg.server.ShutdownTimeout = 5 * time.Second
	return cmd
}

// upService is one component of `flotilla up` on its own loopback port.
type upService struct {
	name    string
	handler http.Handler
	drain   func()
	ln      net.Listener
}

func runUp(ctx context.Context, cfg upConfig, g *globals) error {
	log := g.logger().With(slog.String("component", "up"))
	entry, err := httpserver.Listen(ctx, cfg.addr)
	if err != nil {
		return err
	}
	defer entry.Close()

	var store counter.Store = &counter.Memory{}
	if cfg.redisAddr != "" {
		store = counter.NewRedis(counter.RedisOptions{Addr: cfg.redisAddr})
	}
	defer store.Close()

	var services []*upService
	var counters []*url.URL
	for i := 1; i <= cfg.counters; i++ {
		name := fmt.Sprintf("counter-%d", i)
		svc := counter.New(counter.Options{Instance: name, Version: buildinfo.Version(), Store: store,
			Registry: metrics.NewRegistry("counter"), Logger: log.With(slog.String("instance", name))})
		services = append(services, &upService{name: name, handler: svc.Handler(), drain: svc.Probes().Drain})
	}
	dcfg := demo.Config{Instance: "demo-1", Version: buildinfo.Version(), DieMode: "exit"}
	dsvc := demo.New(demo.Options{Config: dcfg, Registry: metrics.NewRegistry("demo"), Logger: log.With(slog.String("instance", "demo-1")), PodIP: "127.0.0.1"})
	services = append(services, &upService{name: "demo-1", handler: dsvc.Handler(), drain: dsvc.Probes().Drain})

	for _, s := range services {
		if s.ln, err = httpserver.Listen(ctx, "127.0.0.1:0"); err != nil {
			return err
		}
		if strings.HasPrefix(s.name, "counter") {
			counters = append(counters, &url.URL{Scheme: "http", Host: s.ln.Addr().String()})
		}
	}
	demoURL := &url.URL{Scheme: "http", Host: services[len(services)-1].ln.Addr().String()}

	mux := http.NewServeMux()
	mux.Handle("/counter", roundRobin(counters, "/counter", log))
	mux.Handle("/counter/", roundRobin(counters, "/counter", log))
	mux.Handle("/demo", roundRobin([]*url.URL{demoURL}, "/demo", log))
	mux.Handle("/demo/", roundRobin([]*url.URL{demoURL}, "/demo", log))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		upIndex.Execute(w, nil)
	})

	var wg sync.WaitGroup
	errc := make(chan error, len(services)+1)
	serve := func(h http.Handler, ln net.Listener, drain func()) {
		wg.Go(func() {
			if err := httpserver.Serve(ctx, httpserver.New(h, cfg.server, log), ln, cfg.server, drain); err != nil {
				errc <- err
			}
		})
	}
	for _, s := range services {
		serve(s.handler, s.ln, s.drain)
	}
	serve(mux, entry, nil)

	base := "http://" + displayAddr(entry.Addr())
	fmt.Fprintf(g.env.Stdout, "flotilla up: %d counters, 1 demo, store: %s\n", cfg.counters, store)
	fmt.Fprintf(g.env.Stdout, "  counter  %s/counter\n  demo     %s/demo\n  index    %s/\nPress Ctrl-C to stop.\n", base, base, base)

	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		fmt.Fprintln(g.env.Stdout, "flotilla up: stopped")
	}
	return errors.Join(errs...)
}

// roundRobin proxies to targets in turn, stripping prefix from the path.
func roundRobin(targets []*url.URL, prefix string, log *slog.Logger) http.Handler {
	var next atomic.Uint64
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := targets[(next.Add(1)-1)%uint64(len(targets))]
			pr.SetURL(t)
			p := strings.TrimPrefix(pr.In.URL.Path, prefix)
			if p == "" {
				p = "/"
			}
			pr.Out.URL.Path, pr.Out.URL.RawPath = p, ""
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("upstream failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
		},
	}
}

// displayAddr turns ":8080" or "[::]:8080" into "localhost:8080".
func displayAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

var upIndex = template.Must(template.New("up").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flotilla</title></head>
<body style="font-family:system-ui,sans-serif;margin:3rem">
<h1>Flotilla</h1>
<ul><li><a href="/counter">/counter</a> — the Redis counter (each visit counts once)</li>
<li><a href="/demo">/demo</a> — the demo app (<a href="/demo/map">endpoints</a>)</li></ul>
</body></html>
`))
