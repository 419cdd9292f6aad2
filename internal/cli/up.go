package cli

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	"github.com/flotilla-dev/flotilla/internal/pki"
	"github.com/flotilla-dev/flotilla/internal/tlsconf"
)

type upConfig struct {
	addr      string
	tlsAddr   string
	tlsDir    string
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
	if c.tlsAddr != "" {
		if _, _, err := net.SplitHostPort(c.tlsAddr); err != nil {
			errs = append(errs, flagenv.Errorf("tls-addr", `want host:port, or "" for no HTTPS, got %q`, c.tlsAddr))
		}
		if c.tlsDir == "" {
			errs = append(errs, flagenv.Errorf("tls-dir", "no directory for the local CA: set it, or $XDG_CONFIG_HOME or $HOME"))
		}
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
	fs.StringVar(&cfg.tlsAddr, "tls-addr", ":8443", `HTTPS entry address, with a local CA's certificate for localhost ("" = no HTTPS)`)
	fs.StringVar(&cfg.tlsDir, "tls-dir", defaultTLSDir(), "where the local CA and the localhost certificate are kept (the CA is made on first run)")
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
	srv     httpserver.Server // nil: a plain server for handler
	drain   func()
	ln      net.Listener
}

func runUp(ctx context.Context, cfg upConfig, g *globals) error {
	log := g.logger().With(slog.String("component", "up"))
	var tlsFiles *config.TLS
	var store *tlsconf.Store
	if cfg.tlsAddr != "" {
		var err error
		if tlsFiles, err = localCertificate(cfg.tlsDir); err != nil {
			return err
		}
		store = newTLSStore(cfg.server, log)
	}
	entry, err := listenData(ctx, cfg.addr, cfg.tlsAddr, store)
	if err != nil {
		return err
	}
	defer entry.Close()
	addrs := dataAddrs(entry)
	adminLn, err := httpserver.Listen(ctx, cfg.adminAddr)
	if err != nil {
		return err
	}
	defer adminLn.Close()

	var countStore counter.Store = &counter.Memory{}
	if cfg.redis.Addr != "" {
		ropts, err := cfg.redis.Options()
		if err != nil {
			return err
		}
		countStore = counter.NewRedis(ropts)
	}
	defer countStore.Close()

	var services []*upService
	for i := 1; i <= cfg.counters; i++ {
		name := fmt.Sprintf("counter-%d", i)
		svc := counter.New(counter.Options{Instance: name, Version: cfg.versions[(i-1)%len(cfg.versions)], Store: countStore,
			Registry: metrics.NewRegistry("counter"), Logger: log.With(slog.String("instance", name))})
		services = append(services, &upService{name: name, handler: svc.Handler(), drain: svc.Probes().Drain})
	}
	dcfg := demo.Config{Instance: "demo-1", Version: buildinfo.Version(), DieMode: "exit",
		StreamIdleTimeout: demo.DefaultStreamIdleTimeout, StreamMaxLifetime: demo.DefaultStreamMaxLifetime}
	dsvc := demo.New(demo.Options{Config: dcfg, Registry: metrics.NewRegistry("demo"), Logger: log.With(slog.String("instance", "demo-1")), PodIP: "127.0.0.1"})
	services = append(services, &upService{name: "demo-1", srv: dsvc.NewServer(cfg.server, log), drain: dsvc.Drain}) // with gRPC (h2c) and WebSocket
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.server.ShutdownTimeout)
		defer cancel()
		dsvc.Close(ctx)
	}()
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
	backends := map[string][]string{} // backend name → addresses
	for _, s := range services {
		if s.ln, err = httpserver.Listen(ctx, "127.0.0.1:0"); err != nil {
			return err
		}
		group, _, _ := strings.Cut(s.name, "-")
		backends[group] = append(backends[group], s.ln.Addr().String())
	}
	gwOpts := gateway.Options{Logger: g.logger().With(slog.String("component", "gateway")), Registry: metrics.NewRegistry("gateway"), TLS: store}
	if cfg.accessLog {
		gwOpts.AccessLog = g.env.Stdout
	}
	var limits *config.Redis                    // the count's Redis, when there is one, also counts /limited
	if r := cfg.redis; r.Addr != "" && !r.TLS { // (the limiter speaks plain Redis)
		limits = &config.Redis{Address: r.Addr, Username: r.Username, PasswordFile: r.PasswordFile, DB: r.DB}
	}
	gw, err := gateway.New(upRoutes(backends, tlsFiles, limits), gwOpts)
	if err != nil {
		return fmt.Errorf("gateway config: %w", err)
	}
	defer gw.Close()

	// The services and the admin API outlive the gateway's drain, so
	// requests in flight through it can finish.
	var others []server
	for _, s := range services {
		srv := s.srv
		if srv == nil {
			srv = httpserver.New(s.handler, cfg.server, log)
		}
		others = append(others, server{srv: srv, ln: s.ln, opts: cfg.server, drain: s.drain})
	}
	ui := gw.LiveUI(nil, false) // the admin API is on loopback without a token
	defer ui.Close()
	others = append(others, server{srv: httpserver.New(admin.Secure(gw.AdminHandler(), admin.Options{UI: ui}), cfg.server, log), ln: adminLn, opts: cfg.server,
		drain: ui.Close}) // ends the live view's event streams, which Shutdown would wait for

	base := "http://" + displayAddr(addrs[0])
	fmt.Fprintf(g.env.Stdout, "flotilla up: %d counters, 1 demo, gateway; store: %s\n", cfg.counters, countStore)
	fmt.Fprintf(g.env.Stdout, "  counter  %s/counter\n  demo     %s/demo\n  index    %s/\n", base, base, base)
	fmt.Fprintf(g.env.Stdout, "  talk     curl -H 'Host: flaskapp.test' %s/flask\n           curl -H 'Host: minikube.test' %s/\n", base, base)
	fmt.Fprintf(g.env.Stdout, "  ws       websocat %s/demo/ws/echo\n", strings.Replace(base, "http", "ws", 1))
	fmt.Fprintf(g.env.Stdout, "  limited  %s/limited/ (50 requests/s, then 429)\n", base)
	if tlsFiles != nil {
		ca := filepath.Join(cfg.tlsDir, "ca.crt")
		fmt.Fprintf(g.env.Stdout, "  https    https://%s/ (HTTP/2; local CA %s: curl --cacert %s)\n", displayAddr(addrs[1]), ca, ca)
		fmt.Fprintf(g.env.Stdout, "  grpc     grpcurl -cacert %s %s list\n", ca, displayAddr(addrs[1]))
	} else {
		fmt.Fprintf(g.env.Stdout, "  grpc     grpcurl -plaintext %s list\n", displayAddr(addrs[0]))
	}
	fmt.Fprintf(g.env.Stdout, "  admin    http://%s/routes\n", adminLn.Addr())
	fmt.Fprintf(g.env.Stdout, "  live     http://%s/ui/ (traffic by version, rollout controls)\nPress Ctrl-C to stop.\n", adminLn.Addr())

	err = serveAll(ctx, server{srv: streamDraining{httpserver.NewH1(gw.Handler(), cfg.server, log), gw.DrainStreams}, ln: entry, opts: cfg.server, drain: gw.Probes().Drain}, others...)
	if err == nil {
		fmt.Fprintln(g.env.Stdout, "flotilla up: stopped")
	}
	return err
}

// upRoutes is the gateway config of `flotilla up`: the entry paths, and the
// talk's Ingress as in examples/gateway/talk.yaml. /limited is the demo
// behind a rate limit of 50 requests a second, as on the cluster: counted
// in redis when set (global, shared by every gateway that uses it), else
// in the process.
func upRoutes(addrs map[string][]string, tls *config.TLS, redis *config.Redis) *config.Config {
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
	limited := prefix("limited", "/limited")
	limited.Backends = []config.BackendRef{{Name: "demo"}}
	limit := config.RateLimit{Name: "fleet", Requests: 50, Per: time.Second, Burst: 50, Key: config.RateLimitKey{Source: config.KeyRoute}}
	if redis != nil {
		limit.Scope = config.ScopeGlobal
	}
	limited.RateLimits = []config.RateLimit{limit}
	c := &config.Config{
		APIVersion: config.APIVersion, Kind: config.Kind, Redis: redis,
		Backends: []config.Backend{backend("counter"), backend("demo"), {Name: "index", Addresses: addrs["index"]},
			{Name: "demo-grpc", Addresses: addrs["demo"], Protocol: "h2c"}},
		Routes: []config.Route{
			prefix("counter", "/counter"),
			prefix("demo", "/demo"),
			limited,
			{Name: "private", Match: config.Match{Path: &config.PathMatch{Type: "Regex", Value: "/(counter|demo|limited)/" + private}}, DirectResponse: notFound},
			{Name: "index", Match: config.Match{Path: &config.PathMatch{Type: "Exact", Value: "/"}, Methods: get}, Backends: []config.BackendRef{{Name: "index"}}},
			{Name: "flask", Match: config.Match{Hosts: []string{"flaskapp.test"}, Path: &config.PathMatch{Type: "Regex", Value: "/flask(/|$)(.*)"}, Methods: get},
				Rewrite: &config.Rewrite{Path: &config.PathRewrite{Type: config.RewriteRegex, Value: "/$2"}}, Backends: []config.BackendRef{{Name: "counter"}}},
			{Name: "flask-private", Match: config.Match{Hosts: []string{"flaskapp.test"}, Path: &config.PathMatch{Type: "Regex", Value: "/flask/" + private}}, DirectResponse: notFound},
			{Name: "minikube", Match: config.Match{Hosts: []string{"minikube.test"}, Methods: get}, Backends: []config.BackendRef{{Name: "demo"}}},
			{Name: "minikube-private", Match: config.Match{Hosts: []string{"minikube.test"}, Path: &config.PathMatch{Type: "Regex", Value: "/" + private}}, DirectResponse: notFound},
			// The demo's gRPC services, over HTTP/2 end to end.
			{Name: "demo-grpc", Match: config.Match{Path: &config.PathMatch{Type: "Regex", Value: "/(grpc[.]health[.]v1[.]Health|flotilla[.]demo[.]v1[.]Echo|grpc[.]reflection[.]v1(alpha)?[.]ServerReflection)/[A-Za-z]+"},
				Methods: []string{http.MethodPost}}, Backends: []config.BackendRef{{Name: "demo-grpc"}}},
		},
	}
	c.TLS = tls
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

// defaultTLSDir is where `flotilla up` keeps its local CA: the user's
// config directory ($XDG_CONFIG_HOME/flotilla/tls, ~/.config/flotilla/tls).
func defaultTLSDir() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "flotilla", "tls")
}

// localCertificate makes, on first run, a local CA in dir (ca.crt, and
// ca.key readable by the user only), and on every run a fresh localhost
// certificate signed by it, as Caddy's local HTTPS does: trust ca.crt
// once and https://localhost verifies.
func localCertificate(dir string) (*config.TLS, error) {
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	ca, err := pki.LoadCA(caCert, caKey)
	if errors.Is(err, os.ErrNotExist) {
		if ca, err = pki.NewCA("Flotilla Local CA"); err == nil {
			var key []byte
			if key, err = ca.KeyPEM(); err == nil {
				if err = pki.WriteFile(caKey, key, 0o600); err == nil {
					err = pki.WriteFile(caCert, ca.PEM, 0o644)
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("local CA in %s: %w (remove the directory to make a new one)", dir, err)
	}
	is, err := ca.Issue(pki.Request{Names: []string{"localhost", "127.0.0.1", "::1"}})
	if err != nil {
		return nil, err
	}
	cert := config.Certificate{CertFile: filepath.Join(dir, "localhost.crt"), KeyFile: filepath.Join(dir, "localhost.key")}
	if err := pki.WriteFile(cert.KeyFile, is.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := pki.WriteFile(cert.CertFile, is.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return &config.TLS{Certificates: []config.Certificate{cert}}, nil
}
