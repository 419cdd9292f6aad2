package admin

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeGateway records weight changes; the rest answers fixed data.
type fakeGateway struct{ set map[string]int }

func (f *fakeGateway) Routes() any                            { return []string{"demo"} }
func (f *fakeGateway) Backends() any                          { return []string{"demo"} }
func (f *fakeGateway) Table() string                          { return "host (any)\n" }
func (f *fakeGateway) Weights(string) (map[string]int, error) { return map[string]int{"a": 1}, nil }
func (f *fakeGateway) SetWeights(_ string, w map[string]int) error {
	f.set = w
	return nil
}
func (f *fakeGateway) ReloadFile() error { return nil }
func (f *fakeGateway) ConfigStatus() any { return map[string]bool{"ok": true} }

type fakeProbes struct{}

func (fakeProbes) Healthz(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }
func (fakeProbes) Readyz(w http.ResponseWriter, _ *http.Request)  { io.WriteString(w, "ready\n") }

const token = "0123456789abcdef0123456789abcdef"

// serve runs the secured admin API on a real listener at addr.
func serve(t *testing.T, addr string, o Options) (string, *fakeGateway) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{}
	srv := httptest.NewUnstartedServer(Secure(Handler(g, fakeProbes{}, prometheus.NewRegistry()), o))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, g
}

// nonLoopback returns this host's first non-loopback IPv4 address.
func nonLoopback(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("SKIP (not silent): this host has no non-loopback IPv4 address to test a remote client with")
	return ""
}

type result struct {
	status  int
	wwwAuth string
	body    string
}

func call(t *testing.T, method, url, host, auth string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"a": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)}
}

func TestSecureToken(t *testing.T) {
	ip := nonLoopback(t)
	base, g := serve(t, net.JoinHostPort(ip, "0"), Options{Token: []byte(token)})
	tests := []struct {
		name, method, path, host, auth string
		status                         int
		wwwAuth                        string
	}{
		{"no token", "GET", "/routes", "", "", 401, `Bearer realm="flotilla-admin"`},
		{"wrong token", "GET", "/routes", "", "Bearer " + strings.Repeat("x", 32), 401, `Bearer realm="flotilla-admin", error="invalid_token"`},
		{"token prefix", "GET", "/routes", "", "Bearer " + token[:31], 401, `Bearer realm="flotilla-admin", error="invalid_token"`},
		{"token and more", "GET", "/routes", "", "Bearer " + token + "x", 401, `Bearer realm="flotilla-admin", error="invalid_token"`},
		{"basic scheme", "GET", "/routes", "", "Basic " + token, 401, `Bearer realm="flotilla-admin"`},
		{"right token", "GET", "/routes", "", "Bearer " + token, 200, ""},
		{"scheme is case-insensitive", "GET", "/backends", "", "bearer " + token, 200, ""},
		{"weights change needs the token", "PUT", "/routes/demo/weights", "", "", 401, `Bearer realm="flotilla-admin"`},
		{"reload needs the token", "POST", "/reload", "", "", 401, `Bearer realm="flotilla-admin"`},
		{"weights change with the token", "PUT", "/routes/demo/weights", "", "Bearer " + token, 200, ""},
		{"healthz open", "GET", "/healthz", "", "", 200, ""},
		{"readyz open", "GET", "/readyz", "", "", 200, ""},
		{"metrics open", "GET", "/metrics", "", "", 200, ""},
		{"metrics HEAD open", "HEAD", "/metrics", "", "", 200, ""},
		{"POST to an open path is not open", "POST", "/readyz", "", "", 401, `Bearer realm="flotilla-admin"`},
		{"open path with a suffix is not open", "GET", "/metrics/x", "", "", 401, `Bearer realm="flotilla-admin"`},
		{"pprof off: needs the token", "GET", "/debug/pprof/", "", "", 401, `Bearer realm="flotilla-admin"`},
		{"pprof off", "GET", "/debug/pprof/", "", "Bearer " + token, 404, ""},
		{"pprof cmdline off", "GET", "/debug/pprof/cmdline", "", "Bearer " + token, 404, ""},
		{"rebinding name", "GET", "/routes", "evil.example:9901", "Bearer " + token, 403, ""},
		{"rebinding name on an open path", "GET", "/metrics", "evil.example", "", 403, ""},
		{"localhost", "GET", "/healthz", "localhost:9901", "", 200, ""},
		{"LOCALHOST.", "GET", "/healthz", "LOCALHOST.", "", 200, ""},
		{"IPv6 literal", "GET", "/healthz", "[::1]:9901", "", 200, ""},
		{"pod IP", "GET", "/healthz", "10.244.0.7:9901", "", 200, ""},
		{"name given to Hosts is not given", "GET", "/healthz", "gateway-admin.flotilla.svc", "", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, tt.method, base+tt.path, tt.host, tt.auth)
			if got.status != tt.status || got.wwwAuth != tt.wwwAuth {
				t.Errorf("%s %s = %d, WWW-Authenticate %q; want %d, %q (%s)", tt.method, tt.path, got.status, got.wwwAuth, tt.status, tt.wwwAuth, got.body)
			}
			if strings.Contains(got.body, token) {
				t.Errorf("%s %s: the answer contains the token", tt.method, tt.path)
			}
		})
	}
	if g.set["a"] != 0 || len(g.set) != 1 {
		t.Errorf("weights set to %v, want only the authorized change {a: 0}", g.set)
	}
}

func TestSecureHostsAndPprof(t *testing.T) {
	base, _ := serve(t, "127.0.0.1:0", Options{Token: []byte(token), Hosts: []string{"Gateway-Admin.flotilla.svc"}, Pprof: true})
	for _, tt := range []struct {
		name, path, host, auth string
		status                 int
	}{
		{"configured name", "/healthz", "gateway-admin.flotilla.svc:9901", "", 200},
		{"configured name, trailing dot", "/healthz", "gateway-admin.flotilla.svc.", "", 200},
		{"other name", "/healthz", "gateway-admin.flotilla.svc.evil.example", "", 403},
		{"blank host", "/healthz", " ", "", 403},
		{"pprof on: still needs the token", "/debug/pprof/", "", "", 401},
		{"pprof on", "/debug/pprof/", "", "Bearer " + token, 200},
		{"pprof cmdline on", "/debug/pprof/cmdline", "", "Bearer " + token, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := call(t, "GET", base+tt.path, tt.host, tt.auth); got.status != tt.status {
				t.Errorf("GET %s (Host %q) = %d, want %d: %s", tt.path, tt.host, got.status, tt.status, got.body)
			}
		})
	}
}

// TestSecureLoopbackWithoutToken: without a token the API answers on a
// loopback connection, and refuses (403) one to another address.
func TestSecureLoopbackWithoutToken(t *testing.T) {
	ip := nonLoopback(t)
	base, _ := serve(t, "0.0.0.0:0", Options{})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	for _, tt := range []struct {
		name, addr, path string
		status           int
	}{
		{"loopback", "127.0.0.1", "/routes", 200},
		{"loopback reload", "127.0.0.1", "/reload", 0},
		{"other address", ip, "/routes", 403},
		{"other address, probe", ip, "/readyz", 200},
		{"other address, metrics", ip, "/metrics", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			method, want := "GET", tt.status
			if tt.path == "/reload" {
				method, want = "POST", 200
			}
			if got := call(t, method, "http://"+net.JoinHostPort(tt.addr, port)+tt.path, "", ""); got.status != want {
				t.Errorf("%s %s via %s = %d, want %d: %s", method, tt.path, tt.addr, got.status, want, got.body)
			}
		})
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content, want string // want: "" valid, else in the error
	}{
		{"hex with newline", token + "\n", ""},
		{"base64 with padding", "YWJjZGVmZ2hpamtsbW5vcHFy==\r\n", ""},
		{"too short", "abc\n", "token is 3 bytes, want at least 16"},
		{"empty", "", "token is 0 bytes"},
		{"space inside", "0123456789 abcdef0123", "byte 11 of the token is not allowed"},
		{"padding in the middle", "abc=defghijklmnopqrs", "byte 5 of the token is not allowed"},
		{"leading padding", "=abcdefghijklmnopqrs", "byte 1 of the token is not allowed"},
		{"non-ASCII", "0123456789abcdefé", "byte 17 of the token is not allowed"},
		{"newline inside", "0123456789abcdef\nx", "byte 17 of the token is not allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			tok, err := ReadToken(path)
			if tt.want == "" {
				if err != nil || string(tok) != strings.TrimRight(tt.content, "\r\n") {
					t.Errorf("ReadToken() = %q, %v; want the token", tok, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("ReadToken() error = %v, want one naming the file and %q", err, tt.want)
			}
			if len(tt.content) >= MinTokenLen && strings.Contains(err.Error(), strings.TrimSpace(tt.content)) {
				t.Errorf("ReadToken() error %q contains the token", err)
			}
		})
	}
	if _, err := ReadToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadToken(missing) error = nil")
	}
}

// FuzzSecureAuthorization: whatever the Authorization and Host headers
// and path, a protected endpoint answers 200 only for the right Bearer
// token and an allowed Host, and never echoes the token.
func FuzzSecureAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer " + token, "bearer " + token, "Bearer  " + token, "Bearer " + token + " ", "Basic " + token, token, "Bearer", "", "Bearer \x00" + token} {
		f.Add(s, "127.0.0.1", "/routes")
	}
	f.Add("Bearer "+token, "evil.example", "/routes")
	f.Add("", "localhost", "/metrics")
	f.Add("Bearer "+token, "[::1]:1", "/debug/pprof/")
	h := Secure(Handler(&fakeGateway{}, fakeProbes{}, prometheus.NewRegistry()), Options{Token: []byte(token)})
	f.Fuzz(func(t *testing.T, auth, host, path string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?# \x00\r\n") {
			return
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		r := httptest.NewRequest("GET", "http://x"+path, nil)
		r.Host = host
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		scheme, tok, _ := strings.Cut(auth, " ")
		right := strings.EqualFold(scheme, "Bearer") && strings.TrimLeft(tok, " ") == token
		open := isOpen(r.URL.Path)
		hostOK := (&secure{hosts: map[string]bool{"localhost": true}}).hostAllowed(host)
		if w.Code == http.StatusOK && (!hostOK || (!open && !right)) {
			t.Errorf("GET %s Host %q Authorization %q = 200, want refused", path, host, auth)
		}
		if !hostOK && w.Code != http.StatusForbidden {
			t.Errorf("Host %q = %d, want 403", host, w.Code)
		}
		if hostOK && !open && !right && w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s Authorization %q = %d, want 401", path, auth, w.Code)
		}
		if strings.Contains(w.Body.String(), token) {
			t.Errorf("the answer contains the token")
		}
	})
}

// TestSecureNoTokenRefusesBrowserWrites: without a token a web page could
// make a browser POST to the loopback admin API (CSRF); a write that a
// browser marks as coming from a page is refused, reads and CLI writes
// are not.
func TestSecureNoTokenRefusesBrowserWrites(t *testing.T) {
	base, _ := serve(t, "127.0.0.1:0", Options{})
	for _, tt := range []struct {
		name, method, header, value string
		status                      int
	}{
		{"CLI reload", "POST", "", "", 200},
		{"page reload with Origin", "POST", "Origin", "http://evil.example", 403},
		{"page reload, cross-site fetch", "POST", "Sec-Fetch-Site", "cross-site", 403},
		{"page weights, same-site fetch", "PUT", "Sec-Fetch-Site", "same-site", 403},
		{"page read with Origin", "GET", "Origin", "http://evil.example", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := "/reload"
			switch tt.method {
			case "GET":
				path = "/routes"
			case "PUT":
				path = "/routes/r/weights"
			}
			req, err := http.NewRequest(tt.method, base+path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set(tt.header, tt.value)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.status == 403 && resp.StatusCode != 403 || tt.status == 200 && resp.StatusCode == 403 {
				t.Errorf("%s %s with %s: %q = %d %s, want %d", tt.method, path, tt.header, tt.value, resp.StatusCode, b, tt.status)
			}
		})
	}
}
