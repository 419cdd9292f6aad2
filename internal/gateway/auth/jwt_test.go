package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Test keys, generated once per test binary.
var (
	rsaKey  = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	rsaKey2 = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	ecKey   = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ecKey2  = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ec384   = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	edKey   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// testNow is the fixed "now" of the tests (whole seconds: JWT times are).
var testNow = time.Unix(1_800_000_000, 0)

// fakeClock is an injected clock the tests advance.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: testNow} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// sign makes a compact JWS of claims with key (a private key or an HMAC
// secret), alg and kid ("" for none).
func sign(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsigned makes an alg "none" token (go-jose refuses to make one).
func unsigned(header string, claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return b64(header) + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// goodClaims are valid at testNow for the issuer and audience of baseConfig.
func goodClaims() map[string]any {
	return map[string]any{
		"iss": "https://issuer.test", "aud": "flotilla", "sub": "alice",
		"exp": testNow.Add(time.Hour).Unix(), "nbf": testNow.Add(-time.Minute).Unix(), "iat": testNow.Add(-time.Minute).Unix(),
		"scope": "counter:read counter:write",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
		} else {
			m[kv[i].(string)] = kv[i+1]
		}
	}
	return m
}

// jwks renders public keys as a key set; kids and algs pair with keys.
type testKey struct {
	kid, alg, use string
	key           any
}

func jwksJSON(t testing.TB, keys ...testKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: k.alg, Use: k.use})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func defaultKeys() []testKey {
	return []testKey{
		{kid: "rsa1", alg: "RS256", use: "sig", key: &rsaKey().PublicKey},
		{kid: "ec1", use: "sig", key: &ecKey().PublicKey},
		{kid: "ed1", key: edKey().Public()},
		{kid: "ec384", key: &ec384().PublicKey},
		{key: &rsaKey2().PublicKey}, // no kid: tried for every RS/PS token
	}
}

// jwksServer serves a key set that tests change, counting fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	block   chan struct{} // when set, requests wait for it to close
	fetches atomic.Int32
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status, block := s.body, s.status, s.block
		s.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setBlock(ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = ch
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// baseConfig is a validated-looking config (defaults as config applies them).
func baseConfig() *config.JWTAuth {
	return &config.JWTAuth{
		Issuer:      "https://issuer.test",
		Audiences:   []string{"flotilla", "other"},
		JWKSRefresh: time.Hour, // refetches in tests come from unknown kids only
		JWKSTimeout: 5 * time.Second,
		Leeway:      30 * time.Second,
		Algorithms:  append([]string(nil), config.AsymmetricJWTAlgorithms...),
	}
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newJWTForTest(t testing.TB, c *config.JWTAuth, clock *fakeClock, logs *syncBuffer) *JWT {
	t.Helper()
	opts := JWTOptions{Now: clock.Now}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	j, err := NewJWT(c, opts)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	t.Cleanup(j.Close)
	return j
}

func bearerRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/counter", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// wantRefusal checks err is an *Error with status, reason and challenge.
func wantRefusal(t *testing.T, id *Identity, err error, status int, reason, challenge string) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("Authenticate() = %+v, %v; want an *Error %d %s", id, err, status, reason)
	}
	if id != nil {
		t.Errorf("Authenticate() identity = %+v with a refusal, want nil", id)
	}
	if ae.Status != status || ae.Reason != reason || ae.Challenge != challenge {
		t.Errorf("Authenticate() = {%d %s %q}, want {%d %s %q} (err: %v)", ae.Status, ae.Reason, ae.Challenge, status, reason, challenge, ae.Err)
	}
}

func invalidToken(desc string) string {
	return `Bearer realm="flotilla", error="invalid_token", error_description="` + desc + `"`
}

const insufficientScope = `Bearer realm="flotilla", error="insufficient_scope", error_description="token lacks a required claim value"`

func pemOf(t testing.TB, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// TestJWTRefusals is the security-negative table: every bad or missing
// token is refused with its status, reason and WWW-Authenticate challenge,
// against a key set fetched from a URL.
func TestJWTRefusals(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, defaultKeys()...))
	c := baseConfig()
	c.JWKSURL = srv.URL
	j := newJWTForTest(t, c, newClock(), nil)

	rsaPEM := pemOf(t, &rsaKey().PublicKey)
	rsaJWK := jwksJSON(t, testKey{kid: "rsa1", key: &rsaKey().PublicKey})
	good := sign(t, jose.RS256, rsaKey(), "rsa1", goodClaims())
	parts := strings.Split(good, ".")
	otherPayload := base64.RawURLEncoding.EncodeToString(must(json.Marshal(with(goodClaims(), "sub", "admin"))))

	const missing = `Bearer realm="flotilla"`
	tests := []struct {
		name      string
		req       func() *http.Request
		status    int
		reason    string
		challenge string
	}{
		{"no Authorization header", func() *http.Request { return httptest.NewRequest("GET", "/", nil) }, 401, ReasonMissing, missing},
		{"basic scheme", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.SetBasicAuth("alice", good)
			return r
		}, 401, ReasonMissing, missing},
		{"token in another header", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Access-Token", good)
			return r
		}, 401, ReasonMissing, missing},
		{"token in the query", func() *http.Request { return httptest.NewRequest("GET", "/?access_token="+good, nil) }, 401, ReasonMissing, missing},
		{"token without scheme", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", good)
			return r
		}, 401, ReasonMissing, missing},
		{"bearer without token", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer ")
			return r
		}, 401, ReasonInvalid, invalidToken("empty token")},
		{"two Authorization headers", func() *http.Request {
			r := bearerRequest(good)
			r.Header.Add("Authorization", "Bearer "+good)
			return r
		}, 401, ReasonInvalid, invalidToken("more than one Authorization header")},
		{"alg none", func() *http.Request {
			return bearerRequest(unsigned(`{"alg":"none","typ":"JWT"}`, goodClaims()))
		}, 401, ReasonAlgorithm, invalidToken("algorithm not allowed")},
		{"alg None with a signature", func() *http.Request {
			return bearerRequest(unsigned(`{"alg":"None","kid":"rsa1"}`, goodClaims()) + parts[2])
		}, 401, ReasonAlgorithm, invalidToken("algorithm not allowed")},
		{"HS256 signed with the RSA public key PEM", func() *http.Request {
			return bearerRequest(sign(t, jose.HS256, rsaPEM, "rsa1", goodClaims()))
		}, 401, ReasonAlgorithm, invalidToken("algorithm not allowed")},
		{"HS256 signed with the RSA public key JWK", func() *http.Request {
			return bearerRequest(sign(t, jose.HS256, rsaJWK, "rsa1", goodClaims()))
		}, 401, ReasonAlgorithm, invalidToken("algorithm not allowed")},
		{"expired", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "exp", testNow.Add(-time.Minute).Unix())))
		}, 401, ReasonExpired, invalidToken("token expired")},
		{"not yet valid", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "nbf", testNow.Add(time.Minute).Unix())))
		}, 401, ReasonNotYetValid, invalidToken("token not yet valid")},
		{"issued in the future", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "iat", testNow.Add(time.Hour).Unix())))
		}, 401, ReasonNotYetValid, invalidToken("token not yet valid")},
		{"wrong issuer", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "iss", "https://evil.test")))
		}, 401, ReasonIssuer, invalidToken("wrong issuer")},
		{"no issuer", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "iss", nil)))
		}, 401, ReasonIssuer, invalidToken("wrong issuer")},
		{"wrong audience", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "aud", []string{"billing", "mail"})))
		}, 401, ReasonAudience, invalidToken("wrong audience")},
		{"unknown kid", func() *http.Request {
			return bearerRequest(sign(t, jose.ES256, ecKey2(), "nope", goodClaims()))
		}, 401, ReasonUnknownKey, invalidToken("unknown signing key")},
		{"no key of the algorithm", func() *http.Request {
			return bearerRequest(sign(t, jose.ES512, must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)), "", goodClaims()))
		}, 401, ReasonUnknownKey, invalidToken("unknown signing key")},
		{"known kid, other key", func() *http.Request {
			return bearerRequest(sign(t, jose.ES256, ecKey2(), "ec1", goodClaims()))
		}, 401, ReasonInvalid, invalidToken("signature does not verify")},
		{"kid of a key of another type", func() *http.Request {
			return bearerRequest(sign(t, jose.ES256, ecKey(), "rsa1", goodClaims()))
		}, 401, ReasonUnknownKey, invalidToken("unknown signing key")},
		{"tampered payload", func() *http.Request {
			return bearerRequest(parts[0] + "." + otherPayload + "." + parts[2])
		}, 401, ReasonInvalid, invalidToken("signature does not verify")},
		{"tampered header (kid)", func() *http.Request {
			return bearerRequest(b64(`{"alg":"RS256","kid":"rsa1","typ":"JWT","x":1}`) + "." + parts[1] + "." + parts[2])
		}, 401, ReasonInvalid, invalidToken("signature does not verify")},
		{"signature cut", func() *http.Request {
			return bearerRequest(parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])/2])
		}, 401, ReasonInvalid, invalidToken("signature does not verify")},
		{"two parts", func() *http.Request { return bearerRequest(parts[0] + "." + parts[1]) }, 401, ReasonInvalid, invalidToken("malformed token")},
		{"four parts", func() *http.Request { return bearerRequest(good + ".x") }, 401, ReasonInvalid, invalidToken("malformed token")},
		{"header not JSON", func() *http.Request { return bearerRequest(b64("RS256") + "." + parts[1] + "." + parts[2]) }, 401, ReasonInvalid, invalidToken("malformed token")},
		{"not b64token", func() *http.Request { return bearerRequest(`a"b.c.d`) }, 401, ReasonInvalid, invalidToken("malformed token")},
		{"too long", func() *http.Request { return bearerRequest(strings.Repeat("a", maxTokenBytes+1)) }, 401, ReasonInvalid, invalidToken("token too long")},
		{"exp not a number", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "exp", "tomorrow")))
		}, 401, ReasonInvalid, invalidToken("malformed claims")},
		{"aud a number", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "aud", 7)))
		}, 401, ReasonInvalid, invalidToken("malformed claims")},
		{"nbf beyond the representable", func() *http.Request {
			return bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "nbf", 1e300)))
		}, 401, ReasonInvalid, invalidToken("malformed claims")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			id, err := j.Authenticate(r)
			wantRefusal(t, id, err, tt.status, tt.reason, tt.challenge)
			if err != nil && strings.Contains(err.Error(), parts[2]) {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
	// The good token itself passes: the refusals are about what changed.
	if _, err := j.Authenticate(bearerRequest(good)); err != nil {
		t.Fatalf("Authenticate(good) = %v", err)
	}
}

// TestJWTAlgorithmAllowList refuses a validly signed token whose algorithm
// is not allowed, before verifying it.
func TestJWTAlgorithmAllowList(t *testing.T) {
	c := baseConfig()
	c.JWKSFile = writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	c.Algorithms = []string{"ES256"}
	j := newJWTForTest(t, c, newClock(), nil)
	id, err := j.Authenticate(bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", goodClaims())))
	wantRefusal(t, id, err, 401, ReasonAlgorithm, invalidToken("algorithm not allowed"))
	if _, err := j.Authenticate(bearerRequest(sign(t, jose.ES256, ecKey(), "ec1", goodClaims()))); err != nil {
		t.Fatalf("ES256 token: %v", err)
	}
}

// TestJWTKeyConfusionWithHMAC: with both a key set and an HMAC secret, an
// HS256 token signed with the RSA public key is checked against the
// secret only, and refused.
func TestJWTKeyConfusionWithHMAC(t *testing.T) {
	secret := bytes.Repeat([]byte("s3cr3t-"), 10) // 70 bytes: all of HS256/384/512
	c := baseConfig()
	c.JWKSFile = writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	c.HMACSecretFile = writeFile(t, "secret", append(append([]byte(nil), secret...), '\n'))
	c.Algorithms = append(c.Algorithms, config.HMACJWTAlgorithms...)
	j := newJWTForTest(t, c, newClock(), nil)

	for name, key := range map[string][]byte{
		"PEM": pemOf(t, &rsaKey().PublicKey),
		"JWK": jwksJSON(t, testKey{kid: "rsa1", key: &rsaKey().PublicKey}),
		"DER": must(x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)),
	} {
		id, err := j.Authenticate(bearerRequest(sign(t, jose.HS256, key, "rsa1", goodClaims())))
		t.Run(name, func(t *testing.T) {
			wantRefusal(t, id, err, 401, ReasonInvalid, invalidToken("signature does not verify"))
		})
	}
	for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512} {
		if _, err := j.Authenticate(bearerRequest(sign(t, alg, secret, "", goodClaims()))); err != nil {
			t.Errorf("%s token signed with the secret: %v", alg, err)
		}
	}
}

// TestJWTAccepts: tokens of each algorithm family are accepted, with the
// subject as principal and the verified claims.
func TestJWTAccepts(t *testing.T) {
	c := baseConfig()
	c.JWKSFile = writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	clock := newClock()
	j := newJWTForTest(t, c, clock, nil)
	tests := []struct {
		name  string
		token string
	}{
		{"RS256", sign(t, jose.RS256, rsaKey(), "rsa1", goodClaims())},
		{"ES256", sign(t, jose.ES256, ecKey(), "ec1", goodClaims())},
		{"ES384", sign(t, jose.ES384, ec384(), "ec384", goodClaims())},
		{"EdDSA", sign(t, jose.EdDSA, edKey(), "ed1", goodClaims())},
		{"PS256 by the key without kid", sign(t, jose.PS256, rsaKey2(), "", goodClaims())},
		{"RS384 by the key without kid, unknown kid", sign(t, jose.RS384, rsaKey2(), "rotated", goodClaims())},
		{"expired within the leeway", sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "exp", testNow.Add(-20*time.Second).Unix()))},
		{"nbf within the leeway", sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "nbf", testNow.Add(20*time.Second).Unix()))},
		{"second audience", sign(t, jose.RS256, rsaKey(), "rsa1", with(goodClaims(), "aud", []string{"x", "other"}))},
		{"bearer scheme in lower case", sign(t, jose.ES256, ecKey(), "ec1", with(goodClaims(), "jti", "lower"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bearerRequest(tt.token)
			if strings.Contains(tt.name, "lower case") {
				r.Header.Set("Authorization", "bearer  "+tt.token)
			}
			id, err := j.Authenticate(r)
			if err != nil {
				t.Fatalf("Authenticate() = %v", err)
			}
			if id.Principal != "alice" || id.Claims["iss"] != "https://issuer.test" {
				t.Errorf("Authenticate() = %+v, want principal alice and the claims", id)
			}
		})
	}
	// The key with alg RS256 does not verify another algorithm.
	id, err := j.Authenticate(bearerRequest(sign(t, jose.RS512, rsaKey(), "rsa1", goodClaims())))
	wantRefusal(t, id, err, 401, ReasonUnknownKey, invalidToken("unknown signing key"))
}

// TestJWTCacheRechecksTime: a cached token is refused once it expires, and
// a token refused as not yet valid is accepted when its time comes.
func TestJWTCacheRechecksTime(t *testing.T) {
	c := baseConfig()
	c.JWKSFile = writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	clock := newClock()
	j := newJWTForTest(t, c, clock, nil)
	tok := sign(t, jose.ES256, ecKey(), "ec1", with(goodClaims(), "exp", testNow.Add(2*time.Minute).Unix(), "nbf", testNow.Add(40*time.Second).Unix()))
	id, err := j.Authenticate(bearerRequest(tok))
	wantRefusal(t, id, err, 401, ReasonNotYetValid, invalidToken("token not yet valid"))
	clock.Advance(15 * time.Second)
	for range 3 {
		if _, err := j.Authenticate(bearerRequest(tok)); err != nil {
			t.Fatalf("Authenticate() at nbf-leeway = %v", err)
		}
	}
	j.mu.RLock()
	n := len(j.cache)
	j.mu.RUnlock()
	if n != 1 {
		t.Errorf("cache holds %d tokens, want 1", n)
	}
	clock.Advance(2*time.Minute + 20*time.Second) // exp + 35s > leeway
	id, err = j.Authenticate(bearerRequest(tok))
	wantRefusal(t, id, err, 401, ReasonExpired, invalidToken("token expired"))
}

// TestJWTCacheBounded: the verified-token cache never grows past its size.
func TestJWTCacheBounded(t *testing.T) {
	c := baseConfig()
	c.JWKSFile = writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	j := newJWTForTest(t, c, newClock(), nil)
	j.cacheSize = 16
	for i := range 100 {
		if _, err := j.Authenticate(bearerRequest(sign(t, jose.EdDSA, edKey(), "ed1", with(goodClaims(), "jti", i)))); err != nil {
			t.Fatal(err)
		}
		j.mu.RLock()
		n := len(j.cache)
		j.mu.RUnlock()
		if n > 16 {
			t.Fatalf("cache holds %d tokens after %d, want at most 16", n, i+1)
		}
	}
}

// TestJWTClaimsRequirements: authorization by claim values (403
// insufficient_scope when one is missing).
func TestJWTClaimsRequirements(t *testing.T) {
	keys := writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	tests := []struct {
		name   string
		reqs   []config.ClaimRequirement
		claims map[string]any
		ok     bool
	}{
		{"scope word", []config.ClaimRequirement{{Name: "scope", Values: []string{"counter:write"}}}, goodClaims(), true},
		{"scope words", []config.ClaimRequirement{{Name: "scope", Values: []string{"counter:write", "counter:read"}}}, goodClaims(), true},
		{"scope word missing", []config.ClaimRequirement{{Name: "scope", Values: []string{"counter:write"}}}, with(goodClaims(), "scope", "counter:read"), false},
		{"scope word prefix only", []config.ClaimRequirement{{Name: "scope", Values: []string{"counter"}}}, goodClaims(), false},
		{"scope claim missing", []config.ClaimRequirement{{Name: "scope", Values: []string{"counter:write"}}}, with(goodClaims(), "scope", nil), false},
		{"scope as array (scp)", []config.ClaimRequirement{{Name: "scp", Values: []string{"counter:write"}}}, with(goodClaims(), "scp", []string{"counter:read", "counter:write"}), true},
		{"string equal", []config.ClaimRequirement{{Name: "tenant", Values: []string{"acme corp"}}}, with(goodClaims(), "tenant", "acme corp"), true},
		{"string differs", []config.ClaimRequirement{{Name: "tenant", Values: []string{"acme"}}}, with(goodClaims(), "tenant", "acme2"), false},
		{"nested roles", []config.ClaimRequirement{{Name: "realm_access.roles", Values: []string{"admin"}}}, with(goodClaims(), "realm_access", map[string]any{"roles": []string{"user", "admin"}}), true},
		{"nested role missing", []config.ClaimRequirement{{Name: "realm_access.roles", Values: []string{"admin"}}}, with(goodClaims(), "realm_access", map[string]any{"roles": []string{"user"}}), false},
		{"nested through a non-object", []config.ClaimRequirement{{Name: "realm_access.roles", Values: []string{"admin"}}}, with(goodClaims(), "realm_access", "admin"), false},
		{"namespaced claim with dots", []config.ClaimRequirement{{Name: "https://flotilla.dev/team", Values: []string{"ops"}}}, with(goodClaims(), "https://flotilla.dev/team", "ops"), true},
		{"exists", []config.ClaimRequirement{{Name: "email"}}, with(goodClaims(), "email", "a@b.test"), true},
		{"exists but null", []config.ClaimRequirement{{Name: "email"}}, with(goodClaims(), "email", json.RawMessage("null")), false},
		{"boolean", []config.ClaimRequirement{{Name: "email_verified", Values: []string{"true"}}}, with(goodClaims(), "email_verified", true), true},
		{"boolean false", []config.ClaimRequirement{{Name: "email_verified", Values: []string{"true"}}}, with(goodClaims(), "email_verified", false), false},
		{"all requirements", []config.ClaimRequirement{{Name: "scope", Values: []string{"counter:write"}}, {Name: "tenant", Values: []string{"acme"}}}, with(goodClaims(), "tenant", "other"), false},
		{"object does not hold a value", []config.ClaimRequirement{{Name: "realm_access", Values: []string{"roles"}}}, with(goodClaims(), "realm_access", map[string]any{"roles": "x"}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			c.JWKSFile = keys
			c.Claims = tt.reqs
			j := newJWTForTest(t, c, newClock(), nil)
			tok := sign(t, jose.ES256, ecKey(), "ec1", tt.claims)
			for range 2 { // verified, then cached
				id, err := j.Authenticate(bearerRequest(tok))
				if tt.ok {
					if err != nil {
						t.Fatalf("Authenticate() = %v, want accepted", err)
					}
					continue
				}
				wantRefusal(t, id, err, 403, ReasonClaims, insufficientScope)
			}
		})
	}
}

// TestJWTForwardClaims: chosen claims become upstream headers, formatted
// for headers; values that are not valid header values are not sent.
func TestJWTForwardClaims(t *testing.T) {
	logs := &syncBuffer{}
	c := baseConfig()
	c.JWKSFile = writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	c.ForwardClaims = map[string]string{
		"sub": "X-Auth-Subject", "scope": "X-Auth-Scope", "groups": "X-Auth-Groups",
		"realm_access.roles": "X-Auth-Roles", "org": "X-Auth-Org", "count": "X-Count",
		"big": "X-Big", "ratio": "X-Ratio", "admin": "X-Admin", "evil": "X-Evil",
		"nul": "X-Nul", "missing": "X-Missing", "nothing": "X-Nothing",
		"https://flotilla.dev/tenant": "X-Tenant",
	}
	j := newJWTForTest(t, c, newClock(), logs)
	payload := `{"iss":"https://issuer.test","aud":"flotilla","sub":"alice","exp":1800003600,` +
		`"scope":"counter:read counter:write","groups":["ops","dev",7],"realm_access":{"roles":["admin"]},` +
		`"org":{"id":42,"name":"acme"},"count":1e3,"big":12345678901234567890,"ratio":1.5,"admin":true,` +
		`"evil":"a\r\nX-Injected: 1","nul":"a\u0000b","nothing":null,"https://flotilla.dev/tenant":"t1"}`
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ecKey()}, (&jose.SignerOptions{}).WithHeader("kid", "ec1"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	tok := must(jws.CompactSerialize())
	for _, pass := range []string{"verified", "cached"} {
		id, err := j.Authenticate(bearerRequest(tok))
		if err != nil {
			t.Fatalf("%s: Authenticate() = %v", pass, err)
		}
		want := http.Header{
			"X-Auth-Subject": {"alice"}, "X-Auth-Scope": {"counter:read counter:write"}, "X-Auth-Groups": {"ops,dev,7"},
			"X-Auth-Roles": {"admin"}, "X-Auth-Org": {`{"id":42,"name":"acme"}`}, "X-Count": {"1000"},
			"X-Big": {"12345678901234567890"}, "X-Ratio": {"1.5"}, "X-Admin": {"true"}, "X-Tenant": {"t1"},
		}
		if diff := cmp.Diff(want, id.Set); diff != "" {
			t.Errorf("%s: Identity.Set (-want +got):\n%s", pass, diff)
		}
		id.Set.Set("X-Auth-Subject", "mallory") // a caller's change does not reach the cache
	}
	if l := logs.String(); !strings.Contains(l, "claim=evil") || !strings.Contains(l, "claim=nul") || strings.Contains(l, "X-Injected") {
		t.Errorf("log does not name the skipped claims (or echoes them):\n%s", l)
	}
}

// TestNewJWTErrors: unreadable or malformed files are errors naming the
// file and what is wrong.
func TestNewJWTErrors(t *testing.T) {
	good := writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	tests := []struct {
		name string
		edit func(c *config.JWTAuth)
		want []string // substrings of the error
	}{
		{"missing key set file", func(c *config.JWTAuth) { c.JWKSFile = "/nonexistent/jwks.json" }, []string{"/nonexistent/jwks.json", "no such file"}},
		{"key set not JSON", func(c *config.JWTAuth) { c.JWKSFile = writeFile(t, "bad.json", []byte("keys: []")) }, []string{"bad.json", "not a JSON Web Key Set"}},
		{"key set without keys", func(c *config.JWTAuth) { c.JWKSFile = writeFile(t, "empty.json", []byte(`{"keys":[]}`)) }, []string{"empty.json", "no usable signature key"}},
		{"key set of HMAC keys", func(c *config.JWTAuth) {
			c.JWKSFile = writeFile(t, "oct.json", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`))
		}, []string{"oct.json", "no usable signature key"}},
		{"key set too large", func(c *config.JWTAuth) {
			c.JWKSFile = writeFile(t, "big.json", bytes.Repeat([]byte(" "), maxJWKSBytes+1))
		}, []string{"big.json", "larger than"}},
		{"secret too short", func(c *config.JWTAuth) {
			c.JWKSFile = good
			c.HMACSecretFile = writeFile(t, "short", []byte("0123456789abcdef0123456789abcde\n"))
		}, []string{"short", "31 bytes", "at least 32"}},
		{"missing secret file", func(c *config.JWTAuth) { c.HMACSecretFile = "/nonexistent/secret" }, []string{"hmacSecretFile", "/nonexistent/secret"}},
		{"HS algorithm without secret", func(c *config.JWTAuth) { c.JWKSFile = good; c.Algorithms = []string{"HS256"} }, []string{"HS256", "hmacSecretFile"}},
		{"unknown algorithm", func(c *config.JWTAuth) { c.JWKSFile = good; c.Algorithms = []string{"none"} }, []string{`"none"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.edit(c)
			j, err := NewJWT(c, JWTOptions{})
			if err == nil {
				j.Close()
				t.Fatal("NewJWT() = nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewJWT() error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// FuzzJWT: whatever the bearer token, Authenticate never panics and never
// accepts anything but the signed tokens themselves (base64 re-encodings of
// the same header, payload and signature bytes aside).
func FuzzJWT(f *testing.F) {
	c := baseConfig()
	c.JWKSFile = writeFile(f, "jwks.json", jwksJSON(f, defaultKeys()...))
	c.HMACSecretFile = writeFile(f, "secret", bytes.Repeat([]byte("k"), 64))
	c.Algorithms = append(c.Algorithms, config.HMACJWTAlgorithms...)
	c.Claims = []config.ClaimRequirement{{Name: "scope", Values: []string{"counter:read"}}}
	c.ForwardClaims = map[string]string{"sub": "X-Sub", "groups": "X-Groups"}
	j, err := NewJWT(c, JWTOptions{Now: newClock().Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(j.Close)
	valid := map[string]bool{}
	for _, tok := range []string{
		sign(f, jose.RS256, rsaKey(), "rsa1", goodClaims()),
		sign(f, jose.ES256, ecKey(), "ec1", with(goodClaims(), "groups", []string{"a", "b"})),
		sign(f, jose.EdDSA, edKey(), "ed1", goodClaims()),
		sign(f, jose.HS256, bytes.Repeat([]byte("k"), 64), "", goodClaims()),
	} {
		f.Add(tok)
		valid[canonical(tok)] = true
	}
	f.Add(unsigned(`{"alg":"none"}`, goodClaims()))
	f.Add(sign(f, jose.HS256, pemOf(f, &rsaKey().PublicKey), "rsa1", goodClaims()))
	f.Add("e30.e30.")
	f.Add("..")
	f.Add("a.b.c.d")
	f.Add(b64(`{"alg":"RS256","crit":["exp"],"exp":1}`) + ".e30.AAAA")
	f.Add(b64(`{"alg":"RS256","alg":"none"}`) + "." + b64(`{"sub":"x","sub":1}`) + ".AAAA")
	f.Add(b64(`{"alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}`) + ".e30.AAAA")
	f.Fuzz(func(t *testing.T, token string) {
		// A fresh cache per input keeps coverage deterministic (the
		// fuzzer minimizes by it); the second call takes the cached path.
		j.cache = map[[32]byte]*verified{}
		for _, pass := range []string{"verified", "cached"} {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header["Authorization"] = []string{"Bearer " + token}
			id, err := j.Authenticate(r)
			if err == nil {
				if !valid[canonical(strings.TrimSpace(token))] {
					t.Fatalf("%s: Authenticate(%q) accepted a token that was never signed: %+v", pass, token, id)
				}
				continue
			}
			var ae *Error
			if !errors.As(err, &ae) || ae.Status != 401 && ae.Status != 403 || ae.Challenge == "" {
				t.Fatalf("%s: Authenticate(%q) = %v, want a 401/403 *Error with a challenge", pass, token, err)
			}
		}
	})
}

// canonical decodes and re-encodes each part of a compact token (the
// base64 decoder ignores unused trailing bits, so a few spellings of one
// token exist).
func canonical(tok string) string {
	parts := strings.Split(tok, ".")
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return tok
		}
		parts[i] = base64.RawURLEncoding.EncodeToString(b)
	}
	return strings.Join(parts, ".")
}

// BenchmarkJWT measures one Authenticate of a valid token: "cached" is a
// repeated token (digest and map lookup), "verify" the signature check.
func BenchmarkJWT(b *testing.B) {
	c := baseConfig()
	c.JWKSFile = writeFile(b, "jwks.json", jwksJSON(b, defaultKeys()...))
	c.Claims = []config.ClaimRequirement{{Name: "scope", Values: []string{"counter:write"}}}
	c.ForwardClaims = map[string]string{"sub": "X-Auth-Subject"}
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		key any
		kid string
	}{{jose.RS256, rsaKey(), "rsa1"}, {jose.ES256, ecKey(), "ec1"}} {
		tok := sign(b, tc.alg, tc.key, tc.kid, goodClaims())
		for _, mode := range []string{"cached", "verify"} {
			b.Run(string(tc.alg)+"/"+mode, func(b *testing.B) {
				j, err := NewJWT(c, JWTOptions{Now: newClock().Now})
				if err != nil {
					b.Fatal(err)
				}
				defer j.Close()
				if mode == "verify" {
					j.cacheSize = 0
				}
				r := bearerRequest(tok)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := j.Authenticate(r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestJWTHMACSecretShorterThanHash: with the default algorithms and a
// 40-byte secret, HS256 works and HS384/HS512 (which need 48/64 bytes) are
// refused as not allowed, with a warning at start.
func TestJWTHMACSecretShorterThanHash(t *testing.T) {
	secret := bytes.Repeat([]byte("x"), 40)
	c := baseConfig()
	c.Algorithms = nil // the defaults: asymmetric ones need a key set
	c.JWKSFile = writeFile(t, "jwks.json", jwksJSON(t, defaultKeys()...))
	c.HMACSecretFile = writeFile(t, "secret", secret)
	logs := &syncBuffer{}
	j := newJWTForTest(t, c, newClock(), logs)
	if _, err := j.Authenticate(bearerRequest(sign(t, jose.HS256, secret, "", goodClaims()))); err != nil {
		t.Fatalf("HS256: %v", err)
	}
	long := bytes.Repeat([]byte("x"), 64) // signs, but this gateway's secret is 40 bytes
	id, err := j.Authenticate(bearerRequest(sign(t, jose.HS512, long, "", goodClaims())))
	wantRefusal(t, id, err, 401, ReasonAlgorithm, invalidToken("algorithm not allowed"))
	if !strings.Contains(logs.String(), "algorithm=HS384") || !strings.Contains(logs.String(), "algorithm=HS512") {
		t.Errorf("no warning about HS384 and HS512:\n%s", logs)
	}
}
