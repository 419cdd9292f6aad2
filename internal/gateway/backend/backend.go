// Package backend is the live state of one configured backend: its
// endpoints (static, re-resolved from DNS, or set from outside by
// Kubernetes discovery with SetEndpoints), their health and in-flight
// counts, and the balancing policy that picks among them. The static
// config.Backend is kept apart from this state, as Caddy does.
package backend

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/balance"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/health"
)

// Endpoint is one upstream address of a backend.
type Endpoint struct {
	// Addr is host:port (an IP for DNS-resolved endpoints).
	Addr     string
	host     string // the configured DNS name it came from, if any
	inFlight atomic.Int64
	health   health.Status
	// draining: terminating but still serving (SetEndpoints); picked only
	// while no endpoint that is not draining exists. Changed under Pool.mu.
	draining atomic.Bool
}

// Done ends a request Acquire started.
func (e *Endpoint) Done() { e.inFlight.Add(-1) }

// set is a balance.Endpoints; a pointer so passing it allocates nothing.
type set struct{ eps []*Endpoint }

func (s *set) Len() int             { return len(s.eps) }
func (s *set) Addr(i int) string    { return s.eps[i].Addr }
func (s *set) InFlight(i int) int64 { return s.eps[i].inFlight.Load() }

// Options are what a pool needs besides its config.
type Options struct {
	// Transport sends health checks (default http.DefaultTransport).
	Transport http.RoundTripper
	// OwnTransport, when set, builds the pool's own transport (a TLS
	// backend's: its CA, SNI, client certificate) in place of Transport;
	// it sends both requests and health checks, can ask the pool for an
	// endpoint's host name (HostOf), and Close closes its idle
	// connections.
	OwnTransport func(p *Pool) http.RoundTripper
	// LookupHost resolves DNS names (default net.DefaultResolver).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// OnEject is called when an endpoint is ejected (for metrics).
	OnEject func(backend string)
	// Rand is the random source of the random and least_request policies
	// (default rand.IntN).
	Rand balance.IntN
}

// Pool is one backend's live state. Its goroutine (DNS refresh, health
// checks, ending ejections) runs from New until Close.
type Pool struct {
	// Config is the backend's static configuration; read-only.
	Config *config.Backend

	opts    Options
	picker  balance.Picker
	hashKey func(*http.Request) string
	checker *health.Checker
	own     http.RoundTripper // from Options.OwnTransport, nil when shared

	all   atomic.Pointer[set] // every endpoint
	avail atomic.Pointer[set] // the available ones: healthy and not ejected
	// serve is what Acquire picks from: avail, or all in panic routing
	// (too few available, see config.Outlier.PanicThreshold).
	serve     atomic.Pointer[set]
	panicking atomic.Bool

	requests atomic.Int64 // in flight, for the retry budget
	retries  atomic.Int64 // retries in flight

	mu     sync.Mutex // serialises changes to all and avail
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a running pool for b, which must be validated and defaulted.
// Addresses that are IPs are endpoints at once; DNS names are resolved in
// the background, the first time right away.
func New(b *config.Backend, opts Options) *Pool {
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.LookupHost == nil {
		opts.LookupHost = net.DefaultResolver.LookupHost
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Pool{Config: b, opts: opts, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if opts.OwnTransport != nil {
		p.own = opts.OwnTransport(p)
		opts.Transport, p.opts.Transport = p.own, p.own
	}
	switch b.Balance.Policy {
	case config.LeastRequest:
		p.picker = &balance.LeastRequest{Rand: opts.Rand}
	case config.Random:
		p.picker = &balance.Random{Rand: opts.Rand}
	case config.ConsistentHash:
		p.picker = &balance.ConsistentHash{}
		p.hashKey = hashKeyFunc(b.Balance.HashOn)
	default:
		p.picker = &balance.RoundRobin{}
	}
	if b.HealthCheck != nil {
		p.checker = &health.Checker{Client: &http.Client{Transport: opts.Transport}, Config: b.HealthCheck}
	}
	var static []*Endpoint
	for _, a := range b.Addresses {
		if host, _, _ := net.SplitHostPort(a); net.ParseIP(host) != nil {
			static = append(static, &Endpoint{Addr: a})
		}
	}
	p.all.Store(&set{eps: static})
	p.avail.Store(&set{eps: static})
	p.serve.Store(&set{eps: static})
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
	return p
}

// Close stops the pool's goroutine and waits for it. Requests in flight
// are unaffected.
func (p *Pool) Close() {
	p.cancel()
	<-p.done
	if c, ok := p.own.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Transport is the pool's own transport (Options.OwnTransport), nil when
// it has none and requests go over a shared one.
func (p *Pool) Transport() http.RoundTripper { return p.own }

// HostOf returns the configured host of the endpoint at addr: the DNS
// name it was resolved from, or addr's own host. A TLS backend sends it
// as SNI and verifies the certificate against it.
func (p *Pool) HostOf(addr string) string {
	for _, e := range p.all.Load().eps {
		if e.Addr == addr && e.host != "" {
			return e.host
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

func hashKeyFunc(h *config.HashOn) func(*http.Request) string {
	switch {
	case h.Header != "":
		name := http.CanonicalHeaderKey(h.Header)
		return func(r *http.Request) string {
			if v := r.Header[name]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
	case h.Cookie != "":
		return func(r *http.Request) string {
			if c, err := r.Cookie(h.Cookie); err == nil {
				return c.Value
			}
			return ""
		}
	default:
		return func(r *http.Request) string {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return host
		}
	}
}

// Available reports whether any endpoint is available: healthy and not
// ejected. A traffic split prefers backends that are; Acquire may still
// pick an endpoint when none is, in panic routing.
func (p *Pool) Available() bool { return p.avail.Load().Len() > 0 }

// Panicking reports whether the pool is in panic routing: fewer than
// Outlier.PanicThreshold percent of its endpoints are available, so
// Acquire balances over all of them.
func (p *Pool) Panicking() bool { return p.panicking.Load() }

// Acquire picks an endpoint for r, skipping those in skip (already tried)
// and those at MaxInFlight, and counts the request in flight: the caller
// must call Endpoint.Done. It picks among the available endpoints, or
// among all of them in panic routing. It returns nil, false when there is
// no endpoint to pick and nil, true when every one is full.
func (p *Pool) Acquire(r *http.Request, skip []*Endpoint) (ep *Endpoint, full bool) {
	s := p.serve.Load()
	n := len(s.eps)
	if n == 0 {
		return nil, false
	}
	var key string
	if p.hashKey != nil {
		key = p.hashKey(r)
	}
	start := p.picker.Pick(s, key)
	max := int64(p.Config.MaxInFlight)
	// Walk on from the pick when it was tried already or is full: the
	// policy's choice holds whenever it can.
	for i := range n {
		e := s.eps[(start+i)%n]
		if len(skip) < n && slices.Contains(skip, e) { // once all were tried, any may be retried
			continue
		}
		if c := e.inFlight.Add(1); max > 0 && c > max {
			e.inFlight.Add(-1)
			full = true
			continue
		}
		return e, false
	}
	return nil, full
}

// ReportResult records the outcome of a request sent to e, for passive
// outlier detection: err is the transport's error (nil when a response
// came) and status the response's status (ignored when err is not nil).
// Whether it counts against e is the backend's Outlier config (see
// health.Failed): by default only transport failures do, never a status
// the application chose. Call it only for outcomes that are the
// endpoint's doing: not when the client went away or its body broke.
func (p *Pool) ReportResult(e *Endpoint, status int, err error) {
	p.observe(e, health.Failed(p.Config.Outlier, status, err))
}

// Report records a request's outcome for passive outlier detection,
// failed as the caller classified it.
//
// Deprecated: use ReportResult, which applies the backend's
// Outlier.CountStatuses; a caller counting 503s itself lets any client
// that can make the application answer 503 eject endpoints.
func (p *Pool) Report(e *Endpoint, failed bool) { p.observe(e, failed) }

func (p *Pool) observe(e *Endpoint, failed bool) {
	o := p.Config.Outlier
	if !failed { // the common case: no clock read
		e.health.ObserveRequest(false, o, time.Time{})
		return
	}
	now := time.Now()
	if !e.health.ObserveRequest(true, o, now) {
		return
	}
	p.mu.Lock()
	d, refused := p.ejectLocked(e, o, now)
	p.mu.Unlock()
	if refused != "" {
		// Debug: under a flood of counted failures this would log at a
		// fifth of the request rate.
		p.opts.Logger.Debug("endpoint not ejected", slog.String("backend", p.Config.Name), slog.String("endpoint", e.Addr), slog.String("reason", refused))
		return
	}
	p.opts.Logger.Warn("endpoint ejected", slog.String("backend", p.Config.Name), slog.String("endpoint", e.Addr), slog.Duration("for", d))
	if p.opts.OnEject != nil {
		p.opts.OnEject(p.Config.Name)
	}
	p.refresh()
}

// ejectLocked ejects e unless the backend's rules forbid it, and then
// says why: at most MaxEjectionPercent of the endpoints (at least one)
// are ejected at once, and the last available endpoint never is. Holding
// p.mu makes count and ejection one step, so concurrent failures of
// several endpoints cannot all slip under the cap.
func (p *Pool) ejectLocked(e *Endpoint, o *config.Outlier, now time.Time) (d time.Duration, refused string) {
	pct := 50
	if o.MaxEjectionPercent != nil {
		pct = *o.MaxEjectionPercent
	}
	if pct <= 0 {
		return 0, "ejection is off (maxEjectionPercent 0)"
	}
	all := p.all.Load().eps
	if !slices.Contains(all, e) {
		return 0, "no longer an endpoint"
	}
	ejected, others := 0, 0
	for _, x := range all {
		if x.health.Ejected(now) {
			ejected++
		}
		if x != e && x.health.Available(now) {
			others++
		}
	}
	if ejected >= max(len(all)*pct/100, 1) {
		return 0, "max ejection percent reached"
	}
	if others == 0 {
		return 0, "last available endpoint"
	}
	return e.health.Eject(o, now), ""
}

// RequestStarted and RequestDone count requests in flight for the retry
// budget; RetryStart reserves a retry within budget and RetryDone ends it.
func (p *Pool) RequestStarted() { p.requests.Add(1) }

// RequestDone ends what RequestStarted began.
func (p *Pool) RequestDone() { p.requests.Add(-1) }

// RetryStart reserves a retry if retries in flight stay within budget
// (a fraction of requests in flight, at least 3). The proxy holds one per
// retrying request, however many times it retries.
func (p *Pool) RetryStart(budget float64) bool {
	limit := max(int64(budget*float64(p.requests.Load())), 3)
	if p.retries.Add(1) > limit {
		p.retries.Add(-1)
		return false
	}
	return true
}

// RetryDone ends a retry RetryStart reserved.
func (p *Pool) RetryDone() { p.retries.Add(-1) }

// refresh recomputes the available endpoints and what Acquire picks
// from, and wakes the loop so it re-arms the ejection timer.
func (p *Pool) refresh() {
	p.mu.Lock()
	now := time.Now()
	all := p.all.Load()
	// Draining endpoints (terminating, still serving) stand in only when
	// no other endpoint exists: Kubernetes' rule for terminating
	// endpoints. Health, ejection and panic routing then apply within
	// the group that serves.
	group := make([]*Endpoint, 0, len(all.eps))
	for _, e := range all.eps {
		if !e.draining.Load() {
			group = append(group, e)
		}
	}
	if len(group) == 0 {
		group = all.eps
	}
	avail := make([]*Endpoint, 0, len(group))
	var checked []*Endpoint // pass their active checks, ejected or not
	for _, e := range group {
		if e.health.Available(now) {
			avail = append(avail, e)
		}
		if e.health.Healthy() {
			checked = append(checked, e)
		}
	}
	a := &set{eps: avail}
	p.avail.Store(a)
	threshold := 50
	if t := p.Config.Outlier.PanicThreshold; t != nil {
		threshold = *t
	}
	// Envoy's healthy_panic_threshold: with too few endpoints left, those
	// would be overwhelmed or the backend answer 503 to everyone, while
	// the ejected ones may well serve (passive detection can be wrong, or
	// be gamed by clients asking for errors), so spread over every
	// endpoint that passes its active checks. Unlike Envoy's, panic never
	// sends to an endpoint its own check calls down (not ready, draining):
	// when none passes, the gateway answers 503 no_healthy_upstream.
	panicking := len(avail)*100 < threshold*len(group) && len(checked) > len(avail)
	if panicking {
		p.serve.Store(&set{eps: checked})
	} else {
		p.serve.Store(a)
	}
	was := p.panicking.Swap(panicking)
	p.mu.Unlock()
	if panicking != was {
		p.opts.Logger.Warn("panic routing changed", slog.String("backend", p.Config.Name), slog.Bool("panicking", panicking),
			slog.Int("available", len(avail)), slog.Int("endpoints", len(group)))
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Pool) run(ctx context.Context) {
	defer close(p.done)
	hasDNS := len(p.all.Load().eps) < len(p.Config.Addresses)
	var resolveC, checkC <-chan time.Time
	if hasDNS {
		p.resolve(ctx)
		t := time.NewTicker(p.Config.ResolveInterval)
		defer t.Stop()
		resolveC = t.C
	}
	if p.checker != nil {
		p.check(ctx)
		t := time.NewTicker(p.checker.Config.Interval)
		defer t.Stop()
		checkC = t.C
	}
	eject := time.NewTimer(time.Hour)
	defer eject.Stop()
	for {
		eject.Reset(p.nextEjectionEnd())
		select {
		case <-ctx.Done():
			return
		case <-resolveC:
			p.resolve(ctx)
		case <-checkC:
			p.check(ctx)
		case <-eject.C:
			p.refresh()
		case <-p.wake:
		}
	}
}

// nextEjectionEnd is how long until the earliest ejection ends (an hour
// when none is running: the timer just re-arms).
func (p *Pool) nextEjectionEnd() time.Duration {
	now := time.Now()
	next := time.Hour
	for _, e := range p.all.Load().eps {
		if u := e.health.EjectedUntil(); u.After(now) && u.Sub(now) < next {
			next = u.Sub(now)
		}
	}
	return next
}

// resolve turns every address into endpoints, keeping the Endpoint (and
// its health and in-flight count) of addresses that stay. A name that
// fails to resolve keeps its last endpoints.
func (p *Pool) resolve(ctx context.Context) {
	old := map[string]*Endpoint{}
	for _, e := range p.all.Load().eps {
		old[e.Addr] = e
	}
	var eps []*Endpoint
	seen := map[string]bool{}
	add := func(addr, host string) {
		if seen[addr] {
			return
		}
		seen[addr] = true
		if e, ok := old[addr]; ok {
			eps = append(eps, e)
		} else {
			eps = append(eps, &Endpoint{Addr: addr, host: host})
		}
	}
	for _, a := range p.Config.Addresses {
		host, port, _ := net.SplitHostPort(a)
		if net.ParseIP(host) != nil {
			add(a, "")
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ips, err := p.opts.LookupHost(lctx, host)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				p.opts.Logger.Warn("resolve failed; keeping last endpoints", slog.String("backend", p.Config.Name), slog.String("host", host), slog.String("error", err.Error()))
			}
			for _, e := range p.all.Load().eps {
				if e.host == host {
					add(e.Addr, host)
				}
			}
			continue
		}
		slices.Sort(ips)
		for _, ip := range ips {
			add(net.JoinHostPort(ip, port), host)
		}
	}
	p.mu.Lock()
	p.all.Store(&set{eps: eps})
	p.mu.Unlock()
	p.refresh()
}

// Target is one endpoint as SetEndpoints takes it.
type Target struct {
	// Addr is ip:port.
	Addr string
	// Host is the name a TLS backend sends as SNI and verifies the
	// certificate against ("" : Addr's host), unless tls.serverName is set.
	Host string
	// Draining marks an endpoint that is terminating but still serving
	// (a Kubernetes endpoint with serving and terminating true): it gets
	// new requests only while no endpoint without Draining exists, as
	// Kubernetes' own proxies do; requests in flight to it finish either
	// way.
	Draining bool
}

// SetEndpoints replaces the endpoints of a backend that has no addresses
// of its own (Kubernetes discovery feeds it). Endpoints whose address
// stays keep their identity: health, ejection and in-flight counts, as a
// DNS re-resolution does. An endpoint left out gets no new requests; the
// requests in flight to it finish.
func (p *Pool) SetEndpoints(ts []Target) {
	p.mu.Lock()
	old := map[string]*Endpoint{}
	for _, e := range p.all.Load().eps {
		old[e.Addr] = e
	}
	eps := make([]*Endpoint, 0, len(ts))
	draining := map[string]bool{}
	for _, t := range ts {
		if d, dup := draining[t.Addr]; dup { // listed twice: ready wins
			draining[t.Addr] = d && t.Draining
			continue
		}
		draining[t.Addr] = t.Draining
		e, ok := old[t.Addr]
		if !ok || e.host != t.Host {
			e = &Endpoint{Addr: t.Addr, host: t.Host}
		}
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b *Endpoint) int { return strings.Compare(a.Addr, b.Addr) })
	for _, e := range eps {
		e.draining.Store(draining[e.Addr])
	}
	p.all.Store(&set{eps: eps})
	p.mu.Unlock()
	p.refresh()
}

// check probes every endpoint concurrently and refreshes availability
// when any flipped.
func (p *Pool) check(ctx context.Context) {
	eps := p.all.Load().eps
	var wg sync.WaitGroup
	var flipped atomic.Bool
	for _, e := range eps {
		wg.Go(func() {
			started := time.Now()
			err := p.checker.Check(ctx, e.Addr)
			if ctx.Err() != nil {
				return
			}
			switch e.health.ObserveCheck(err, p.checker.Config, started) {
			case health.Unchanged:
				return
			case health.EjectionEnded:
				p.opts.Logger.Info("ejection ended by passing checks", slog.String("backend", p.Config.Name), slog.String("endpoint", e.Addr))
			default:
				p.opts.Logger.Info("endpoint health changed", slog.String("backend", p.Config.Name), slog.String("endpoint", e.Addr), slog.Bool("healthy", err == nil))
			}
			flipped.Store(true)
		})
	}
	wg.Wait()
	if flipped.Load() {
		p.refresh()
	}
}

// EndpointState is one endpoint as the admin API shows it.
type EndpointState struct {
	Addr string `json:"address"`
	// Available: healthy, not ejected, and not draining while others serve.
	Available bool  `json:"available"`
	InFlight  int64 `json:"inFlight"`
	// Draining: terminating but still serving (Kubernetes discovery).
	Draining bool `json:"draining,omitempty"`
	health.State
}

// Snapshot returns every endpoint's state, by address.
func (p *Pool) Snapshot() []EndpointState {
	now := time.Now()
	var out []EndpointState
	all := p.all.Load().eps
	others := slices.ContainsFunc(all, func(e *Endpoint) bool { return !e.draining.Load() })
	for _, e := range all {
		st := e.health.Snapshot(now)
		d := e.draining.Load()
		out = append(out, EndpointState{Addr: e.Addr, Available: e.health.Available(now) && !(d && others), InFlight: e.inFlight.Load(), Draining: d, State: st})
	}
	slices.SortFunc(out, func(a, b EndpointState) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}
