package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/flotilla-dev/flotilla/internal/redistest"
)

// authFiles writes an API key file, an htpasswd file and a JWKS file
// into dir and returns a token signer for the JWKS key.
func authFiles(t *testing.T, dir string) func(claims map[string]any) string {
	t.Helper()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("keys.txt", "# test keys\nmobile:mobile-key-0123456789abcdef\nci:ci-key-0123456789abcdef0123\n")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	write("htpasswd", "alice:"+string(hash)+"\n")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	j, _ := json.Marshal(set)
	write("jwks.json", string(j))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return func(claims map[string]any) string {
		tok, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestAuthThroughGateway: each method admits what it should with the
// identity forwarded and the credential removed, and refuses the rest
// with 401/403, a challenge, the JSON error, a metric and an access-log
// line, never reaching the upstream.
func TestAuthThroughGateway(t *testing.T) {
	dir := t.TempDir()
	sign := authFiles(t, dir)
	up := newUpstream(t, "app")
	authz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Cookie") {
		case "session=good":
			w.Header().Set("X-Auth-Request-User", "sso-user")
			w.WriteHeader(http.StatusNoContent)
		case "":
			w.Header().Set("Location", "https://sso.example.com/login?rd="+r.Header.Get("X-Forwarded-Uri"))
			w.WriteHeader(http.StatusFound)
		default:
			w.Header().Set("WWW-Authenticate", `Cookie realm="sso"`)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, "session expired")
		}
	}))
	defer authz.Close()
	now := time.Now().Unix()
	f := start(t, fmt.Sprintf(`
backends: [{name: app, addresses: [%q]}]
routes:
  - name: keys
    match: {hosts: [keys.test]}
    auth: {apiKey: {keysFile: %[2]s/keys.txt, query: api_key}}
    backends: [{name: app}]
  - name: keys-pass
    match: {hosts: [pass.test]}
    auth: {apiKey: {keysFile: %[2]s/keys.txt}, passCredentials: true}
    backends: [{name: app}]
  - name: basic
    match: {hosts: [basic.test]}
    auth: {basic: {htpasswdFile: %[2]s/htpasswd, realm: ops}}
    backends: [{name: app}]
  - name: jwt
    match: {hosts: [jwt.test]}
    auth:
      jwt:
        jwksFile: %[2]s/jwks.json
        issuer: https://idp.test
        audiences: [api]
        claims: [{name: scope, values: ["counter:write"]}]
        forwardClaims: {sub: X-User}
    backends: [{name: app}]
  - name: sso
    match: {hosts: [sso.test]}
    auth: {forward: {url: %[3]q, responseHeaders: [X-Auth-Request-User]}}
    backends: [{name: app}]
`, up.addr(), dir, authz.URL+"/check"), Options{})
	f.srv.Client().CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	good := map[string]any{"iss": "https://idp.test", "aud": "api", "sub": "user-7", "scope": "counter:read counter:write", "exp": now + 300}
	readOnly := map[string]any{"iss": "https://idp.test", "aud": "api", "sub": "user-8", "scope": "counter:read", "exp": now + 300}
	expired := map[string]any{"iss": "https://idp.test", "aud": "api", "sub": "user-7", "scope": "counter:write", "exp": now - 3600}
	for _, tc := range []struct {
		name, host, target string
		hdr                map[string]string
		want               int
		challenge          string // prefix of WWW-Authenticate
		upstream           map[string]string
		absent             []string // headers the upstream must not see
	}{
		{name: "api key missing", host: "keys.test", target: "/", want: 401, challenge: "APIKey"},
		{name: "api key wrong", host: "keys.test", target: "/", hdr: map[string]string{"X-API-Key": "mobile-key-0123456789abcdeX"}, want: 401, challenge: "APIKey"},
		{name: "api key in another header", host: "keys.test", target: "/", hdr: map[string]string{"Authorization": "mobile-key-0123456789abcdef"}, want: 401},
		{name: "api key", host: "keys.test", target: "/", hdr: map[string]string{"X-API-Key": "mobile-key-0123456789abcdef", "X-Api-Key-Name": "admin"},
			want: 200, upstream: map[string]string{"X-Api-Key-Name": "mobile"}, absent: []string{"X-Api-Key"}},
		{name: "api key in the query", host: "keys.test", target: "/items?a=1&api_key=ci-key-0123456789abcdef0123&b=2", want: 200,
			upstream: map[string]string{"X-Api-Key-Name": "ci"}},
		{name: "passCredentials keeps the key", host: "pass.test", target: "/", hdr: map[string]string{"X-API-Key": "ci-key-0123456789abcdef0123"},
			want: 200, upstream: map[string]string{"X-Api-Key": "ci-key-0123456789abcdef0123", "X-Api-Key-Name": "ci"}},
		{name: "basic missing", host: "basic.test", target: "/", want: 401, challenge: `Basic realm="ops"`},
		{name: "basic wrong password", host: "basic.test", target: "/", hdr: map[string]string{"Authorization": basicHeader("alice", "nope")}, want: 401, challenge: "Basic"},
		{name: "basic unknown user", host: "basic.test", target: "/", hdr: map[string]string{"Authorization": basicHeader("mallory", "s3cret-pass")}, want: 401},
		{name: "basic", host: "basic.test", target: "/", hdr: map[string]string{"Authorization": basicHeader("alice", "s3cret-pass")},
			want: 200, upstream: map[string]string{"X-Auth-User": "alice"}, absent: []string{"Authorization"}},
		{name: "jwt missing", host: "jwt.test", target: "/", want: 401, challenge: "Bearer"},
		{name: "jwt expired", host: "jwt.test", target: "/", hdr: map[string]string{"Authorization": "Bearer " + sign(expired)}, want: 401, challenge: "Bearer"},
		{name: "jwt without the scope", host: "jwt.test", target: "/", hdr: map[string]string{"Authorization": "Bearer " + sign(readOnly)}, want: 403, challenge: "Bearer"},
		{name: "jwt", host: "jwt.test", target: "/", hdr: map[string]string{"Authorization": "Bearer " + sign(good), "X-User": "root"},
			want: 200, upstream: map[string]string{"X-User": "user-7"}, absent: []string{"Authorization"}},
		{name: "forward: login redirect relayed", host: "sso.test", target: "/page", want: 302},
		{name: "forward: 401 relayed", host: "sso.test", target: "/", hdr: map[string]string{"Cookie": "session=old"}, want: 401, challenge: `Cookie realm="sso"`},
		{name: "forward", host: "sso.test", target: "/", hdr: map[string]string{"Cookie": "session=good", "X-Auth-Request-User": "forged"},
			want: 200, upstream: map[string]string{"X-Auth-Request-User": "sso-user"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			hdr := map[string]string{"X-Request-Id": "auth-test"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			resp, body := f.do(t, "GET", tc.host, tc.target, nil, hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s = %d %q, want %d", tc.host, tc.target, resp.StatusCode, body, tc.want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.challenge) || (tc.challenge == "" && got != "" && tc.want != 401) {
				t.Errorf("WWW-Authenticate = %q, want it to start with %q", got, tc.challenge)
			}
			if tc.want >= 300 {
				if up.hits.Load() != before {
					t.Error("a refused request reached the upstream")
				}
				return
			}
			got := up.last(t)
			for k, v := range tc.upstream {
				if g := got.Header.Get(k); g != v {
					t.Errorf("upstream %s = %q, want %q", k, g, v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := got.Header[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("upstream got the credential header %s", k)
				}
			}
			if strings.Contains(got.RawQuery, "api_key") {
				t.Errorf("upstream query %q still has the key", got.RawQuery)
			}
		})
	}
	// The JSON error and the relayed answers.
	resp, body := f.do(t, "GET", "keys.test", "/", nil, map[string]string{"X-Request-Id": "r1"})
	if want := `{"error":"unauthenticated","status":401,"request_id":"r1"}` + "\n"; body != want || resp.StatusCode != 401 {
		t.Errorf("401 body = %q, want %q", body, want)
	}
	resp, body = f.do(t, "GET", "jwt.test", "/", nil, map[string]string{"X-Request-Id": "r2", "Authorization": "Bearer " + sign(readOnly)})
	if want := `{"error":"forbidden","status":403,"request_id":"r2"}` + "\n"; body != want || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("403 = %q, %q; want %q with insufficient_scope", body, resp.Header.Get("WWW-Authenticate"), want)
	}
	_, body = f.do(t, "GET", "sso.test", "/", nil, map[string]string{"Cookie": "session=old"})
	if body != "session expired" {
		t.Errorf("forward auth 401 body = %q, want the service's", body)
	}
	resp, _ = f.do(t, "GET", "sso.test", "/page?x=1", nil, nil)
	if loc := resp.Header.Get("Location"); loc != "https://sso.example.com/login?rd=/page?x=1" {
		t.Errorf("forward auth redirect Location = %q", loc)
	}

	f.gw.access.flush()
	log := f.access.String()
	for _, want := range []string{`"route":"basic","backend":"app"`, `"principal":"alice"`, `"principal":"user-7"`, `"error":"unauthenticated"`, `"policy":"jwt:expired"`,
		`"policy":"apiKey:missing_credentials"`, `"policy":"jwt:insufficient_claims"`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, "mobile-key-0123456789abcdef") || strings.Contains(log, "s3cret") {
		t.Error("a credential reached the access log")
	}
	for _, m := range []struct {
		route, policy, decision, reason string
		want                            float64
	}{
		{"basic", "basic", "allow", "", 1},
		{"basic", "basic", "deny", "invalid_credentials", 2},
		{"jwt", "jwt", "deny", "expired", 1},
		{"jwt", "jwt", "deny", "insufficient_claims", 2},
		{"keys", "apiKey", "allow", "", 2},
	} {
		if v := testutil.ToFloat64(f.gw.metrics.policy.WithLabelValues(m.route, m.policy, m.decision, m.reason)); v != m.want {
			t.Errorf("policy_decisions{%s,%s,%s,%s} = %v, want %v", m.route, m.policy, m.decision, m.reason, v, m.want)
		}
	}
}

// TestAPIKeysReloadWithTheFile: a rotated key file (a Kubernetes Secret
// update) takes effect without a restart: the new key passes, the
// removed one no longer does.
func TestAPIKeysReloadWithTheFile(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "secret", "keys.txt")
	os.MkdirAll(filepath.Dir(keys), 0o700)
	os.WriteFile(keys, []byte("old:old-key-0123456789abcdef\n"), 0o600)
	up := newUpstream(t, "app")
	path := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: app, addresses: [%q]}]
routes: [{name: api, auth: {apiKey: {keysFile: secret/keys.txt}}, backends: [{name: app}]}]
`, up.addr())), 0o600)
	gw, stop := watched(t, path)
	defer stop()
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()
	status := func(key string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Header.Set("X-API-Key", key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status("old-key-0123456789abcdef"); s != 200 {
		t.Fatalf("old key = %d, want 200", s)
	}
	tmp := keys + ".new"
	os.WriteFile(tmp, []byte("new:new-key-0123456789abcdef\n"), 0o600)
	os.Rename(tmp, keys)
	waitFor(t, "the new key to pass", func() bool { return status("new-key-0123456789abcdef") == 200 })
	if s := status("old-key-0123456789abcdef"); s != 401 {
		t.Errorf("removed key = %d, want 401", s)
	}
}

// TestRateLimitThroughGateway: a local limit refuses the request over
// it with 429, Retry-After and the RateLimit fields, counts each client
// address apart, and leaves other routes alone; a global limit counts in
// Redis, and when Redis is gone fails open or closed as configured.
func TestRateLimitThroughGateway(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t, "app")
	f := start(t, fmt.Sprintf(`
redis: {address: %q, timeout: 200ms}
backends: [{name: app, addresses: [%q]}]
routes:
  - name: local
    match: {hosts: [local.test]}
    rateLimits: [{name: per-ip, requests: 3, per: 1m}]
    backends: [{name: app}]
  - name: by-header
    match: {hosts: [tenant.test]}
    rateLimits: [{requests: 2, per: 1h, key: {source: header, name: X-Tenant}}]
    backends: [{name: app}]
  - name: global
    match: {hosts: [global.test]}
    rateLimits: [{name: fleet, requests: 2, per: 1m, key: {source: route}, scope: global}]
    backends: [{name: app}]
  - name: closed
    match: {hosts: [closed.test]}
    rateLimits: [{name: fleet, requests: 100, per: 1s, scope: global, onError: deny}]
    backends: [{name: app}]
  - name: free
    match: {hosts: [free.test]}
    backends: [{name: app}]
`, rs.Addr, up.addr()), Options{})
	get := func(host string, hdr map[string]string) *http.Response {
		resp, _ := f.do(t, "GET", host, "/", nil, hdr)
		return resp
	}
	for i := range 3 {
		resp := get("local.test", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d = %d, want 200", i+1, resp.StatusCode)
		}
		if got, want := resp.Header.Get("RateLimit"), fmt.Sprintf(`"per-ip";r=%d`, 2-i); !strings.HasPrefix(got, want) {
			t.Errorf("request %d: RateLimit = %q, want it to start with %q", i+1, got, want)
		}
		if got := resp.Header.Get("RateLimit-Policy"); !strings.HasPrefix(got, `"per-ip";q=3;w=60`) {
			t.Errorf("RateLimit-Policy = %q", got)
		}
	}
	before := up.hits.Load()
	resp, body := f.do(t, "GET", "local.test", "/", nil, map[string]string{"X-Request-Id": "rl"})
	if resp.StatusCode != 429 || body != `{"error":"rate_limited","status":429,"request_id":"rl"}`+"\n" {
		t.Fatalf("4th request = %d %q, want 429 rate_limited", resp.StatusCode, body)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q, want whole seconds ≥ 1", ra)
	}
	if up.hits.Load() != before {
		t.Error("a refused request reached the upstream")
	}
	if get("free.test", nil).StatusCode != 200 {
		t.Error("a route without limits was limited")
	}
	// Per header value; a request without the header shares one count.
	for _, tc := range []struct {
		tenant string
		want   []int
	}{{"a", []int{200, 200, 429}}, {"b", []int{200, 200, 429}}} {
		for i, want := range tc.want {
			if s := get("tenant.test", map[string]string{"X-Tenant": tc.tenant}).StatusCode; s != want {
				t.Errorf("tenant %s request %d = %d, want %d", tc.tenant, i+1, s, want)
			}
		}
	}
	for i, want := range []int{200, 200, 429} {
		if s := get("global.test", nil).StatusCode; s != want {
			t.Errorf("global request %d = %d, want %d", i+1, s, want)
		}
	}
	if v := testutil.ToFloat64(f.gw.metrics.policy.WithLabelValues("global", "rateLimit:fleet", "deny", "over_limit")); v != 1 {
		t.Errorf("over_limit decisions = %v, want 1", v)
	}
	rs.Kill()
	if s := get("global.test", nil).StatusCode; s != 200 {
		t.Errorf("Redis down, onError allow: %d, want 200", s)
	}
	resp, body = f.do(t, "GET", "closed.test", "/", nil, nil)
	if resp.StatusCode != 503 || !strings.Contains(body, "rate_limit_unavailable") {
		t.Errorf("Redis down, onError deny: %d %q, want 503 rate_limit_unavailable", resp.StatusCode, body)
	}
	if v := testutil.ToFloat64(f.gw.metrics.policy.WithLabelValues("closed", "rateLimit:fleet", "error", "store_unavailable")); v != 1 {
		t.Errorf("store_unavailable = %v, want 1", v)
	}
	rs.Restart()
	waitFor(t, "the closed route to pass again", func() bool { return get("closed.test", nil).StatusCode == 200 })
}
