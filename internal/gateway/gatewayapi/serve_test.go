package gatewayapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// echo is an upstream like the conformance suite's echo-basic: it answers
// with its name, records what arrived, and simulates failures:
// ?succeedAfter=N&responseCode=C&uuid=U answers C to the first N tries of
// U (after ?delayRetry=D); ?delay=D waits D before answering.
type echo struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	got  []http.Header
	// tries counts a uuid's tries.
	tries map[string]int
}

func newEcho(t *testing.T, name string) *echo {
	e := &echo{name: name, tries: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *echo) serve(w http.ResponseWriter, r *http.Request) {
	e.hits.Add(1)
	io.Copy(io.Discard, r.Body)
	q := r.URL.Query()
	e.mu.Lock()
	e.got = append(e.got, r.Header.Clone())
	fail := 0
	if n, err := strconv.Atoi(q.Get("succeedAfter")); err == nil && e.tries[q.Get("uuid")] < n {
		e.tries[q.Get("uuid")]++
		fail, _ = strconv.Atoi(q.Get("responseCode"))
	}
	e.mu.Unlock()
	if fail != 0 {
		if d, err := time.ParseDuration(q.Get("delayRetry")); err == nil {
			time.Sleep(d) // a slow failure: retrying requests overlap
		}
		w.WriteHeader(fail)
		return
	}
	if d, err := time.ParseDuration(q.Get("delay")); err == nil {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	fmt.Fprint(w, e.name)
}

func (e *echo) last() http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got[len(e.got)-1]
}

// serve translates objs and runs a real gateway on the result, each
// Service's backend pointed at the echo of that name.
func serve(t *testing.T, objs string, echoes ...*echo) *httptest.Server {
	t.Helper()
	res := Translate(parseObjects(t, []byte(objs)).input(), Options{})
	for _, p := range res.Problems {
		t.Fatalf("unexpected problem: %s", p)
	}
	addr := map[string]string{}
	for _, e := range echoes {
		addr[e.name] = strings.TrimPrefix(e.srv.URL, "http://")
	}
	c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Routes: res.Routes}
	for _, b := range res.Backends {
		a := addr[b.Kubernetes.Service]
		if a == "" {
			t.Fatalf("no echo for Service %s", b.Kubernetes.Service)
		}
		b.Kubernetes, b.Addresses = nil, []string{a}
		c.Backends = append(c.Backends, b)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	gw, err := gateway.New(c, gateway.Options{})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, target string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const serveHead = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flotilla}
spec: {controllerName: flotilla.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: flotilla
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: default}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: v2, namespace: default}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: v3, namespace: default}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
`

// TestServeCORS: the conformance suite's HTTPRouteCORS cases, through a
// real gateway on the translation.
func TestServeCORS(t *testing.T) {
	v1 := newEcho(t, "v1")
	srv := serve(t, serveHead+`  - matches: [{path: {type: PathPrefix, value: /cors-1}}]
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
        allowMethods: [GET, OPTIONS]
        allowHeaders: [x-header-1, x-header-2]
        exposeHeaders: [x-header-3, x-header-4]
        allowCredentials: true
        maxAge: 3600
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /cors-2}}]
    filters: [{type: CORS, cors: {allowOrigins: ["https://www.foo.com"], allowMethods: ["*"], maxAge: 5}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /cors-wildcard-origin}}]
    filters: [{type: CORS, cors: {allowOrigins: ["*"], allowMethods: [PUT], allowCredentials: false, maxAge: 5}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /cors-wildcard-methods-headers}}]
    filters: [{type: CORS, cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], allowCredentials: true, maxAge: 5}}]
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /cors-wildcard-methods-headers-unauth}}]
    filters: [{type: CORS, cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], allowCredentials: false, maxAge: 5}}]
    backendRefs: [{name: v1, port: 8080}]
`, v1)
	const acao, acac, acam, acah, aceh, acma = "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
		"Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Access-Control-Max-Age"
	pre := func(origin, method, headers string) map[string]string {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
		if headers != "" {
			h["Access-Control-Request-Headers"] = headers
		}
		return h
	}
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		want               map[string]string // "" means absent
	}{
		{"preflight, exact origin", "OPTIONS", "/cors-1", pre("https://www.foo.com", "GET", "x-header-1, x-header-2"), 204,
			map[string]string{acao: "https://www.foo.com", acam: "GET, OPTIONS", acah: "x-header-1, x-header-2", aceh: "x-header-3, x-header-4", acma: "3600", acac: "true"}},
		{"preflight, wildcard origin", "OPTIONS", "/cors-1", pre("https://www.bar.com", "GET", "x-header-1, x-header-2"), 204,
			map[string]string{acao: "https://www.bar.com", acam: "GET, OPTIONS", acac: "true"}},
		{"preflight, wildcard over several labels", "OPTIONS", "/cors-1", pre("https://xpto.www.bar.com", "GET", ""), 204,
			map[string]string{acao: "https://xpto.www.bar.com"}},
		{"preflight, another origin", "OPTIONS", "/cors-1", pre("https://foobar.com", "GET", ""), 204, map[string]string{acao: ""}},
		{"simple request, exact origin", "GET", "/cors-1", map[string]string{"Origin": "https://www.foo.com"}, 200, map[string]string{acao: "https://www.foo.com"}},
		{"simple request, wildcard origin", "GET", "/cors-1", map[string]string{"Origin": "https://www.bar.com"}, 200, map[string]string{acao: "https://www.bar.com"}},
		{"simple request, another origin", "GET", "/cors-1", map[string]string{"Origin": "https://foobar.com"}, 200, map[string]string{acao: ""}},
		{"preflight, wildcard methods without credentials", "OPTIONS", "/cors-2", pre("https://www.foo.com", "POST", ""), 204,
			map[string]string{acao: "https://www.foo.com", acam: "*", acac: ""}},
		{"preflight, any origin without credentials", "OPTIONS", "/cors-wildcard-origin", pre("https://foobar.com:12345", "PUT", ""), 204,
			map[string]string{acao: "*", acam: "PUT", acac: ""}},
		{"request, any origin", "PUT", "/cors-wildcard-origin", map[string]string{"Origin": "https://foobar.com"}, 200, map[string]string{acao: "*", acac: ""}},
		{"preflight, wildcards with credentials: the request's own", "OPTIONS", "/cors-wildcard-methods-headers", pre("https://other.foo.com", "PUT", "x-header-1, x-header-2"), 204,
			map[string]string{acao: "https://other.foo.com", acam: "PUT", acah: "x-header-1, x-header-2", acac: "true"}},
		{"preflight, wildcards without credentials", "OPTIONS", "/cors-wildcard-methods-headers-unauth", pre("https://other.foo.com", "PUT", "x-header-1"), 204,
			map[string]string{acao: "*", acam: "*", acah: "*", acac: ""}},
		{"request, wildcards with credentials", "GET", "/cors-wildcard-methods-headers", map[string]string{"Origin": "https://other.foo.com"}, 200,
			map[string]string{acao: "https://other.foo.com", acac: "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, tt.method, tt.path, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d %q, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
			}
			for k, want := range tt.want {
				if got := strings.Join(resp.Header.Values(k), ","); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestServeRetry: the conformance suite's HTTPRouteRetry cases, with an
// upstream that fails a request's first tries (slowly), all at once, as
// the suite runs them in parallel: no retry is refused for the budget.
func TestServeRetry(t *testing.T) {
	v3 := newEcho(t, "v3")
	srv := serve(t, serveHead+`  - matches: [{path: {type: PathPrefix, value: /retry/code-500-attempts-3}}]
    retry: {codes: [500], attempts: 3}
    backendRefs: [{name: v3, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /retry/code-all-attempts-2}}]
    retry: {codes: [500, 502, 503, 504], attempts: 2}
    backendRefs: [{name: v3, port: 8080}]
`, v3)
	tests := []struct {
		path         string
		code, failed int
		want         int
	}{
		{"/retry/code-500-attempts-3", 500, 2, 200},
		{"/retry/code-500-attempts-3", 500, 3, 200}, // the third retry is the fourth try
		{"/retry/code-500-attempts-3", 500, 4, 500},
		{"/retry/code-500-attempts-3", 503, 2, 503}, // not a listed code
		{"/retry/code-all-attempts-2", 500, 1, 200},
		{"/retry/code-all-attempts-2", 500, 3, 500},
		{"/retry/code-all-attempts-2", 502, 1, 200},
		{"/retry/code-all-attempts-2", 502, 3, 502},
		{"/retry/code-all-attempts-2", 503, 1, 200},
		{"/retry/code-all-attempts-2", 503, 3, 503},
		{"/retry/code-all-attempts-2", 504, 1, 200},
		{"/retry/code-all-attempts-2", 504, 3, 504},
	}
	var wg sync.WaitGroup
	for i, tt := range tests {
		for round := range 3 {
			wg.Go(func() {
				target := fmt.Sprintf("%s?responseCode=%d&succeedAfter=%d&delayRetry=20ms&uuid=u%d-%d", tt.path, tt.code, tt.failed, i, round)
				resp, err := srv.Client().Get(srv.URL + target)
				if err != nil {
					t.Errorf("GET %s: %v", target, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Errorf("GET %s = %d, want %d", target, resp.StatusCode, tt.want)
				}
			})
		}
	}
	wg.Wait()
}

// TestServeBackendTimeout: the conformance suite's
// HTTPRouteTimeoutBackendRequest cases.
func TestServeBackendTimeout(t *testing.T) {
	v1 := newEcho(t, "v1")
	srv := serve(t, serveHead+`  - matches: [{path: {type: PathPrefix, value: /backend-timeout}}]
    timeouts: {backendRequest: 100ms}
    backendRefs: [{name: v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /disable-backend-timeout}}]
    timeouts: {backendRequest: 0s}
    backendRefs: [{name: v1, port: 8080}]
`, v1)
	for _, tt := range []struct {
		target string
		want   int
	}{
		{"/backend-timeout", 200},
		{"/backend-timeout?delay=1s", 504},
		{"/disable-backend-timeout?delay=300ms", 200},
	} {
		if resp, body := do(t, srv, "GET", tt.target, nil); resp.StatusCode != tt.want {
			t.Errorf("GET %s = %d %q, want %d", tt.target, resp.StatusCode, body, tt.want)
		}
	}
}

// TestServeBackendHeaders: the conformance suite's
// HTTPRouteRequestHeaderModifierBackendWeights: each backend's own
// filter sets the header naming it, and the request goes to that one.
func TestServeBackendHeaders(t *testing.T) {
	v1, v2 := newEcho(t, "v1"), newEcho(t, "v2")
	srv := serve(t, serveHead+`  - backendRefs:
    - name: v1
      port: 8080
      weight: 10
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Backend, value: v1}]}}]
    - name: v2
      port: 8080
      weight: 10
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: Backend, value: v2}]}}]
`, v1, v2)
	for range 20 {
		_, body := do(t, srv, "GET", "/", nil)
		e := v1
		if body == "v2" {
			e = v2
		}
		if got := e.last().Values("Backend"); len(got) != 1 || got[0] != body {
			t.Fatalf("%s got Backend %q, want [%s]", body, got, body)
		}
	}
	if v1.hits.Load() != 10 || v2.hits.Load() != 10 {
		t.Errorf("split v1=%d v2=%d, want 10 and 10", v1.hits.Load(), v2.hits.Load())
	}
}

// TestServeMultipleMirrors: the conformance suite's
// HTTPRouteRequestMultipleMirrors: both mirrors get a copy, with the
// rule's header edits; the client gets the primary's answer.
func TestServeMultipleMirrors(t *testing.T) {
	v1, v2, v3 := newEcho(t, "v1"), newEcho(t, "v2"), newEcho(t, "v3")
	srv := serve(t, serveHead+`  - matches: [{path: {type: PathPrefix, value: /multi-mirror}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites-values}], remove: [X-Header-Remove]}
    - {type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: v3, port: 8080}}}
    backendRefs: [{name: v1, port: 8080}]
`, v1, v2, v3)
	if resp, body := do(t, srv, "GET", "/multi-mirror", map[string]string{"X-Header-Remove": "x"}); resp.StatusCode != 200 || body != "v1" {
		t.Fatalf("GET = %d %q, want 200 from v1", resp.StatusCode, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for v2.hits.Load() == 0 || v3.hits.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("mirrors saw v2=%d v3=%d copies, want 1 each", v2.hits.Load(), v3.hits.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, e := range []*echo{v1, v2, v3} {
		if h := e.last(); h.Get("X-Header-Set") != "set-overwrites-values" || h.Get("X-Header-Remove") != "" {
			t.Errorf("%s got X-Header-Set %q X-Header-Remove %q, want the rule's edits", e.name, h.Get("X-Header-Set"), h.Get("X-Header-Remove"))
		}
	}
}
