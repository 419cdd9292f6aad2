package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

func TestNormalizePath(t *testing.T) {
	reject := PathOptions{MergeSlashes: true, EncodedSlash: config.EncodedSlashReject}
	keep := PathOptions{MergeSlashes: true, EncodedSlash: config.EncodedSlashKeep}
	decode := PathOptions{MergeSlashes: true, EncodedSlash: config.EncodedSlashDecode}
	noMerge := PathOptions{EncodedSlash: config.EncodedSlashReject}
	tests := []struct {
		name       string
		in         string
		o          PathOptions
		match, esc string // esc "" means the same as match
		bad        bool
	}{
		{name: "clean", in: "/api/v1/users", o: reject, match: "/api/v1/users"},
		{name: "empty is root", in: "", o: reject, match: "/"},
		{name: "dot dot", in: "/api/../internal", o: reject, match: "/internal"},
		{name: "dot", in: "/a/./b", o: reject, match: "/a/b"},
		{name: "dot-dot with parameters", in: "/public/..;/admin", o: keep, bad: true},
		{name: "encoded dot-dot with parameters", in: "/public/%2e%2e;x=1/admin", o: keep, bad: true},
		{name: "dot with parameters", in: "/a/.;/b", o: reject, bad: true},
		{name: "parameters elsewhere stay", in: "/a;v=1/b..;c", o: reject, match: "/a;v=1/b..;c"},
		{name: "encoded dot dot", in: "/api/%2e%2e/internal", o: reject, match: "/internal"},
		{name: "mixed encoded dots", in: "/api/.%2E/x", o: reject, match: "/x"},
		{name: "above the root", in: "/../../etc/passwd", o: reject, match: "/etc/passwd"},
		{name: "trailing dot dot", in: "/a/b/..", o: reject, match: "/a/"},
		{name: "trailing dot", in: "/a/.", o: reject, match: "/a/"},
		{name: "trailing slash kept", in: "/a/", o: reject, match: "/a/"},
		{name: "dots inside names stay", in: "/a/..b/.c/...", o: reject, match: "/a/..b/.c/..."},
		{name: "merge slashes", in: "//admin", o: reject, match: "/admin"},
		{name: "merge many", in: "/a///b//", o: reject, match: "/a/b/"},
		{name: "no merge", in: "//admin", o: noMerge, match: "//admin"},
		{name: "no merge dot dot pops empty segment", in: "/a//../b", o: noMerge, match: "/a/b"},
		{name: "unreserved decoded", in: "/%61%70%69/%7Euser", o: reject, match: "/api/~user"},
		{name: "reserved stays encoded, upper-case", in: "/a%3fb%20c", o: reject, match: "/a?b c", esc: "/a%3Fb%20c"},
		{name: "percent stays encoded", in: "/a%25", o: reject, match: "/a%25", esc: "/a%25"},
		{name: "double-encoded slash is not a slash", in: "/a%252F", o: reject, match: "/a%252F", esc: "/a%252F"},
		{name: "raw bytes escaped", in: "/a b\"<", o: reject, match: "/a b\"<", esc: "/a%20b%22%3C"},
		{name: "non-ASCII escaped", in: "/caf\xc3\xa9", o: reject, match: "/caf\xc3\xa9", esc: "/caf%C3%A9"},
		{name: "malformed escape", in: "/a%zz", o: reject, bad: true},
		{name: "truncated escape", in: "/a%2", o: reject, bad: true},
		{name: "relative", in: "a/b", o: reject, bad: true},
		{name: "asterisk", in: "*", o: reject, bad: true},
		{name: "%2F rejected", in: "/a%2Fb", o: reject, bad: true},
		{name: "%2f rejected", in: "/a%2fb", o: reject, bad: true},
		{name: "%5C rejected", in: "/a%5cb", o: reject, bad: true},
		{name: "backslash rejected", in: "/a\\b", o: reject, bad: true},
		{name: "%2F kept, not a separator", in: "/api%2f..%2Finternal", o: keep, match: "/api%2F..%2Finternal"},
		{name: "%2F kept next to dot segment", in: "/a/%2F/../b", o: keep, match: "/a/b"},
		{name: "backslash kept encoded", in: "/a\\b", o: keep, match: "/a%5Cb"},
		{name: "%2F decoded then dot segments", in: "/api%2F..%2Finternal", o: decode, match: "/internal"},
		{name: "backslash decoded", in: "/api\\..\\admin", o: decode, match: "/admin"},
		{name: "decoded slashes merged", in: "/a%2F%2Fb", o: decode, match: "/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizePath(tt.in, tt.o)
			if tt.bad {
				if !errors.Is(err, ErrBadPath) {
					t.Errorf("NormalizePath(%q) = %+v, %v; want ErrBadPath", tt.in, got, err)
				}
				return
			}
			esc := tt.esc
			if esc == "" {
				esc = tt.match
			}
			if err != nil || got.Match != tt.match || got.Escaped != esc {
				t.Errorf("NormalizePath(%q) = %+v, %v; want {Match:%s Escaped:%s}", tt.in, got, err, tt.match, esc)
			}
		})
	}
}

func TestUpstreamPathKeepsMeaning(t *testing.T) {
	tb := table(t, `
- {name: rp, match: {path: {value: /p}}, rewrite: {path: {type: ReplacePrefix, value: /in}}, backends: [{name: b}]}
- {name: re, match: {path: {type: Regex, value: "/r(/|$)(.*)"}}, rewrite: {path: {type: Regex, value: "/$2"}}, backends: [{name: b}]}
`)
	keep := PathOptions{MergeSlashes: true, EncodedSlash: config.EncodedSlashKeep}
	tests := []struct{ route, in, want string }{
		{"rp", "/p/a%2Fb", "/in/a%2Fb"},
		{"rp", "/p/a%20b", "/in/a%20b"},
		{"rp", "/p/%252e%252e", "/in/%252e%252e"},
		{"re", "/r/x%2F..%2Fy", "/x%2F..%2Fy"},
		{"re", "/r/a%3Fb", "/a%3Fb"},
	}
	for _, tt := range tests {
		p, err := NormalizePath(tt.in, keep)
		if err != nil {
			t.Fatal(err)
		}
		got := tb.Route(tt.route).UpstreamPath(p)
		if got.Escaped != tt.want {
			t.Errorf("%s: UpstreamPath(%q) = %q, want %q", tt.route, tt.in, got.Escaped, tt.want)
		}
	}
}

// FuzzNormalizePath: no panic; the result is idempotent, absolute, has no
// dot segment and (merging) no empty segment, and its match form is what
// its escaped form decodes to.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/api/../x", "//a//b/", "/%2e%2E/%2f", "/a\\b", "/%zz", "/a/.", "/..", "/%25%32%46", "/%C3%A9/%7e", "/a%2F..%2F..%2Fb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, mode := range []string{config.EncodedSlashReject, config.EncodedSlashKeep, config.EncodedSlashDecode} {
			o := PathOptions{MergeSlashes: true, EncodedSlash: mode}
			if strings.HasPrefix(in, "/") && clean(in, true) {
				if slow, err := normalizeSlow(in, o); err != nil || slow.Escaped != in || slow.Match != in {
					t.Fatalf("%s: clean(%q), but the full normalization gives %+v, %v", mode, in, slow, err)
				}
			}
			p, err := NormalizePath(in, o)
			if err != nil {
				continue
			}
			again, err := NormalizePath(p.Escaped, o)
			if err != nil || again != p {
				t.Fatalf("%s: NormalizePath(%q) = %+v, but again %+v, %v", mode, in, p, again, err)
			}
			if !strings.HasPrefix(p.Escaped, "/") || !strings.HasPrefix(p.Match, "/") {
				t.Fatalf("%s: NormalizePath(%q) = %+v, not absolute", mode, in, p)
			}
			for _, s := range []string{p.Escaped, p.Match} {
				if strings.Contains(s, "//") || strings.Contains(s+"/", "/../") || strings.Contains(s+"/", "/./") {
					t.Fatalf("%s: NormalizePath(%q) = %q has a dot or empty segment", mode, in, s)
				}
			}
			if mode != config.EncodedSlashKeep && strings.ContainsAny(p.Escaped, "\\") {
				t.Fatalf("%s: NormalizePath(%q) = %q kept a backslash", mode, in, p.Escaped)
			}
			if d := p.Decoded(); matchForm(p.Escaped) != p.Match || !strings.HasPrefix(d, "/") {
				t.Fatalf("%s: NormalizePath(%q) = %+v: match form differs from the escaped one", mode, in, p)
			}
		}
	})
}

func TestCompileRefusesUnnormalizedPaths(t *testing.T) {
	for _, v := range []string{"/api/../internal", "//admin", "/a/./b", "/%61pi", "/a%zz"} {
		c, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: b, addresses: ['127.0.0.1:1']}]\nroutes: [{name: r, match: {path: {value: '" + v + "'}}, backends: [{name: b}]}]\n"))
		if err != nil {
			t.Fatalf("config.Parse(%q) error = %v", v, err)
		}
		if _, err := Compile(c); err == nil || !strings.Contains(err.Error(), "routes[0]: match.path.value") {
			t.Errorf("Compile(path %q) error = %v, want one naming routes[0].match.path.value", v, err)
		}
	}
	for _, v := range []string{"/", "/api", "/api/v1/", "/a b", "/a%2Fb", "/~user"} {
		c, _ := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: b, addresses: ['127.0.0.1:1']}]\nroutes: [{name: r, match: {path: {value: '" + v + "'}}, backends: [{name: b}]}]\n"))
		if _, err := Compile(c); err != nil {
			t.Errorf("Compile(path %q) error = %v, want none", v, err)
		}
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	o := PathOptions{MergeSlashes: true, EncodedSlash: config.EncodedSlashReject}
	for _, p := range []string{"/api/v1/users/42", "/api/%2e%2e/x//y%20z"} {
		b.Run(strings.Trim(p[:8], "/"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizePath(p, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
