package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

const (
	apiKeyAlice = "alice-key-0123456789abcdef"
	apiKeyBob   = "bob-key-0123456789abcdef00"
	apiKeyCarol = "carol-key-given-by-its-digest"
)

func apiKeyTestFile(t *testing.T) string {
	t.Helper()
	d := sha256.Sum256([]byte(apiKeyCarol))
	content := "# service keys\n\nalice:" + apiKeyAlice + "\r\n  bob : " + apiKeyBob + "\ncarol:sha256:" + hex.EncodeToString(d[:]) + "\n"
	p := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// refusal returns err as an *Error, failing the test when it is not one.
func apiKeyRefusal(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error", err, err)
	}
	return e
}

func TestAPIKeyAuthenticate(t *testing.T) {
	file := apiKeyTestFile(t)
	// Same length as alice's key, one byte different.
	almostAlice := apiKeyAlice[:len(apiKeyAlice)-1] + "0"
	tests := []struct {
		name          string
		conf          config.APIKeyAuth
		header        http.Header
		target        string
		wantPrincipal string
		wantSet       http.Header
		wantStatus    int
		wantReason    string
	}{
		{name: "header", header: http.Header{"X-Api-Key": {apiKeyAlice}},
			wantPrincipal: "alice", wantSet: http.Header{"X-Api-Key-Name": {"alice"}}},
		{name: "header with spaces in the file", header: http.Header{"X-Api-Key": {apiKeyBob}},
			wantPrincipal: "bob", wantSet: http.Header{"X-Api-Key-Name": {"bob"}}},
		{name: "key given by digest", header: http.Header{"X-Api-Key": {apiKeyCarol}},
			wantPrincipal: "carol", wantSet: http.Header{"X-Api-Key-Name": {"carol"}}},
		{name: "same key twice", header: http.Header{"X-Api-Key": {apiKeyAlice, apiKeyAlice}},
			wantPrincipal: "alice", wantSet: http.Header{"X-Api-Key-Name": {"alice"}}},
		{name: "custom header and no forward header", conf: config.APIKeyAuth{Header: "x-token", ForwardHeader: "-"},
			header: http.Header{"X-Token": {apiKeyAlice}}, wantPrincipal: "alice"},
		{name: "custom forward header", conf: config.APIKeyAuth{ForwardHeader: "x-client"},
			header: http.Header{"X-Api-Key": {apiKeyAlice}}, wantPrincipal: "alice", wantSet: http.Header{"X-Client": {"alice"}}},
		{name: "query parameter", conf: config.APIKeyAuth{Query: "api_key"}, target: "/p?api_key=" + apiKeyBob,
			wantPrincipal: "bob", wantSet: http.Header{"X-Api-Key-Name": {"bob"}}},
		{name: "header wins over query", conf: config.APIKeyAuth{Query: "api_key"}, target: "/p?api_key=nope",
			header: http.Header{"X-Api-Key": {apiKeyAlice}}, wantPrincipal: "alice", wantSet: http.Header{"X-Api-Key-Name": {"alice"}}},

		{name: "no key", wantStatus: 401, wantReason: ReasonMissing},
		{name: "empty header", header: http.Header{"X-Api-Key": {" "}}, wantStatus: 401, wantReason: ReasonMissing},
		{name: "key in Authorization", header: http.Header{"Authorization": {apiKeyAlice}}, wantStatus: 401, wantReason: ReasonMissing},
		{name: "key as bearer token", header: http.Header{"Authorization": {"Bearer " + apiKeyAlice}}, wantStatus: 401, wantReason: ReasonMissing},
		{name: "key in another header", header: http.Header{"X-Api-Token": {apiKeyAlice}}, wantStatus: 401, wantReason: ReasonMissing},
		{name: "key in query without query configured", target: "/p?api_key=" + apiKeyAlice, wantStatus: 401, wantReason: ReasonMissing},
		{name: "key in another query parameter", conf: config.APIKeyAuth{Query: "api_key"}, target: "/p?key=" + apiKeyAlice,
			wantStatus: 401, wantReason: ReasonMissing},
		{name: "wrong key of equal length", header: http.Header{"X-Api-Key": {almostAlice}}, wantStatus: 401, wantReason: ReasonInvalid},
		{name: "key's digest instead of the key", header: http.Header{"X-Api-Key": {"sha256:" + hex.EncodeToString(func() []byte { d := sha256.Sum256([]byte(apiKeyAlice)); return d[:] }())}},
			wantStatus: 401, wantReason: ReasonInvalid},
		{name: "carol's digest as a key", header: http.Header{"X-Api-Key": {func() string { d := sha256.Sum256([]byte(apiKeyCarol)); return hex.EncodeToString(d[:]) }()}},
			wantStatus: 401, wantReason: ReasonInvalid},
		{name: "key name as key", header: http.Header{"X-Api-Key": {"alice"}}, wantStatus: 401, wantReason: ReasonInvalid},
		{name: "prefix of a key", header: http.Header{"X-Api-Key": {apiKeyAlice[:20]}}, wantStatus: 401, wantReason: ReasonInvalid},
		{name: "key plus suffix", header: http.Header{"X-Api-Key": {apiKeyAlice + "x"}}, wantStatus: 401, wantReason: ReasonInvalid},
		{name: "two different keys in the header", header: http.Header{"X-Api-Key": {apiKeyAlice, apiKeyBob}}, wantStatus: 401, wantReason: ReasonInvalid},
		{name: "two different keys in the query", conf: config.APIKeyAuth{Query: "api_key"},
			target: "/p?api_key=" + apiKeyAlice + "&api_key=" + apiKeyBob, wantStatus: 401, wantReason: ReasonInvalid},
		{name: "wrong key in the query", conf: config.APIKeyAuth{Query: "api_key"}, target: "/p?api_key=" + almostAlice,
			wantStatus: 401, wantReason: ReasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.conf
			c.KeysFile = file
			a, err := NewAPIKey(&c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			target := tt.target
			if target == "" {
				target = "/p"
			}
			r := httptest.NewRequest("GET", target, nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			before := r.Header.Clone()
			id, err := a.Authenticate(r)
			if diff := cmp.Diff(before, r.Header); diff != "" {
				t.Errorf("Authenticate modified the request headers (-before +after):\n%s", diff)
			}
			if tt.wantStatus != 0 {
				e := apiKeyRefusal(t, err)
				if e.Status != tt.wantStatus || e.Reason != tt.wantReason {
					t.Errorf("refusal %d %s, want %d %s", e.Status, e.Reason, tt.wantStatus, tt.wantReason)
				}
				if !strings.HasPrefix(e.Challenge, `APIKey realm="flotilla", header=`) {
					t.Errorf("Challenge = %q, want an APIKey challenge", e.Challenge)
				}
				for _, k := range []string{apiKeyAlice, apiKeyBob, apiKeyCarol} {
					if strings.Contains(e.Error(), k) {
						t.Errorf("error %q holds a key", e.Error())
					}
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

func TestAPIKeyChallenge(t *testing.T) {
	a, err := NewAPIKey(&config.APIKeyAuth{KeysFile: apiKeyTestFile(t), Query: "api_key"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(httptest.NewRequest("GET", "/", nil))
	if got, want := apiKeyRefusal(t, err).Challenge, `APIKey realm="flotilla", header="X-API-Key", query="api_key"`; got != want {
		t.Errorf("Challenge = %q, want %q", got, want)
	}
}

func TestAPIKeyKeepsOnlyDigests(t *testing.T) {
	a, err := NewAPIKey(&config.APIKeyAuth{KeysFile: apiKeyTestFile(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 3 {
		t.Fatalf("Len() = %d, want 3", a.Len())
	}
	for d, e := range a.keys {
		if d != e.digest {
			t.Errorf("%s: map key differs from its digest", e.name)
		}
		if d == sha256.Sum256([]byte(e.name)) {
			t.Errorf("%s: digest of the name", e.name)
		}
	}
}

func TestAPIKeyFileErrors(t *testing.T) {
	short := "short-key"
	tests := []struct {
		name    string
		content string
		want    []string // substrings of the error
	}{
		{name: "empty file", content: "", want: []string{"keys.txt: no keys"}},
		{name: "only comments", content: "# nothing\n\n", want: []string{"keys.txt: no keys"}},
		{name: "no colon", content: "alice\n", want: []string{"keys.txt:1: want name:key"}},
		{name: "empty name", content: "# c\n:" + apiKeyAlice + "\n", want: []string{"keys.txt:2: empty key name"}},
		{name: "bad name", content: "al ice:" + apiKeyAlice + "\n", want: []string{"keys.txt:1: key name \"al ice\""}},
		{name: "empty key", content: "alice:\n", want: []string{"keys.txt:1: key \"alice\" is empty"}},
		{name: "short key", content: "ok:" + apiKeyAlice + "\nalice:" + short + "\n",
			want: []string{"keys.txt:2: key \"alice\" is 9 bytes, want at least 16 (short keys can be guessed)"}},
		{name: "bad digest", content: "alice:sha256:abcd\n", want: []string{"keys.txt:1: key \"alice\": want sha256: and 64 hex digits"}},
		{name: "digest not hex", content: "alice:sha256:" + strings.Repeat("zz", 32) + "\n", want: []string{"keys.txt:1: key \"alice\": want sha256:"}},
		{name: "control character", content: "alice:" + apiKeyAlice + "\x01\n", want: []string{"keys.txt:1: key \"alice\" holds control characters"}},
		{name: "duplicate name", content: "alice:" + apiKeyAlice + "\nalice:" + apiKeyBob + "\n",
			want: []string{"keys.txt:2: duplicate key name \"alice\" (first at line 1)"}},
		{name: "duplicate key", content: "alice:" + apiKeyAlice + "\nbob:" + apiKeyAlice + "\n",
			want: []string{"keys.txt:2: key \"bob\" is the same key as line 1 (\"alice\")"}},
		{name: "duplicate key by digest", content: "alice:" + apiKeyAlice + "\nbob:sha256:" + func() string { d := sha256.Sum256([]byte(apiKeyAlice)); return hex.EncodeToString(d[:]) }() + "\n",
			want: []string{"keys.txt:2: key \"bob\" is the same key as line 1"}},
		{name: "every problem at once", content: "a\nb:\nc:" + short + "\n",
			want: []string{"keys.txt:1: want name:key", "keys.txt:2: key \"b\" is empty", "keys.txt:3: key \"c\" is 9 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "keys.txt")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := NewAPIKey(&config.APIKeyAuth{KeysFile: p}, nil)
			if err == nil {
				t.Fatal("NewAPIKey succeeded, want an error")
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file by its path", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			for _, k := range []string{apiKeyAlice, apiKeyBob, short} {
				if strings.Contains(err.Error(), k) {
					t.Errorf("error %q quotes a key", err)
				}
			}
		})
	}
	if _, err := NewAPIKey(&config.APIKeyAuth{KeysFile: filepath.Join(t.TempDir(), "absent")}, nil); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("missing file: error %v, want one naming the file", err)
	}
}

// apiKeySecretDir lays files out as the kubelet mounts a Secret: the data in
// a timestamped directory, a "..data" symlink to it, and one symlink per
// key through "..data".
func apiKeySecretDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	ts := filepath.Join(dir, "..2026_12_07_06_00_00.123456789")
	if err := os.MkdirAll(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAPIKeyDirectory(t *testing.T) {
	dir := apiKeySecretDir(t, map[string]string{
		"alice": apiKeyAlice + "\n",
		"bob":   apiKeyBob,
		"carol": apiKeyCarol + "\r\n",
	})
	// A dotfile and a subdirectory are not keys.
	if err := os.WriteFile(filepath.Join(dir, ".hidden"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, err := NewAPIKey(&config.APIKeyAuth{KeysFile: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 3 {
		t.Errorf("Len() = %d, want 3", a.Len())
	}
	for name, key := range map[string]string{"alice": apiKeyAlice, "bob": apiKeyBob, "carol": apiKeyCarol} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-API-Key", key)
		id, err := a.Authenticate(r)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if id.Principal != name {
			t.Errorf("Principal = %q, want %q", id.Principal, name)
		}
	}
}

func TestAPIKeyDirectoryErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{name: "empty", files: map[string]string{}, want: []string{"no keys"}},
		{name: "short key", files: map[string]string{"alice": "short\n"}, want: []string{"keys/alice: key \"alice\" is 5 bytes"}},
		{name: "empty key", files: map[string]string{"alice": "\n"}, want: []string{"keys/alice: key \"alice\" is empty"}},
		{name: "duplicate key", files: map[string]string{"alice": apiKeyAlice, "bob": apiKeyAlice + "\n"},
			want: []string{"keys/bob: key \"bob\" is the same key as file alice (\"alice\")"}},
		{name: "two newlines", files: map[string]string{"alice": apiKeyAlice + "\n\n"}, want: []string{"keys/alice: key \"alice\" holds control characters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewAPIKey(&config.APIKeyAuth{KeysFile: apiKeySecretDir(t, tt.files)}, nil)
			if err == nil {
				t.Fatal("NewAPIKey succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func BenchmarkAPIKey(b *testing.B) {
	var lines strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&lines, "key%d:bench-key-%08d-padding\n", i, i)
	}
	p := filepath.Join(b.TempDir(), "keys.txt")
	if err := os.WriteFile(p, []byte(lines.String()+"alice:"+apiKeyAlice+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	a, err := NewAPIKey(&config.APIKeyAuth{KeysFile: p}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-API-Key", apiKeyAlice)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzAPIKeyFile: any keys file loads or fails with an error naming the
// file, never panics, and never loads a key shorter than the minimum.
func FuzzAPIKeyFile(f *testing.F) {
	f.Add("alice:" + apiKeyAlice + "\n# c\n\nbob:sha256:" + strings.Repeat("ab", 32) + "\n")
	f.Add("a:b\n:\n:::\nsha256:sha256:")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(dir, "keys.txt")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := apiKeyLoad(p)
		if err != nil {
			if !strings.Contains(err.Error(), "keys.txt") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, line := range strings.Split(content, "\n") {
			_, key, ok := strings.Cut(strings.TrimSpace(line), ":")
			key = strings.TrimSpace(key)
			if ok && !strings.HasPrefix(line, "#") && !strings.HasPrefix(key, "sha256:") && len(key) < APIKeyMinLength {
				if _, loaded := keys[sha256.Sum256([]byte(key))]; loaded {
					t.Fatalf("short key from line %q loaded", line)
				}
			}
		}
	})
}
