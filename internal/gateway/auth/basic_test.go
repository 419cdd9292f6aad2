package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Made with htpasswd (apache2-utils): -nbB -C 4, -nbm, -nbs; the
// passwords are in the comments.
const basicTestFile = `# test users
carol:$2y$04$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCyPvFIa99iK
frank:$2y$05$j5uP2yq6AWpCQqjFXkc52u3BkLr5FVWE73qbrTMrkTaM28yqITRYG
alice:$apr1$FcY/Fw.W$ZjI9IuakMQb6XfRL6.0i8.
bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=
dora:$2a$04$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCyPvFIa99iK
eve:$2b$04$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCyPvFIa99iK
jo doe:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=

`

// carol, alice, bob, dora, eve, "jo doe": "secret"; frank: "correct horse".

func basicTestWrite(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.htpasswd")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func basicAuthz(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestBasicAuthenticate(t *testing.T) {
	file := basicTestWrite(t, basicTestFile)
	tests := []struct {
		name          string
		conf          config.BasicAuth
		authz         []string
		wantPrincipal string
		wantSet       http.Header
		wantReason    string
	}{
		{name: "bcrypt $2y$", authz: []string{basicAuthz("carol", "secret")}, wantPrincipal: "carol", wantSet: http.Header{"X-Auth-User": {"carol"}}},
		{name: "bcrypt $2a$", authz: []string{basicAuthz("dora", "secret")}, wantPrincipal: "dora", wantSet: http.Header{"X-Auth-User": {"dora"}}},
		{name: "bcrypt $2b$", authz: []string{basicAuthz("eve", "secret")}, wantPrincipal: "eve", wantSet: http.Header{"X-Auth-User": {"eve"}}},
		{name: "bcrypt password with a space", authz: []string{basicAuthz("frank", "correct horse")}, wantPrincipal: "frank", wantSet: http.Header{"X-Auth-User": {"frank"}}},
		{name: "apr1", authz: []string{basicAuthz("alice", "secret")}, wantPrincipal: "alice", wantSet: http.Header{"X-Auth-User": {"alice"}}},
		{name: "sha", authz: []string{basicAuthz("bob", "secret")}, wantPrincipal: "bob", wantSet: http.Header{"X-Auth-User": {"bob"}}},
		{name: "user with a space", authz: []string{basicAuthz("jo doe", "secret")}, wantPrincipal: "jo doe", wantSet: http.Header{"X-Auth-User": {"jo doe"}}},
		{name: "scheme case-insensitive", authz: []string{"bAsIc " + base64.StdEncoding.EncodeToString([]byte("carol:secret"))}, wantPrincipal: "carol", wantSet: http.Header{"X-Auth-User": {"carol"}}},
		{name: "several spaces after the scheme", authz: []string{"Basic   " + base64.StdEncoding.EncodeToString([]byte("carol:secret"))}, wantPrincipal: "carol", wantSet: http.Header{"X-Auth-User": {"carol"}}},
		{name: "no forward header", conf: config.BasicAuth{ForwardHeader: "-"}, authz: []string{basicAuthz("carol", "secret")}, wantPrincipal: "carol"},
		{name: "custom forward header", conf: config.BasicAuth{ForwardHeader: "x-user"}, authz: []string{basicAuthz("carol", "secret")}, wantPrincipal: "carol", wantSet: http.Header{"X-User": {"carol"}}},

		{name: "no header", wantReason: ReasonMissing},
		{name: "bearer token", authz: []string{"Bearer abc.def.ghi"}, wantReason: ReasonMissing},
		{name: "wrong password bcrypt", authz: []string{basicAuthz("carol", "secreT")}, wantReason: ReasonInvalid},
		{name: "wrong password apr1", authz: []string{basicAuthz("alice", "secret ")}, wantReason: ReasonInvalid},
		{name: "wrong password sha", authz: []string{basicAuthz("bob", "")}, wantReason: ReasonInvalid},
		{name: "another user's password", authz: []string{basicAuthz("frank", "secret")}, wantReason: ReasonInvalid},
		{name: "unknown user", authz: []string{basicAuthz("mallory", "secret")}, wantReason: ReasonInvalid},
		{name: "user with the password's colon", authz: []string{basicAuthz("carol:secret", "")}, wantReason: ReasonInvalid},
		{name: "two headers", authz: []string{basicAuthz("carol", "secret"), basicAuthz("carol", "secret")}, wantReason: ReasonInvalid},
		{name: "comment line is not a user", authz: []string{basicAuthz("# test users", "")}, wantReason: ReasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.conf
			c.HtpasswdFile = file
			b, err := NewBasic(&c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["Authorization"] = tt.authz
			before := r.Header.Clone()
			id, err := b.Authenticate(r)
			if diff := cmp.Diff(before, r.Header); diff != "" {
				t.Errorf("Authenticate modified the request headers (-before +after):\n%s", diff)
			}
			if tt.wantReason != "" {
				e := apiKeyRefusal(t, err)
				if e.Status != 401 || e.Reason != tt.wantReason {
					t.Errorf("refusal %d %s, want 401 %s", e.Status, e.Reason, tt.wantReason)
				}
				if want := `Basic realm="flotilla", charset="UTF-8"`; e.Challenge != want {
					t.Errorf("Challenge = %q, want %q", e.Challenge, want)
				}
				if strings.Contains(e.Error(), "secret") {
					t.Errorf("error %q holds the password", e.Error())
				}
				if len(b.cache) != 0 {
					t.Errorf("a refusal was cached (%d entries)", len(b.cache))
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if id.Principal != tt.wantPrincipal {
				t.Errorf("Principal = %q, want %q", id.Principal, tt.wantPrincipal)
			}
			if diff := cmp.Diff(tt.wantSet, id.Set); diff != "" {
				t.Errorf("Set (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBasicRealm(t *testing.T) {
	b, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, basicTestFile), Realm: "counter admin"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Authenticate(httptest.NewRequest("GET", "/", nil))
	if got, want := apiKeyRefusal(t, err).Challenge, `Basic realm="counter admin", charset="UTF-8"`; got != want {
		t.Errorf("Challenge = %q, want %q", got, want)
	}
}

// TestBasicHeaderMalformed: every malformed Basic header is a 401
// invalid_credentials with the challenge, never a panic or a pass.
func TestBasicHeaderMalformed(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct{ name, authz string }{
		{"scheme only", "Basic"},
		{"scheme and space", "Basic "},
		{"not base64", "Basic !!!!"},
		{"unpadded base64", "Basic " + base64.RawStdEncoding.EncodeToString([]byte("frank:correct horse"))},
		{"base64 with a line break", "Basic " + b64("frank:correct horse")[:8] + "\r\n" + b64("frank:correct horse")[8:]},
		{"base64 with garbage after", "Basic " + b64("carol:secret") + " x"},
		{"no colon", "Basic " + b64("carolsecret")},
		{"empty user", "Basic " + b64(":secret")},
		{"empty", "Basic " + b64("")},
		{"control character in user", "Basic " + b64("car\x00ol:secret")},
		{"control character in password", "Basic " + b64("carol:sec\nret")},
		{"user not UTF-8", "Basic " + b64("car\xffol:secret")},
		{"tab after the scheme", "Basic\t" + b64("carol:secret")},
	}
	file := basicTestWrite(t, basicTestFile)
	b, err := NewBasic(&config.BasicAuth{HtpasswdFile: file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", tt.authz)
			_, err := b.Authenticate(r)
			e := apiKeyRefusal(t, err)
			if e.Status != 401 || (e.Reason != ReasonInvalid && e.Reason != ReasonMissing) || e.Challenge == "" {
				t.Errorf("refusal %d %s %q, want 401 invalid_credentials with a challenge", e.Status, e.Reason, e.Challenge)
			}
			if e.Reason == ReasonMissing && tt.name != "tab after the scheme" {
				t.Errorf("reason %s, want %s", e.Reason, ReasonInvalid)
			}
		})
	}
}

func FuzzBasicHeader(f *testing.F) {
	for _, s := range []string{
		basicAuthz("carol", "secret"), basicAuthz("alice", "x"), "Basic", "Basic ", "basic Og==",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("bob:")), "Bearer x", "Basic ====", "Basic \x00",
	} {
		f.Add(s)
	}
	// One user whose password nobody can guess: every header must be
	// refused, and none may panic.
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		f.Fatal(err)
	}
	bh, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw[:])), 4)
	if err != nil {
		f.Fatal(err)
	}
	file := basicTestWrite(f, "carol:"+string(bh)+"\n")
	b, err := NewBasic(&config.BasicAuth{HtpasswdFile: file}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, authz string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{authz}
		id, err := b.Authenticate(r)
		if err == nil {
			t.Fatalf("Authorization %q accepted as %+v", authz, id)
		}
		if e := apiKeyRefusal(t, err); e.Status != 401 {
			t.Fatalf("Authorization %q: status %d, want 401", authz, e.Status)
		}
	})
}

func TestBasicWarnsOnceForWeakHashes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if _, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, basicTestFile)}, log); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("log has %d lines, want 1:\n%s", len(lines), buf.String())
	}
	for _, w := range []string{"level=WARN", "users=\"[alice bob jo doe]\"", "users.htpasswd", "bcrypt"} {
		if !strings.Contains(lines[0], w) {
			t.Errorf("warning %q lacks %q", lines[0], w)
		}
	}

	buf.Reset()
	if _, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, "carol:$2y$04$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCyPvFIa99iK\n")}, log); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("bcrypt-only file logged %q, want nothing", buf.String())
	}
}

// TestBasicDummyMatchesCost: an unknown user is checked against a hash
// of the file's highest bcrypt cost (or apr1 without bcrypt), so it costs
// what a known user does.
func TestBasicDummyMatchesCost(t *testing.T) {
	b, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, basicTestFile)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(b.dummy.full); b.dummy.kind != basicBcrypt || err != nil || cost != 5 {
		t.Errorf("dummy %s cost %d (%v), want bcrypt cost 5", b.dummy.kind, cost, err)
	}
	b, err = NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, "alice:$apr1$FcY/Fw.W$ZjI9IuakMQb6XfRL6.0i8.\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.dummy.kind != basicAPR1 {
		t.Errorf("dummy %s, want apr1", b.dummy.kind)
	}
}

// basicFillSlots takes every password-check slot of b until the test ends.
func basicFillSlots(t *testing.T, b *Basic) (release func()) {
	t.Helper()
	for range cap(b.sem) {
		b.sem <- struct{}{}
	}
	released := false
	release = func() {
		if !released {
			released = true
			for range cap(b.sem) {
				<-b.sem
			}
		}
	}
	t.Cleanup(release)
	return release
}

// TestBasicBusy: with every check slot taken, a request that needs a hash
// is refused with 503 busy (no challenge: the credentials were not
// judged), an unknown user too (same path), while a cached success
// still passes without a hash.
func TestBasicBusy(t *testing.T) {
	b, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, basicTestFile)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.wait = 10 * time.Millisecond
	req := func(user, pass string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", basicAuthz(user, pass))
		return r
	}
	if _, err := b.Authenticate(req("carol", "secret")); err != nil {
		t.Fatal(err)
	}
	release := basicFillSlots(t, b)
	for _, c := range []struct{ user, pass string }{{"carol", "wrong"}, {"frank", "correct horse"}, {"mallory", "x"}, {"bob", "secret"}} {
		_, err := b.Authenticate(req(c.user, c.pass))
		e := apiKeyRefusal(t, err)
		if e.Status != 503 || e.Reason != ReasonBusy || e.Challenge != "" {
			t.Errorf("%s: refusal %d %s %q, want 503 busy without a challenge", c.user, e.Status, e.Reason, e.Challenge)
		}
	}
	if id, err := b.Authenticate(req("carol", "secret")); err != nil || id.Principal != "carol" {
		t.Errorf("cached carol: %v, %v; want accepted without a free slot", id, err)
	}

	// A client that gives up while waiting is not kept waiting.
	b.wait = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = b.Authenticate(req("frank", "correct horse").WithContext(ctx))
	if e := apiKeyRefusal(t, err); e.Status != 503 || e.Reason != ReasonBusy {
		t.Errorf("cancelled: refusal %d %s, want 503 busy", e.Status, e.Reason)
	}

	release()
	b.wait = time.Second
	if _, err := b.Authenticate(req("frank", "correct horse")); err != nil {
		t.Errorf("after release: %v", err)
	}
}

// TestBasicCache: only successes are cached, for the TTL, within the bound.
func TestBasicCache(t *testing.T) {
	var lines strings.Builder
	lines.WriteString(basicTestFile)
	// Ten more SHA users (fast to check): u0..u9 with password "secret".
	for i := range 10 {
		fmt.Fprintf(&lines, "u%d:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", i)
	}
	b, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, lines.String())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }
	b.wait = 10 * time.Millisecond
	req := func(user, pass string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", basicAuthz(user, pass))
		return r
	}

	// Failures, known or invented users, leave nothing behind.
	for i := range 20 {
		_, _ = b.Authenticate(req(fmt.Sprintf("invented%d", i), "x"))
		_, _ = b.Authenticate(req("bob", fmt.Sprintf("guess%d", i)))
	}
	if len(b.cache) != 0 {
		t.Fatalf("cache holds %d entries after failures, want 0", len(b.cache))
	}

	if _, err := b.Authenticate(req("carol", "secret")); err != nil {
		t.Fatal(err)
	}
	release := basicFillSlots(t, b)
	if _, err := b.Authenticate(req("carol", "secret")); err != nil {
		t.Errorf("within the TTL: %v, want the cached success (no slot free)", err)
	}
	// Another password for the same user is not the cached pair.
	if _, err := b.Authenticate(req("carol", "secret2")); apiKeyRefusal(t, err).Reason != ReasonBusy {
		t.Errorf("other password: %v, want busy (needs a hash)", err)
	}
	now = now.Add(BasicCacheTTL)
	if _, err := b.Authenticate(req("carol", "secret")); apiKeyRefusal(t, err).Reason != ReasonBusy {
		t.Errorf("after the TTL: %v, want busy (needs a hash again)", err)
	}
	release()

	// The bound holds.
	b.size = 4
	for i := range 10 {
		if _, err := b.Authenticate(req(fmt.Sprintf("u%d", i), "secret")); err != nil {
			t.Fatal(err)
		}
		if len(b.cache) > b.size {
			t.Fatalf("cache holds %d entries, want at most %d", len(b.cache), b.size)
		}
	}
	// A new Basic (a reloaded file) starts empty, with another salt.
	b2, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, basicTestFile)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b2.cache) != 0 || b2.salt == b.salt {
		t.Errorf("new Basic: %d cached, same salt %v; want a fresh cache", len(b2.cache), b2.salt == b.salt)
	}
}

func BenchmarkBasicCached(b *testing.B) {
	m, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(b, basicTestFile)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", basicAuthz("frank", "correct horse"))
	if _, err := m.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBasicUncached is the price of one bcrypt check at cost 5 (the
// file's; htpasswd -B defaults to 5, production files often use 10-12,
// each step doubling it): what the cache saves.
func BenchmarkBasicUncached(b *testing.B) {
	m, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(b, basicTestFile)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	m.ttl = 0 // every entry expires at once
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", basicAuthz("frank", "correct horse"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBasicConcurrent runs checks, cache hits and refusals at once (for
// the race detector): every answer is still the right one.
func TestBasicConcurrent(t *testing.T) {
	b, err := NewBasic(&config.BasicAuth{HtpasswdFile: basicTestWrite(t, basicTestFile)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.size = 2           // force evictions
	b.wait = time.Minute // a loaded machine must not turn this into a busy test
	creds := []struct {
		user, pass string
		ok         bool
	}{{"carol", "secret", true}, {"alice", "secret", true}, {"bob", "secret", true}, {"bob", "nope", false}, {"mallory", "secret", false}}
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				c := creds[(g+i)%len(creds)]
				r := httptest.NewRequest("GET", "/", nil)
				r.Header.Set("Authorization", basicAuthz(c.user, c.pass))
				id, err := b.Authenticate(r)
				switch {
				case c.ok && (err != nil || id.Principal != c.user):
					errs <- fmt.Errorf("%s: %v, %v; want accepted", c.user, id, err)
				case !c.ok && err == nil:
					errs <- fmt.Errorf("%s/%s accepted", c.user, c.pass)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(b.cache) > b.size {
		t.Errorf("cache holds %d entries, want at most %d", len(b.cache), b.size)
	}
}
