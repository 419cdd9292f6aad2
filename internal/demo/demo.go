package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
	"github.com/flotilla-dev/flotilla/internal/metrics"
	"github.com/flotilla-dev/flotilla/internal/negotiate"
	"github.com/flotilla-dev/flotilla/internal/probe"
)

// MaxDelay caps /delay/{d}, below the server's write timeout.
const MaxDelay = 30 * time.Second

// maxEchoBody caps the body /echo reads back.
const maxEchoBody = 64 << 10

// Service is one demo replica.
type Service struct {
	cfg     Config
	ip      string
	probes  *probe.Probes
	handler http.Handler
	log     *slog.Logger

	requests  atomic.Int64
	unhealthy atomic.Bool
	dieOnce   sync.Once
	died      chan struct{}
	diedWhy   atomic.Pointer[string]

	grpc *grpcEcho
	// stopping ends when the server starts shutting down: WebSocket
	// connections close with 1001, gRPC streams end with Unavailable.
	stopping    context.Context
	stopStreams context.CancelFunc
	wsMu        sync.Mutex
	wsClosed    bool           // Close has begun: no more wsConns.Add
	wsConns     sync.WaitGroup // hijacked, so http.Server.Shutdown does not wait for them
}

// Options wire a Service.
type Options struct {
	Config   Config
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// PodIP is shown as "served from <instance> [<ip>]" (default: the first
	// non-loopback address of this host).
	PodIP string
}

// New returns a demo service. Call Start to run its timers.
func New(o Options) *Service {
	s := &Service{cfg: o.Config, ip: o.PodIP, probes: &probe.Probes{}, log: o.Logger, died: make(chan struct{})}
	if s.ip == "" {
		s.ip = hostIP()
	}
	s.stopping, s.stopStreams = context.WithCancel(context.Background())
	g, err := newGRPC(o.Config, s.stopping)
	if err != nil {
		panic(err) // the hand-written descriptor is wrong: a bug, caught by every test
	}
	s.grpc = g
	s.probes.SetStarting(o.Config.LivenessDelay == 0, o.Config.ReadinessDelay == 0)
	s.syncHealth()

	mux := http.NewServeMux()
	app := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.misbehave(h)) }
	app("GET /{$}", s.index)
	app("GET /map", s.sitemap)
	app("GET /1line", s.oneLine)
	app("/echo", s.echo)
	app("GET /ping", s.ping)
	app("GET /test", s.test)
	app("/status/{code}", s.status)
	app("GET /delay/{duration}", s.delay)
	app("GET /ws/echo", s.wsEcho)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.probes.Readyz)
	mux.HandleFunc("POST /readyz/enable", s.setReady(true))
	mux.HandleFunc("POST /readyz/disable", s.setReady(false))
	mux.Handle("GET /metrics", metrics.Handler(o.Registry))
	mux.Handle("GET /version", buildinfo.Handler(o.Config.Instance, o.Config.Version))
	web := metrics.NewHTTP(o.Registry).Wrap(mux)
	s.handler = httpserver.Identity(o.Config.Instance, o.Config.Version, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isGRPC(r) {
			s.grpc.ServeHTTP(w, r)
			return
		}
		web.ServeHTTP(w, r)
	}))
	return s
}

// NewServer returns the demo's server for its one port: HTTP/1.1 and
// HTTP/2 with prior knowledge (h2c, which gRPC clients speak without
// TLS), with o's timeouts. When it shuts down, WebSocket connections get
// a 1001 close frame and gRPC streams end with Unavailable; Close then
// waits for the WebSocket handlers.
func (s *Service) NewServer(o httpserver.Options, log *slog.Logger) *http.Server {
	srv := httpserver.New(s.handler, o, log)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = &p
	srv.RegisterOnShutdown(s.stopStreams)
	return srv
}

// Drain is the shutdown's first step (httpserver.Serve's onDrain):
// readiness fails and the gRPC health service answers NOT_SERVING.
func (s *Service) Drain() {
	s.probes.Drain()
	s.grpc.health.Shutdown() // NOT_SERVING for good
}

// Close ends the streams (if the server's Shutdown has not) and waits
// until ctx is done for the WebSocket handlers to finish their close
// handshakes; then it stops the gRPC server.
func (s *Service) Close(ctx context.Context) error {
	s.stopStreams()
	s.wsMu.Lock()
	s.wsClosed = true
	s.wsMu.Unlock()
	done := make(chan struct{})
	go func() { s.wsConns.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("websocket connections still open: %w", ctx.Err())
	}
	s.grpc.srv.Stop()
	return err
}

// syncHealth makes the gRPC health service say what /readyz says.
func (s *Service) syncHealth() {
	st := healthpb.HealthCheckResponse_SERVING
	if s.unhealthy.Load() || s.probes.Ready(context.Background()) != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.grpc.health.SetServingStatus("", st)
	s.grpc.health.SetServingStatus(EchoService, st)
}

// Handler serves the demo's routes.
func (s *Service) Handler() http.Handler { return s.handler }

// Probes is the service's liveness and readiness state.
func (s *Service) Probes() *probe.Probes { return s.probes }

// Died is closed when a die knob fires; Reason then says which.
func (s *Service) Died() <-chan struct{} { return s.died }

// Reason says why the service died ("" while alive).
func (s *Service) Reason() string {
	if p := s.diedWhy.Load(); p != nil {
		return *p
	}
	return ""
}

// Start runs the probe delays and the die-after timer until ctx is done.
// It returns at once; the timers stop with ctx.
func (s *Service) Start(ctx context.Context) {
	if s.cfg.DieAtStart {
		s.die("--die-at-start")
		return
	}
	after := func(d time.Duration, f func()) {
		if d <= 0 {
			return
		}
		t := time.AfterFunc(d, f)
		context.AfterFunc(ctx, func() { t.Stop() })
	}
	after(s.cfg.LivenessDelay, func() {
		s.probes.SetStarting(true, s.cfg.ReadinessDelay <= s.cfg.LivenessDelay)
		s.syncHealth()
	})
	after(s.cfg.ReadinessDelay, func() {
		s.probes.SetStarting(s.cfg.LivenessDelay <= s.cfg.ReadinessDelay, true)
		s.syncHealth()
	})
	after(s.cfg.DieAfter, func() { s.die(fmt.Sprintf("--die-after %s", s.cfg.DieAfter)) })
}

func (s *Service) die(why string) {
	s.dieOnce.Do(func() {
		s.diedWhy.Store(&why)
		s.log.Warn("dying on purpose", slog.String("reason", why), slog.String("mode", s.cfg.DieMode))
		if s.cfg.DieMode == "unhealthy" {
			s.unhealthy.Store(true)
			s.syncHealth()
			return
		}
		close(s.died)
	})
}

// misbehave applies the fault knobs to an application handler.
func (s *Service) misbehave(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.unhealthy.Load() {
			http.Error(w, "unhealthy: "+s.Reason(), http.StatusServiceUnavailable)
			return
		}
		if n := s.requests.Add(1); s.cfg.DieAfterRequests > 0 && n >= s.cfg.DieAfterRequests {
			defer s.die(fmt.Sprintf("--die-after-requests %d", s.cfg.DieAfterRequests))
		}
		if s.cfg.Latency > 0 && !sleep(r.Context(), s.cfg.Latency) {
			return
		}
		if s.cfg.FailFraction > 0 && rand.Float64() < s.cfg.FailFraction {
			http.Error(w, fmt.Sprintf("injected failure (--fail-fraction %v)", s.cfg.FailFraction), http.StatusInternalServerError)
			return
		}
		next(w, r)
	})
}

func (s *Service) healthz(w http.ResponseWriter, r *http.Request) {
	if s.unhealthy.Load() {
		http.Error(w, "unhealthy: "+s.Reason(), http.StatusServiceUnavailable)
		return
	}
	s.probes.Healthz(w, r)
}

func (s *Service) setReady(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		s.probes.SetEnabled(on)
		s.syncHealth()
		fmt.Fprintf(w, "readiness enabled=%v\n", on)
	}
}

// clientOf describes where a request came from, including what proxies
// said in X-Forwarded-For.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		return host + " (X-Forwarded-For: " + strings.Join(xff, ", ") + ")"
	}
	return host
}

type info struct {
	Instance    string `json:"instance"`
	IP          string `json:"ip"`
	Version     string `json:"version"`
	RequestFrom string `json:"request_from"`
	Path        string `json:"path"`
	Time        string `json:"time"`
}

func (s *Service) infoOf(r *http.Request) info {
	return info{Instance: s.cfg.Instance, IP: s.ip, Version: s.cfg.Version, RequestFrom: clientOf(r),
		Path: r.URL.RequestURI(), Time: time.Now().UTC().Format(time.RFC3339)}
}

func (s *Service) index(w http.ResponseWriter, r *http.Request) {
	in := s.infoOf(r)
	c := buildinfo.ColourOf(in.Version)
	switch negotiate.Of(r) {
	case negotiate.JSON:
		writeJSON(w, http.StatusOK, in)
	case negotiate.HTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		indexPage.Execute(w, struct {
			info
			Colour, Logo string
		}{in, c.HTML, logo})
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s%s\x1b[0m\n", c.ANSI, logo)
		fmt.Fprintf(w, "served from %s [%s]\nrequest from %s\nversion %s\n", in.Instance, in.IP, in.RequestFrom, in.Version)
	}
}

// endpoints is what /map lists.
var endpoints = []struct{ Path, What string }{
	{"/", "logo, served-from and request-from (text, HTML or JSON)"},
	{"/map", "this list"},
	{"/1line", "one line: version, instance, address, client"},
	{"/echo", "the request as received"},
	{"/ping", "pong"},
	{"/test", "an error status (500)"},
	{"/status/{code}", "answers with that status (200-599)"},
	{"/delay/{duration}", "answers after a delay: 2, 1.5 or 250ms (max 30s)"},
	{"/ws/echo", "WebSocket echo: text and binary messages come back (max 64 KiB)"},
	{"/flotilla.demo.v1.Echo/", "gRPC over h2c: Echo, EchoStream; also grpc.health.v1.Health and reflection"},
	{"/healthz", "liveness"},
	{"/readyz", "readiness; POST /readyz/disable and /readyz/enable switch it"},
	{"/metrics", "Prometheus metrics"},
	{"/version", "build information (JSON)"},
}

func (s *Service) sitemap(w http.ResponseWriter, r *http.Request) {
	if negotiate.Of(r) == negotiate.JSON {
		writeJSON(w, http.StatusOK, endpoints)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, e := range endpoints {
		fmt.Fprintf(w, "%-18s %s\n", e.Path, e.What)
	}
}

func (s *Service) oneLine(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s %s [%s] <- %s\n", s.cfg.Version, s.cfg.Instance, s.ip, clientOf(r))
}

func (s *Service) echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEchoBody+1))
	if err != nil {
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxEchoBody {
		http.Error(w, fmt.Sprintf("request body larger than %d bytes", maxEchoBody), http.StatusRequestEntityTooLarge)
		return
	}
	if negotiate.Of(r) == negotiate.JSON {
		writeJSON(w, http.StatusOK, map[string]any{
			"method": r.Method, "uri": r.RequestURI, "proto": r.Proto, "host": r.Host,
			"remote_addr": r.RemoteAddr, "headers": r.Header, "body": string(body),
		})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s %s %s\nHost: %s\n", r.Method, r.RequestURI, r.Proto, r.Host)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range r.Header[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "\n%s", body)
}

func (s *Service) ping(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "pong\n")
}

func (s *Service) test(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "test error: this endpoint always fails", http.StatusInternalServerError)
}

func (s *Service) status(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("code")
	code, err := strconv.Atoi(raw)
	if err != nil || code < 200 || code > 599 {
		http.Error(w, fmt.Sprintf("status: want a code 200-599 in /status/{code}, got %q", raw), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s\n", code, http.StatusText(code))
}

func (s *Service) delay(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("duration")
	d, err := ParseDelay(raw)
	if err != nil {
		http.Error(w, "delay: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !sleep(r.Context(), d) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "delayed %s\n", d)
}

// ParseDelay reads a /delay/{duration} value: seconds ("2", "1.5") or a Go
// duration ("250ms"), 0..MaxDelay.
func ParseDelay(s string) (time.Duration, error) {
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(f >= 0 && f <= MaxDelay.Seconds()) {
			return 0, fmt.Errorf("want 0..%s, got %q", MaxDelay, s)
		}
		d = time.Duration(f * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("want seconds (2, 1.5) or a duration (250ms), got %q", s)
	}
	if d < 0 || d > MaxDelay {
		return 0, fmt.Errorf("want 0..%s, got %q", MaxDelay, s)
	}
	return d, nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// hostIP returns the first non-loopback IPv4 address, else "unknown".
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "unknown"
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "unknown"
}

// logo is Flotilla's own art: three hulls under sail on a line of sea.
const logo = `
       |\         |\         |\
       | \        | \        | \
       |__\       |__\       |__\
    ___|_____  ___|_____  ___|_____
    \ o o o /  \ o o o /  \ o o o /
  ~~~\_____/~~~~\_____/~~~~\_____/~~~~
      F   L   O   T   I   L   L   A`

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flotilla demo {{.Version}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{margin:0;font-family:system-ui,sans-serif;background:#0d1117;color:#e6edf3;display:grid;place-items:center;min-height:100vh}
pre{color:{{.Colour}};font-size:1.1rem}dl{display:grid;grid-template-columns:auto auto;gap:.3em 1em}dt{opacity:.7}</style></head>
<body><main><pre>{{.Logo}}</pre>
<dl><dt>served from</dt><dd>{{.Instance}} [{{.IP}}]</dd><dt>request from</dt><dd>{{.RequestFrom}}</dd>
<dt>version</dt><dd>{{.Version}}</dd><dt>time</dt><dd>{{.Time}}</dd></dl>
<p><a href="/map" style="color:{{.Colour}}">all endpoints</a></p></main></body></html>
`))
