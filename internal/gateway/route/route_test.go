package route

import (
	stdcmp "cmp"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// table compiles routes (YAML list items) over one backend "b".
func table(t testing.TB, routes string) *Table {
	t.Helper()
	c, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: b, addresses: ['127.0.0.1:1']}]\nroutes:\n" + routes))
	if err != nil {
		t.Fatalf("config.Parse() error = %v", err)
	}
	tb, err := Compile(c)
	if err != nil {
		t.Fatalf("Compile() error = %v", err)
	}
	return tb
}

const precedenceRoutes = `
- {name: any, backends: [{name: b}]}
- {name: prefix-api, match: {path: {value: /api}}, backends: [{name: b}]}
- {name: prefix-api-v1, match: {path: {value: /api/v1/}}, backends: [{name: b}]}
- {name: exact-api, match: {path: {type: Exact, value: /api}}, backends: [{name: b}]}
- {name: regex-api, match: {path: {type: Regex, value: "/api/[0-9]+"}}, backends: [{name: b}]}
- {name: post-api, match: {path: {value: /api}, methods: [POST]}, backends: [{name: b}]}
- {name: header-api, match: {path: {value: /api}, headers: [{name: x-beta, type: Present}]}, backends: [{name: b}]}
- {name: header2-api, match: {path: {value: /api}, headers: [{name: x-beta, value: "on"}, {name: x-team, type: Regex, value: "a.*"}]}, backends: [{name: b}]}
- {name: query-api, match: {path: {value: /api}, query: [{name: debug, value: "1"}]}, backends: [{name: b}]}
- {name: cookie-api, match: {path: {value: /api}, cookies: [{name: canary, value: always}]}, backends: [{name: b}]}
- {name: flask, match: {hosts: [flaskapp.test], path: {value: /flask}}, backends: [{name: b}]}
- {name: wild, match: {hosts: ["*.example.com"]}, backends: [{name: b}]}
- {name: wild-deeper, match: {hosts: ["*.eu.example.com"]}, backends: [{name: b}]}
- {name: exact-host, match: {hosts: [www.example.com], path: {type: Exact, value: /only}}, backends: [{name: b}]}
`

func TestMatchPrecedence(t *testing.T) {
	tb := table(t, precedenceRoutes)
	tests := []struct {
		name    string
		method  string
		target  string
		host    string
		headers map[string]string
		want    string
	}{
		{name: "catch all", target: "/", want: "any"},
		{name: "prefix is segment-wise", target: "/apix", want: "any"},
		{name: "exact beats prefix", target: "/api", want: "exact-api"},
		{name: "prefix below exact", target: "/api/", want: "prefix-api"},
		{name: "longer prefix wins", target: "/api/v1/users", want: "prefix-api-v1"},
		{name: "prefix with trailing slash matches without", target: "/api/v1", want: "prefix-api-v1"},
		{name: "regex beats prefix", target: "/api/42", want: "regex-api"},
		{name: "regex is anchored", target: "/api/42/x", want: "prefix-api"},
		{name: "method beats headers", method: "POST", target: "/api/x", headers: map[string]string{"X-Beta": "on"}, want: "post-api"},
		{name: "more headers win", target: "/api/x", headers: map[string]string{"X-Beta": "on", "X-Team": "alpha"}, want: "header2-api"},
		{name: "header regex must match", target: "/api/x", headers: map[string]string{"X-Beta": "on", "X-Team": "beta"}, want: "header-api"},
		{name: "header present", target: "/api/x", headers: map[string]string{"x-beta": ""}, want: "header-api"},
		{name: "query", target: "/api/x?debug=1", want: "query-api"},
		{name: "query value must match", target: "/api/x?debug=2", want: "prefix-api"},
		{name: "cookie", target: "/api/x", headers: map[string]string{"Cookie": "a=b; canary=always"}, want: "cookie-api"},
		{name: "headers beat query", target: "/api/x?debug=1", headers: map[string]string{"X-Beta": "1"}, want: "header-api"},
		{name: "host exact", host: "flaskapp.test", target: "/flask/x", want: "flask"},
		{name: "host case and port ignored", host: "FlaskApp.Test:8080", target: "/flask", want: "flask"},
		{name: "host falls through to any", host: "flaskapp.test", target: "/other", want: "any"},
		{name: "wildcard", host: "a.example.com", target: "/x", want: "wild"},
		{name: "wildcard many labels", host: "a.b.example.com", target: "/x", want: "wild"},
		{name: "longer wildcard wins", host: "x.eu.example.com", target: "/x", want: "wild-deeper"},
		{name: "wildcard needs a label", host: "example.com", target: "/x", want: "any"},
		{name: "exact host first", host: "www.example.com", target: "/only", want: "exact-host"},
		{name: "exact host falls through to wildcard", host: "www.example.com", target: "/x", want: "wild"},
		{name: "trailing dot host", host: "flaskapp.test.", target: "/flask", want: "flask"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(stdcmp.Or(tt.method, "GET"), tt.target, nil)
			r.Host = stdcmp.Or(tt.host, "other.test")
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			got := tb.Match(r, r.URL.Path)
			if got == nil || got.Name != tt.want {
				t.Errorf("Match(%s %s%s) = %v, want %s", r.Method, r.Host, tt.target, name(got), tt.want)
			}
		})
	}
}

func name(r *Route) string {
	if r == nil {
		return "<nil>"
	}
	return r.Name
}

func TestNoMatch(t *testing.T) {
	tb := table(t, `- {name: a, match: {hosts: [a.test]}, backends: [{name: b}]}`)
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "b.test"
	if got := tb.Match(r, r.URL.Path); got != nil {
		t.Errorf("Match() = %s, want nil", got.Name)
	}
}

func TestFileOrderBreaksTies(t *testing.T) {
	tb := table(t, `
- {name: first, match: {path: {value: /a}}, backends: [{name: b}]}
- {name: second, match: {path: {value: /a}}, backends: [{name: b}]}
`)
	if got := tb.Match(httptest.NewRequest("GET", "/a", nil), "/a"); got.Name != "first" {
		t.Errorf("Match() = %s, want first", got.Name)
	}
}

func TestRewritePath(t *testing.T) {
	tests := []struct {
		name  string
		route string
		in    string
		want  string
	}{
		{"talk ingress root", `{name: r, match: {path: {type: Regex, value: "/flask(/|$)(.*)"}}, rewrite: {path: {type: Regex, value: "/$2"}}, backends: [{name: b}]}`, "/flask", "/"},
		{"talk ingress sub path", `{name: r, match: {path: {type: Regex, value: "/flask(/|$)(.*)"}}, rewrite: {path: {type: Regex, value: "/$2"}}, backends: [{name: b}]}`, "/flask/a/b", "/a/b"},
		{"regex named group", `{name: r, match: {path: {type: Regex, value: "/u/(?P<id>[0-9]+)"}}, rewrite: {path: {type: Regex, value: "/users/${id}/profile"}}, backends: [{name: b}]}`, "/u/7", "/users/7/profile"},
		{"regex own pattern replaces the match only", `{name: r, rewrite: {path: {type: Regex, pattern: "/v([0-9])/", value: "/version-${1}/"}}, backends: [{name: b}]}`, "/api/v2/x", "/api/version-2/x"},
		{"regex no match keeps path", `{name: r, rewrite: {path: {type: Regex, pattern: "^/zzz", value: "/"}}, backends: [{name: b}]}`, "/a", "/a"},
		{"regex result gets a leading slash", `{name: r, match: {path: {type: Regex, value: "/x/(.*)"}}, rewrite: {path: {type: Regex, value: "$1"}}, backends: [{name: b}]}`, "/x/y", "/y"},
		{"prefix to root", `{name: r, match: {path: {value: /flask}}, rewrite: {path: {type: ReplacePrefix, value: /}}, backends: [{name: b}]}`, "/flask", "/"},
		{"prefix to root keeps rest", `{name: r, match: {path: {value: /flask}}, rewrite: {path: {type: ReplacePrefix, value: /}}, backends: [{name: b}]}`, "/flask/x/", "/x/"},
		{"prefix to other", `{name: r, match: {path: {value: /old/}}, rewrite: {path: {type: ReplacePrefix, value: /new}}, backends: [{name: b}]}`, "/old/a", "/new/a"},
		{"root prefix to other", `{name: r, rewrite: {path: {type: ReplacePrefix, value: /app/}}, backends: [{name: b}]}`, "/a", "/app/a"},
		{"full", `{name: r, rewrite: {path: {type: ReplaceFull, value: /fixed}}, backends: [{name: b}]}`, "/a/b", "/fixed"},
		{"none", `{name: r, backends: [{name: b}]}`, "/a/b", "/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := table(t, "- "+tt.route).Routes()[0]
			if got := rt.RewritePath(tt.in); got != tt.want {
				t.Errorf("RewritePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedirect(t *testing.T) {
	tests := []struct {
		name     string
		redirect string
		target   string
		want     string
		code     int
	}{
		{"path only keeps host and port", "{path: /new}", "http://a.test:8080/old?x=1", "http://a.test:8080/new?x=1", 302},
		{"to https drops port", "{scheme: https, statusCode: 301}", "http://a.test:8080/p", "https://a.test/p", 301},
		{"host and port", "{host: b.test, port: 9000, statusCode: 308}", "http://a.test/p", "http://b.test:9000/p", 308},
		{"scheme keeps path", "{scheme: https, host: c.test}", "http://a.test/x/y", "https://c.test/x/y", 302},
		{"replacePrefix keeps the rest", "{replacePrefix: /new}, match: {path: {type: Prefix, value: /old}}", "http://a.test/old/x/y?q=1", "http://a.test/new/x/y?q=1", 302},
		{"replacePrefix on the prefix itself", "{replacePrefix: /new}, match: {path: {type: Prefix, value: /old}}", "http://a.test/old", "http://a.test/new", 302},
		{"replacePrefix with /", "{replacePrefix: /}, match: {path: {type: Prefix, value: /old}}", "http://a.test/old/x", "http://a.test/x", 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := table(t, "- {name: r, redirect: "+tt.redirect+"}").Routes()[0]
			r := httptest.NewRequest("GET", tt.target, nil)
			got, code := rt.Redirect(r, &Request{Scheme: "http", Path: Path{Match: r.URL.Path, Escaped: r.URL.EscapedPath()}})
			if got != tt.want || code != tt.code {
				t.Errorf("Redirect() = %q, %d, want %q, %d", got, code, tt.want, tt.code)
			}
		})
	}
}

func TestHeaderOps(t *testing.T) {
	rt := table(t, `- name: r
  requestHeaders: {remove: [x-drop], set: {x-env: prod}, add: {x-tag: b}}
  responseHeaders: {set: {cache-control: no-store}}
  backends: [{name: b}]`).Routes()[0]
	h := http.Header{"X-Drop": {"1"}, "X-Env": {"dev", "test"}, "X-Tag": {"a"}}
	rt.EditRequestHeaders(h, 0)
	want := http.Header{"X-Env": {"prod"}, "X-Tag": {"a", "b"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("EditRequestHeaders() diff (-want +got):\n%s", diff)
	}
	resp := http.Header{}
	rt.EditResponseHeaders(resp)
	if got := resp.Get("Cache-Control"); got != "no-store" {
		t.Errorf("EditResponseHeaders() Cache-Control = %q, want no-store", got)
	}
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"a.test": "a.test", "A.Test:80": "a.test", "[::1]:8080": "::1", "[::1]": "::1", "a.test.": "a.test", "": "",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzMatch checks that matching never panics, that a matched route's own
// path condition holds, and that rewrites always produce an absolute path.
func FuzzMatch(f *testing.F) {
	tb := table(f, precedenceRoutes+`
- {name: rw, match: {hosts: [rw.test], path: {type: Regex, value: "/flask(/|$)(.*)"}}, rewrite: {path: {type: Regex, value: "/$2"}}, backends: [{name: b}]}
- {name: rp, match: {hosts: [rp.test], path: {value: /p}}, rewrite: {path: {type: ReplacePrefix, value: /}}, backends: [{name: b}]}
`)
	f.Add("GET", "flaskapp.test", "/flask/x", "debug=1", "X-Beta", "on")
	f.Add("POST", "a.EXAMPLE.com:80", "/api/1", "", "Cookie", "canary=always")
	f.Add("GET", "rw.test", "/flask", "", "", "")
	f.Add("GET", "rp.test", "/p/q", "a=%zz", "", "")
	f.Fuzz(func(t *testing.T, method, host, path, query, hk, hv string) {
		if !strings.HasPrefix(path, "/") || method == "" || method == http.MethodConnect || method == http.MethodTrace {
			return
		}
		r := &http.Request{Method: method, Host: host, Header: http.Header{}}
		r.URL = &url.URL{Path: path, RawQuery: query}
		if hk != "" {
			r.Header[http.CanonicalHeaderKey(hk)] = []string{hv}
		}
		rt := tb.Match(r, r.URL.Path)
		if rt == nil {
			t.Fatalf("Match(%q) = nil, but a catch-all route exists", path)
		}
		if !rt.path.match(path) {
			t.Fatalf("Match(%q) = %s whose path does not match", path, rt.Name)
		}
		if out := rt.RewritePath(path); !strings.HasPrefix(out, "/") {
			t.Fatalf("RewritePath(%q) = %q, want an absolute path", path, out)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	tb := table(b, precedenceRoutes)
	r := httptest.NewRequest("GET", "/api/v1/users", nil)
	r.Host = "www.example.com"
	b.ReportAllocs()
	for b.Loop() {
		if tb.Match(r, r.URL.Path) == nil {
			b.Fatal("no match")
		}
	}
}

func BenchmarkMatchTalkIngress(b *testing.B) {
	c, err := config.Load("../../../examples/gateway/talk.yaml")
	if err != nil {
		b.Fatal(err)
	}
	tb, err := Compile(c)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/flask/", nil)
	r.Host = "flaskapp.test"
	b.ReportAllocs()
	for b.Loop() {
		rt := tb.Match(r, r.URL.Path)
		_ = rt.RewritePath(r.URL.Path)
	}
}

func BenchmarkMatchMissesRegexRoute(b *testing.B) {
	tb := table(b, `
- {name: flask, match: {path: {type: Regex, value: "/flask(/|$)(.*)"}}, backends: [{name: b}]}
- {name: any, backends: [{name: b}]}
`)
	r := httptest.NewRequest("GET", "/demo/ping", nil)
	b.ReportAllocs()
	for b.Loop() {
		if tb.Match(r, r.URL.Path).Name != "any" {
			b.Fatal("wrong route")
		}
	}
}

// TestSchemeMatch: match.scheme restricts a route to clear-text or TLS
// requests; without it both match.
func TestSchemeMatch(t *testing.T) {
	tb := table(t, `- {name: tls-only, match: {scheme: https, path: {type: Prefix, value: /secure}}, backends: [{name: b}]}
- {name: plain-only, match: {scheme: http, path: {type: Prefix, value: /plain}}, backends: [{name: b}]}
- {name: both, match: {path: {type: Prefix, value: /both}}, backends: [{name: b}]}`)
	for _, tt := range []struct {
		path string
		tls  bool
		want string
	}{
		{"/secure", true, "tls-only"}, {"/secure", false, ""},
		{"/plain", false, "plain-only"}, {"/plain", true, ""},
		{"/both", false, "both"}, {"/both", true, "both"},
	} {
		r := httptest.NewRequest("GET", "http://a.test"+tt.path, nil)
		if tt.tls {
			r.TLS = &tls.ConnectionState{}
		}
		got := ""
		if rt := tb.Match(r, tt.path); rt != nil {
			got = rt.Name
		}
		if got != tt.want {
			t.Errorf("%s (tls %v): route %q, want %q", tt.path, tt.tls, got, tt.want)
		}
	}
}

// TestPortMatch: match.ports restricts a route to the gateway's local
// ports it lists (one Gateway's listeners); two routes with the same path
// on different ports never see each other's requests.
func TestPortMatch(t *testing.T) {
	tb := table(t, `- {name: gw-a, match: {ports: [20000], path: {type: Prefix, value: /}}, backends: [{name: b}]}
- {name: gw-b, match: {ports: [20001, 20002], path: {type: Prefix, value: /}}, backends: [{name: b}]}
- {name: any, match: {path: {type: Prefix, value: /any}}, backends: [{name: b}]}`)
	for _, tt := range []struct {
		path string
		port int // 0: no local address known
		want string
	}{
		{"/", 20000, "gw-a"}, {"/", 20001, "gw-b"}, {"/", 20002, "gw-b"},
		{"/", 8080, ""}, {"/", 0, ""}, {"/any", 8080, "any"},
	} {
		r := httptest.NewRequest("GET", "http://a.test"+tt.path, nil)
		if tt.port != 0 {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: tt.port}))
		}
		got := ""
		if rt := tb.Match(r, tt.path); rt != nil {
			got = rt.Name
		}
		if got != tt.want {
			t.Errorf("%s on port %d: route %q, want %q", tt.path, tt.port, got, tt.want)
		}
	}
}

// TestMethodsAs404: a route whose methods are a plain match (Gateway API)
// offers no Allow, so a request with another method is a 404; a route of
// the file config still gives 405 with Allow.
func TestMethodsAs404(t *testing.T) {
	tb := table(t, `- {name: gw, match: {methods: [POST], methodsAs404: true, path: {type: Prefix, value: /gw}}, backends: [{name: b}]}
- {name: file, match: {methods: [POST], path: {type: Prefix, value: /file}}, backends: [{name: b}]}`)
	for path, want := range map[string]string{"/gw": "", "/file": "POST"} {
		r := httptest.NewRequest("PUT", "http://a.test"+path, nil)
		if rt := tb.Match(r, path); rt != nil {
			t.Errorf("PUT %s matched %s", path, rt.Name)
		}
		if got := tb.Allow(r, path); got != want {
			t.Errorf("PUT %s: Allow %q, want %q", path, got, want)
		}
	}
}

// TestRedirectListenerPort: a redirect naming neither scheme nor port
// keeps the listener's port (Gateway API), left out when it is the
// scheme's default; a scheme given means that scheme's default port.
func TestRedirectListenerPort(t *testing.T) {
	tb := table(t, `- {name: p8080, match: {path: {type: Prefix, value: /a}}, redirect: {host: example.org, listenerPort: 8080}}
- {name: p80, match: {path: {type: Prefix, value: /b}}, redirect: {host: example.org, listenerPort: 80}}
- {name: https, match: {path: {type: Prefix, value: /c}}, redirect: {scheme: https, listenerPort: 8080}}`)
	for path, want := range map[string]string{"/a": "http://example.org:8080/a", "/b": "http://example.org/b", "/c": "https://a.test/c"} {
		r := httptest.NewRequest("GET", "http://a.test:20001"+path, nil)
		rt := tb.Match(r, path)
		if rt == nil {
			t.Fatalf("%s: no route", path)
		}
		if got, _ := rt.Redirect(r, &Request{Scheme: "http", Path: Path{Match: path, Escaped: path}}); got != want {
			t.Errorf("%s: Location %q, want %q", path, got, want)
		}
	}
}

// TestBackendHeaderOps: a backend's own request header edits apply after
// the route's, only for that backend's index; -1 (a mirrored copy) and
// backends without edits get the route's alone.
func TestBackendHeaderOps(t *testing.T) {
	rt := table(t, `- name: r
  requestHeaders: {set: {x-env: prod, x-who: route}}
  backends: [{name: b}, {name: b, requestHeaders: {set: {x-who: c}, add: {x-tag: c}, remove: [x-env]}}]`).Routes()[0]
	tests := []struct {
		name    string
		backend int
		want    http.Header
	}{
		{"backend without edits", 0, http.Header{"X-Env": {"prod"}, "X-Who": {"route"}, "X-Tag": {"a"}}},
		{"backend with edits, after the route's", 1, http.Header{"X-Who": {"c"}, "X-Tag": {"a", "c"}}},
		{"no backend (a mirrored copy)", -1, http.Header{"X-Env": {"prod"}, "X-Who": {"route"}, "X-Tag": {"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"X-Tag": {"a"}}
			rt.EditRequestHeaders(h, tt.backend)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("EditRequestHeaders(%d) diff (-want +got):\n%s", tt.backend, diff)
			}
		})
	}
}
