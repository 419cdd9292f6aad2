// Package gateway wires the gateway together: config → route table →
// backend pools → proxy, with metrics, access log, admin API and reload.
// It is the one place that knows every gateway package (the "server" of
// the house layout); `flotilla gateway` and `flotilla up` build one with
// New.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
	"github.com/flotilla-dev/flotilla/internal/gateway/balance"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
	"github.com/flotilla-dev/flotilla/internal/gateway/proxy"
	"github.com/flotilla-dev/flotilla/internal/gateway/ratelimit"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
	"github.com/flotilla-dev/flotilla/internal/metrics"
	"github.com/flotilla-dev/flotilla/internal/probe"
	"github.com/flotilla-dev/flotilla/internal/tlsconf"
)

// Options are the gateway's start-up settings; the routing config is
// separate and reloadable.
type Options struct {
	// Logger receives operational logs (default: discard).
	Logger *slog.Logger
	// AccessLog, when not nil, receives one JSON line per request,
	// buffered and flushed every second and on Close.
	AccessLog io.Writer
	// Registry receives the gateway's metrics (default: a new registry
	// with the Go and process collectors).
	Registry *prometheus.Registry
	// ConfigPath is the file ReloadFile reads ("" when the config is built
	// in memory, as `flotilla up` does: ReloadFile then fails).
	ConfigPath string
	// MaxRequestBody caps request bodies in bytes; larger ones get 413
	// (default 32 MiB).
	MaxRequestBody int64
	// MaxMirrorInFlight caps mirrored copies in flight; more are dropped
	// (default 64).
	MaxMirrorInFlight int
	// TrustedProxies are the peers whose X-Forwarded-For, -Proto, -Host
	// and Forwarded headers are believed (default none: the TCP peer is
	// the client, and those headers are rebuilt from it). Behind a load
	// balancer, list its addresses: the client is then the right-most
	// X-Forwarded-For address that is not trusted.
	TrustedProxies []netip.Prefix
	// LookupHost resolves backend DNS names (default net.DefaultResolver).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Rand drives random balancing, P2C and mirror sampling (default
	// rand.IntN); tests pass balance.Seeded.
	Rand balance.IntN
	// TLS, when set, serves the HTTPS listener: every config load loads
	// its tls section into it, and fails when the files do not load.
	TLS *tlsconf.Store
	// Endpoints feeds the backends that name a Kubernetes Service
	// (backends[].kubernetes), usually a *discovery.Watcher shared by
	// every reload (default nil: a config with such a backend fails to
	// load).
	Endpoints EndpointSource
	// AllowNoRoutes loads a config without routes (every request gets
	// 404) instead of refusing it: set for an Ingress controller, whose
	// routes come from Ingresses through SetExtra (default false).
	AllowNoRoutes bool
	// DisableLiveStats turns off the live view's per-version and
	// per-instance request statistics (default false: on). The page still
	// shows topology, health and the timeline; benchmarks measure the
	// statistics' cost with it.
	DisableLiveStats bool
	// Replica names this gateway in live view snapshots (default the host
	// name; on Kubernetes the pod name).
	Replica string
}

// EndpointSource is Kubernetes discovery as the gateway uses it: fn gets
// the Service port's endpoints now and after every change, until stop.
type EndpointSource interface {
	Subscribe(key discovery.Key, fn func([]discovery.Endpoint)) (stop func(), err error)
}

var _ EndpointSource = (*discovery.Watcher)(nil)

// Gateway is a running gateway. Its handler is Handler; its admin API is
// AdminHandler. Close stops it.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	access  *accessLog
	metrics *gwMetrics
	probes  probe.Probes
	proxy   *proxy.Proxy
	h1      *proxy.H1
	h2c     *http.Transport
	pol     policies // auth methods and rate limiters; g.mu

	state atomic.Pointer[state]

	mu      sync.Mutex               // serialises Reload, SetWeights and Close
	unsub   map[*backend.Pool]func() // discovery subscriptions by pool; g.mu
	status  ReloadStatus
	fileSum []byte // of the config file content last loaded
	closed  bool
	base    *config.Config        // last config loaded, before Extra is merged; g.mu
	extra   atomic.Pointer[Extra] // merged into every load (SetExtra)
	partsMu sync.Mutex            // serialises SetExtraPart
	parts   map[string]*Extra     // SetExtraPart's, by part name

	weightWriter atomic.Pointer[admin.WeightWriter] // SetWeightWriter's; nil: local
	updateMu     sync.Mutex                         // one UpdateWeightsLocal at a time
	live         *liveview.Collector
	paused       atomic.Pointer[map[string]bool] // routes whose weights are held (SetPaused); copied on write under g.mu
	liveStop     context.CancelFunc
	liveDone     chan struct{}
}

// state is everything a request reads, swapped as one. Reloads and
// admin weight changes both build a new one from a validated config.
type state struct {
	cfg    *config.Config
	table  *route.Table
	paths  route.PathOptions
	routes []*routeState // by route index
	pools  map[string]*backend.Pool
}

// routeState binds a compiled route's split (rt.Split) to the backend
// pools of this state.
type routeState struct {
	rt      *route.Route
	pools   []*backend.Pool // by rt.Split index
	allowed func(int) bool  // bound once: no allocation per request
	mirrors []proxy.Shadow
	metrics []*routeMetrics
	live    []*liveview.Recorder // by rt.Split index; nil entries when DisableLiveStats
}

func (rs *routeState) available(i int) bool { return rs.pools[i].Available() }

// ReloadStatus reports the last configuration load.
type ReloadStatus struct {
	// OK is false when the last load failed; the previous good config is
	// still serving.
	OK bool `json:"ok"`
	// At is when the last load was attempted.
	At time.Time `json:"at"`
	// LastSuccess is when a config was last swapped in.
	LastSuccess time.Time `json:"lastSuccess"`
	// Source is the file, or "memory" for configs passed to Reload.
	Source string `json:"source"`
	// Errors are every problem of a failed load, each with its YAML path.
	Errors []string `json:"errors,omitempty"`
}

// New builds and starts a gateway for cfg: from config.Load or
// config.Parse, or built in Go (New fills defaults into it and validates
// it, reporting every problem with its YAML path).
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = metrics.NewRegistry("gateway")
	}
	if opts.MaxRequestBody <= 0 {
		opts.MaxRequestBody = 32 << 20
	}
	if opts.MaxMirrorInFlight <= 0 {
		opts.MaxMirrorInFlight = 64
	}
	if opts.Rand == nil {
		opts.Rand = rand.IntN
	}
	// Bodiless Upgrade requests never reuse a connection: net/http would
	// resend one after a failure on a reused connection.
	upgrade := newTransport(false)
	upgrade.DisableKeepAlives = true
	g := &Gateway{opts: opts, log: opts.Logger, h1: &proxy.H1{Fallback: newTransport(false), Upgrade: upgrade}, h2c: newTransport(true),
		pol: policies{local: ratelimit.NewLocal(MaxLocalRateLimitKeys)}, unsub: map[*backend.Pool]func(){}}
	if opts.AccessLog != nil {
		g.access = newAccessLog(opts.AccessLog, time.Second)
	}
	g.metrics = newMetrics(opts.Registry, g)
	g.live = liveview.NewCollector(liveview.CollectorOptions{})
	g.paused.Store(&map[string]bool{})
	g.proxy = proxy.New(proxy.Options{HTTP1: g.h1, H2C: g.h2c, Logger: g.log, Rand: opts.Rand, MaxMirrorInFlight: opts.MaxMirrorInFlight,
		OnRetry:  func(r, b string) { g.metrics.retries.WithLabelValues(r, b).Inc() },
		OnMirror: func(r, res string) { g.metrics.mirrors.WithLabelValues(r, res).Inc() }})
	if err := g.Reload(cfg); err != nil {
		g.Close()
		return nil, err
	}
	g.startLive()
	return g, nil
}

// newTransport is tuned for a proxy: many idle keep-alive connections per
// endpoint (Go's default of 2 makes a proxy dial on almost every request
// under load), no transparent compression, no environment proxy.
func newTransport(h2c bool) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		t.Protocols = &p
	}
	return t
}

// Handler is the data-plane handler.
func (g *Gateway) Handler() http.Handler { return g }

// Probes is the gateway's readiness state; call Drain on shutdown.
func (g *Gateway) Probes() *probe.Probes { return &g.probes }

// DrainStreams ends the long-lived streams in flight, and any that start
// later: a WebSocket gets close frame 1001 (going away) and its upstream
// connection is closed, a gRPC stream ends with grpc-status UNAVAILABLE,
// a server-sent event stream ends (EventSource reconnects). It returns
// once they are gone or ctx is done. Call it on shutdown together with
// the server's Shutdown (which waits for streaming handlers, and does not
// see upgraded connections): readiness 503 → drain delay → DrainStreams
// and Shutdown with the same deadline → Close.
func (g *Gateway) DrainStreams(ctx context.Context) error { return g.proxy.Drain(ctx) }

// Close stops health checks, DNS refresh and mirrors, ends the streams
// still open (DrainStreams, waiting at most 5s) and closes idle upstream
// connections. Requests in flight finish; call it after the server's
// Shutdown.
func (g *Gateway) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	g.probes.Drain()
	g.stopLive()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := g.proxy.Drain(ctx); err != nil {
		g.log.Warn("streams left open at close", slog.String("error", err.Error()))
	}
	cancel()
	g.proxy.Close()
	if st := g.state.Load(); st != nil {
		for _, p := range st.pools {
			g.closePool(p)
		}
	}
	for _, m := range g.pol.methods {
		m.Close()
	}
	if g.pol.redis != nil {
		g.pol.redis.Close()
	}
	g.h1.CloseIdleConnections()
	g.h2c.CloseIdleConnections()
	if g.access != nil {
		g.access.close()
	}
}

// Reload swaps in cfg (defaulted and validated here) atomically: requests in
// flight finish on the old table, new ones use the new one. Backends
// whose config is unchanged keep their endpoints' health and connections.
// Live weight changes made with SetWeights are replaced by cfg's. On error
// nothing changes and the error is returned and recorded (metric, Status).
func (g *Gateway) Reload(cfg *config.Config) error {
	return g.load("memory", func() (*config.Config, error) { return cfg, nil })
}

// ReloadFile loads Options.ConfigPath and swaps it in, like Reload.
func (g *Gateway) ReloadFile() error {
	if g.opts.ConfigPath == "" {
		return errors.New("no config file: this gateway's config is built in memory")
	}
	return g.reloadFile(nil)
}

// reloadFile swaps in the config file's content data, read here when nil.
func (g *Gateway) reloadFile(data []byte) error {
	path := g.opts.ConfigPath
	return g.load(path, func() (*config.Config, error) {
		if data == nil {
			var err error
			if data, err = config.ReadFile(path); err != nil {
				return nil, err
			}
		}
		cfg, err := config.ParseFileWith(path, data, g.validateOptions())
		if err == nil {
			g.fileSum = hash(data)
		}
		return cfg, err
	})
}

// NewFromFile builds a gateway from the file at opts.ConfigPath, so
// WatchFile knows which content is already loaded.
func NewFromFile(opts Options) (*Gateway, error) {
	cfg, sum, err := loadFile(opts.ConfigPath, config.ValidateOptions{AllowNoRoutes: opts.AllowNoRoutes})
	if err != nil {
		return nil, err
	}
	g, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.fileSum = sum
	g.mu.Unlock()
	return g, nil
}

// loadFile reads path once, then hashes and validates those bytes.
func loadFile(path string, o config.ValidateOptions) (*config.Config, []byte, error) {
	data, err := config.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.ParseFileWith(path, data, o)
	if err != nil {
		return nil, nil, err
	}
	return cfg, hash(data), nil
}

// Status reports the last configuration load.
func (g *Gateway) Status() ReloadStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.status
	s.Errors = slices.Clone(s.Errors)
	return s
}

func (g *Gateway) load(source string, read func() (*config.Config, error)) error {
	start := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway closed")
	}
	base, err := read()
	cfg := base
	if err == nil {
		cfg = g.holdPaused(g.withExtra(base))
		err = g.swap(cfg)
	}
	if err == nil {
		g.base = base
		g.forgetPaused(cfg)
	}
	g.status.At, g.status.Source = start, source
	g.metrics.reloadSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		g.status.OK, g.status.Errors = false, splitErrors(err)
		g.metrics.reloads.WithLabelValues("failure").Inc()
		g.metrics.lastOK.Set(0)
		g.live.Event(liveview.Event{Time: start, Kind: liveview.KindReloadFailed, Message: "config from " + source + " refused; the last good one keeps serving: " + err.Error()})
		return err // the caller reports it: returned at start-up, logged on watch and SIGHUP
	}
	g.status = ReloadStatus{OK: true, At: start, LastSuccess: start, Source: source}
	g.metrics.reloads.WithLabelValues("success").Inc()
	g.metrics.lastOK.Set(1)
	g.metrics.lastSuccess.Set(float64(start.UnixNano()) / 1e9)
	g.log.Info("config loaded", slog.String("source", source), slog.Int("routes", len(cfg.Routes)), slog.Int("backends", len(cfg.Backends)))
	g.live.Event(liveview.Event{Time: start, Kind: liveview.KindReload, Message: fmt.Sprintf("config loaded from %s: %d routes, %d backends", source, len(cfg.Routes), len(cfg.Backends))})
	return nil
}

// splitErrors flattens errors.Join trees into one message per problem.
func splitErrors(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// validateOptions are how the gateway's configs are validated.
func (g *Gateway) validateOptions() config.ValidateOptions {
	return config.ValidateOptions{AllowNoRoutes: g.opts.AllowNoRoutes}
}

// swap validates, compiles and installs cfg. g.mu is held.
func (g *Gateway) swap(cfg *config.Config) error {
	cfg.SetDefaults() // idempotent; lets callers build configs in Go
	if err := cfg.ValidateWith(g.validateOptions()); err != nil {
		return err
	}
	pb, err := g.newPolicyBuild(cfg)
	if err != nil {
		return err
	}
	table, err := route.CompileWith(cfg, route.Options{Policies: pb.filters})
	if err != nil {
		pb.abort()
		return err
	}
	if g.opts.TLS != nil {
		if err := g.opts.TLS.Load(cfg.TLS); err != nil {
			pb.abort()
			return err
		}
	}
	old := g.state.Load()
	pools := map[string]*backend.Pool{}
	for i := range cfg.Backends {
		b := &cfg.Backends[i]
		if old != nil {
			if p, ok := old.pools[b.Name]; ok && reflect.DeepEqual(p.Config, b) {
				pools[b.Name] = p
				continue
			}
		}
		// Health checks go over the protocol the backend serves; a TLS
		// backend has its own transport (its CA, SNI, client certificate).
		opts := backend.Options{Transport: g.h1, LookupHost: g.opts.LookupHost, Logger: g.log, Rand: g.opts.Rand,
			OnEject: func(name string) { g.metrics.ejections.WithLabelValues(name).Inc() }}
		switch b.Protocol {
		case config.ProtocolH2C:
			opts.Transport = g.h2c
		case config.ProtocolHTTPS, config.ProtocolH2:
			own, err := newTLSTransport(b)
			if err != nil {
				g.closeNew(pools, old)
				pb.abort()
				return err
			}
			opts.OwnTransport = own
		}
		p := backend.New(b, opts)
		pools[b.Name] = p
		if b.Kubernetes != nil {
			if err := g.subscribe(p); err != nil {
				g.closeNew(pools, old)
				pb.abort()
				return fmt.Errorf("backends[%d].kubernetes (backend %q): %w", i, b.Name, err)
			}
		}
	}
	st := &state{cfg: cfg, table: table, paths: route.PathOptionsFrom(cfg.Defaults.Paths), pools: pools}
	for _, rt := range table.Routes() {
		st.routes = append(st.routes, g.newRouteState(rt, pools))
	}
	g.state.Store(st)
	pb.commit()
	// Old pools go after the new ones subscribed: a namespace still
	// watched keeps its informer.
	if old != nil {
		for name, p := range old.pools {
			if pools[name] != p {
				g.closePool(p)
			}
		}
	}
	return nil
}

// subscribe feeds p, a backend with kubernetes discovery, from
// Options.Endpoints until closePool. g.mu is held.
func (g *Gateway) subscribe(p *backend.Pool) error {
	if g.opts.Endpoints == nil {
		return errors.New("this gateway has no Kubernetes API client: run `flotilla gateway` in a cluster or with --kubeconfig")
	}
	k := p.Config.Kubernetes
	var known map[string]bool // endpoints given to the live view; calls are serialised
	stop, err := g.opts.Endpoints.Subscribe(discovery.Key{Namespace: k.Namespace, Service: k.Service, Port: k.Port}, func(eps []discovery.Endpoint) {
		ts := make([]backend.Target, len(eps))
		for i, e := range eps {
			ts[i] = backend.Target{Addr: e.Addr, Host: e.Host, Draining: e.Draining}
		}
		p.SetEndpoints(ts)
		known = g.setInstances(p.Config.Name, eps, known)
	})
	if err != nil {
		return err
	}
	g.unsub[p] = stop
	return nil
}

// setInstances tells the live view each endpoint's pod and version
// label, and forgets those of endpoints known before and gone now; it
// returns the endpoints it told of.
func (g *Gateway) setInstances(backendName string, eps []discovery.Endpoint, known map[string]bool) map[string]bool {
	now := make(map[string]bool, len(eps))
	for _, e := range eps {
		if e.Pod != "" || e.Version != "" {
			g.live.SetInstance(backendName, e.Addr, liveview.InstanceMeta{Pod: e.Pod, Version: e.Version})
			now[e.Addr] = true
		}
	}
	for addr := range known {
		if !now[addr] {
			g.live.SetInstance(backendName, addr, liveview.InstanceMeta{})
		}
	}
	return now
}

// closePool ends p's discovery subscription, if any, and closes it.
// g.mu is held.
func (g *Gateway) closePool(p *backend.Pool) {
	if stop := g.unsub[p]; stop != nil {
		stop()
		delete(g.unsub, p)
	}
	p.Close()
}

// closeNew closes the pools of a swap that failed, except those kept from
// the old state. g.mu is held.
func (g *Gateway) closeNew(pools map[string]*backend.Pool, old *state) {
	for name, p := range pools {
		if old == nil || old.pools[name] != p {
			g.closePool(p)
		}
	}
}

func (g *Gateway) newRouteState(rt *route.Route, pools map[string]*backend.Pool) *routeState {
	rs := &routeState{rt: rt}
	rs.allowed = rs.available
	for _, name := range rt.Split.Names {
		rs.pools = append(rs.pools, pools[name])
		rs.metrics = append(rs.metrics, g.metrics.forRoute(rt.Name, name))
		var rec *liveview.Recorder
		if !g.opts.DisableLiveStats {
			rec = g.live.Recorder(rt.Name, name)
		}
		rs.live = append(rs.live, rec)
	}
	if m := rt.Config.Mirror; m != nil {
		rs.mirrors = append(rs.mirrors, proxy.Shadow{Pool: pools[m.Backend], Percent: *m.Percent})
	}
	for _, m := range rt.Config.Mirrors {
		rs.mirrors = append(rs.mirrors, proxy.Shadow{Pool: pools[m.Backend], Percent: *m.Percent})
	}
	return rs
}

// Weights returns a route's live backend weights.
func (g *Gateway) Weights(routeName string) (map[string]int, error) {
	st := g.state.Load()
	rt := st.table.Route(routeName)
	if rt == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoRoute, routeName)
	}
	out := map[string]int{}
	for i, n := range rt.Split.Names {
		out[n] = rt.Split.Weights[i]
	}
	return out, nil
}

// ErrNoRoute and ErrBadWeights are what Weights and SetWeights reject;
// the admin API answers them with 404 and 422.
var (
	ErrNoRoute    = fmt.Errorf("no such route (%w)", admin.ErrNotFound)
	ErrBadWeights = fmt.Errorf("invalid weights (%w)", admin.ErrInvalid)
)

// SetWeights changes a route's backend weights at once (a blue/green flip
// or a canary step). Backends not named keep their weight. The change
// goes the way of a reload: a copy of the config with the new weights is
// validated (the same rules, the same YAML paths in errors), compiled and
// swapped in; backend pools, their health and connections are kept. It
// lasts until the next Reload.
func (g *Gateway) SetWeights(routeName string, w map[string]int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway closed")
	}
	st := g.state.Load()
	rt := st.table.Route(routeName)
	if rt == nil {
		return fmt.Errorf("%w: %q", ErrNoRoute, routeName)
	}
	if (*g.paused.Load())[routeName] {
		return fmt.Errorf("%w: route %q is paused: its weights are held until it is resumed", ErrPaused, routeName)
	}
	next := *st.cfg
	next.Routes = slices.Clone(st.cfg.Routes)
	rc := &next.Routes[rt.Index]
	rc.Backends = slices.Clone(rc.Backends)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(w)) {
		i := slices.IndexFunc(rc.Backends, func(b config.BackendRef) bool { return b.Name == name })
		if i < 0 {
			errs = append(errs, fmt.Errorf("route %q has no backend %q", routeName, name))
			continue
		}
		v := w[name]
		rc.Backends[i].Weight = &v
	}
	if len(errs) == 0 {
		errs = append(errs, g.swap(&next))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadWeights, err)
	}
	g.log.Info("weights changed", slog.String("route", routeName), slog.Any("weights", w))
	g.live.Event(liveview.Event{Kind: liveview.KindWeights, Service: routeName, Message: "weights of " + routeName + " set to " + describeWeights(g.state.Load(), routeName)})
	return nil
}
