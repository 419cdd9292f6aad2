package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGatewayBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"config required", []string{"gateway"}, "--config (FLOTILLA_CONFIG): required"},
		{"bad addr", []string{"gateway", "--config", "x.yaml", "--addr", "nope"}, "--addr (FLOTILLA_ADDR)"},
		{"bad admin addr", []string{"gateway", "--config", "x.yaml", "--admin-addr", "nope"}, "--admin-addr (FLOTILLA_ADMIN_ADDR)"},
		{"validate needs a file", []string{"gateway", "validate"}, "accepts 1 arg"},
		{"bad weight", []string{"gateway", "admin", "weights", "canary", "v1=101", "v2"}, `weight "v1=101": want BACKEND=WEIGHT`},
		{"nginx class needs a class", []string{"gateway", "--config", "x.yaml", "--ingress-class-nginx"}, "--ingress-class-nginx (FLOTILLA_INGRESS_CLASS_NGINX): needs --ingress-class"},
		{"without class needs a class", []string{"gateway", "--config", "x.yaml", "--watch-ingress-without-class"}, "--watch-ingress-without-class (FLOTILLA_WATCH_INGRESS_WITHOUT_CLASS): needs --ingress-class"},
		{"publish needs a class", []string{"gateway", "--config", "x.yaml", "--publish-address", "192.0.2.1"}, "--publish-address (FLOTILLA_PUBLISH_ADDRESS): needs --ingress-class"},
		{"bad publish service", []string{"gateway", "--config", "x.yaml", "--ingress-class", "flotilla", "--publish-service", "gateway"}, `--publish-service (FLOTILLA_PUBLISH_SERVICE): want namespace/name, got "gateway"`},
		{"lease required", []string{"gateway", "--config", "x.yaml", "--ingress-class", "flotilla", "--leader-election-lease", ""}, "--leader-election-lease (FLOTILLA_LEADER_ELECTION_LEASE): required"},
		{"publish needs a class of either kind", []string{"gateway", "--config", "x.yaml", "--publish-service", "ns/gw"}, "--publish-service (FLOTILLA_PUBLISH_SERVICE): needs --ingress-class or --gateway-class"},
		{"gateway class: bad publish service", []string{"gateway", "--config", "x.yaml", "--gateway-class", "flotilla", "--publish-service", "gateway"}, `--publish-service (FLOTILLA_PUBLISH_SERVICE): want namespace/name, got "gateway"`},
		{"gateway class: controller name required", []string{"gateway", "--config", "x.yaml", "--gateway-class", "flotilla", "--gateway-controller-name", ""}, "--gateway-controller-name (FLOTILLA_GATEWAY_CONTROLLER_NAME): required with --gateway-class"},
		{"gateway port range malformed", []string{"gateway", "--config", "x.yaml", "--gateway-class", "flotilla", "--publish-service", "ns/gw", "--gateway-port-range", "20000"}, "--gateway-port-range (FLOTILLA_GATEWAY_PORT_RANGE): want LOW-HIGH"},
		{"gateway port range without publish service", []string{"gateway", "--config", "x.yaml", "--gateway-class", "flotilla", "--gateway-port-range", "20000-20999"}, "needs --publish-service"},
		{"gateway port range over the gateway's port", []string{"gateway", "--config", "x.yaml", "--gateway-class", "flotilla", "--publish-service", "ns/gw", "--gateway-port-range", "8000-9000"}, `8000-9000 includes the gateway's own port :8080`},
		{"gateway class: lease required", []string{"gateway", "--config", "x.yaml", "--gateway-class", "flotilla", "--gateway-leader-election-lease", ""}, "--gateway-leader-election-lease (FLOTILLA_GATEWAY_LEADER_ELECTION_LEASE): required with --leader-elect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, nil, tt.args...)
			if code != ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("flotilla %v = %d, stderr %q; want %d and %q", tt.args, code, stderr, ExitUsage, tt.want)
			}
		})
	}
}

func TestGatewayValidate(t *testing.T) {
	code, out, stderr := run(t, nil, "gateway", "validate", "../../examples/gateway/talk.yaml")
	if code != ExitOK || !strings.Contains(out, "ok (4 routes, 2 backends)") {
		t.Errorf("validate talk.yaml = %d, %q, %q", code, out, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: ghost, weight: 120}]}]\n"), 0o600)
	code, _, stderr = run(t, nil, "gateway", "validate", bad)
	for _, w := range []string{`routes[0].backends[0].name: no backend named "ghost"`, "routes[0].backends[0].weight: must be 0..100, got 120"} {
		if code != ExitError || !strings.Contains(stderr, w) {
			t.Errorf("validate bad.yaml = %d, stderr %q; want 1 and %q", code, stderr, w)
		}
	}
}

// TestGatewayValidatePolicyFiles: validate loads the files the policies
// read, as the gateway would, and names each problem with its route.
func TestGatewayValidatePolicyFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keys.txt"), []byte("ci:short\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "htpasswd"), []byte("alice:plaintext\n"), 0o600)
	cfg := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(cfg, []byte(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
redis: {address: "127.0.0.1:1", passwordFile: missing-password}
backends: [{name: b, addresses: ["127.0.0.1:1"]}]
routes:
  - {name: keys, auth: {apiKey: {keysFile: keys.txt}}, backends: [{name: b}]}
  - {name: ops, auth: {basic: {htpasswdFile: htpasswd}}, backends: [{name: b}]}
  - {name: jwt, auth: {jwt: {jwksFile: none.json}}, backends: [{name: b}]}
`), 0o600)
	code, _, stderr := run(t, nil, "gateway", "validate", cfg)
	for _, w := range []string{"routes[0].auth.apiKey: ", "keys.txt:1:", "routes[1].auth.basic: ", "htpasswd:1:", "routes[2].auth.jwt: ", "none.json",
		"redis: redis.passwordFile: "} {
		if code != ExitError || !strings.Contains(stderr, w) {
			t.Errorf("validate = %d, stderr %q; want 1 and %q", code, stderr, w)
		}
	}
}

func gwFreeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestGatewayRunsAndAdminCLI runs `flotilla gateway` for real, sends a
// request through it and flips weights with `flotilla gateway admin`.
func TestGatewayRunsAndAdminCLI(t *testing.T) {
	blue := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "blue") }))
	defer blue.Close()
	green := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "green") }))
	defer green.Close()
	cfg := filepath.Join(t.TempDir(), "gateway.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends:
  - {name: blue, addresses: [%q]}
  - {name: green, addresses: [%q]}
routes:
  - {name: app, backends: [{name: blue, weight: 100}, {name: green, weight: 0}]}
`, strings.TrimPrefix(blue.URL, "http://"), strings.TrimPrefix(green.URL, "http://"))), 0o600)
	addr, admin := gwFreeAddr(t), gwFreeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuf
	e := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"gateway", "--config", cfg, "--addr", addr, "--admin-addr", admin, "--shutdown-timeout", "2s", "--max-conns-per-ip", "8"}, e)
	}()
	get := func() string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway never answered: %v; stderr %s", err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := get(); got != "blue" {
		t.Fatalf("before the flip: %q, want blue", got)
	}
	code, out, errOut := runWith(t, "gateway", "admin", "--admin-url", "http://"+admin, "weights", "app", "blue=0", "green=100")
	if code != ExitOK || !strings.Contains(out, `"green": 100`) {
		t.Fatalf("admin weights = %d %q %q", code, out, errOut)
	}
	if got := get(); got != "green" {
		t.Errorf("after the flip: %q, want green", got)
	}
	if code, out, _ := runWith(t, "gateway", "admin", "--admin-url", "http://"+admin, "backends"); code != ExitOK || !strings.Contains(out, `"available": true`) {
		t.Errorf("admin backends = %d %q", code, out)
	}
	if code, _, errOut := runWith(t, "gateway", "admin", "--admin-url", "http://"+admin, "weights", "nope", "a=1"); code != ExitError || !strings.Contains(errOut, "404") {
		t.Errorf("admin weights on a missing route = %d %q, want exit 1 naming 404", code, errOut)
	}
	// Connections over --max-conns-per-ip are closed at accept and
	// counted in a metric of the admin port.
	var held []net.Conn
	for range 12 {
		if c, err := net.Dial("tcp", addr); err == nil {
			held = append(held, c)
		}
	}
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + admin + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if metrics = string(b); !strings.Contains(metrics, `flotilla_gateway_connections_refused_total{cap="max_conns_per_ip"} 0`) {
				break
			}
		}
	}
	if !strings.Contains(metrics, `flotilla_gateway_connections_refused_total{cap="max_conns_per_ip"} `) ||
		strings.Contains(metrics, `flotilla_gateway_connections_refused_total{cap="max_conns_per_ip"} 0`) {
		t.Errorf("after 12 connections against --max-conns-per-ip 8, /metrics has no refusal counted:\n%s", grepLines(metrics, "refused"))
	}
	for _, c := range held {
		c.Close()
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("gateway exit = %d, stderr %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not stop")
	}
	// The access log is buffered; stopping flushes it.
	if n := strings.Count(stdout.String(), `"msg":"access"`); n < 2 {
		t.Errorf("access log on stdout has %d lines, want one per request: %q", n, stdout.String())
	}
}

// runWith runs a command that needs a live context (run cancels its own).
func runWith(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	e := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	code := Run(context.Background(), args, e)
	return code, stdout.String(), stderr.String()
}

// syncBuf is a bytes.Buffer safe for the gateway's concurrent writers.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGatewayDrainsInFlight stops the gateway while a request is in flight
// upstream: the request must still complete.
func TestGatewayDrainsInFlight(t *testing.T) {
	inside, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(inside)
		<-release
		io.WriteString(w, "finished")
	}))
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "gateway.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: slow, addresses: [%q]}]
routes: [{name: slow, backends: [{name: slow}]}]
`, strings.TrimPrefix(up.URL, "http://"))), 0o600)
	addr := gwFreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuf
	e := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"gateway", "--config", cfg, "--addr", addr, "--admin-addr", "", "--shutdown-timeout", "10s"}, e)
	}()
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // not listening yet
				continue
			}
			if err != nil {
				res <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			res <- result{string(b), err}
			return
		}
	}()
	<-inside
	cancel() // SIGTERM: drain begins with the request upstream
	time.Sleep(50 * time.Millisecond)
	close(release)
	r := <-res
	if r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request during shutdown = %q, %v; want it finished", r.body, r.err)
	}
	if code := <-done; code != ExitOK {
		t.Errorf("gateway exit = %d, stderr %s", code, stderr.String())
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
