package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestIPRulesThroughGateway: each route's ipRules (or the defaults')
// admit or refuse the client address the gateway trusts: the TCP peer,
// or behind a trusted proxy the right-most untrusted X-Forwarded-For
// address. A refused request gets 403 ip_denied in the JSON error, the
// access log and the failures metric, and never reaches the upstream.
func TestIPRulesThroughGateway(t *testing.T) {
	up := newUpstream(t, "app")
	yaml := fmt.Sprintf(`
defaults:
  ipRules: {deny: [203.0.113.66]}
backends: [{name: app, addresses: [%q]}]
routes:
  - {name: office, match: {hosts: [office.test]}, backends: [{name: app}], ipRules: {allow: [198.51.100.0/24, "2001:db8::/32", 127.0.0.1], deny: [198.51.100.13, "2001:db8:bad::/48"]}}
  - {name: local-only, match: {hosts: [local.test]}, backends: [{name: app}], ipRules: {allow: [127.0.0.0/8]}}
  - {name: mapped, match: {hosts: [mapped.test]}, backends: [{name: app}], ipRules: {allow: ["::ffff:198.51.100.0/120"]}}
  - {name: public, match: {hosts: [public.test]}, backends: [{name: app}]}
  - {name: direct, match: {hosts: [direct.test]}, directResponse: {status: 200, body: ok}, ipRules: {allow: [10.0.0.0/8]}}
`, up.addr())
	direct := start(t, yaml, Options{})
	proxied := start(t, yaml, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	tests := []struct {
		name string
		f    *fixture
		host string
		xff  string
		want int
	}{
		{"peer in allow list", direct, "office.test", "", 200},
		{"untrusted peer's X-Forwarded-For is ignored", direct, "local.test", "198.51.100.1", 200},
		{"untrusted peer's X-Forwarded-For cannot get it in", direct, "mapped.test", "198.51.100.1", 403},
		{"behind a trusted proxy: the client in the allow list", proxied, "office.test", "198.51.100.7", 200},
		{"behind a trusted proxy: the client outside it", proxied, "office.test", "192.0.2.1", 403},
		{"behind a trusted proxy: the proxy's address does not count", proxied, "local.test", "192.0.2.1", 403},
		{"right-most untrusted address decides", proxied, "office.test", "198.51.100.7, 192.0.2.1", 403},
		{"a spoofed left-most entry does not help", proxied, "office.test", "192.0.2.1, 198.51.100.7", 200},
		{"trusted hops are skipped", proxied, "office.test", "192.0.2.1, 127.0.0.9", 403},
		{"trusted hops are skipped, client allowed", proxied, "office.test", "198.51.100.7, 127.0.0.9", 200},
		{"deny wins over allow", proxied, "office.test", "198.51.100.13", 403},
		{"IPv6 client allowed", proxied, "office.test", "2001:db8::5", 200},
		{"IPv6 client denied", proxied, "office.test", "2001:db8:bad::5", 403},
		{"IPv4-mapped client is IPv4", proxied, "office.test", "::ffff:198.51.100.7", 200},
		{"IPv4-mapped entry matches IPv4 client", proxied, "mapped.test", "198.51.100.9", 200},
		{"defaults deny", proxied, "public.test", "203.0.113.66", 403},
		{"defaults admit the rest", proxied, "public.test", "203.0.113.67", 200},
		{"a route's own rules replace the defaults'", proxied, "office.test", "203.0.113.66", 403},
		{"directResponse routes too", proxied, "direct.test", "192.0.2.1", 403},
		{"directResponse allowed", proxied, "direct.test", "10.1.1.1", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			hdr := map[string]string{"X-Request-Id": "ip-test"}
			if tt.xff != "" {
				hdr["X-Forwarded-For"] = tt.xff
			}
			resp, body := tt.f.do(t, "GET", tt.host, "/x", nil, hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s with X-Forwarded-For %q = %d %q, want %d", tt.host, tt.xff, resp.StatusCode, body, tt.want)
			}
			if tt.want == 403 {
				if want := `{"error":"ip_denied","status":403,"request_id":"ip-test"}` + "\n"; body != want || resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("body = %q, want %q", body, want)
				}
				if up.hits.Load() != before {
					t.Error("a refused request reached the upstream")
				}
			}
		})
	}
	proxied.gw.access.flush()
	if !strings.Contains(proxied.access.String(), `"route":"office","backend":"none"`) || !strings.Contains(proxied.access.String(), `"error":"ip_denied"`) {
		t.Errorf("access log has no ip_denied line for office:\n%s", proxied.access.String())
	}
	if v := testutil.ToFloat64(proxied.gw.metrics.failures.WithLabelValues("office", "none", "ip_denied")); v != 6 {
		t.Errorf("failures{office,none,ip_denied} = %v, want 6", v)
	}
	if v := testutil.ToFloat64(proxied.gw.metrics.failures.WithLabelValues("direct", "direct", "ip_denied")); v != 1 {
		t.Errorf("failures{direct,direct,ip_denied} = %v, want 1", v)
	}
}

// TestIPRulesIPv6Peer: an IPv6 TCP peer, no proxy in between.
func TestIPRulesIPv6Peer(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	up := newUpstream(t, "app")
	f := start(t, fmt.Sprintf(`
backends: [{name: app, addresses: [%q]}]
routes:
  - {name: v6, match: {hosts: [v6.test]}, backends: [{name: app}], ipRules: {allow: ["::1"]}}
  - {name: v4, match: {hosts: [v4.test]}, backends: [{name: app}], ipRules: {allow: [127.0.0.0/8]}}
  - {name: no-v6, match: {hosts: [deny.test]}, backends: [{name: app}], ipRules: {deny: ["::/0"]}}
`, up.addr()), Options{})
	srv := httptest.NewUnstartedServer(f.gw.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	for host, want := range map[string]int{"v6.test": 200, "v4.test": 403, "deny.test": 403} {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Host = host
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s from [::1] = %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// TestGRPCDeniedByIP: a gRPC call refused by ipRules gets
// PERMISSION_DENIED, not an HTTP 403 the client cannot read.
func TestGRPCDeniedByIP(t *testing.T) {
	h2c := newGRPCUpstream(t, nil)
	f := start(t, fmt.Sprintf(`
backends: [{name: h2c, addresses: [%q], protocol: h2c}]
routes:
  - {name: closed, match: {hosts: [closed.test]}, backends: [{name: h2c}], ipRules: {allow: [10.0.0.0/8]}}
  - {name: open, match: {hosts: [open.test]}, backends: [{name: h2c}], ipRules: {allow: [127.0.0.1]}}
`, h2c.addr), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, cc := serveH2(t, f.gw.Handler(), "closed.test")
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
	if s := status.Convert(err); s.Code() != codes.PermissionDenied || !strings.Contains(s.Message(), "ip_denied") {
		t.Errorf("Check via closed.test = %v, want PermissionDenied ip_denied", err)
	}
	_, cc = serveH2(t, f.gw.Handler(), "open.test")
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"}); err != nil {
		t.Errorf("Check via open.test = %v, want SERVING", err)
	}
}

// TestCORSThroughGateway: preflights are answered by the gateway (204,
// never proxied, even where match.methods leave OPTIONS out); actual
// requests from allowed origins get the gateway's Access-Control-*
// headers, which replace the upstream's.
func TestCORSThroughGateway(t *testing.T) {
	up := newUpstream(t, "app")
	up.handler = func(w http.ResponseWriter, r *http.Request) {
		// A misconfigured app: its own, too generous CORS headers.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Access-Control-Expose-Headers", "X-Secret")
		w.Header().Set("Vary", "Accept-Encoding")
		fmt.Fprint(w, "app")
	}
	f := start(t, fmt.Sprintf(`
defaults:
  cors: {allowOrigins: ["*"]}
backends: [{name: app, addresses: [%q]}]
routes:
  - name: api
    match: {hosts: [api.test], methods: [GET, POST, PUT]}
    backends: [{name: app}]
    cors:
      allowOrigins: ["https://app.example.com", "https://*.tenants.example.com"]
      allowHeaders: [Content-Type, Authorization]
      exposeHeaders: [X-Request-Id, X-Total]
      allowCredentials: true
      maxAge: 10m
  - {name: open, match: {hosts: [open.test]}, backends: [{name: app}]}
  - name: reflect
    match: {hosts: [reflect.test]}
    backends: [{name: app}]
    cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], allowCredentials: true, reflectWildcards: true}
  - name: reflect-anon
    match: {hosts: [anon.test]}
    backends: [{name: app}]
    cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"]}
`, up.addr()), Options{})
	bare := start(t, fmt.Sprintf(`
backends: [{name: app, addresses: [%q]}]
routes: [{name: plain, match: {hosts: [plain.test], methods: [GET]}, backends: [{name: app}]}]
`, up.addr()), Options{})
	const acao, acac, acam, acah, aceh, acma = "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods",
		"Access-Control-Allow-Headers", "Access-Control-Expose-Headers", "Access-Control-Max-Age"
	tests := []struct {
		name, method, host string
		f                  *fixture
		hdr                map[string]string
		status             int
		proxied            bool
		want               map[string]string // "" means absent
		vary               string
	}{
		{name: "preflight from an allowed origin", method: "OPTIONS", host: "api.test",
			hdr:    map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"},
			status: 204, want: map[string]string{acao: "https://app.example.com", acac: "true", acam: "GET, POST, PUT", acah: "Content-Type, Authorization", acma: "600", aceh: "X-Request-Id, X-Total"}, vary: "Origin"},
		{name: "preflight from a wildcard subdomain", method: "OPTIONS", host: "api.test",
			hdr:    map[string]string{"Origin": "https://a.b.tenants.example.com", "Access-Control-Request-Method": "POST"},
			status: 204, want: map[string]string{acao: "https://a.b.tenants.example.com", acac: "true", acam: "GET, POST, PUT"}, vary: "Origin"},
		{name: "preflight from the wildcard's parent is refused", method: "OPTIONS", host: "api.test",
			hdr:    map[string]string{"Origin": "https://tenants.example.com", "Access-Control-Request-Method": "POST"},
			status: 204, want: map[string]string{acao: "", acac: "", acam: "", acah: "", acma: ""}, vary: "Origin"},
		{name: "preflight from another origin: answered without Allow headers", method: "OPTIONS", host: "api.test",
			hdr:    map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"},
			status: 204, want: map[string]string{acao: "", acac: "", acam: "", acah: "", acma: "", aceh: ""}, vary: "Origin"},
		{name: "actual request from an allowed origin, upstream headers replaced", method: "GET", host: "api.test",
			hdr:    map[string]string{"Origin": "https://app.example.com"},
			status: 200, proxied: true, want: map[string]string{acao: "https://app.example.com", acac: "true", aceh: "X-Request-Id, X-Total", acam: ""}, vary: "Origin, Accept-Encoding"},
		{name: "actual request from another origin: proxied, no CORS headers at all", method: "POST", host: "api.test",
			hdr:    map[string]string{"Origin": "https://evil.test"},
			status: 200, proxied: true, want: map[string]string{acao: "", acac: "", aceh: ""}, vary: "Origin, Accept-Encoding"},
		{name: "request without Origin: Vary still set", method: "GET", host: "api.test",
			status: 200, proxied: true, want: map[string]string{acao: "", acac: "", aceh: ""}, vary: "Origin, Accept-Encoding"},
		{name: "default policy \"*\": the constant, no Vary on Origin", method: "GET", host: "open.test",
			hdr:    map[string]string{"Origin": "https://anyone.test"},
			status: 200, proxied: true, want: map[string]string{acao: "*", acac: ""}, vary: "Accept-Encoding"},
		{name: "default policy preflight, default methods", method: "OPTIONS", host: "open.test",
			hdr:    map[string]string{"Origin": "https://anyone.test", "Access-Control-Request-Method": "POST"},
			status: 204, want: map[string]string{acao: "*", acam: "GET, HEAD, POST", acma: ""}, vary: ""},
		{name: "reflectWildcards preflight: the request's own origin, method and headers", method: "OPTIONS", host: "reflect.test",
			hdr:    map[string]string{"Origin": "https://other.test", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-a, x-b"},
			status: 204, want: map[string]string{acao: "https://other.test", acac: "true", acam: "PUT", acah: "x-a, x-b"}, vary: "Origin"},
		{name: "reflectWildcards preflight without request headers: no Allow-Headers", method: "OPTIONS", host: "reflect.test",
			hdr:    map[string]string{"Origin": "https://other.test", "Access-Control-Request-Method": "DELETE"},
			status: 204, want: map[string]string{acao: "https://other.test", acac: "true", acam: "DELETE", acah: ""}, vary: "Origin"},
		{name: "reflectWildcards actual request: the origin and credentials", method: "GET", host: "reflect.test",
			hdr:    map[string]string{"Origin": "https://other.test"},
			status: 200, proxied: true, want: map[string]string{acao: "https://other.test", acac: "true"}, vary: "Origin, Accept-Encoding"},
		{name: "wildcards without reflectWildcards: the constant \"*\"", method: "OPTIONS", host: "anon.test",
			hdr:    map[string]string{"Origin": "https://other.test", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-a"},
			status: 204, want: map[string]string{acao: "*", acac: "", acam: "*", acah: "*"}, vary: ""},
		{name: "no cors: upstream headers untouched", method: "GET", host: "plain.test", f: bare,
			hdr:    map[string]string{"Origin": "https://evil.test"},
			status: 200, proxied: true, want: map[string]string{acao: "*", acac: "true", aceh: "X-Secret"}, vary: "Accept-Encoding"},
		{name: "no cors: preflight to a GET-only route is 405", method: "OPTIONS", host: "plain.test", f: bare,
			hdr:    map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
			status: 405, want: map[string]string{acao: ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.hits.Load()
			fx := f
			if tt.f != nil {
				fx = tt.f
			}
			resp, body := fx.do(t, tt.method, tt.host, "/items", nil, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d %q, want %d", tt.method, tt.host, resp.StatusCode, body, tt.status)
			}
			if got := up.hits.Load() != before; got != tt.proxied {
				t.Errorf("proxied = %v, want %v", got, tt.proxied)
			}
			for k, want := range tt.want {
				if got := strings.Join(resp.Header.Values(k), "|"); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tt.status != 405 {
				if got := strings.Join(resp.Header.Values("Vary"), ", "); got != tt.vary {
					t.Errorf("Vary = %q, want %q", got, tt.vary)
				}
			}
		})
	}
}

// TestCORSOnGatewayErrors: the gateway's own error answers on a cors
// route carry the CORS headers, so the page can read the 502.
func TestCORSOnGatewayErrors(t *testing.T) {
	f := start(t, fmt.Sprintf(`
backends: [{name: dead, addresses: [%q]}]
routes: [{name: api, backends: [{name: dead}], retries: {attempts: 0}, cors: {allowOrigins: ["https://app.test"]}}]
`, deadAddr(t)), Options{})
	resp, body := f.do(t, "GET", "api.test", "/", nil, map[string]string{"Origin": "https://app.test"})
	if resp.StatusCode != 502 || !strings.Contains(body, "upstream_failure") {
		t.Fatalf("GET = %d %q, want 502 upstream_failure", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.test" || resp.Header.Get("Vary") != "Origin" {
		t.Errorf("Access-Control-Allow-Origin = %q, Vary = %q; want the origin and Origin", got, resp.Header.Get("Vary"))
	}
}
