package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/flotilla-dev/flotilla/internal/gateway/balance"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/httpserver/h1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// arrived is what an upstream saw of one request.
type arrived struct {
	Method, Host, Path, RawQuery, Body string
	URI                                string // the request target as sent
	Header                             http.Header
	Proto                              int
}

// upstream is an httptest server that records what arrived and answers
// with its name.
type upstream struct {
	*httptest.Server
	name    string
	mu      sync.Mutex
	got     []arrived
	handler http.HandlerFunc // optional override after recording
	hits    atomic.Int64
}

func newUpstream(t *testing.T, name string) *upstream {
	u := &upstream{name: name}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.got = append(u.got, arrived{Method: r.Method, Host: r.Host, Path: r.URL.Path, URI: r.RequestURI, RawQuery: r.URL.RawQuery, Body: string(body), Header: r.Header.Clone(), Proto: r.ProtoMajor})
	h := u.handler
	u.mu.Unlock()
	u.hits.Add(1)
	if h != nil {
		h(w, r)
		return
	}
	w.Header().Set("X-Upstream", u.name)
	fmt.Fprint(w, u.name)
}

func (u *upstream) last(t *testing.T) arrived {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.got) == 0 {
		t.Fatalf("upstream %s: nothing arrived", u.name)
	}
	return u.got[len(u.got)-1]
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

// deadAddr is the address of a closed listener: connecting fails at once.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

type fixture struct {
	gw     *Gateway
	srv    *h1Server
	reg    *prometheus.Registry
	access *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustParse(t testing.TB, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\n" + yaml))
	if err != nil {
		t.Fatalf("config.Parse() error = %v", err)
	}
	return c
}

func start(t *testing.T, yaml string, opts Options) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), access: &syncBuffer{}}
	opts.Registry = f.reg
	if opts.AccessLog == nil {
		opts.AccessLog = f.access
	}
	gw, err := New(mustParse(t, yaml), opts)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	f.gw = gw
	f.srv = serveH1(t, gw.Handler())
	t.Cleanup(gw.Close)
	return f
}

// h1Server serves a handler on the h1 server, as `flotilla gateway` does,
// with httptest.Server's URL and Client.
type h1Server struct {
	URL    string
	client *http.Client
}

func (s *h1Server) Client() *http.Client { return s.client }

func serveH1(t testing.TB, h http.Handler) *h1Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h1.Server{Handler: h, AllowUpgrades: []string{"websocket", "echo"}} // TestUpgradePassesThrough upgrades to "echo"
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	})
	return &h1Server{URL: "http://" + ln.Addr().String(), client: &http.Client{Transport: tr}}
}

func (f *fixture) do(t *testing.T, method, host, target string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTalkIngressWhatArrives(t *testing.T) {
	counter, demo := newUpstream(t, "counter"), newUpstream(t, "demo")
	f := start(t, fmt.Sprintf(`
backends:
  - {name: counter, addresses: [%q]}
  - {name: demo, addresses: [%q]}
routes:
  - name: flask
    match: {hosts: [flaskapp.test], path: {type: Regex, value: "/flask(/|$)(.*)"}}
    rewrite: {path: {type: Regex, value: "/$2"}}
    requestHeaders: {set: {X-Env: test}, remove: [X-Secret]}
    responseHeaders: {add: {X-Served-By: flotilla}}
    backends: [{name: counter}]
  - name: minikube
    match: {hosts: [minikube.test]}
    backends: [{name: demo}]
`, counter.addr(), demo.addr()), Options{})

	const parentTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, body := f.do(t, "POST", "flaskapp.test", "/flask/a/b?x=1", strings.NewReader("hello"), map[string]string{
		"X-Forwarded-For": "203.0.113.9", "Traceparent": parentTrace, "X-Secret": "s", "X-Request-Id": "client-id-1",
	})
	if resp.StatusCode != 200 || body != "counter" {
		t.Fatalf("POST flaskapp.test/flask/a/b = %d %q, want 200 counter", resp.StatusCode, body)
	}
	got := counter.last(t)
	checks := []struct{ what, got, want string }{
		{"method", got.Method, "POST"},
		{"path", got.Path, "/a/b"},
		{"query", got.RawQuery, "x=1"},
		{"body", got.Body, "hello"},
		{"host", got.Host, "flaskapp.test"},
		// The peer is not a trusted proxy: the client's value is dropped.
		{"X-Forwarded-For", got.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), "flaskapp.test"},
		{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http"},
		{"X-Request-Id", got.Header.Get("X-Request-Id"), "client-id-1"},
		{"X-Env", got.Header.Get("X-Env"), "test"},
		{"X-Secret", got.Header.Get("X-Secret"), ""},
		{"response X-Request-Id", resp.Header.Get("X-Request-Id"), "client-id-1"},
		{"response X-Served-By", resp.Header.Get("X-Served-By"), "flotilla"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	tp := got.Header.Get("Traceparent")
	if !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || !strings.HasSuffix(tp, "-01") || tp == parentTrace {
		t.Errorf("traceparent = %q, want the client's trace with a new parent ID", tp)
	}

	_, _ = f.do(t, "GET", "flaskapp.test", "/flask", nil, nil)
	if got := counter.last(t); got.Path != "/" {
		t.Errorf("/flask arrived as %q, want /", got.Path)
	}
	resp, body = f.do(t, "GET", "minikube.test:8080", "/map", nil, map[string]string{"X-Request-Id": "bad id with spaces"})
	got = demo.last(t)
	if resp.StatusCode != 200 || body != "demo" || got.Path != "/map" {
		t.Errorf("minikube.test/map = %d %q arrived at %q", resp.StatusCode, body, got.Path)
	}
	if id := got.Header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) || resp.Header.Get("X-Request-Id") != id {
		t.Errorf("generated X-Request-Id = %q (response %q), want 32 hex digits on both", id, resp.Header.Get("X-Request-Id"))
	}
	if tp := got.Header.Get("Traceparent"); !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`).MatchString(tp) {
		t.Errorf("new traceparent = %q", tp)
	}

	// Access log: one JSON line per request with the request ID.
	var line map[string]any
	f.gw.access.flush()
	first := strings.SplitN(f.access.String(), "\n", 2)[0]
	if err := json.Unmarshal([]byte(first), &line); err != nil {
		t.Fatalf("access log line %q: %v", first, err)
	}
	for k, want := range map[string]any{"request_id": "client-id-1", "route": "flask", "backend": "counter", "status": float64(200), "path": "/flask/a/b", "attempts": float64(1)} {
		if line[k] != want {
			t.Errorf("access log %s = %v, want %v", k, line[k], want)
		}
	}
	if v := testutil.ToFloat64(f.gw.metrics.requests.WithLabelValues("flask", "counter", "200")); v != 2 {
		t.Errorf("flotilla_gateway_requests_total{flask,counter,200} = %v, want 2", v)
	}
}

func TestH2CUpstream(t *testing.T) {
	u := &upstream{name: "h2"}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Config.Protocols = new(http.Protocols)
	u.Config.Protocols.SetUnencryptedHTTP2(true)
	u.Start()
	defer u.Close()
	f := start(t, fmt.Sprintf(`
backends: [{name: h2, addresses: [%q], protocol: h2c}]
routes: [{name: r, backends: [{name: h2}]}]
`, u.addr()), Options{})
	resp, _ := f.do(t, "GET", "x.test", "/", nil, nil)
	if resp.StatusCode != 200 || u.last(t).Proto != 2 {
		t.Errorf("h2c upstream got HTTP/%d (status %d), want HTTP/2", u.last(t).Proto, resp.StatusCode)
	}
}

func TestErrorsAreClassifiedAndLeakNothing(t *testing.T) {
	slow := newUpstream(t, "slow")
	release := make(chan struct{})
	slow.handler = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	defer close(release)
	dead := deadAddr(t)
	f := start(t, fmt.Sprintf(`
backends:
  - {name: dead, addresses: [%q]}
  - {name: slow, addresses: [%q]}
  - {name: sick, addresses: [%q], healthCheck: {interval: 10ms, unhealthyThreshold: 1}, outlier: {panicThreshold: 0}}
routes:
  - {name: dead, match: {path: {value: /dead}}, backends: [{name: dead}], retries: {attempts: 0}}
  - {name: slow, match: {path: {value: /slow}}, backends: [{name: slow}], timeout: 50ms}
  - {name: sick, match: {path: {value: /sick}}, backends: [{name: sick}]}
  - {name: big, match: {path: {value: /big}}, backends: [{name: slow}]}
`, dead, slow.addr(), dead), Options{MaxRequestBody: 10})
	// Wait for the failing health check to mark "sick" down.
	deadline := time.Now().Add(5 * time.Second)
	for f.gw.state.Load().pools["sick"].Available() {
		if time.Now().After(deadline) {
			t.Fatal("health checks never marked the dead endpoint down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tests := []struct {
		target string
		body   string
		status int
		code   string
	}{
		{"/nowhere-but-no-route?", "", 502, "upstream_failure"}, // placeholder replaced below
		{"/dead", "", 502, "upstream_failure"},
		{"/slow", "", 504, "upstream_timeout"},
		{"/sick", "", 503, "no_healthy_upstream"},
		{"/big", "this body is over ten bytes", 413, "request_too_large"},
	}
	tests[0] = struct {
		target string
		body   string
		status int
		code   string
	}{"/", "", 404, "no_route"}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			resp, got := f.do(t, "POST", "x.test", tt.target, body, nil)
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, tt.status, got)
			}
			var e struct {
				Error     string `json:"error"`
				Status    int    `json:"status"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(got), &e); err != nil || e.Error != tt.code || e.Status != tt.status || e.RequestID == "" {
				t.Errorf("body = %s, want JSON error %q with status and request_id", got, tt.code)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
			}
			if strings.Contains(got, "127.0.0.1") || strings.Contains(got, "dial") || strings.Contains(got, "context") {
				t.Errorf("error body leaks detail: %s", got)
			}
		})
	}
}

func TestClientGoneIs499(t *testing.T) {
	slow := newUpstream(t, "slow")
	arrivedC := make(chan struct{}, 1)
	slow.handler = func(w http.ResponseWriter, r *http.Request) {
		arrivedC <- struct{}{}
		<-r.Context().Done()
	}
	f := start(t, fmt.Sprintf(`
backends: [{name: slow, addresses: [%q]}]
routes: [{name: r, backends: [{name: slow}]}]
`, slow.addr()), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/", nil)
	go func() { <-arrivedC; cancel() }()
	if _, err := f.srv.Client().Do(req); err == nil {
		t.Fatal("request succeeded, want it cancelled")
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(f.gw.metrics.requests.WithLabelValues("r", "slow", "499")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no request counted with code 499")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetries(t *testing.T) {
	live := newUpstream(t, "live")
	flaky := newUpstream(t, "flaky")
	flaky.handler = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
	dead := deadAddr(t)
	f := start(t, fmt.Sprintf(`
backends:
  - {name: half-dead, addresses: [%q, %q], outlier: {consecutiveFailures: 100}}
  - {name: half-flaky, addresses: [%q, %q], outlier: {consecutiveFailures: 100}}
routes:
  - {name: connect, match: {path: {value: /connect}}, backends: [{name: half-dead}], retries: {attempts: 1, backoff: 1ms}}
  - {name: status, match: {path: {value: /status}}, backends: [{name: half-flaky}], retries: {attempts: 1, backoff: 1ms, retryOn: [503]}}
`, dead, live.addr(), flaky.addr(), live.addr()), Options{})
	// Round robin alternates, so every other request meets the bad one
	// first. Every request must still succeed.
	for i := range 6 {
		resp, body := f.do(t, "POST", "x.test", "/connect", strings.NewReader(fmt.Sprint("body-", i)), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("POST /connect #%d = %d, want 200 after retrying a failed connect", i, resp.StatusCode)
		}
		if got := live.last(t).Body; got != fmt.Sprint("body-", i) || body != "live" {
			t.Fatalf("retried POST body arrived as %q, want body-%d", got, i)
		}
	}
	for i := range 4 {
		if resp, _ := f.do(t, "GET", "x.test", "/status", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET /status #%d = %d, want 200 after retrying a 503", i, resp.StatusCode)
		}
	}
	saw503 := false
	for range 4 { // POST is not idempotent: its 503 comes back as is
		if resp, _ := f.do(t, "POST", "x.test", "/status", strings.NewReader("x"), nil); resp.StatusCode == 503 {
			saw503 = true
		}
	}
	if !saw503 {
		t.Error("POST got no 503: a non-idempotent request was retried on a status")
	}
	// The round-robin counter also moves on the retry, so every request
	// meets the dead endpoint first: 6 requests, 6 retries.
	if v := testutil.ToFloat64(f.gw.metrics.retries.WithLabelValues("connect", "half-dead")); v != 6 {
		t.Errorf("retries_total{connect} = %v, want 6", v)
	}
}

func TestMaxInFlightIs503(t *testing.T) {
	slow := newUpstream(t, "slow")
	block := make(chan struct{})
	inside := make(chan struct{})
	slow.handler = func(w http.ResponseWriter, r *http.Request) {
		inside <- struct{}{}
		<-block
	}
	f := start(t, fmt.Sprintf(`
backends: [{name: slow, addresses: [%q], maxInFlight: 1}]
routes: [{name: r, backends: [{name: slow}]}]
`, slow.addr()), Options{})
	done := make(chan int)
	go func() {
		resp, _ := f.do(t, "GET", "x.test", "/", nil, nil)
		done <- resp.StatusCode
	}()
	<-inside
	resp, body := f.do(t, "GET", "x.test", "/", nil, nil)
	if resp.StatusCode != 503 || !strings.Contains(body, "upstream_overloaded") {
		t.Errorf("second request = %d %s, want 503 upstream_overloaded", resp.StatusCode, body)
	}
	close(block)
	if code := <-done; code != 200 {
		t.Errorf("first request = %d, want 200", code)
	}
}

func TestRedirect(t *testing.T) {
	f := start(t, `
backends: [{name: b, addresses: ["127.0.0.1:1"]}]
routes: [{name: old, match: {path: {type: Exact, value: /old}}, redirect: {path: /new, statusCode: 301}}]
`, Options{})
	f.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := f.do(t, "GET", "a.test", "/old?q=1", nil, nil)
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "http://a.test/new?q=1" {
		t.Errorf("GET /old = %d Location %q, want 301 http://a.test/new?q=1", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func strategies(t *testing.T, v1, v2, shadow *upstream, extra string) *fixture {
	return start(t, fmt.Sprintf(`
backends:
  - {name: v1, addresses: [%q]}
  - {name: v2, addresses: [%q]}
  - {name: shadow, addresses: [%q]}
routes:
  - name: ab
    match: {headers: [{name: X-Canary, type: Present}]}
    backends: [{name: v2}]
  - name: canary
    backends: [{name: v1, weight: 90}, {name: v2, weight: 10}]
%s
`, v1.addr(), v2.addr(), shadow.addr(), extra), Options{Rand: balance.Seeded(42)})
}

func TestCanarySplitAndABMatch(t *testing.T) {
	v1, v2, shadow := newUpstream(t, "v1"), newUpstream(t, "v2"), newUpstream(t, "shadow")
	f := strategies(t, v1, v2, shadow, "")
	counts := map[string]int{}
	for range 1000 {
		_, body := f.do(t, "GET", "x.test", "/", nil, nil)
		counts[body]++
	}
	// Smooth weighted round robin is exact over every 100 requests.
	if counts["v1"] != 900 || counts["v2"] != 100 {
		t.Errorf("canary split = %v, want exactly v1:900 v2:100", counts)
	}
	for range 20 {
		if _, body := f.do(t, "GET", "x.test", "/", nil, map[string]string{"X-Canary": "1"}); body != "v2" {
			t.Fatalf("A/B header request went to %s, want v2", body)
		}
	}
}

func TestStickyCanaryCookie(t *testing.T) {
	v1, v2, shadow := newUpstream(t, "v1"), newUpstream(t, "v2"), newUpstream(t, "shadow")
	f := start(t, fmt.Sprintf(`
backends:
  - {name: v1, addresses: [%q]}
  - {name: v2, addresses: [%q]}
routes:
  - name: canary
    backends: [{name: v1, weight: 50}, {name: v2, weight: 50}]
    sticky: {cookie: flotilla-canary, ttl: 1h}
`, v1.addr(), v2.addr()), Options{})
	_ = shadow
	resp, first := f.do(t, "GET", "x.test", "/", nil, nil)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "flotilla-canary" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != first || cookie.MaxAge != 3600 || !cookie.HttpOnly {
		t.Fatalf("sticky cookie = %+v, want flotilla-canary=%s, Max-Age 3600, HttpOnly", cookie, first)
	}
	for range 20 {
		if _, body := f.do(t, "GET", "x.test", "/", nil, map[string]string{"Cookie": "flotilla-canary=" + first}); body != first {
			t.Fatalf("sticky request went to %s, want %s", body, first)
		}
	}
	// A cookie naming a backend with weight 0 is not honoured.
	if err := f.gw.SetWeights("canary", map[string]int{first: 0}); err != nil {
		t.Fatal(err)
	}
	if _, body := f.do(t, "GET", "x.test", "/", nil, map[string]string{"Cookie": "flotilla-canary=" + first}); body == first {
		t.Errorf("sticky cookie kept a client on %s after its weight went to 0", first)
	}
}

func TestBlueGreenFlipThroughAdminAPI(t *testing.T) {
	v1, v2, shadow := newUpstream(t, "v1"), newUpstream(t, "v2"), newUpstream(t, "shadow")
	f := strategies(t, v1, v2, shadow, "")
	admin := httptest.NewServer(f.gw.AdminHandler())
	defer admin.Close()
	put := func(route, body string) (int, string) {
		req, _ := http.NewRequest("PUT", admin.URL+"/routes/"+route+"/weights", strings.NewReader(body))
		resp, err := admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := put("canary", `{"v1": 0, "v2": 100}`); code != 200 || !strings.Contains(body, `"v2": 100`) {
		t.Fatalf("PUT weights = %d %s", code, body)
	}
	for range 50 {
		if _, body := f.do(t, "GET", "x.test", "/", nil, nil); body != "v2" {
			t.Fatalf("after the flip a request went to %s", body)
		}
	}
	for _, tt := range []struct {
		route, body string
		code        int
	}{
		{"nope", `{"v1": 1}`, 404},
		{"canary", `{"v3": 1}`, 422},
		{"canary", `{"v1": 101}`, 422},
		{"canary", `{"v1": 0, "v2": 0}`, 422},
		{"canary", `[1]`, 400},
	} {
		if code, body := put(tt.route, tt.body); code != tt.code || !strings.Contains(body, `"error"`) {
			t.Errorf("PUT %s %s = %d %s, want %d with an error", tt.route, tt.body, code, body, tt.code)
		}
	}
	// Weight changes are validated by the config's own rules, with the
	// same YAML paths as a reload's errors.
	for w, want := range map[int]string{101: "routes[1].backends[0].weight: must be 0..100, got 101", -1: "must be 0..100, got -1"} {
		if err := f.gw.SetWeights("canary", map[string]int{"v1": w}); !errors.Is(err, ErrBadWeights) || !strings.Contains(err.Error(), want) {
			t.Errorf("SetWeights(v1: %d) = %v, want ErrBadWeights naming %q", w, err, want)
		}
	}
	if err := f.gw.SetWeights("canary", map[string]int{"v2": 0}); err == nil || !strings.Contains(err.Error(), "weights add up to 0") {
		t.Errorf("SetWeights(all 0) = %v, want the reload's \"weights add up to 0\"", err)
	}
	resp, err := admin.Client().Get(admin.URL + "/routes/canary/weights")
	if err != nil {
		t.Fatal(err)
	}
	var w map[string]int
	json.NewDecoder(resp.Body).Decode(&w)
	resp.Body.Close()
	if w["v1"] != 0 || w["v2"] != 100 {
		t.Errorf("GET weights = %v after rejected changes, want v1:0 v2:100", w)
	}
	for _, p := range []string{"/routes", "/backends", "/table", "/config", "/metrics", "/healthz", "/readyz"} {
		resp, err := admin.Client().Get(admin.URL + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s = %v, %v", p, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}

func TestMirrorNeverAffectsPrimary(t *testing.T) {
	v1, v2, shadow := newUpstream(t, "v1"), newUpstream(t, "v2"), newUpstream(t, "shadow")
	block := make(chan struct{})
	shadow.handler = func(w http.ResponseWriter, r *http.Request) {
		<-block // a shadow that hangs
		w.WriteHeader(500)
	}
	f := strategies(t, v1, v2, shadow, `  - name: mirrored
    match: {path: {value: /m}}
    backends: [{name: v1}]
    mirror: {backend: shadow, percent: 30}
    timeout: 5s`)
	for i := range 200 {
		resp, body := f.do(t, "POST", "x.test", "/m/x", strings.NewReader("payload"), nil)
		if resp.StatusCode != 200 || body != "v1" {
			t.Fatalf("primary #%d = %d %q while the shadow hangs", i, resp.StatusCode, body)
		}
	}
	close(block)
	deadline := time.Now().Add(5 * time.Second)
	for {
		sent := testutil.ToFloat64(f.gw.metrics.mirrors.WithLabelValues("mirrored", "failed"))
		dropped := testutil.ToFloat64(f.gw.metrics.mirrors.WithLabelValues("mirrored", "dropped"))
		if total := sent + dropped; total > 0 && int64(sent) == shadow.hits.Load() {
			// 30% of 200 with a fixed seed: 60 ± sampling noise.
			if total < 40 || total > 80 {
				t.Errorf("mirrored %v of 200 requests, want about 60", total)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror results never settled: shadow hits %d", shadow.hits.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := shadow.last(t); got.Body != "payload" || got.Path != "/m/x" {
		t.Errorf("shadow got %q at %q, want the same body and path", got.Body, got.Path)
	}
}

func TestInvalidReloadKeepsLastGood(t *testing.T) {
	v1 := newUpstream(t, "v1")
	f := start(t, fmt.Sprintf(`
backends: [{name: v1, addresses: [%q]}]
routes: [{name: r, backends: [{name: v1}]}]
`, v1.addr()), Options{})
	bad := mustParse(t, fmt.Sprintf(`
backends: [{name: v1, addresses: [%q]}]
routes: [{name: r, backends: [{name: v1}]}]
`, v1.addr()))
	w := 120
	bad.Routes[0].Backends[0].Weight = &w
	err := f.gw.Reload(bad)
	if err == nil || !strings.Contains(err.Error(), "routes[0].backends[0].weight: must be 0..100, got 120") {
		t.Fatalf("Reload(bad) = %v, want the weight error with its path", err)
	}
	st := f.gw.Status()
	if st.OK || len(st.Errors) != 1 || st.LastSuccess.IsZero() {
		t.Errorf("Status() = %+v, want not OK with 1 error and the last success kept", st)
	}
	if v := testutil.ToFloat64(f.gw.metrics.reloads.WithLabelValues("failure")); v != 1 {
		t.Errorf("reloads_total{failure} = %v, want 1", v)
	}
	if resp, body := f.do(t, "GET", "x.test", "/", nil, nil); resp.StatusCode != 200 || body != "v1" {
		t.Errorf("after a bad reload: %d %q, want the old config serving", resp.StatusCode, body)
	}
}

// TestReloadUnderLoad reloads 100 times, alternating between two configs
// that move traffic between backends, while clients send requests: none
// may fail.
func TestReloadUnderLoad(t *testing.T) {
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	cfg := func(w1, w2 int, extraRoute string) *config.Config {
		return mustParse(t, fmt.Sprintf(`
backends:
  - {name: v1, addresses: [%q]}
  - {name: v2, addresses: [%q]}
routes:
  - name: main
    backends: [{name: v1, weight: %d}, {name: v2, weight: %d}]
%s`, v1.addr(), v2.addr(), w1, w2, extraRoute))
	}
	f := start(t, fmt.Sprintf(`
backends: [{name: v1, addresses: [%q]}]
routes: [{name: main, backends: [{name: v1}]}]
`, v1.addr()), Options{})
	var ok, failed atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := f.srv.Client().Get(f.srv.URL + "/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	for i := range 100 {
		c := cfg(100-i, i, "")
		if i%2 == 1 { // also change the set of routes and a backend's config
			c = cfg(50, 50, "  - {name: extra, match: {path: {value: /extra}}, backends: [{name: v2}]}")
			c.Backends[1].MaxInFlight = 1000 + i
		}
		if err := f.gw.Reload(c); err != nil {
			t.Fatalf("Reload #%d: %v", i, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Errorf("under 100 reloads: %d ok, %d failed; want 0 failed", ok.Load(), failed.Load())
	}
	if v := testutil.ToFloat64(f.gw.metrics.reloads.WithLabelValues("success")); v != 101 {
		t.Errorf("reloads_total{success} = %v, want 101", v)
	}
}

func TestPassiveEjectionThroughProxy(t *testing.T) {
	good := newUpstream(t, "good")
	dead := deadAddr(t)
	f := start(t, fmt.Sprintf(`
backends: [{name: b, addresses: [%q, %q], outlier: {consecutiveFailures: 2, baseEjection: 1m}}]
routes: [{name: r, backends: [{name: b}], retries: {attempts: 1, backoff: 1ms}}]
`, dead, good.addr()), Options{})
	for range 10 {
		if resp, _ := f.do(t, "GET", "x.test", "/", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200 (retried, then ejected)", resp.StatusCode)
		}
	}
	if v := testutil.ToFloat64(f.gw.metrics.ejections.WithLabelValues("b")); v != 1 {
		t.Errorf("ejections_total{b} = %v, want 1", v)
	}
	eps := f.gw.state.Load().pools["b"].Snapshot()
	for _, e := range eps {
		if e.Addr == dead && (e.Available || e.EjectedUntil.IsZero()) {
			t.Errorf("dead endpoint state = %+v, want ejected", e)
		}
	}
	if n := testutil.CollectAndCount(f.reg, "flotilla_gateway_backend_endpoints"); n != 4 {
		t.Errorf("flotilla_gateway_backend_endpoints series = %d, want 4", n)
	}
}

func TestUpgradePassesThrough(t *testing.T) {
	u := newUpstream(t, "ws")
	u.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			w.WriteHeader(400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}
	f := start(t, fmt.Sprintf(`
backends: [{name: ws, addresses: [%q]}]
routes: [{name: ws, backends: [{name: ws}]}]
`, u.addr()), Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade answer = %v, %v; want 101", resp, err)
	}
	fmt.Fprint(conn, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo: hello\n" {
		t.Errorf("over the upgraded connection got %q, want the echo", line)
	}
}

// TestConcurrentStepsAllCount: steps computed from the current weights
// (the live view's canary step) at once on the file config's table: none
// is computed on weights another is about to replace.
func TestConcurrentStepsAllCount(t *testing.T) {
	v1, v2, shadow := newUpstream(t, "v1"), newUpstream(t, "v2"), newUpstream(t, "shadow")
	f := strategies(t, v1, v2, shadow, "")
	if err := f.gw.SetWeights("canary", map[string]int{"v1": 100, "v2": 0}); err != nil {
		t.Fatal(err)
	}
	step := func(cur map[string]int) (map[string]int, error) {
		return map[string]int{"v1": cur["v1"] - 1, "v2": cur["v2"] + 1}, nil
	}
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			if _, err := f.gw.UpdateWeights(context.Background(), "canary", step); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if w, _ := f.gw.Weights("canary"); w["v1"] != 70 || w["v2"] != 30 {
		t.Errorf("after 30 steps of 1 at once: %v, want v1 70, v2 30", w)
	}
}
