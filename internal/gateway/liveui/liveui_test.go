package liveui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveui"
	"github.com/prometheus/client_golang/prometheus"
)

const token = "c0ffee0123456789c0ffee0123456789"

// clock is a settable clock for session expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type fixture struct {
	url   string // the admin listener, http://127.0.0.1:port
	gw    *gateway.Gateway
	clock *clock
	logs  *syncBuf
}

// start runs a real gateway in front of two real upstreams (blue, green)
// and its admin API with the live view on a loopback listener.
func start(t *testing.T, tok []byte, o liveui.Options) *fixture {
	t.Helper()
	up := func(v string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Flotilla-Version", v)
			io.WriteString(w, v)
		}))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: blue, addresses: [%q]}, {name: green, addresses: [%q]}]
routes: [{name: app, backends: [{name: blue, weight: 100}, {name: green, weight: 0}]}]
`, up("v1"), up("v2"))))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := gateway.New(cfg, gateway.Options{Registry: prometheus.NewRegistry(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	o.Source, o.Controls, o.Token, o.Now, o.Logger = gw, gw, tok, c.Now, log
	ui := liveui.New(o)
	srv := httptest.NewServer(admin.Secure(gw.AdminHandler(), admin.Options{Token: tok, UI: ui}))
	t.Cleanup(func() { srv.Close(); ui.Close() })
	t.Cleanup(func() {
		if strings.Contains(logs.String(), token) {
			t.Error("the token appears in the logs")
		}
	})
	return &fixture{url: srv.URL, gw: gw, clock: c, logs: logs}
}

type session struct{ cookie, csrf string }

func (f *fixture) login(t *testing.T) session {
	t.Helper()
	req, _ := http.NewRequest("POST", f.url+"/ui/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.url)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ CSRF string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || out.CSRF == "" {
		t.Fatalf("login = %d, cookies %v, csrf %q", resp.StatusCode, resp.Cookies(), out.CSRF)
	}
	return session{cookie: resp.Cookies()[0].Value, csrf: out.CSRF}
}

type request struct {
	method, path, body string
	cookie, csrf       string
	origin             string // "self" for the listener's own
	header             map[string]string
}

func (f *fixture) do(t *testing.T, r request) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(r.method, f.url+r.path, strings.NewReader(r.body))
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: liveui.CookieName, Value: r.cookie})
	}
	if r.csrf != "" {
		req.Header.Set("X-CSRF-Token", r.csrf)
	}
	switch r.origin {
	case "":
	case "self":
		req.Header.Set("Origin", f.url)
	default:
		req.Header.Set("Origin", r.origin)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (f *fixture) weights(t *testing.T) string {
	t.Helper()
	w, err := f.gw.Weights("app")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("blue=%d green=%d", w["blue"], w["green"])
}

// TestControlsAreProtected: every control needs a live session, the
// listener's own Origin and the session's CSRF token; the good ones go
// through the gateway's validated weight path.
func TestControlsAreProtected(t *testing.T) {
	f := start(t, []byte(token), liveui.Options{})
	s, other := f.login(t), f.login(t)
	for other.csrf[0] == s.csrf[0] {
		other = f.login(t) // "wrong CSRF token" below needs a first byte that differs
	}
	flip := func(r request) request { r.method, r.path = "POST", "/ui/routes/app/flip"; return r }
	tests := []struct {
		name        string
		req         request
		want        int
		wantWeights string
	}{
		{"no cookie", flip(request{origin: "self"}), 401, "blue=100 green=0"},
		{"unknown session", flip(request{cookie: "nope", csrf: s.csrf, origin: "self"}), 401, "blue=100 green=0"},
		{"no Origin", flip(request{cookie: s.cookie, csrf: s.csrf}), 403, "blue=100 green=0"},
		{"another site's Origin", flip(request{cookie: s.cookie, csrf: s.csrf, origin: "http://evil.test"}), 403, "blue=100 green=0"},
		{"same host other port", flip(request{cookie: s.cookie, csrf: s.csrf, origin: "http://127.0.0.1:1"}), 403, "blue=100 green=0"},
		{"https for http", flip(request{cookie: s.cookie, csrf: s.csrf, origin: strings.Replace(f.url, "http:", "https:", 1)}), 403, "blue=100 green=0"},
		{"null Origin", flip(request{cookie: s.cookie, csrf: s.csrf, origin: "null"}), 403, "blue=100 green=0"},
		{"no CSRF token", flip(request{cookie: s.cookie, origin: "self"}), 403, "blue=100 green=0"},
		{"wrong CSRF token", flip(request{cookie: s.cookie, csrf: other.csrf[:1] + s.csrf[1:], origin: "self"}), 403, "blue=100 green=0"},
		{"another session's CSRF token", flip(request{cookie: s.cookie, csrf: other.csrf, origin: "self"}), 403, "blue=100 green=0"},
		{"GET", request{method: "GET", path: "/ui/routes/app/flip", cookie: s.cookie, csrf: s.csrf, origin: "self"}, 405, "blue=100 green=0"},
		{"flip", flip(request{cookie: s.cookie, csrf: s.csrf, origin: "self"}), 200, "blue=0 green=100"},
		{"step the canary", request{method: "POST", path: "/ui/routes/app/step", body: `{"backend": "blue", "delta": 10}`, cookie: s.cookie, csrf: s.csrf, origin: "self"}, 200, "blue=10 green=90"},
		{"step past 100 clamps", request{method: "POST", path: "/ui/routes/app/step", body: `{"backend": "blue", "delta": 100}`, cookie: s.cookie, csrf: s.csrf, origin: "self"}, 200, "blue=100 green=0"},
		{"step an unknown backend", request{method: "POST", path: "/ui/routes/app/step", body: `{"backend": "red", "delta": 10}`, cookie: s.cookie, csrf: s.csrf, origin: "self"}, 400, "blue=100 green=0"},
		{"step a bad body", request{method: "POST", path: "/ui/routes/app/step", body: `{"backend": "blue", "delta": 0}`, cookie: s.cookie, csrf: s.csrf, origin: "self"}, 400, "blue=100 green=0"},
		{"unknown route", request{method: "POST", path: "/ui/routes/nope/flip", cookie: s.cookie, csrf: s.csrf, origin: "self"}, 404, "blue=100 green=0"},
		{"unknown action", request{method: "POST", path: "/ui/routes/app/delete", cookie: s.cookie, csrf: s.csrf, origin: "self"}, 404, "blue=100 green=0"},
		{"pause", request{method: "POST", path: "/ui/routes/app/pause", body: `{"paused": true}`, cookie: s.cookie, csrf: s.csrf, origin: "self"}, 200, "blue=100 green=0"},
		{"flip while paused", flip(request{cookie: s.cookie, csrf: s.csrf, origin: "self"}), 409, "blue=100 green=0"},
		{"resume", request{method: "POST", path: "/ui/routes/app/pause", body: `{"paused": false}`, cookie: s.cookie, csrf: s.csrf, origin: "self"}, 200, "blue=100 green=0"},
		{"flip after resume", flip(request{cookie: s.cookie, csrf: s.csrf, origin: "self"}), 200, "blue=0 green=100"},
		{"logout", request{method: "POST", path: "/ui/logout", cookie: other.cookie, csrf: other.csrf, origin: "self"}, 200, "blue=0 green=100"},
		{"after logout", flip(request{cookie: other.cookie, csrf: other.csrf, origin: "self"}), 401, "blue=0 green=100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := f.do(t, tt.req)
			if code != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.req.method, tt.req.path, code, body, tt.want)
			}
			if got := f.weights(t); got != tt.wantWeights {
				t.Errorf("weights = %s, want %s", got, tt.wantWeights)
			}
		})
	}
	// The admin API sees the pause too: the same weight path.
	f.gw.SetPaused("app", true)
	req, _ := http.NewRequest("PUT", f.url+"/routes/app/weights", strings.NewReader(`{"blue": 50, "green": 50}`))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 409 {
		t.Errorf("PUT /routes/app/weights while paused = %v, %v; want 409", resp.StatusCode, err)
	}
}

func TestSessionExpires(t *testing.T) {
	f := start(t, []byte(token), liveui.Options{SessionTTL: time.Hour})
	s := f.login(t)
	if code, _, _ := f.do(t, request{method: "GET", path: "/ui/snapshot", cookie: s.cookie}); code != 200 {
		t.Fatalf("snapshot with a fresh session = %d", code)
	}
	f.clock.Add(time.Hour)
	for _, r := range []request{
		{method: "GET", path: "/ui/snapshot", cookie: s.cookie},
		{method: "GET", path: "/ui/events", cookie: s.cookie},
		{method: "POST", path: "/ui/routes/app/flip", cookie: s.cookie, csrf: s.csrf, origin: "self"},
	} {
		if code, body, _ := f.do(t, r); code != 401 {
			t.Errorf("%s %s after expiry = %d %s, want 401", r.method, r.path, code, body)
		}
	}
	if code, body, _ := f.do(t, request{method: "GET", path: "/ui/session", cookie: s.cookie}); code != 200 || !strings.Contains(body, `"login":true`) {
		t.Errorf("session after expiry = %d %s, want the login form", code, body)
	}
	if w := f.weights(t); w != "blue=100 green=0" {
		t.Errorf("weights = %s", w)
	}
}

func TestLogin(t *testing.T) {
	f := start(t, []byte(token), liveui.Options{MaxSessions: 3})
	form := func(tok string) string { return url.Values{"token": {tok}}.Encode() }
	ct := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	tests := []struct {
		name string
		req  request
		want int
	}{
		{"wrong token", request{body: form(token[:len(token)-1] + "0"), origin: "self", header: ct}, 401},
		{"empty token", request{body: form(""), origin: "self", header: ct}, 400},
		{"JSON body", request{body: `{"token": "` + token + `"}`, origin: "self", header: map[string]string{"Content-Type": "application/json"}}, 400},
		{"another site", request{body: form(token), origin: "http://evil.test", header: ct}, 403},
		{"cross-site fetch without Origin", request{body: form(token), header: map[string]string{"Content-Type": ct["Content-Type"], "Sec-Fetch-Site": "cross-site"}}, 403},
		{"the token", request{body: form(token), origin: "self", header: ct}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.method, tt.req.path = "POST", "/ui/login"
			code, body, h := f.do(t, tt.req)
			if code != tt.want {
				t.Errorf("login = %d %s, want %d", code, body, tt.want)
			}
			if strings.Contains(body, token) {
				t.Errorf("the answer shows the token: %s", body)
			}
			if sc := h.Values("Set-Cookie"); (code == 200) != (len(sc) == 1) {
				t.Errorf("Set-Cookie = %q", sc)
			}
		})
	}
	// The cookie's attributes.
	req, _ := http.NewRequest("POST", f.url+"/ui/login", strings.NewReader(form(token)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{liveui.CookieName + "=", "Path=/ui/", "HttpOnly", "SameSite=Strict", "Expires="} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Errorf("Set-Cookie %q is Secure on plain HTTP: the browser would drop it", sc)
	}
	// A browser posting the form itself gets redirected back to the page.
	req, _ = http.NewRequest("POST", f.url+"/ui/login", strings.NewReader(form("wrong-wrong-wrong-wrong")))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Do(req); err != nil || resp.StatusCode != 303 || resp.Header.Get("Location") != "/ui/#wrong-token" {
		t.Errorf("form post with a wrong token = %v %v, want 303 to /ui/#wrong-token", resp.StatusCode, err)
	}
	// Sessions are bounded: two were made above and one here; the fourth waits.
	if code, _, _ := f.do(t, request{method: "POST", path: "/ui/login", body: form(token), origin: "self", header: ct}); code != 200 {
		t.Fatalf("third session = %d", code)
	}
	if code, body, _ := f.do(t, request{method: "POST", path: "/ui/login", body: form(token), origin: "self", header: ct}); code != 503 {
		t.Errorf("login past MaxSessions = %d %s, want 503", code, body)
	}
	f.clock.Add(9 * time.Hour) // past the default TTL: expired ones make room
	if code, _, _ := f.do(t, request{method: "POST", path: "/ui/login", body: form(token), origin: "self", header: ct}); code != 200 {
		t.Errorf("login once sessions expired = %d, want 200", code)
	}
}

// TestEventsStreamAndViewerBound: the event stream pushes snapshots;
// past MaxViewers a viewer gets 503 and Retry-After.
func TestEventsStreamAndViewerBound(t *testing.T) {
	f := start(t, []byte(token), liveui.Options{MaxViewers: 2, Interval: 50 * time.Millisecond})
	s := f.login(t)
	open := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", f.url+"/ui/events", nil)
		req.AddCookie(&http.Cookie{Name: liveui.CookieName, Value: s.cookie})
		return http.DefaultClient.Do(req)
	}
	var streams []*bufio.Reader
	for range 2 {
		resp, err := open()
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("events = %v, %v", resp, err)
		}
		defer resp.Body.Close()
		streams = append(streams, bufio.NewReader(resp.Body))
	}
	resp, err := open()
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third viewer = %v, %v; want 503 with Retry-After", resp.StatusCode, err)
	}
	for i, r := range streams {
		events := 0
		for events < 3 { // the first, then pushed ones
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			if strings.HasPrefix(line, "data: ") {
				var snap struct {
					Services []struct{ Name string }
				}
				if err := json.Unmarshal([]byte(line[6:]), &snap); err != nil || len(snap.Services) != 1 || snap.Services[0].Name != "app" {
					t.Fatalf("stream %d: data %q: %v", i, line, err)
				}
				events++
			}
		}
	}
}

// TestLoopbackMode: without a token the page gives a session to a
// loopback connection without asking, and refuses any other.
func TestLoopbackMode(t *testing.T) {
	f := start(t, nil, liveui.Options{})
	code, body, h := f.do(t, request{method: "GET", path: "/ui/session"})
	if code != 200 || !strings.Contains(body, `"auth":"loopback"`) || h.Get("Set-Cookie") == "" {
		t.Fatalf("session on loopback = %d %s %q", code, body, h.Get("Set-Cookie"))
	}
	if code, _, _ := f.do(t, request{method: "POST", path: "/ui/login", body: "token=x", origin: "self", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}); code != 404 {
		t.Errorf("login without a token configured = %d, want 404", code)
	}
	// Another site's page cannot mint sessions (and fill the table).
	for _, hdr := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://evil.test"}} {
		if code, _, h := f.do(t, request{method: "GET", path: "/ui/session", header: hdr}); code != 403 || h.Get("Set-Cookie") != "" {
			t.Errorf("GET /ui/session with %v = %d, Set-Cookie %q; want 403 and no session", hdr, code, h.Get("Set-Cookie"))
		}
	}
	// The same handler reached through another address.
	ui := liveui.New(liveui.Options{Source: f.gw, Controls: f.gw})
	defer ui.Close()
	for _, path := range []string{"/ui/", "/ui/session", "/ui/snapshot"} {
		r := httptest.NewRequest("GET", "http://10.0.0.5:9901"+path, nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 9901}))
		w := httptest.NewRecorder()
		ui.ServeHTTP(w, r)
		if w.Code != 403 {
			t.Errorf("GET %s on a non-loopback address without a token = %d, want 403", path, w.Code)
		}
	}
}

func TestPageAndHeaders(t *testing.T) {
	f := start(t, []byte(token), liveui.Options{})
	code, body, h := f.do(t, request{method: "GET", path: "/ui/"})
	if code != 200 || !strings.Contains(body, `<script src="app.js" defer>`) || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") ||
		h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET /ui/ = %d, headers %v", code, h)
	}
	for _, p := range []string{"/ui/app.js", "/ui/style.css"} {
		if code, _, _ := f.do(t, request{method: "GET", path: p}); code != 200 {
			t.Errorf("GET %s = %d", p, code)
		}
	}
	if code, _, _ := f.do(t, request{method: "GET", path: "/ui/snapshot"}); code != 401 {
		t.Errorf("snapshot without a session = %d, want 401", code)
	}
	// admin.Secure's Host check covers the page (DNS rebinding).
	req, _ := http.NewRequest("GET", f.url+"/ui/", nil)
	req.Host = "evil.test"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("GET /ui/ with Host evil.test = %v, %v; want 403", resp.StatusCode, err)
	}
	// The rest of the admin API still wants the bearer token.
	if code, _, _ := f.do(t, request{method: "GET", path: "/routes"}); code != 401 {
		t.Errorf("GET /routes without the token = %d, want 401", code)
	}
}

// TestReadOnly: without Controls the page says so and every control is
// refused, weights untouched.
func TestReadOnly(t *testing.T) {
	f := start(t, nil, liveui.Options{})
	ui := liveui.New(liveui.Options{Source: f.gw})
	defer ui.Close()
	srv := httptest.NewServer(admin.Secure(f.gw.AdminHandler(), admin.Options{UI: ui}))
	defer srv.Close()
	ro := &fixture{url: srv.URL, gw: f.gw}
	code, body, h := ro.do(t, request{method: "GET", path: "/ui/session"})
	if code != 200 || !strings.Contains(body, `"controls":false`) {
		t.Fatalf("session = %d %s", code, body)
	}
	var csrf struct{ CSRF string }
	json.Unmarshal([]byte(body), &csrf)
	cookie := strings.TrimPrefix(strings.Split(h.Get("Set-Cookie"), ";")[0], liveui.CookieName+"=")
	code, body, _ = ro.do(t, request{method: "POST", path: "/ui/routes/app/flip", cookie: cookie, csrf: csrf.CSRF, origin: "self"})
	if code != 400 || !strings.Contains(body, "no controls") {
		t.Errorf("flip on a read-only page = %d %s, want 400", code, body)
	}
	if w := ro.weights(t); w != "blue=100 green=0" {
		t.Errorf("weights = %s", w)
	}
}
