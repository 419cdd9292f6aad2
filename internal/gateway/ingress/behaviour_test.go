package ingress

import (
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// table translates the Ingress YAML and compiles the routes as the gateway
// does: what a request matches is then tested, not the config's shape.
func table(t *testing.T, objs string) (*route.Table, route.PathOptions, Result) {
	t.Helper()
	res := Translate(parseObjects(t, []byte(objs)).input(), Options{})
	for _, p := range res.Problems {
		if p.Severity == Error {
			t.Fatalf("unexpected problem: %s", p)
		}
	}
	c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Backends: res.Backends, Routes: res.Routes}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	tb, err := route.CompileWith(c, route.Options{Policies: func(*config.Route) ([]route.Filter, error) { return nil, nil }})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tb, route.PathOptionsFrom(c.Defaults.Paths), res
}

type request struct {
	host, path string
	header     map[string]string
	cookie     string
	// wantRoute is the route's name suffix after "ing.default." ("" no
	// match); wantPath the path sent upstream.
	wantRoute, wantPath string
}

func check(t *testing.T, tb *route.Table, po route.PathOptions, reqs []request) {
	t.Helper()
	for _, rq := range reqs {
		r := httptest.NewRequest("GET", "http://"+rq.host+rq.path, nil)
		for k, v := range rq.header {
			r.Header.Set(k, v)
		}
		if rq.cookie != "" {
			r.Header.Set("Cookie", rq.cookie)
		}
		p, err := route.NormalizePath(r.URL.EscapedPath(), po)
		if err != nil {
			t.Fatalf("NormalizePath(%q): %v", rq.path, err)
		}
		rt := tb.Match(r, p.Match)
		got := ""
		if rt != nil {
			got = strings.TrimPrefix(rt.Name, "ing.default.")
		}
		if got != rq.wantRoute {
			t.Errorf("%s%s %v %s: route %q, want %q", rq.host, rq.path, rq.header, rq.cookie, got, rq.wantRoute)
			continue
		}
		if rt != nil && rq.wantPath != "" {
			if up := rt.RewritePath(p.Match); up != rq.wantPath {
				t.Errorf("%s%s: upstream path %q, want %q", rq.host, rq.path, up, rq.wantPath)
			}
		}
	}
}

const ingHead = `
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  annotations: {%s}
spec:
  ingressClassName: flotilla
  rules:
  - host: %s
    http:
      paths:
`

func ingressYAML(name, annotations, host string, paths ...string) string {
	s := strings.Replace(strings.Replace(strings.Replace(ingHead, "%s", name, 1), "%s", annotations, 1), "%s", host, 1)
	for _, p := range paths {
		s += "      - " + p + "\n"
	}
	return s
}

func TestPathTypesAndPrecedence(t *testing.T) {
	tb, po, _ := table(t, ingressYAML("p", "", "app.example.com",
		`{path: /foo, pathType: Prefix, backend: {service: {name: a, port: {name: http}}}}`,
		`{path: /foo/bar, pathType: Prefix, backend: {service: {name: b, port: {name: http}}}}`,
		`{path: /foo/bar, pathType: Exact, backend: {service: {name: c, port: {name: http}}}}`,
		`{path: /impl, pathType: ImplementationSpecific, backend: {service: {name: d, port: {name: http}}}}`,
		`{path: /trailing/, pathType: Prefix, backend: {service: {name: e, port: {name: http}}}}`,
	)+"---\n"+ingressYAML("w", "", `"*.example.org"`,
		`{path: /, pathType: Prefix, backend: {service: {name: w, port: {name: http}}}}`))
	check(t, tb, po, []request{
		{host: "app.example.com", path: "/foo", wantRoute: "p.0.0"},
		{host: "app.example.com", path: "/foo/", wantRoute: "p.0.0"},
		{host: "app.example.com", path: "/foo/x", wantRoute: "p.0.0"},
		{host: "app.example.com", path: "/foobar", wantRoute: ""},           // Prefix matches by path element
		{host: "app.example.com", path: "/foo/bar", wantRoute: "p.0.2"},     // Exact before Prefix
		{host: "app.example.com", path: "/foo/bar/baz", wantRoute: "p.0.1"}, // longest Prefix first
		{host: "app.example.com", path: "/foo/barbaz", wantRoute: "p.0.0"},
		{host: "app.example.com", path: "/impl/x", wantRoute: "p.0.3"},
		{host: "app.example.com", path: "/trailing", wantRoute: "p.0.4"},
		{host: "APP.example.com", path: "/foo", wantRoute: "p.0.0"},
		{host: "other.example.com", path: "/foo", wantRoute: ""},
		{host: "x.example.org", path: "/anything", wantRoute: "w.0.0"},
		{host: "a.b.example.org", path: "/", wantRoute: "w.0.0"}, // nginx's *.domain: one or more labels
		{host: "example.org", path: "/", wantRoute: ""},
	})
}

func TestRewriteTarget(t *testing.T) {
	tb, po, _ := table(t, ingressYAML("fixed", `nginx.ingress.kubernetes.io/rewrite-target: /`, "talk.test",
		`{path: /k8sdemo, pathType: Prefix, backend: {service: {name: demo, port: {name: http}}}}`,
	)+"---\n"+ingressYAML("groups", `nginx.ingress.kubernetes.io/use-regex: "true", nginx.ingress.kubernetes.io/rewrite-target: /$2`, "rw.test",
		`{path: "/something(/|$)(.*)", pathType: ImplementationSpecific, backend: {service: {name: demo, port: {name: http}}}}`,
	)+"---\n"+ingressYAML("digits", `nginx.ingress.kubernetes.io/rewrite-target: /v$1x/$2`, "d.test",
		`{path: "/api/v([0-9])/(.*)", pathType: ImplementationSpecific, backend: {service: {name: demo, port: {name: http}}}}`,
	)+"---\n"+ingressYAML("regex", `nginx.ingress.kubernetes.io/use-regex: "true"`, "re.test",
		`{path: "/api/v[0-9]+", pathType: Prefix, backend: {service: {name: demo, port: {name: http}}}}`,
		`{path: "/api", pathType: Prefix, backend: {service: {name: other, port: {name: http}}}}`,
	))
	check(t, tb, po, []request{
		{host: "talk.test", path: "/k8sdemo", wantRoute: "fixed.0.0", wantPath: "/"},
		{host: "talk.test", path: "/k8sdemo/x/y", wantRoute: "fixed.0.0", wantPath: "/"},
		{host: "rw.test", path: "/something", wantRoute: "groups.0.0", wantPath: "/"},
		{host: "rw.test", path: "/something/", wantRoute: "groups.0.0", wantPath: "/"},
		{host: "rw.test", path: "/something/new", wantRoute: "groups.0.0", wantPath: "/new"},
		{host: "rw.test", path: "/SOMETHING/a/b", wantRoute: "groups.0.0", wantPath: "/a/b"}, // ~* is case-insensitive
		{host: "rw.test", path: "/somethingelse", wantRoute: "", wantPath: ""},
		// nginx's $1 is one digit: "$1x" is group 1 then "x".
		{host: "d.test", path: "/api/v2/items", wantRoute: "digits.0.0", wantPath: "/v2x/items"},
		// A regex path is anchored at the start only, and outranks a prefix.
		{host: "re.test", path: "/api/v12/x", wantRoute: "regex.0.0"},
		{host: "re.test", path: "/api/other", wantRoute: "regex.0.1"},
		{host: "re.test", path: "/x/api/v1", wantRoute: ""},
	})
}

func TestCanaryRouting(t *testing.T) {
	main := ingressYAML("main", "", "app.test", `{path: /, pathType: Prefix, backend: {service: {name: v1, port: {name: http}}}}`)
	main = strings.Replace(main, "name: main", "name: main\n  creationTimestamp: \"2026-01-01T00:00:00Z\"", 1)
	canary := ingressYAML("canary", `nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-by-header: X-Canary, nginx.ingress.kubernetes.io/canary-by-cookie: beta, nginx.ingress.kubernetes.io/canary-weight: "0"`,
		"app.test", `{path: /, pathType: Prefix, backend: {service: {name: v2, port: {name: http}}}}`)
	tb, po, res := table(t, main+"---\n"+canary)
	check(t, tb, po, []request{
		{host: "app.test", path: "/x", wantRoute: "main.0.0"},
		{host: "app.test", path: "/x", header: map[string]string{"X-Canary": "always"}, wantRoute: "main.0.0.canary-header"},
		{host: "app.test", path: "/x", header: map[string]string{"X-Canary": "never"}, cookie: "beta=always", wantRoute: "main.0.0.main-header"}, // header before cookie
		{host: "app.test", path: "/x", header: map[string]string{"X-Canary": "other"}, cookie: "beta=always", wantRoute: "main.0.0.canary-cookie"},
		{host: "app.test", path: "/x", cookie: "beta=never", wantRoute: "main.0.0.main-cookie"},
	})
	backend := map[string]string{}
	for _, r := range res.Routes {
		if len(r.Backends) == 1 {
			backend[r.Name] = r.Backends[0].Name
		}
	}
	for name, want := range map[string]string{"ing.default.main.0.0.canary-header": "ing.default.v2.http", "ing.default.main.0.0.main-header": "ing.default.v1.http",
		"ing.default.main.0.0.canary-cookie": "ing.default.v2.http", "ing.default.main.0.0.main-cookie": "ing.default.v1.http"} {
		if backend[name] != want {
			t.Errorf("route %s backend = %q, want %q", name, backend[name], want)
		}
	}
	if w := res.Routes[0].Backends; len(w) != 2 || *w[0].Weight != 100 || *w[1].Weight != 0 {
		t.Errorf("main route weights = %+v, want v1 100, v2 0", w)
	}
}

// TestOneBadIngressLeavesOthersServed: every error leaves out its own
// Ingress only, and the rest still compiles.
func TestOneBadIngressLeavesOthersServed(t *testing.T) {
	good := ingressYAML("good", "", "ok.test", `{path: /, pathType: Prefix, backend: {service: {name: ok, port: {name: http}}}}`)
	for _, bad := range []string{
		`nginx.ingress.kubernetes.io/whitelist-source-range: "300.1.1.1"`,
		`nginx.ingress.kubernetes.io/use-regex: "true", nginx.ingress.kubernetes.io/rewrite-target: "/$1"`,
		`nginx.ingress.kubernetes.io/proxy-read-timeout: "soon"`,
		`nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: missing`,
		`nginx.ingress.kubernetes.io/limit-rps: "-1"`,
		`nginx.ingress.kubernetes.io/enable-cors: "true", nginx.ingress.kubernetes.io/cors-allow-methods: "GET;DROP"`,
		`nginx.ingress.kubernetes.io/upstream-vhost: "a b"`,
	} {
		objs := good + "---\n" + ingressYAML("bad", bad, "bad.test", `{path: "/x", pathType: ImplementationSpecific, backend: {service: {name: bad, port: {name: http}}}}`)
		res := Translate(parseObjects(t, []byte(objs)).input(), Options{})
		if len(res.Served) != 1 || res.Served[0] != "default/good" {
			t.Errorf("%s: served %v, want only default/good", bad, res.Served)
		}
		var errs []string
		for _, p := range res.Problems {
			if p.Severity == Error && p.Name == "bad" && p.Annotation != "" && strings.Contains(bad, strings.TrimPrefix(p.Annotation, Prefix)) {
				errs = append(errs, p.String())
			}
		}
		if len(errs) == 0 {
			t.Errorf("%s: no error naming the annotation, got %v", bad, res.Problems)
		}
	}
}

// TestTalkIngress: the talk's Ingress as the slide shows it (no class,
// Flotilla's IngressClass the default, rewrite-target: /, the
// default-http-backend) routes as ingress-nginx did.
func TestTalkIngress(t *testing.T) {
	data, err := os.ReadFile("testdata/talk.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tb, po, res := table(t, string(data))
	if len(res.Problems) != 0 {
		t.Errorf("problems: %v", res.Problems)
	}
	check(t, tb, po, []request{
		{host: "minikube.test", path: "/k8sdemo", wantRoute: "ingress.0.1", wantPath: "/"},
		{host: "minikube.test", path: "/k8sdemo/anything", wantRoute: "ingress.0.1", wantPath: "/"},
		{host: "minikube.test", path: "/flaskapp", wantRoute: "ingress.0.0", wantPath: "/"},
		{host: "minikube.test", path: "/", wantRoute: "ingress.default.0", wantPath: "/"},
		{host: "minikube.test", path: "/other", wantRoute: "ingress.default.0", wantPath: "/other"},
		{host: "elsewhere.test", path: "/k8sdemo", wantRoute: ""},
	})
}

// BenchmarkTranslate: a whole sync's translation of 1000 Ingresses (one
// path each, a tenth with annotations).
func BenchmarkTranslate(b *testing.B) {
	var objs strings.Builder
	for i := range 1000 {
		ann := ""
		if i%10 == 0 {
			ann = `nginx.ingress.kubernetes.io/rewrite-target: /, nginx.ingress.kubernetes.io/limit-rps: "10"`
		}
		objs.WriteString("---\n" + ingressYAML(fmt.Sprintf("i%d", i), ann, fmt.Sprintf("h%d.example.com", i%50),
			fmt.Sprintf(`{path: /p%d, pathType: Prefix, backend: {service: {name: s%d, port: {name: http}}}}`, i, i%100)))
	}
	in := parseObjects(b, []byte(objs.String())).input()
	b.ResetTimer()
	for b.Loop() {
		res := Translate(in, Options{})
		if len(res.Served) != 1000 {
			b.Fatalf("served %d", len(res.Served))
		}
	}
}
