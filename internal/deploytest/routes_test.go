package deploytest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/balance"
	gwconfig "github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/redistest"
)

// upstream stands in for one backend's pods: it answers as one version and
// records the application requests that arrived (probes apart).
type upstream struct {
	version string
	mu      sync.Mutex
	paths   []string
	marked  int // requests with markHeader, probe paths included
}

// markHeader marks the test's own requests, so an upstream can tell them
// from the gateway's health checks on the same paths.
const markHeader = "X-Deploytest"

func (u *upstream) markedHits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.marked
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Flotilla-Version", u.version)
	if r.Header.Get(markHeader) != "" {
		u.mu.Lock()
		u.marked++
		u.mu.Unlock()
	}
	if r.URL.Path == "/readyz" || r.URL.Path == "/healthz" {
		return
	}
	u.mu.Lock()
	u.paths = append(u.paths, r.URL.Path)
	u.mu.Unlock()
}

func (u *upstream) hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.paths)
}

// realGateway runs the gateway package on the routes file at path, with
// every backend's addresses replaced by one local upstream answering as
// versions[backend].
func realGateway(t *testing.T, path string, versions map[string]string) (*gateway.Gateway, map[string]*upstream) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return realGatewayData(t, path, data, versions)
}

// realGatewayData is realGateway on routes read from elsewhere (a
// rendered ConfigMap); path names them in messages.
func realGatewayData(t *testing.T, path string, data []byte, versions map[string]string) (*gateway.Gateway, map[string]*upstream) {
	t.Helper()
	cfg, err := gwconfig.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if cfg.Redis != nil {
		// The global rate limits' store: a real Redis, without the
		// cluster's password file.
		cfg.Redis.Address, cfg.Redis.PasswordFile = redistest.Start(t).Addr, ""
	}
	ups := map[string]*upstream{}
	for i, b := range cfg.Backends {
		v, ok := versions[b.Name]
		if !ok {
			t.Fatalf("%s: backend %s has no version in the test", path, b.Name)
		}
		u := &upstream{version: v}
		srv := httptest.NewUnstartedServer(u)
		if b.Protocol == "h2c" {
			// An h2c backend (the demo's gRPC): HTTP/2 with prior knowledge.
			var p http.Protocols
			p.SetHTTP1(true)
			p.SetUnencryptedHTTP2(true)
			srv.Config.Protocols = &p
		}
		srv.Start()
		t.Cleanup(srv.Close)
		// The shipped backends watch EndpointSlices; here a test server
		// stands in for the Service's pods.
		cfg.Backends[i].Kubernetes = nil
		cfg.Backends[i].Addresses = []string{strings.TrimPrefix(srv.URL, "http://")}
		ups[b.Name] = u
	}
	gw, err := gateway.New(cfg, gateway.Options{Rand: balance.Seeded(1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw, ups
}

// send makes n requests through h and counts the versions that answered.
func send(t *testing.T, h http.Handler, n int, prep func(*http.Request)) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		r := httptest.NewRequest(http.MethodGet, "http://gateway/", nil)
		if prep != nil {
			prep(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s%s = %d, want 200: %s", r.Host, r.URL.Path, w.Code, w.Body)
		}
		got[w.Header().Get("X-Flotilla-Version")]++
	}
	return got
}

func strategyRoutes(name string) string {
	return filepath.Join(kustomizeRoot, "strategies", name, "gateway.yaml")
}

// TestStrategyRoutes runs the real gateway on each strategy's routes and
// checks what its README promises, per request.
func TestStrategyRoutes(t *testing.T) {
	t.Run("recreate and ramped: one backend", func(t *testing.T) {
		for _, s := range []string{"recreate", "ramped"} {
			gw, _ := realGateway(t, strategyRoutes(s), map[string]string{"demo": "v1"})
			if got := send(t, gw, 20, nil); got["v1"] != 20 {
				t.Errorf("%s: versions %v, want v1 only", s, got)
			}
		}
	})
	t.Run("blue-green: all to blue until the flip", func(t *testing.T) {
		gw, _ := realGateway(t, strategyRoutes("blue-green"), map[string]string{"demo-blue": "v1", "demo-green": "v2"})
		if got := send(t, gw, 50, nil); got["v1"] != 50 {
			t.Errorf("before the flip: versions %v, want v1 only", got)
		}
		// The README's instant flip, through the admin API's code path.
		if err := gw.SetWeights("demo", map[string]int{"demo-blue": 0, "demo-green": 100}); err != nil {
			t.Fatal(err)
		}
		if got := send(t, gw, 50, nil); got["v2"] != 50 {
			t.Errorf("after the flip: versions %v, want v2 only", got)
		}
	})
	t.Run("canary: 10 percent", func(t *testing.T) {
		gw, _ := realGateway(t, strategyRoutes("canary"), map[string]string{"demo-stable": "v1", "demo-canary": "v2"})
		const n = 2000
		got := send(t, gw, n, nil) // no cookie kept: like flotilla load
		// 10 % ± 2.5 points, the README's tolerance (3.7 standard
		// deviations for 2000 requests; the seeded random makes it exact
		// from run to run anyway).
		if share := float64(got["v2"]) / n; share < 0.075 || share > 0.125 {
			t.Errorf("canary share %.3f (%v), want 0.10 ± 0.025", share, got)
		}
	})
	t.Run("canary: a client with the cookie stays", func(t *testing.T) {
		gw, _ := realGateway(t, strategyRoutes("canary"), map[string]string{"demo-stable": "v1", "demo-canary": "v2"})
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://gateway/", nil))
		first := w.Header().Get("X-Flotilla-Version")
		cookies := w.Result().Cookies()
		if len(cookies) == 0 || cookies[0].Name != "flotilla-canary" {
			t.Fatalf("first answer set cookies %v, want flotilla-canary", cookies)
		}
		got := send(t, gw, 50, func(r *http.Request) { r.AddCookie(cookies[0]) })
		if got[first] != 50 {
			t.Errorf("with the cookie: versions %v, want %s only", got, first)
		}
	})
	t.Run("ab-testing: header and cookie reach b", func(t *testing.T) {
		gw, _ := realGateway(t, strategyRoutes("ab-testing"), map[string]string{"demo-a": "v1", "demo-b": "v2"})
		for _, tt := range []struct {
			name string
			prep func(*http.Request)
			want string
		}{
			{"nothing", nil, "v1"},
			{"header", func(r *http.Request) { r.Header.Set("X-Variant", "b") }, "v2"},
			{"other header value", func(r *http.Request) { r.Header.Set("X-Variant", "a") }, "v1"},
			{"cookie", func(r *http.Request) { r.Header.Set("Cookie", "variant=b") }, "v2"},
			{"other cookie", func(r *http.Request) { r.Header.Set("Cookie", "variant=c; b=variant") }, "v1"},
		} {
			if got := send(t, gw, 20, tt.prep); got[tt.want] != 20 {
				t.Errorf("%s: versions %v, want %s only", tt.name, got, tt.want)
			}
		}
	})
	t.Run("shadow: answers from the primary, copies to the shadow", func(t *testing.T) {
		gw, ups := realGateway(t, strategyRoutes("shadow"), map[string]string{"demo-primary": "v1", "demo-shadow": "v2"})
		// Copies go out in the background and beyond 16 in flight per pod
		// they are dropped (on purpose), so wait for each copy before the
		// next request, within a bound far above what a local request takes.
		for i := 1; i <= 30; i++ {
			if got := send(t, gw, 1, nil); got["v1"] != 1 {
				t.Fatalf("request %d: versions %v, want v1", i, got)
			}
			deadline := time.Now().Add(10 * time.Second)
			for ups["demo-shadow"].hits() < i && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := ups["demo-shadow"].hits(); got != i {
				t.Fatalf("after %d requests the shadow got %d copies", i, got)
			}
		}
		if got := ups["demo-primary"].hits(); got != 30 {
			t.Errorf("primary got %d requests, want 30", got)
		}
	})
}

// TestTalkRoutes runs the real gateway on the base's routes: the talk's
// Ingress by host, with the /flask rewrite, and the path prefixes.
func TestTalkRoutes(t *testing.T) {
	gw, ups := realGateway(t, filepath.Join(kustomizeRoot, "base", "gateway", "gateway.yaml"), map[string]string{"counter": "counter", "demo": "demo", "demo-grpc": "demo-grpc"})
	for _, tt := range []struct {
		host, path     string
		backend, wantP string
	}{
		{"flaskapp.test", "/flask", "counter", "/"},
		{"flaskapp.test", "/flask/x", "counter", "/x"},
		{"minikube.test", "/map", "demo", "/map"},
		{"gateway", "/counter", "counter", "/"},
		{"gateway", "/demo/echo", "demo", "/echo"},
	} {
		before := ups[tt.backend].hits()
		r := httptest.NewRequest(http.MethodGet, "http://"+tt.host+tt.path, nil)
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, r)
		if w.Code != http.StatusOK || ups[tt.backend].hits() != before+1 {
			t.Errorf("GET %s%s = %d, want 200 from %s", tt.host, tt.path, w.Code, tt.backend)
			continue
		}
		u := ups[tt.backend]
		u.mu.Lock()
		got := u.paths[len(u.paths)-1]
		u.mu.Unlock()
		if got != tt.wantP {
			t.Errorf("GET %s%s reached %s as %q, want %q", tt.host, tt.path, tt.backend, got, tt.wantP)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "http://flaskapp.test/flasky", nil)
	w := httptest.NewRecorder()
	gw.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Errorf("GET flaskapp.test/flasky = %d, want 404 (no route)", w.Code)
	}
}

// TestTalkGRPCRoutes: the base's gRPC routes send the demo's two gRPC
// services, and nothing else, to the demo over h2c: POST with the gRPC
// content type only, whatever the host.
func TestTalkGRPCRoutes(t *testing.T) {
	gw, ups := realGateway(t, filepath.Join(kustomizeRoot, "base", "gateway", "gateway.yaml"), map[string]string{"counter": "counter", "demo": "demo", "demo-grpc": "demo-grpc"})
	for _, tt := range []struct {
		name, method, host, path, ctype string
		wantGRPC                        bool
	}{
		{"health check", http.MethodPost, "gateway", "/grpc.health.v1.Health/Check", "application/grpc", true},
		{"echo", http.MethodPost, "gateway", "/flotilla.demo.v1.Echo/Echo", "application/grpc", true},
		{"echo as the talk's host", http.MethodPost, "127.0.0.1:30443", "/flotilla.demo.v1.Echo/Echo", "application/grpc", true},
		{"no gRPC content type", http.MethodPost, "gateway", "/flotilla.demo.v1.Echo/Echo", "application/json", false},
		{"GET", http.MethodGet, "gateway", "/grpc.health.v1.Health/Check", "application/grpc", false},
		{"another service", http.MethodPost, "gateway", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "application/grpc", false},
		{"a longer service name", http.MethodPost, "gateway", "/flotilla.demo.v1.EchoX/Echo", "application/grpc", false},
		{"a private path behind the prefix", http.MethodPost, "gateway", "/flotilla.demo.v1.Echo/../readyz/disable", "application/grpc", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := ups["demo-grpc"].hits()
			r := httptest.NewRequest(tt.method, "http://"+tt.host+tt.path, nil)
			r.Header.Set("Content-Type", tt.ctype)
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, r)
			reached := ups["demo-grpc"].hits() > before
			if reached != tt.wantGRPC || (tt.wantGRPC && w.Code != http.StatusOK) {
				t.Errorf("%s %s%s (Content-Type %s) = %d, reached demo-grpc: %v, want %v", tt.method, tt.host, tt.path, tt.ctype, w.Code, reached, tt.wantGRPC)
			}
		})
	}
}
