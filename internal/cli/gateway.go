package cli

//lint:file-ignore SA1019 see internal/httpserver/h1/h2.go: the gateway's HTTP/2 server is x/net/http2's

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
	"github.com/flotilla-dev/flotilla/internal/httpserver/h1"
	"github.com/flotilla-dev/flotilla/internal/memlimit"
	"github.com/flotilla-dev/flotilla/internal/metrics"
	"github.com/flotilla-dev/flotilla/internal/tlsconf"
)

// gatewayConfig is the gateway's start-up configuration; routing lives in
// the --config file.
type gatewayConfig struct {
	configPath   string
	addr         string
	tlsAddr      string
	adminAddr    string
	admin        adminFlags
	accessLog    bool
	liveStats    bool
	watch        bool
	maxBodyBytes int64
	trusted      []string
	kubeconfig   string
	ingress      ingressFlags
	gatewayAPI   gatewayAPIFlags
	live         liveFlags
	server       httpserver.Options
}

func (c gatewayConfig) validate() error {
	var errs []error
	if c.configPath == "" {
		errs = append(errs, flagenv.Errorf("config", "required: the routing config file (see examples/gateway/)"))
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		errs = append(errs, flagenv.Errorf("addr", "want host:port or :port, got %q", c.addr))
	}
	if c.tlsAddr != "" {
		if _, _, err := net.SplitHostPort(c.tlsAddr); err != nil {
			errs = append(errs, flagenv.Errorf("tls-addr", `want host:port, or "" for no HTTPS, got %q`, c.tlsAddr))
		}
	}
	if c.adminAddr != "" {
		if _, _, err := net.SplitHostPort(c.adminAddr); err != nil {
			errs = append(errs, flagenv.Errorf("admin-addr", `want host:port, or "" to disable, got %q`, c.adminAddr))
		}
	}
	if _, err := gateway.ParseTrustedProxies(c.trusted); err != nil {
		errs = append(errs, flagenv.Errorf("trusted-proxies", "%v", err))
	}
	if c.adminAddr != "" && c.admin.tokenFile == "" && !loopbackAddr(c.adminAddr) {
		errs = append(errs, flagenv.Errorf("admin-token-file", "required: --admin-addr %q is not a loopback address, and the admin API can change live weights", c.adminAddr))
	}
	if c.maxBodyBytes <= 0 {
		errs = append(errs, flagenv.Errorf("max-body-bytes", "must be positive, got %d", c.maxBodyBytes))
	}
	if err := c.server.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.live.validate(c.adminAddr, c.admin.tokenFile)...)
	errs = append(errs, c.ingress.validate(c.gatewayAPI.class != "")...)
	errs = append(errs, c.gatewayAPI.validate(c.ingress.leaderElect, c.ingress.publishService, c.addr, c.tlsAddr, c.adminAddr)...)
	return errors.Join(errs...)
}

func newGatewayCmd(g *globals) *cobra.Command {
	var cfg gatewayConfig
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the API gateway: routing, balancing, health, traffic strategies",
		Long: `Run the API gateway in front of HTTP services. Routing, backends and traffic
strategies come from the --config file (docs/gateway.md, examples/gateway/),
which is reloaded when it changes (also on SIGHUP and POST /reload on the
admin port); an invalid file is reported and the last good config keeps
serving.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.validate(); err != nil {
				return usage(err)
			}
			var err error
			if cfg.admin.opts, err = cfg.admin.options(); err != nil {
				return usage(err)
			}
			return runGateway(cmd.Context(), cfg, g)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.configPath, "config", "", "routing config file (YAML, apiVersion flotilla.dev/v1alpha1)")
	fs.StringVar(&cfg.addr, "addr", ":8080", "data-plane listen address (HTTP/1.1, and HTTP/2 with prior knowledge)")
	fs.StringVar(&cfg.tlsAddr, "tls-addr", "", `HTTPS listen address (HTTP/1.1 and HTTP/2), with the certificates of the config's tls section ("" = no HTTPS)`)
	fs.StringVar(&cfg.adminAddr, "admin-addr", "127.0.0.1:9901", `admin API listen address ("" disables it); it can change live weights, keep it private`)
	fs.StringVar(&cfg.admin.tokenFile, "admin-token-file", "", "file holding the admin API's bearer token (a mounted Secret); required unless --admin-addr is loopback. /healthz, /readyz and /metrics need none")
	fs.StringSliceVar(&cfg.admin.hosts, "admin-hosts", nil, "host names the admin API accepts in the Host header besides IP addresses and localhost (DNS rebinding guard)")
	fs.BoolVar(&cfg.admin.pprof, "admin-pprof", false, "serve Go profiles on the admin API under /debug/pprof/ (behind the token)")
	fs.BoolVar(&cfg.accessLog, "access-log", true, "write one JSON access log line per request to stdout")
	fs.BoolVar(&cfg.liveStats, "live-stats", true, "count requests by version and instance for the live view on the admin port (/ui/); false measures its cost")
	fs.BoolVar(&cfg.watch, "watch", true, "reload the config file when it changes")
	fs.Int64Var(&cfg.maxBodyBytes, "max-body-bytes", 32<<20, "largest request body accepted; larger ones get 413")
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig file for backends with kubernetes discovery when running outside the cluster (default: the pod's service account in a cluster, else $KUBECONFIG or ~/.kube/config)")
	fs.StringSliceVar(&cfg.trusted, "trusted-proxies", nil, "CIDRs of proxies in front of the gateway whose X-Forwarded-For/-Proto/-Host and Forwarded are believed (default none: they are rebuilt from the TCP peer)")
	cfg.live.flags(fs)
	cfg.ingress.flags(fs)
	cfg.gatewayAPI.flags(fs)
	cfg.server.Flags(fs)
	cfg.server.EdgeFlags(fs)
	cmd.AddCommand(newGatewayValidateCmd(g), newGatewayAdminCmd(g))
	return cmd
}

func runGateway(ctx context.Context, cfg gatewayConfig, g *globals) error {
	log := g.logger().With(slog.String("component", "gateway"))
	// A proxy's live heap is a few MB while it allocates per request, so
	// the default GOGC=100 collects very often; 400 costs a few MB and
	// measured ≈10% less CPU per request (bench/proxy). GOGC still wins.
	if _, set := g.env.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	memlimit.Set(log)
	trusted, err := gateway.ParseTrustedProxies(cfg.trusted)
	if err != nil {
		return usage(flagenv.Errorf("trusted-proxies", "%v", err))
	}
	// Kubernetes discovery connects to the API server on the first
	// backend that names a Service (backends[].kubernetes), at start-up
	// or on a reload; its informers are shared by every reload.
	// client-go logs through klog (to stderr, not JSON): send it to the
	// gateway's logger. klog's logger is process-wide; the gateway is the
	// process.
	klog.SetSlogLogger(log.With(slog.String("subsystem", "client-go")))
	disc := discovery.New(discovery.Options{Connect: discovery.Connect(cfg.kubeconfig, g.env.Getenv), Logger: log, Pods: cfg.live.kubernetes})
	defer disc.Close()
	opts := gateway.Options{Logger: log, ConfigPath: cfg.configPath, MaxRequestBody: cfg.maxBodyBytes, Registry: metrics.NewRegistry("gateway"),
		TrustedProxies: trusted, Endpoints: disc,
		// A controller's routes come from Ingresses or HTTPRoutes: its file
		// may hold none (docs/ingress.md, docs/gateway-api.md).
		AllowNoRoutes: cfg.ingress.class != "" || cfg.gatewayAPI.class != ""}
	opts.Registry.MustRegister(disc)
	opts.DisableLiveStats = !cfg.liveStats
	opts.Replica = replicaName(g.env.Getenv)
	if cfg.accessLog {
		opts.AccessLog = g.env.Stdout
	}
	if cfg.tlsAddr != "" {
		opts.TLS = newTLSStore(cfg.server, log)
		opts.TLS.FromSecrets = opts.AllowNoRoutes
	}
	gw, err := gateway.NewFromFile(opts)
	if err != nil {
		return err
	}
	defer gw.Close()
	// Pods behind the backends' Services turning ready or terminating,
	// and with --live-kubernetes rollouts, go to the live view's timeline.
	disc.SetTimeline(gw.LiveView())
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	ingressSynced, err := startIngress(ctx, &wg, cfg, g, gw, log)
	if err != nil {
		return err
	}
	// Per-Gateway listeners (--gateway-port-range) open and close as
	// Gateways come and go, served by the same server as --addr.
	var dyn *httpserver.Dynamic
	if cfg.gatewayAPI.portRange != "" {
		host, _, _ := net.SplitHostPort(cfg.addr)
		var tc *tls.Config
		if opts.TLS != nil {
			tc = opts.TLS.Config()
		}
		dyn = httpserver.NewDynamic(host, tc)
	}
	gatewayAPISynced, err := startGatewayAPI(ctx, &wg, cfg, g, gw, dyn, log)
	if err != nil {
		return err
	}
	// Listen once the Ingresses are applied and the EndpointSlices
	// listed, so that the first requests find their routes and endpoints;
	// when the API server does not answer, serve anyway (those backends
	// answer 503 until it does). 10s stays well inside the liveness
	// probe's patience (3 × 10s), which cannot reach the admin port
	// before it listens.
	syncCtx, cancelSync := context.WithTimeout(ctx, 10*time.Second)
	select {
	case <-ingressSynced:
	case <-syncCtx.Done():
		log.Warn("serving before the Ingresses are known", slog.String("error", syncCtx.Err().Error()))
	}
	select {
	case <-gatewayAPISynced:
	case <-syncCtx.Done():
		log.Warn("serving before the Gateway API objects are known", slog.String("error", syncCtx.Err().Error()))
	}
	if err := disc.WaitSynced(syncCtx); err != nil {
		log.Warn("serving before the endpoints are known", slog.String("error", err.Error()))
	}
	cancelSync()

	ln, err := listenData(ctx, cfg.addr, cfg.tlsAddr, opts.TLS)
	if err != nil {
		return err
	}
	if dyn != nil {
		ln = httpserver.Merge(ln, dyn)
	}
	var adminLn net.Listener
	if cfg.adminAddr != "" {
		if adminLn, err = httpserver.Listen(ctx, cfg.adminAddr); err != nil {
			ln.Close()
			return err
		}
	}
	if cfg.watch {
		wg.Go(func() {
			if err := gw.WatchFile(ctx, 0); err != nil {
				log.Error("config watch stopped", slog.String("error", err.Error()))
			}
		})
		if opts.TLS != nil {
			wg.Go(func() {
				if err := opts.TLS.Watch(ctx, 0); err != nil {
					log.Error("TLS files watch stopped", slog.String("error", err.Error()))
				}
			})
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := gw.ReloadFile(); err != nil {
					gw.LogRejected(err)
				}
			}
		}
	})

	var admins []server
	if adminLn != nil {
		aopts := httpserver.Options{ShutdownTimeout: time.Second}
		// As a Gateway API controller the page's weight buttons write the
		// HTTPRoute, as the admin API does, so every replica follows. As an
		// Ingress controller alone a change would reach one replica and
		// last until the next reconcile, so the page only shows.
		src, stopPeers, err := startLivePeers(cfg.live, cfg.adminAddr, cfg.admin.opts.Token, opts.Replica, g.env.Getenv, gw, disc, log)
		if err != nil {
			ln.Close()
			adminLn.Close()
			return err
		}
		defer stopPeers()
		ui := gw.LiveUIWith(src, cfg.admin.opts.Token, cfg.ingress.class != "" && cfg.gatewayAPI.class == "")
		defer ui.Close()
		secure := cfg.admin.opts
		secure.UI = ui
		h := admin.Secure(gw.AdminHandler(), secure)
		// Shutdown would wait for the live view's event streams: end them first.
		admins = append(admins, server{srv: httpserver.New(h, aopts, log), ln: adminLn, opts: aopts, drain: ui.Close})
		log.Info("gateway admin listening", slog.String("addr", adminLn.Addr().String()),
			slog.Bool("token", cfg.admin.opts.Token != nil), slog.Bool("pprof", cfg.admin.opts.Pprof),
			slog.String("live_view", "http://"+displayAddr(adminLn.Addr())+"/ui/"))
	}
	log.Info("gateway listening", slog.String("addr", cfg.addr), slog.String("tls_addr", cfg.tlsAddr), slog.String("config", cfg.configPath))
	data := httpserver.NewH1(gw.Handler(), cfg.server, log)
	opts.Registry.MustRegister(refusedMetric(data), edgeMetrics(data))
	err = serveAll(ctx, server{srv: streamDraining{data, gw.DrainStreams}, ln: ln, opts: cfg.server, drain: gw.Probes().Drain}, admins...)
	cancel()
	wg.Wait()
	log.Info("gateway stopped")
	return err
}

func newGatewayValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a gateway config file and print every problem with its YAML path",
		Args:  func(cmd *cobra.Command, args []string) error { return usage(cobra.ExactArgs(1)(cmd, args)) },
		RunE: func(_ *cobra.Command, args []string) error {
			c, err := config.Load(args[0])
			if err != nil {
				return err
			}
			if err := gateway.CheckPolicyFiles(c); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(g.env.Stdout, "%s: ok (%d routes, %d backends)\n", args[0], len(c.Routes), len(c.Backends))
			return nil
		},
	}
}

func newGatewayAdminCmd(g *globals) *cobra.Command {
	var adminURL, tokenFile string
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Use a running gateway's admin API",
		Long: `Use a running gateway's admin API:
  flotilla gateway admin routes | backends | table | config | reload
  flotilla gateway admin weights ROUTE                 show a route's weights
  flotilla gateway admin weights ROUTE blue=0 green=100  set them atomically`,
	}
	cmd.PersistentFlags().StringVar(&adminURL, "admin-url", "http://127.0.0.1:9901", "the gateway's admin API base URL")
	cmd.PersistentFlags().StringVar(&tokenFile, "admin-token-file", "", "file holding the admin API's bearer token (the gateway's --admin-token-file)")
	flagenv.Document(cmd.PersistentFlags())
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(ctx context.Context, method, path string, body io.Reader) error {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(adminURL, "/")+path, body)
		if err != nil {
			return usage(flagenv.Errorf("admin-url", "%v", err))
		}
		if tokenFile != "" {
			tok, err := admin.ReadToken(tokenFile)
			if err != nil {
				return usage(flagenv.Errorf("admin-token-file", "%v", err))
			}
			req.Header.Set("Authorization", "Bearer "+string(tok))
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("admin API: %w", err)
		}
		defer resp.Body.Close()
		if _, err := io.Copy(g.env.Stdout, io.LimitReader(resp.Body, 16<<20)); err != nil {
			return fmt.Errorf("admin API: %w", err)
		}
		// Where a weight change was written: "local" (this replica, until
		// its next reload) or the HTTPRoute rule every replica follows.
		if where := resp.Header.Get(admin.WrittenToHeader); where != "" && resp.StatusCode < 300 {
			fmt.Fprintf(g.env.Stderr, "written to: %s\n", where)
		}
		if resp.StatusCode == http.StatusUnauthorized && tokenFile == "" {
			return fmt.Errorf("admin API: %s %s: %s: pass the token with --admin-token-file (FLOTILLA_ADMIN_TOKEN_FILE)", method, path, resp.Status)
		}
		if resp.StatusCode >= 300 {
			return fmt.Errorf("admin API: %s %s: %s", method, path, resp.Status)
		}
		return nil
	}
	simple := func(use, short, method, path string) *cobra.Command {
		return &cobra.Command{Use: use, Short: short,
			Args: func(cmd *cobra.Command, args []string) error { return usage(cobra.NoArgs(cmd, args)) },
			RunE: func(cmd *cobra.Command, _ []string) error { return call(cmd.Context(), method, path, nil) }}
	}
	cmd.AddCommand(
		simple("routes", "List routes with their matches and weights", "GET", "/routes"),
		simple("backends", "List backends with endpoint health and in-flight counts", "GET", "/backends"),
		simple("table", "List routes in the order requests are matched", "GET", "/table"),
		simple("config", "Show the last config load: ok, time and every problem", "GET", "/config"),
		simple("reload", "Re-read the config file now", "POST", "/reload"),
		&cobra.Command{
			Use:   "weights ROUTE [BACKEND=WEIGHT ...]",
			Short: "Show or atomically set a route's backend weights (0..100)",
			Args:  func(cmd *cobra.Command, args []string) error { return usage(cobra.MinimumNArgs(1)(cmd, args)) },
			RunE: func(cmd *cobra.Command, args []string) error {
				path := "/routes/" + args[0] + "/weights"
				if len(args) == 1 {
					return call(cmd.Context(), "GET", path, nil)
				}
				w, err := parseWeights(args[1:])
				if err != nil {
					return usage(err)
				}
				b, _ := json.Marshal(w)
				return call(cmd.Context(), "PUT", path, strings.NewReader(string(b)))
			},
		},
	)
	return cmd
}

// parseWeights reads "name=weight" arguments.
func parseWeights(args []string) (map[string]int, error) {
	w := map[string]int{}
	var errs []error
	for _, a := range args {
		name, v, ok := strings.Cut(a, "=")
		n, err := strconv.Atoi(v)
		if !ok || name == "" || err != nil || n < 0 || n > 100 {
			errs = append(errs, fmt.Errorf("weight %q: want BACKEND=WEIGHT with WEIGHT 0..100", a))
			continue
		}
		w[name] = n
	}
	return w, errors.Join(errs...)
}

// adminFlags are the admin API's protection (see admin.Options).
type adminFlags struct {
	tokenFile string
	hosts     []string
	pprof     bool
	opts      admin.Options // filled by options before the gateway runs
}

// options reads the token file; errors name the flag, never the token.
func (a adminFlags) options() (admin.Options, error) {
	o := admin.Options{Hosts: a.hosts, Pprof: a.pprof}
	var errs []error
	for i, h := range a.hosts {
		if h == "" || strings.ContainsAny(h, ":/ \t") {
			errs = append(errs, flagenv.Errorf("admin-hosts", "entry %d: want a host name without port, got %q", i+1, h))
		}
	}
	if a.tokenFile != "" {
		tok, err := admin.ReadToken(a.tokenFile)
		if err != nil {
			errs = append(errs, flagenv.Errorf("admin-token-file", "%v", err))
		}
		o.Token = tok
	}
	return o, errors.Join(errs...)
}

// loopbackAddr reports whether host:port listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// edgeMetrics counts failed TLS handshakes and, by kind, the HTTP/2
// protocol errors clients caused (x/net/http2's names: resets over the
// rapid-reset limit, CONTINUATION floods, bad frames...).
func edgeMetrics(srv *h1.Server) prometheus.Collector {
	h2 := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flotilla_gateway_http2_errors_total",
		Help: "HTTP/2 protocol errors caused by clients, by kind."}, []string{"kind"})
	if srv.H2 != nil {
		srv.H2.CountError = func(kind string) { h2.WithLabelValues(kind).Inc() }
	}
	tls := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "flotilla_gateway_tls_handshake_failures_total",
		Help: "TLS handshakes that failed (no shared version or cipher, bad client certificate, timeout)."},
		func() float64 { return float64(srv.TLSFailures()) })
	return collectors{h2, tls}
}

// collectors is several collectors registered as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// refusedMetric counts the connections the data plane closed at accept
// (over --max-conns or --max-conns-per-ip), by cap.
func refusedMetric(srv *h1.Server) prometheus.Collector {
	return refused{srv: srv, desc: prometheus.NewDesc("flotilla_gateway_connections_refused_total",
		"Connections closed at accept, and HTTP/2 requests refused (503), because a connection cap was reached.", []string{"cap"}, nil)}
}

type refused struct {
	srv  *h1.Server
	desc *prometheus.Desc
}

func (r refused) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r refused) Collect(ch chan<- prometheus.Metric) {
	total, perIP := r.srv.Refused()
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(total), "max_conns")
	ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(perIP), "max_conns_per_ip")
}

// newTLSStore is the HTTPS listener's certificate store, offering h2 in
// ALPN only when HTTP/2 is on.
func newTLSStore(o httpserver.Options, log *slog.Logger) *tlsconf.Store {
	s := &tlsconf.Store{Log: log}
	if o.Edge.HTTP2 != nil && !*o.Edge.HTTP2 {
		s.NextProtos = []string{"http/1.1"}
	}
	return s
}

// listenData opens the data plane's clear-text port and, when tlsAddr is
// set, its HTTPS port, merged into one listener for one server.
func listenData(ctx context.Context, addr, tlsAddr string, store *tlsconf.Store) (net.Listener, error) {
	ln, err := httpserver.Listen(ctx, addr)
	if err != nil || tlsAddr == "" {
		return ln, err
	}
	tln, err := httpserver.Listen(ctx, tlsAddr)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return httpserver.Merge(ln, tls.NewListener(tln, store.Config())), nil
}

// dataAddrs returns the addresses listenData's listener accepts on: the
// clear-text port, then the HTTPS one if any.
func dataAddrs(ln net.Listener) []net.Addr {
	if m, ok := ln.(interface{ Addrs() []net.Addr }); ok {
		return m.Addrs()
	}
	return []net.Addr{ln.Addr()}
}
