package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// raw sends one request exactly as written (a target net/http's client
// would clean or refuse) and reads the answer.
func raw(t *testing.T, f *fixture, method, target string, hdr ...string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestPathNormalization: the path is normalized before matching, and the
// upstream receives exactly the normalized (or rewritten) path, escaped.
func TestPathNormalization(t *testing.T) {
	for _, mode := range []string{"reject", "keep", "decode"} {
		t.Run(mode, func(t *testing.T) {
			api, admin, other := newUpstream(t, "api"), newUpstream(t, "admin"), newUpstream(t, "other")
			f := start(t, fmt.Sprintf(`
defaults: {paths: {encodedSlash: %s}}
backends: [{name: api, addresses: [%q]}, {name: admin, addresses: [%q]}, {name: other, addresses: [%q]}]
routes:
  - {name: api, match: {path: {value: /api}}, backends: [{name: api}]}
  - {name: admin, match: {path: {value: /admin}}, backends: [{name: admin}]}
  - {name: rw, match: {path: {value: /rw}}, rewrite: {path: {type: ReplacePrefix, value: /}}, backends: [{name: other}]}
  - {name: other, backends: [{name: other}]}
`, mode, api.addr(), admin.addr(), other.addr()), Options{})
			type want struct {
				status  int
				backend string
				uri     string
			}
			tests := []struct {
				target string
				want   map[string]want // by mode; "" for all
			}{
				{"/api/../internal", map[string]want{"": {200, "other", "/internal"}}},
				{"/api/%2e%2e/internal", map[string]want{"": {200, "other", "/internal"}}},
				{"/api/.%2E/internal", map[string]want{"": {200, "other", "/internal"}}},
				{"//admin", map[string]want{"": {200, "admin", "/admin"}}},
				{"//admin//x/./y/", map[string]want{"": {200, "admin", "/admin/x/y/"}}},
				{"/%61pi/x", map[string]want{"": {200, "api", "/api/x"}}},
				{"/api/a%20b%3f", map[string]want{"": {200, "api", "/api/a%20b%3F"}}},
				{"/x/../../../etc/passwd", map[string]want{"": {200, "other", "/etc/passwd"}}},
				{"/api/a%zz", map[string]want{"": {400, "", ""}}},
				{"/api%2F..%2Finternal", map[string]want{
					"reject": {400, "", ""}, "keep": {200, "other", "/api%2F..%2Finternal"}, "decode": {200, "other", "/internal"}}},
				{"/api\\..\\admin", map[string]want{
					"reject": {400, "", ""}, "keep": {200, "other", "/api%5C..%5Cadmin"}, "decode": {200, "admin", "/admin"}}},
				{"/rw/a%2Fb", map[string]want{
					"reject": {400, "", ""}, "keep": {200, "other", "/a%2Fb"}, "decode": {200, "other", "/a/b"}}},
				{"/rw/%2e%2e/x%252F", map[string]want{"": {200, "other", "/x%252F"}}},
				// A byte Go's URL parser does not keep escaped ('{') must not
				// turn %2F into a separator (url.URL.EscapedPath re-escapes).
				{"/api%2F..%2Finternal{", map[string]want{
					"reject": {400, "", ""}, "keep": {200, "other", "/api%2F..%2Finternal%7B"}, "decode": {200, "other", "/internal%7B"}}},
				{"/public/..;/admin", map[string]want{"": {400, "", ""}}},
			}
			for _, tt := range tests {
				w, ok := tt.want[mode]
				if !ok {
					w = tt.want[""]
				}
				resp, body := raw(t, f, "GET", tt.target)
				if resp.StatusCode != w.status {
					t.Errorf("GET %s = %d %q, want %d", tt.target, resp.StatusCode, body, w.status)
					continue
				}
				if w.status != 200 {
					// net/http's parser refuses a malformed escape first.
					if !strings.Contains(body, `"error":"bad_path"`) && !strings.Contains(tt.target, "%zz") {
						t.Errorf("GET %s body = %q, want the bad_path JSON error", tt.target, body)
					}
					continue
				}
				if body != w.backend {
					t.Errorf("GET %s went to %s, want %s", tt.target, body, w.backend)
					continue
				}
				u := map[string]*upstream{"api": api, "admin": admin, "other": other}[w.backend]
				if got := u.last(t).URI; got != w.uri {
					t.Errorf("GET %s arrived as %q, want %q", tt.target, got, w.uri)
				}
			}
		})
	}
}

// TestMethods: CONNECT and TRACE only where a route lists them; a method
// a route excludes gets 405 with Allow, not 404.
func TestMethods(t *testing.T) {
	u := newUpstream(t, "u")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes:
  - {name: ro, match: {path: {value: /ro}, methods: [GET, HEAD]}, backends: [{name: u}]}
  - {name: trace, match: {path: {value: /trace}, methods: [TRACE]}, backends: [{name: u}]}
  - {name: any, match: {path: {value: /any}}, backends: [{name: u}]}
`, u.addr()), Options{})
	tests := []struct {
		method, target string
		status         int
		allow          string
	}{
		{"GET", "/ro/x", 200, ""},
		{"POST", "/ro/x", 405, "GET, HEAD"},
		{"DELETE", "/ro", 405, "GET, HEAD"},
		{"TRACE", "/any", 405, "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"},
		{"TRACE", "/trace", 200, ""},
		{"GET", "/trace", 405, "TRACE"},
		{"POST", "/nowhere", 404, ""},
		{"CONNECT", "/any", 405, "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"},
	}
	for _, tt := range tests {
		resp, body := raw(t, f, tt.method, tt.target)
		if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d Allow %q (%q), want %d Allow %q", tt.method, tt.target, resp.StatusCode, resp.Header.Get("Allow"), body, tt.status, tt.allow)
		}
	}
	// A HEAD refused by the gateway has no body, so no Content-Type that
	// would send a client to parse JSON that is not there.
	if resp, body := raw(t, f, "HEAD", "/nowhere"); resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "" || body != "" || resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("HEAD /nowhere = %d Content-Type %q body %q X-Request-Id %q, want 404, none, empty, an ID", resp.StatusCode, resp.Header.Get("Content-Type"), body, resp.Header.Get("X-Request-Id"))
	}
	// CONNECT in authority form, the way a tunnelling client sends it.
	if resp, _ := raw(t, f, "CONNECT", "internal.example:443"); resp.StatusCode == 200 || resp.StatusCode < 400 {
		t.Errorf("CONNECT internal.example:443 = %d, want it refused", resp.StatusCode)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name        string
		remote      string
		xff         []string
		trusted     []netip.Prefix
		wantClient  string
		wantTrusted bool
	}{
		{"no trusted proxies: the peer, whatever XFF says", "203.0.113.5:1234", []string{"1.2.3.4"}, nil, "203.0.113.5", false},
		{"untrusted peer: XFF ignored", "203.0.113.5:1234", []string{"1.2.3.4"}, trusted, "203.0.113.5", false},
		{"trusted peer: right-most untrusted", "10.0.0.2:1", []string{"6.6.6.6, 198.51.100.7, 10.1.1.1"}, trusted, "198.51.100.7", true},
		{"trusted peer: several header lines", "10.0.0.2:1", []string{"6.6.6.6", "198.51.100.7,10.1.1.1"}, trusted, "198.51.100.7", true},
		{"trusted peer without XFF", "10.0.0.2:1", nil, trusted, "10.0.0.2", true},
		{"all trusted: the left-most", "10.0.0.2:1", []string{"10.9.9.9, 10.1.1.1"}, trusted, "10.9.9.9", true},
		{"malformed entry ends the walk", "10.0.0.2:1", []string{"6.6.6.6, bogus, 10.1.1.1"}, trusted, "10.1.1.1", true},
		{"spoofed left entries never win", "10.0.0.2:1", []string{"127.0.0.1, 198.51.100.7"}, trusted, "198.51.100.7", true},
		{"IPv6 peer and port in XFF", "[fd00::1]:443", []string{"[2001:db8::7]:5555"}, trusted, "2001:db8::7", true},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:1", []string{"198.51.100.7"}, trusted, "198.51.100.7", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, client, tr := clientAddr(tt.remote, tt.xff, tt.trusted)
			if client.String() != tt.wantClient || tr != tt.wantTrusted {
				t.Errorf("clientAddr(%q, %q) = %s, trusted %v; want %s, %v", tt.remote, tt.xff, client, tr, tt.wantClient, tt.wantTrusted)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.0.2.7 ", "fd00::/8", ""})
	if err != nil || len(got) != 3 || got[1].String() != "192.0.2.7/32" {
		t.Errorf("ParseTrustedProxies() = %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "fe80::1%eth0/64"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseTrustedProxies(%q) error = %v, want one naming it", bad, err)
		}
	}
}

// TestForwardedHeaders: X-Forwarded-* and Forwarded are rebuilt from the
// peer unless it is trusted; the access log and consistent hashing see
// the real client.
func TestForwardedHeaders(t *testing.T) {
	const hostile = "X-Forwarded-For: 6.6.6.6"
	spoof := []string{hostile, "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.test", "Forwarded: for=6.6.6.6;proto=https"}
	tests := []struct {
		name    string
		trusted string
		routeHd string
		hdr     []string
		want    map[string]string
		logIP   string
	}{
		{name: "untrusted peer: rebuilt", hdr: spoof, logIP: "127.0.0.1", want: map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "x.test",
			"Forwarded": "for=127.0.0.1;host=x.test;proto=http"}},
		{name: "trusted peer: chain kept and extended", trusted: "127.0.0.0/8", hdr: spoof, logIP: "6.6.6.6", want: map[string]string{
			"X-Forwarded-For": "6.6.6.6, 127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test",
			"Forwarded": "for=6.6.6.6;proto=https, for=127.0.0.1;host=x.test;proto=http"}},
		{name: "removed by the route: none sent, never the client's", routeHd: "requestHeaders: {remove: [X-Forwarded-For, Forwarded]}",
			hdr: spoof, logIP: "127.0.0.1", want: map[string]string{"X-Forwarded-For": "", "Forwarded": "", "X-Forwarded-Proto": "http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, "u")
			var opts Options
			if tt.trusted != "" {
				opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tt.trusted)}
			}
			f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes: [{name: r, backends: [{name: u}], %s}]
`, u.addr(), tt.routeHd), opts)
			if resp, body := raw(t, f, "GET", "/x", tt.hdr...); resp.StatusCode != 200 {
				t.Fatalf("GET /x = %d %q", resp.StatusCode, body)
			}
			got := u.last(t)
			for h, want := range tt.want {
				if v := strings.Join(got.Header.Values(h), " | "); v != want {
					t.Errorf("%s upstream = %q, want %q", h, v, want)
				}
			}
			f.gw.access.flush()
			var line struct {
				ClientIP string `json:"client_ip"`
			}
			json.Unmarshal([]byte(strings.SplitN(f.access.String(), "\n", 2)[0]), &line)
			if line.ClientIP != tt.logIP {
				t.Errorf("access log client_ip = %q, want %q", line.ClientIP, tt.logIP)
			}
		})
	}
}

// TestConsistentHashSeesRealClient: behind a trusted proxy, hashing on
// the client IP keys on the X-Forwarded-For client, not the proxy.
func TestConsistentHashSeesRealClient(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q, %q], balance: {policy: consistent_hash, hashOn: {clientIP: true}}}]
routes: [{name: r, backends: [{name: u}]}]
`, a.addr(), b.addr()), Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	seen := map[string]map[string]bool{}
	for i := range 40 {
		client := fmt.Sprintf("198.51.100.%d", i%8)
		_, body := raw(t, f, "GET", "/", "X-Forwarded-For: "+client)
		if seen[client] == nil {
			seen[client] = map[string]bool{}
		}
		seen[client][body] = true
	}
	ends := map[string]bool{}
	for client, got := range seen {
		if len(got) != 1 {
			t.Errorf("client %s reached %v, want one endpoint", client, got)
		}
		for e := range got {
			ends[e] = true
		}
	}
	if len(ends) != 2 {
		t.Errorf("8 clients reached %v, want both endpoints: the key is the client, not the proxy", ends)
	}
}

// TestForwardedProtoFollowsTLS: X-Forwarded-Proto is https when the
// client connected over TLS.
func TestForwardedProtoFollowsTLS(t *testing.T) {
	u := newUpstream(t, "u")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes: [{name: r, backends: [{name: u}]}]
`, u.addr()), Options{})
	r := httptest.NewRequest("GET", "https://x.test/p", nil)
	r.Header.Set("X-Forwarded-Proto", "http")
	w := httptest.NewRecorder()
	f.gw.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("GET https://x.test/p = %d %s", w.Code, w.Body)
	}
	got := u.last(t).Header
	if p := got.Get("X-Forwarded-Proto"); p != "https" || !strings.HasSuffix(got.Get("Forwarded"), ";proto=https") {
		t.Errorf("over TLS: X-Forwarded-Proto %q, Forwarded %q; want https", p, got.Get("Forwarded"))
	}
}

// TestMaxForwards: RFC 9110 §7.6.2. An OPTIONS or TRACE with Max-Forwards
// 0 is answered by the gateway as the final recipient; above 0 it goes on,
// decremented; other methods pass it untouched; a malformed value is 400.
func TestMaxForwards(t *testing.T) {
	u := newUpstream(t, "u")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes:
  - {name: ro, match: {path: {value: /ro}, methods: [GET, HEAD, OPTIONS]}, backends: [{name: u}]}
  - {name: trace, match: {path: {value: /trace}, methods: [TRACE]}, backends: [{name: u}]}
`, u.addr()), Options{})
	tests := []struct {
		method, target, maxFwd string
		status                 int
		upstream               string // Max-Forwards the upstream saw; "-" when it saw nothing
	}{
		{"OPTIONS", "/ro", "0", 200, "-"},
		{"OPTIONS", "/ro", "1", 200, "0"},
		{"OPTIONS", "/ro", "10", 200, "9"},
		{"TRACE", "/trace", "0", 200, "-"},
		{"TRACE", "/trace", "3", 200, "2"},
		{"GET", "/ro", "0", 200, "0"},
		{"OPTIONS", "/ro", "x", 400, "-"},
		{"OPTIONS", "/ro", "-1", 400, "-"},
		{"OPTIONS", "/ro", "+1", 400, "-"},
		{"OPTIONS", "/ro", "99999999999999999999", 400, "-"},
	}
	for _, tt := range tests {
		before := u.hits.Load()
		resp, body := raw(t, f, tt.method, tt.target, "Max-Forwards: "+tt.maxFwd, "Authorization: Bearer secret", "Cookie: s=secret")
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s Max-Forwards %s = %d (%q), want %d", tt.method, tt.target, tt.maxFwd, resp.StatusCode, body, tt.status)
			continue
		}
		reached := u.hits.Load() != before
		switch {
		case tt.upstream == "-" && reached:
			t.Errorf("%s Max-Forwards %s reached the upstream; the gateway must answer it", tt.method, tt.maxFwd)
		case tt.upstream != "-" && !reached:
			t.Errorf("%s Max-Forwards %s did not reach the upstream", tt.method, tt.maxFwd)
		case tt.upstream != "-":
			if got := u.last(t).Header.Get("Max-Forwards"); got != tt.upstream {
				t.Errorf("%s Max-Forwards %s: upstream saw %q, want %q", tt.method, tt.maxFwd, got, tt.upstream)
			}
		}
		if tt.method == "OPTIONS" && tt.maxFwd == "0" && resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("OPTIONS Max-Forwards 0: Allow %q, want the route's methods", resp.Header.Get("Allow"))
		}
		if tt.method == "TRACE" && tt.maxFwd == "0" {
			if resp.Header.Get("Content-Type") != "message/http" || !strings.HasPrefix(body, "TRACE /trace HTTP/1.1\r\n") || strings.Contains(body, "secret") {
				t.Errorf("TRACE Max-Forwards 0 answered %q %q; want the request echoed as message/http without credentials", resp.Header.Get("Content-Type"), body)
			}
		}
	}
}

// TestViaAndExpect: the gateway adds itself to Via both ways (RFC 9110
// §7.6.3), keeping what earlier hops wrote, and answers 100-continue
// itself: the upstream never gets Expect, so the client sees one 100.
func TestViaAndExpect(t *testing.T) {
	u := newUpstream(t, "u")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes: [{name: all, backends: [{name: u}]}]
`, u.addr()), Options{})
	resp, _ := raw(t, f, "GET", "/", "Via: 1.1 edge-cdn")
	if got := u.last(t).Header.Values("Via"); !slices.Equal(got, []string{"1.1 edge-cdn", "1.1 flotilla"}) {
		t.Errorf("upstream saw Via %q, want the client's hop then 1.1 flotilla", got)
	}
	if got := resp.Header.Values("Via"); !slices.Equal(got, []string{"1.1 flotilla"}) {
		t.Errorf("client saw Via %q, want 1.1 flotilla", got)
	}

	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST /up HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("after 100: %q", blank)
	}
	io.WriteString(c, "hello")
	rest, _ := io.ReadAll(br)
	if strings.Contains(string(rest), " 100 Continue") || !strings.HasPrefix(string(rest), "HTTP/1.1 200 ") {
		t.Errorf("after the body: %q; want one 100 Continue in all, then 200", rest)
	}
	if a := u.last(t); a.Body != "hello" || a.Header.Get("Expect") != "" {
		t.Errorf("upstream got body %q, Expect %q; want hello and no Expect", a.Body, a.Header.Get("Expect"))
	}
}

// TestRouteMaxBodyBytes: a route's maxBodyBytes caps its bodies below the
// gateway's, by Content-Length (413 before the upstream) and while a
// chunked body streams (the upstream never gets a whole request).
func TestRouteMaxBodyBytes(t *testing.T) {
	u := newUpstream(t, "u")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes:
  - {name: small, match: {path: {value: /small}}, maxBodyBytes: 8, backends: [{name: u}]}
  - {name: big, backends: [{name: u}]}
`, u.addr()), Options{})
	for _, tt := range []struct {
		path, body string
		chunked    bool
		status     int
	}{
		{"/small", "12345678", false, 200},
		{"/small", "123456789", false, 413},
		{"/small", strings.Repeat("x", 100<<10), true, 413},
		{"/big", "123456789", false, 200},
	} {
		before := u.hits.Load()
		var body io.Reader = strings.NewReader(tt.body)
		if tt.chunked {
			body = io.MultiReader(body) // unknown length: sent chunked
		}
		req, _ := http.NewRequest("POST", f.srv.URL+tt.path, body)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", tt.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("POST %s with %d bytes (chunked %v) = %d, want %d", tt.path, len(tt.body), tt.chunked, resp.StatusCode, tt.status)
		}
		if tt.status == 413 && !tt.chunked && u.hits.Load() != before {
			t.Errorf("POST %s over the route's cap reached the upstream", tt.path)
		}
	}
}

func TestRouteMaxBodyBytesValidation(t *testing.T) {
	_, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: u, addresses: [\"127.0.0.1:1\"]}]\nroutes: [{name: r, maxBodyBytes: -1, backends: [{name: u}]}]\n"))
	if err == nil || !strings.Contains(err.Error(), "routes[0].maxBodyBytes: must not be negative") {
		t.Errorf("maxBodyBytes -1: %v, want an error naming routes[0].maxBodyBytes", err)
	}
}
