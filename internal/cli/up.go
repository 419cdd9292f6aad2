package cli

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/flotilla-dev/flotilla/internal/counter"
	"github.com/flotilla-dev/flotilla/internal/demo"
	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
	"github.com/flotilla-dev/flotilla/internal/metrics"
)

type upConfig struct {
	addr      string
	adminAddr string
	counters  int
	versions  []string
	redis     counter.RedisConfig // --redis-* as `flotilla counter` takes them; no address: in-process
	accessLog bool
	server    httpserver.Options
}

func (c upConfig) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		errs = append(errs, flagenv.Errorf("addr", "want host:port or :port, got %q", c.addr))
	}
	if _, _, err := net.SplitHostPort(c.adminAddr); err != nil {
		errs = append(errs, flagenv.Errorf("admin-addr", "want host:port, got %q", c.adminAddr))
	}
	if c.counters < 1 || c.counters > 16 {
		errs = append(errs, flagenv.Errorf("counters", "must be 1..16, got %d", c.counters))
	}
	for _, v := range c.versions {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, flagenv.Errorf("counter-versions", "empty version in %q", strings.Join(c.versions, ",")))
		}
	}
	if c.redis.Addr != "" {
		errs = append(errs, c.redis.Validate())
	}
	return errors.Join(errs...)
}

func newUpCmd(g *globals) *cobra.Command {
	var cfg upConfig
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole system on this machine: gateway, counters, demo",
		Long: `Run the whole system in one process: counter replicas (counter-1,
counter-2, …), one demo, and the gateway on one entry port. /counter is
balanced round-robin across the counters, /demo goes to the demo, / lists
both, and the talk's Ingress hosts work too (Host: flaskapp.test, path
/flask; Host: minikube.test). The count is kept in-process unless
--redis-addr names a real Redis. Ctrl-C stops everything.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return usage(err)
			}
			return runUp(cmd.Context(), cfg, g)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.addr, "addr", ":8080", "entry address (the gateway)")
	fs.StringVar(&cfg.adminAddr, "admin-addr", "127.0.0.1:0", "gateway admin API address (port 0: any free port)")
	fs.IntVar(&cfg.counters, "counters", 2, "number of counter replicas")
	fs.StringSliceVar(&cfg.versions, "counter-versions", []string{buildinfo.Version()}, "versions the counters claim, in turn (v1,v2: counter-1 v1, counter-2 v2), to watch a split with flotilla load")
	cfg.redis.Flags(fs, "") // no address: an in-process store
	fs.BoolVar(&cfg.accessLog, "access-log", false, "write the gateway's JSON access log to stdout")
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
	adminLn, err := httpserver.Listen(ctx, cfg.adminAddr)
	if err != nil {
		return err
	}
	defer adminLn.Close()

	var store counter.Store = &counter.Memory{}
	if cfg.redis.Addr != "" {
		ropts, err := cfg.redis.Options()
		if err != nil {
			return err
		}
		store = counter.NewRedis(ropts)
	}
	defer store.Close()

	var services []*upService
	for i := 1; i <= cfg.counters; i++ {
		name := fmt.Sprintf("counter-%d", i)
		svc := counter.New(counter.Options{Instance: name, Version: cfg.versions[(i-1)%len(cfg.versions)], Store: store,
			Registry: metrics.NewRegistry("counter"), Logger: log.With(slog.String("instance", name))})
		services = append(services, &upService{name: name, handler: svc.Handler(), drain: svc.Probes().Drain})
	}
	dcfg := demo.Config{Instance: "demo-1", Version: buildinfo.Version(), DieMode: "exit",
		StreamIdleTimeout: demo.DefaultStreamIdleTimeout, StreamMaxLifetime: demo.DefaultStreamMaxLifetime}
	dsvc := demo.New(demo.Options{Config: dcfg, Registry: metrics.NewRegistry("demo"), Logger: log.With(slog.String("instance", "demo-1")), PodIP: "127.0.0.1"})
	services = append(services, &upService{name: "demo-1", handler: dsvc.Handler(), drain: dsvc.Probes().Drain})
	index := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		upIndex.Execute(w, nil)
	})
	services = append(services, &upService{name: "index", handler: index})

	// On early error returns, close the listeners; Serve closes them otherwise.
	defer func() {
		for _, s := range services {
			if s.ln != nil {
				s.ln.Close()
			}
		}
	}()
	addrs := map[string][]string{} // backend name → addresses
	for _, s := range services {
		if s.ln, err = httpserver.Listen(ctx, "127.0.0.1:0"); err != nil {
			return err
		}
		group, _, _ := strings.Cut(s.name, "-")
		addrs[group] = append(addrs[group], s.ln.Addr().String())
	}
	gwOpts := gateway.Options{Logger: g.logger().With(slog.String("component", "gateway")), Registry: metrics.NewRegistry("gateway")}
	if cfg.accessLog {
		gwOpts.AccessLog = g.env.Stdout
	}
	gw, err := gateway.New(upRoutes(addrs), gwOpts)
	if err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	defer gw.Close()

	// The services and the admin API outlive the gateway's drain, so
	// requests in flight through it can finish.
	var others []server
	for _, s := range services {
		others = append(others, server{srv: httpserver.New(s.handler, cfg.server, log), ln: s.ln, opts: cfg.server, drain: s.drain})
	}
	others = append(others, server{srv: httpserver.New(admin.Secure(gw.AdminHandler(), admin.Options{}), cfg.server, log), ln: adminLn, opts: cfg.server})

	base := "http://" + displayAddr(entry.Addr())
	fmt.Fprintf(g.env.Stdout, "flotilla up: %d counters, 1 demo, gateway; store: %s\n", cfg.counters, store)
	fmt.Fprintf(g.env.Stdout, "  counter  %s/counter\n  demo     %s/demo\n  index    %s/\n", base, base, base)
	fmt.Fprintf(g.env.Stdout, "  talk     curl -H 'Host: flaskapp.test' %s/flask\n           curl -H 'Host: minikube.test' %s/\n", base, base)
	fmt.Fprintf(g.env.Stdout, "  admin    http://%s/routes\nPress Ctrl-C to stop.\n", adminLn.Addr())

	err = serveAll(ctx, server{srv: httpserver.NewH1(gw.Handler(), cfg.server, log), ln: entry, opts: cfg.server, drain: gw.Probes().Drain}, others...)
	if err == nil {
		fmt.Fprintln(g.env.Stdout, "flotilla up: stopped")
	}
	return err
}

// upRoutes is the gateway config of `flotilla up`: the entry paths, and the
// talk's Ingress as in examples/gateway/talk.yaml.
func upRoutes(addrs map[string][]string) *config.Config {
	check := &config.HealthCheck{Path: "/readyz", Interval: time.Second}
	backend := func(name string) config.Backend {
		return config.Backend{Name: name, Addresses: addrs[name], HealthCheck: check}
	}
	// Clients get GET and HEAD on the apps' public endpoints; their probes,
	// metrics and control endpoints are answered 404 by the gateway (the
	// private routes win by precedence), as in deploy/kubernetes.
	get := []string{http.MethodGet, http.MethodHead}
	notFound := &config.DirectResponse{Status: http.StatusNotFound, Body: "not found\n"}
	const private = "(healthz|readyz|metrics)(/.*)?"
	prefix := func(name, path string) config.Route {
		return config.Route{Name: name,
			Match:    config.Match{Path: &config.PathMatch{Type: "Prefix", Value: path}, Methods: get},
			Rewrite:  &config.Rewrite{Path: &config.PathRewrite{Type: config.RewriteReplacePrefix, Value: "/"}},
			Backends: []config.BackendRef{{Name: name}}}
	}
	c := &config.Config{
		APIVersion: config.APIVersion, Kind: config.Kind,
		Backends: []config.Backend{backend("counter"), backend("demo"), {Name: "index", Addresses: addrs["index"]}},
		Routes: []config.Route{
			prefix("counter", "/counter"),
			prefix("demo", "/demo"),
			{Name: "private", Match: config.Match{Path: &config.PathMatch{Type: "Regex", Value: "/(counter|demo)/" + private}}, DirectResponse: notFound},
			{Name: "index", Match: config.Match{Path: &config.PathMatch{Type: "Exact", Value: "/"}, Methods: get}, Backends: []config.BackendRef{{Name: "index"}}},
			{Name: "flask", Match: config.Match{Hosts: []string{"flaskapp.test"}, Path: &config.PathMatch{Type: "Regex", Value: "/flask(/|$)(.*)"}, Methods: get},
				Rewrite: &config.Rewrite{Path: &config.PathRewrite{Type: config.RewriteRegex, Value: "/$2"}}, Backends: []config.BackendRef{{Name: "counter"}}},
			{Name: "flask-private", Match: config.Match{Hosts: []string{"flaskapp.test"}, Path: &config.PathMatch{Type: "Regex", Value: "/flask/" + private}}, DirectResponse: notFound},
			{Name: "minikube", Match: config.Match{Hosts: []string{"minikube.test"}, Methods: get}, Backends: []config.BackendRef{{Name: "demo"}}},
			{Name: "minikube-private", Match: config.Match{Hosts: []string{"minikube.test"}, Path: &config.PathMatch{Type: "Regex", Value: "/" + private}}, DirectResponse: notFound},
		},
	}
	c.SetDefaults()
	return c
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
