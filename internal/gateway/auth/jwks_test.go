package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"
)

// noLeaks fails t if goroutines started during it outlive it (a key set
// refresher or fetch that Close did not stop). Call it first: it checks
// after every other cleanup.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// authenticateBounded runs Authenticate and fails the test if it does not
// return at all (a generous bound: correctness, not timing).
func authenticateBounded(t *testing.T, j *JWT, r *http.Request) (*Identity, error) {
	t.Helper()
	type result struct {
		id  *Identity
		err error
	}
	ch := make(chan result, 1)
	go func() {
		id, err := j.Authenticate(r)
		ch <- result{id, err}
	}()
	select {
	case res := <-ch:
		return res.id, res.err
	case <-time.After(30 * time.Second):
		t.Fatal("Authenticate() did not return while the key set URL is unreachable")
		return nil, nil
	}
}

// TestJWKSUnavailableWithoutKeys: with no key fetched yet, a request waits
// a bounded time, then gets 503; this holds for a refused connection, a
// server that never answers and one that answers errors.
func TestJWKSUnavailableWithoutKeys(t *testing.T) {
	closed := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/jwks.json"
	}
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"connection refused", closed},
		{"never answers", func(t *testing.T) string {
			s := newJWKSServer(t, jwksJSON(t, defaultKeys()...))
			block := make(chan struct{})
			s.setBlock(block)
			t.Cleanup(func() { close(block) })
			return s.URL
		}},
		{"answers 500", func(t *testing.T) string {
			s := newJWKSServer(t, nil)
			s.serve(http.StatusInternalServerError, []byte("oops"))
			return s.URL
		}},
		{"answers garbage", func(t *testing.T) string {
			s := newJWKSServer(t, []byte("<html>"))
			return s.URL
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			c := baseConfig()
			c.JWKSURL = tt.url(t)
			c.JWKSTimeout = 200 * time.Millisecond
			j := newJWTForTest(t, c, newClock(), nil)
			for range 2 { // while the first fetch runs, and after it failed
				id, err := authenticateBounded(t, j, bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", goodClaims())))
				wantRefusal(t, id, err, http.StatusServiceUnavailable, ReasonUnavailable, "")
			}
			// A token that needs no key set is still checked as usual.
			id, err := j.Authenticate(bearerRequest(unsigned(`{"alg":"none"}`, goodClaims())))
			wantRefusal(t, id, err, 401, ReasonAlgorithm, invalidToken("algorithm not allowed"))
		})
	}
}

// TestJWKSDownWithCachedKeys: once fetched, keys stay in use while the URL
// fails in any way; an unknown kid is then 401, not 503.
func TestJWKSDownWithCachedKeys(t *testing.T) {
	for _, down := range []struct {
		name   string
		status int
		body   []byte
	}{
		{"500", http.StatusInternalServerError, []byte("down")},
		{"404", http.StatusNotFound, nil},
		{"garbage", http.StatusOK, []byte("{not json")},
		{"empty set", http.StatusOK, []byte(`{"keys":[]}`)},
		{"too large", http.StatusOK, append([]byte(`{"keys":[`), bytes.Repeat([]byte(" "), maxJWKSBytes)...)},
		{"only HMAC keys", http.StatusOK, []byte(`{"keys":[{"kty":"oct","kid":"rsa1","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)},
		{"closed", 0, nil},
	} {
		t.Run(down.name, func(t *testing.T) {
			noLeaks(t)
			srv := newJWKSServer(t, jwksJSON(t, defaultKeys()...))
			c := baseConfig()
			c.JWKSURL = srv.URL
			clock := newClock()
			logs := &syncBuffer{}
			j := newJWTForTest(t, c, clock, logs)
			if _, err := j.Authenticate(bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", goodClaims()))); err != nil {
				t.Fatalf("before the outage: %v", err)
			}
			if down.status == 0 {
				srv.Close()
			} else {
				srv.serve(down.status, down.body)
			}
			clock.Advance(11 * time.Second)
			// An unknown kid makes a refetch, which fails.
			id, err := authenticateBounded(t, j, bearerRequest(sign(t, jose.ES256, ecKey2(), "new", goodClaims())))
			wantRefusal(t, id, err, 401, ReasonUnknownKey, invalidToken("unknown signing key"))
			// A fresh token (not cached) with a known kid is still accepted.
			if _, err := j.Authenticate(bearerRequest(sign(t, jose.ES256, ecKey(), "ec1", with(goodClaims(), "jti", "fresh")))); err != nil {
				t.Fatalf("during the outage: %v", err)
			}
			if !strings.Contains(logs.String(), "key set fetch failed, keeping the previous keys") {
				t.Errorf("no warning logged for the failed fetch:\n%s", logs)
			}
		})
	}
}

// TestJWKSRotation: a new kid published at the URL is accepted without a
// restart (the unknown kid makes a refetch), and a withdrawn key's tokens,
// cached ones included, are refused.
func TestJWKSRotation(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, testKey{kid: "2025", key: &rsaKey().PublicKey}))
	c := baseConfig()
	c.JWKSURL = srv.URL
	clock := newClock()
	j := newJWTForTest(t, c, clock, nil)
	old := sign(t, jose.RS256, rsaKey(), "2025", goodClaims())
	if _, err := j.Authenticate(bearerRequest(old)); err != nil {
		t.Fatalf("old key: %v", err)
	}
	srv.serve(http.StatusOK, jwksJSON(t, testKey{kid: "2026", key: &rsaKey2().PublicKey}))
	clock.Advance(11 * time.Second)
	id, err := j.Authenticate(bearerRequest(sign(t, jose.RS256, rsaKey2(), "2026", goodClaims())))
	if err != nil {
		t.Fatalf("new kid after rotation: %v", err)
	}
	if id.Principal != "alice" {
		t.Errorf("Principal = %q, want alice", id.Principal)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("key set fetched %d times, want 2", n)
	}
	id, err = j.Authenticate(bearerRequest(old))
	wantRefusal(t, id, err, 401, ReasonUnknownKey, invalidToken("unknown signing key"))
}

// TestJWKSRefetchSharedAndRateLimited: many concurrent requests naming
// unknown kids cause one fetch, and none more within 10s.
func TestJWKSRefetchSharedAndRateLimited(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, defaultKeys()...))
	c := baseConfig()
	c.JWKSURL = srv.URL
	clock := newClock()
	j := newJWTForTest(t, c, clock, nil)
	if _, err := j.Authenticate(bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", goodClaims()))); err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches after start = %d, want 1", n)
	}
	// Hold the refetch until every request is waiting or refused.
	block := make(chan struct{})
	srv.setBlock(block)
	clock.Advance(11 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			_, err := j.Authenticate(bearerRequest(sign(t, jose.ES256, ecKey2(), fmt.Sprintf("unknown-%d", i), goodClaims())))
			errs <- err
		})
	}
	for srv.fetches.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	srv.setBlock(nil)
	close(block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if ae, ok := err.(*Error); !ok || ae.Reason != ReasonUnknownKey {
			t.Errorf("Authenticate() = %v, want %s", err, ReasonUnknownKey)
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("fetches after 50 unknown kids = %d, want 2", n)
	}
	clock.Advance(5 * time.Second)
	_, _ = j.Authenticate(bearerRequest(sign(t, jose.ES256, ecKey2(), "again", goodClaims())))
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("fetches 5s after the refetch = %d, want still 2", n)
	}
	clock.Advance(6 * time.Second)
	_, _ = j.Authenticate(bearerRequest(sign(t, jose.ES256, ecKey2(), "again", goodClaims())))
	if n := srv.fetches.Load(); n != 3 {
		t.Errorf("fetches 11s after the refetch = %d, want 3", n)
	}
	// The same document each time: one generation, the token cache kept.
	if gen := j.keys.current().gen; gen != 1 {
		t.Errorf("key set generation = %d after fetching the same set 3 times, want 1", gen)
	}
}

// TestJWKSRefresher: the set is fetched again every JWKSRefresh (a key
// added there is used without any unknown-kid refetch).
func TestJWKSRefresher(t *testing.T) {
	srv := newJWKSServer(t, jwksJSON(t, testKey{kid: "a", key: &rsaKey().PublicKey}))
	c := baseConfig()
	c.JWKSURL = srv.URL
	c.JWKSRefresh = 50 * time.Millisecond // below the config minimum: tests only
	j := newJWTForTest(t, c, newClock(), nil)
	srv.serve(http.StatusOK, jwksJSON(t, testKey{kid: "a", key: &rsaKey().PublicKey}, testKey{kid: "b", key: &ecKey().PublicKey}))
	// The fetch after the next one started after serve and has ended.
	n := srv.fetches.Load()
	for srv.fetches.Load() < n+2 {
		time.Sleep(5 * time.Millisecond)
	}
	// The clock never moves, so this cannot be an unknown-kid refetch.
	if _, err := j.Authenticate(bearerRequest(sign(t, jose.ES256, ecKey(), "b", goodClaims()))); err != nil {
		t.Fatalf("key from a periodic refresh: %v", err)
	}
}

// TestParseJWKS: malformed sets and keys the gateway must not use.
func TestParseJWKS(t *testing.T) {
	weak := must(rsa.GenerateKey(rand.Reader, 1024))
	priv := jwksJSON(t, testKey{kid: "priv", key: rsaKey()})
	many := jose.JSONWebKeySet{}
	for i := range 150 {
		many.Keys = append(many.Keys, jose.JSONWebKey{Key: &ecKey().PublicKey, KeyID: fmt.Sprint(i)})
	}
	tests := []struct {
		name    string
		data    []byte
		keys    int    // usable keys
		err     string // substring; "" for none
		warning string // substring of the log
	}{
		{"not JSON", []byte("keys"), 0, "not a JSON Web Key Set", ""},
		{"array", []byte("[]"), 0, "not a JSON Web Key Set", ""},
		{"no keys member", []byte(`{"kty":"RSA"}`), 0, `no "keys" array`, ""},
		{"keys not an array", []byte(`{"keys":{}}`), 0, "not a JSON Web Key Set", ""},
		{"empty", []byte(`{"keys":[]}`), 0, "no usable signature key among 0 keys", ""},
		{"key not an object", []byte(`{"keys":[1]}`), 0, "no usable signature key", "not a JSON object"},
		{"oct key", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`), 0, "no usable", `symmetric (\"oct\") keys are not accepted`},
		{"encryption key", jwksJSON(t, testKey{kid: "e", use: "enc", key: &rsaKey().PublicKey}), 0, "no usable", `\"use\" is \"enc\"`},
		{"weak RSA key", jwksJSON(t, testKey{kid: "w", key: &weak.PublicKey}), 0, "no usable", "RSA key of 1024 bits"},
		{"huge RSA key", []byte(`{"keys":[{"kty":"RSA","e":"AQAB","n":"` + strings.Repeat("_", 2732) + `"}]}`), 0, "no usable", "RSA modulus size"},
		{"unknown kty next to a good key", []byte(`{"keys":[{"kty":"XYZ","kid":"x"},` + string(jwksJSON(t, testKey{kid: "ok", key: &ecKey().PublicKey}))[9:]), 1, "", "skipping a key"},
		{"EC point off the curve", []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`), 0, "no usable", "skipping a key"},
		{"private key", priv, 0, "no usable", "private key material"},
		{"private key next to a public one", []byte(`{"keys":[` + string(priv)[9:len(priv)-2] + `,` + string(jwksJSON(t, testKey{kid: "ok", key: &ecKey().PublicKey}))[9:]), 1, "", "private key material"},
		{"too many keys", must(json.Marshal(many)), maxJWKSKeys, "", "too many keys"},
		{"too large", bytes.Repeat([]byte(" "), maxJWKSBytes+1), 0, "larger than", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			set, err := parseJWKS(tt.data, slog.New(slog.NewTextHandler(logs, nil)), "test.json")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseJWKS() error = %v, want %q", err, tt.err)
				}
			} else if err != nil {
				t.Fatalf("parseJWKS() = %v", err)
			} else if set.n != tt.keys {
				t.Errorf("parseJWKS() kept %d keys, want %d", set.n, tt.keys)
			}
			if tt.warning != "" && !strings.Contains(logs.String(), tt.warning) {
				t.Errorf("log lacks %q:\n%s", tt.warning, logs)
			}
			if set != nil {
				for _, ks := range set.byKid {
					for _, k := range ks {
						if _, ok := k.key.(*rsa.PrivateKey); ok {
							t.Error("a private key was kept")
						}
					}
				}
			}
		})
	}
}

// TestJWKSCloseStopsFetching: Close waits for the refresher and a fetch in
// flight, even one the server never answers.
func TestJWKSCloseStopsFetching(t *testing.T) {
	noLeaks(t)
	srv := newJWKSServer(t, nil)
	block := make(chan struct{})
	srv.setBlock(block)
	defer close(block)
	c := baseConfig()
	c.JWKSURL = srv.URL
	j, err := NewJWT(c, JWTOptions{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	for srv.fetches.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { j.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close() did not return")
	}
}

// TestJWKSLogRedactsURL: a password in the key set URL stays out of logs
// and errors.
func TestJWKSLogRedactsURL(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.serve(http.StatusForbidden, nil)
	c := baseConfig()
	c.JWKSURL = strings.Replace(srv.URL, "http://", "http://jwks:hunter2@", 1)
	c.JWKSTimeout = time.Second
	logs := &syncBuffer{}
	j := newJWTForTest(t, c, newClock(), logs)
	_, err := authenticateBounded(t, j, bearerRequest(sign(t, jose.RS256, rsaKey(), "rsa1", goodClaims())))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Authenticate() = %v, want a refusal without the password", err)
	}
	if l := logs.String(); !strings.Contains(l, "403 Forbidden") || strings.Contains(l, "hunter2") {
		t.Errorf("log lacks the failure or holds the password:\n%s", l)
	}
}
