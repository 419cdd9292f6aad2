package gatewayapi

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// table translates the objects and compiles the routes as the gateway
// does: what a request matches is then tested, not the config's shape.
func table(t *testing.T, objs string) *route.Table {
	t.Helper()
	return tableOf(t, Translate(parseObjects(t, []byte(objs)).input(), Options{}))
}

func tableOf(t *testing.T, res Result) *route.Table {
	t.Helper()
	for _, p := range res.Problems {
		t.Fatalf("unexpected problem: %s", p)
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
	return tb
}

type request struct {
	method, host, path string
	tls                bool // the request came over TLS
	port               int  // the gateway's local port it came in on (0: unknown)
	header             map[string]string
	// want is the route name after "gw.default." ("" no match).
	want string
	// redirect is the Location a redirect route answers with.
	redirect string
}

func checkRequests(t *testing.T, tb *route.Table, reqs []request) {
	t.Helper()
	for _, rq := range reqs {
		m := rq.method
		if m == "" {
			m = "GET"
		}
		r := httptest.NewRequest(m, "http://"+rq.host+rq.path, nil)
		for k, v := range rq.header {
			r.Header.Set(k, v)
		}
		if rq.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if rq.port != 0 {
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: rq.port}))
		}
		p, err := route.NormalizePath(r.URL.EscapedPath(), route.PathOptions{MergeSlashes: true})
		if err != nil {
			t.Fatal(err)
		}
		rt := tb.Match(r, p.Match)
		got := ""
		if rt != nil {
			got = strings.TrimPrefix(rt.Name, "gw.default.")
		}
		if got != rq.want {
			t.Errorf("%s %s%s %v: route %q, want %q", m, rq.host, rq.path, rq.header, got, rq.want)
			continue
		}
		if rq.redirect != "" {
			loc, _ := rt.Redirect(r, &route.Request{Scheme: "http", Path: p})
			if loc != rq.redirect {
				t.Errorf("%s%s: redirect %q, want %q", rq.host, rq.path, loc, rq.redirect)
			}
		}
	}
}

const head = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flotilla}
spec: {controllerName: flotilla.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: flotilla
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: wild, port: 80, protocol: HTTP, hostname: "*.example.com"}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 80}]}
`

func httpRoute(name, created, hostnames, rules string) string {
	return "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: " + name + ", creationTimestamp: \"" + created + "\"}\n" +
		"spec:\n  parentRefs: [{name: gw, sectionName: http}]\n  hostnames: " + hostnames + "\n  rules:\n" + rules
}

// TestPrecedence: the spec's order of rules across HTTPRoutes: hostname
// specificity, Exact path, longest prefix, method, most headers, most
// query parameters, the oldest route, then namespace/name, then rule order.
func TestPrecedence(t *testing.T) {
	be := "    backendRefs: [{name: web, port: 80}]\n"
	tb := table(t, head+
		httpRoute("b-old", "2026-01-01T00:00:00Z", "[]", "  - matches: [{path: {value: /same}}]\n"+be+
			"  - matches: [{path: {value: /}}]\n"+be)+
		httpRoute("a-new", "2026-06-01T00:00:00Z", "[]", "  - matches: [{path: {value: /same}}]\n"+be+
			"  - matches: [{path: {value: /api}}, {path: {value: /api/v1}}, {path: {type: Exact, value: /api/v1}}]\n"+be+
			"  - matches: [{path: {value: /api}, method: POST}]\n"+be+
			"  - matches: [{path: {value: /api}, headers: [{name: x-a, value: \"1\"}]}]\n"+be+
			"  - matches: [{path: {value: /api}, headers: [{name: x-a, value: \"1\"}, {name: x-b, value: \"1\"}]}]\n"+be+
			"  - matches: [{path: {value: /api}, headers: [{name: x-a, value: \"1\"}], queryParams: [{name: q, value: \"1\"}]}]\n"+be)+
		httpRoute("c-same-age", "2026-01-01T00:00:00Z", "[]", "  - matches: [{path: {value: /same}}]\n"+be)+
		httpRoute("host", "2026-06-01T00:00:00Z", "[app.example.com]", "  - matches: [{path: {value: /}}]\n"+be)+
		httpRoute("wild", "2026-06-01T00:00:00Z", `["*.example.com"]`, "  - matches: [{path: {value: /api}}]\n"+be))
	checkRequests(t, tb, []request{
		{path: "/same", want: "b-old.0.0"},                  // oldest route; c-same-age ties on age, loses on name
		{path: "/api/v1", want: "a-new.1.2"},                // Exact first
		{path: "/api/v1/x", want: "a-new.1.1"},              // longest prefix
		{path: "/api/x", want: "a-new.1.0"},                 // the rule's first match
		{method: "POST", path: "/api/x", want: "a-new.2.0"}, // a method beats none
		{path: "/api/x", header: map[string]string{"X-A": "1"}, want: "a-new.3.0"},
		{path: "/api/x", header: map[string]string{"X-A": "1", "X-B": "1"}, want: "a-new.4.0"}, // more headers
		{path: "/api/x?q=1", header: map[string]string{"X-A": "1"}, want: "a-new.5.0"},         // then query params
		{path: "/other", want: "b-old.1.0"},
		{host: "app.example.com", path: "/api", want: "host.0.0"},  // an exact host before any wildcard or none
		{host: "x.example.com", path: "/api", want: "wild.0.0"},    // a wildcard host before none
		{host: "x.example.com", path: "/other", want: "b-old.1.0"}, // falls through to routes without hosts
	})
}

// TestRedirectAndRewriteBehaviour: redirects as the spec spells them.
func TestRedirectAndRewriteBehaviour(t *testing.T) {
	tb := table(t, head+httpRoute("r", "2026-01-01T00:00:00Z", "[]", `  - matches: [{path: {value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
  - matches: [{path: {value: /secure}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
  - matches: [{path: {value: /host}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, port: 8080}}]
`))
	checkRequests(t, tb, []request{
		{host: "a.test", path: "/old/x?y=1", want: "r.0.0", redirect: "http://a.test/new/x?y=1"},
		{host: "a.test", path: "/old", want: "r.0.0", redirect: "http://a.test/new"},
		{host: "a.test:8080", path: "/secure/p", want: "r.1.0", redirect: "https://a.test/secure/p"},
		{host: "a.test", path: "/host", want: "r.2.0", redirect: "http://example.org:8080/host"},
	})
}

// TestListenerHostnames: a route without hostnames on a wildcard
// listener serves only the listener's names.
func TestListenerHostnames(t *testing.T) {
	objs := strings.Replace(head, "- {name: http, port: 80, protocol: HTTP}\n", "", 1) +
		strings.Replace(httpRoute("r", "2026-01-01T00:00:00Z", "[]", "  - backendRefs: [{name: web, port: 80}]\n"), "sectionName: http", "sectionName: wild", 1)
	checkRequests(t, table(t, objs), []request{
		{host: "a.example.com", path: "/", want: "r.0.0"},
		{host: "a.b.example.com", path: "/", want: "r.0.0"},
		{host: "example.com", path: "/", want: ""},
		{host: "a.example.org", path: "/", want: ""},
	})
}

// TestScaleWeights: Gateway API weights onto the config's 0..100.
func TestScaleWeights(t *testing.T) {
	tests := []struct {
		in, want []int
		lossy    bool
	}{
		{[]int{90, 10}, []int{90, 10}, false},
		{[]int{0, 1}, []int{0, 1}, false},
		{[]int{500, 1500}, []int{1, 3}, false},
		{[]int{1000000, 3}, []int{100, 1}, true},
		{[]int{1000, 0}, []int{1, 0}, false},
		{[]int{300, 200, 100}, []int{3, 2, 1}, false},
		{[]int{0, 0}, []int{0, 0}, false},
	}
	for _, tt := range tests {
		var refs []config.BackendRef
		for _, w := range tt.in {
			refs = append(refs, config.BackendRef{Weight: &w})
		}
		out, lossy := scaleWeights(refs)
		var got []int
		for _, r := range out {
			got = append(got, *r.Weight)
		}
		if !equalInts(got, tt.want) || lossy != tt.lossy {
			t.Errorf("scaleWeights(%v) = %v, %v, want %v, %v", tt.in, got, lossy, tt.want, tt.lossy)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestIntersect: listener and route hostnames.
func TestIntersect(t *testing.T) {
	tests := []struct {
		listener string
		route    []string
		want     []string
		all      bool
	}{
		{"", nil, nil, true},
		{"a.example.com", nil, []string{"a.example.com"}, false},
		{"", []string{"a.test"}, []string{"a.test"}, false},
		{"*.example.com", []string{"a.example.com", "example.com", "a.b.example.com", "x.test"}, []string{"a.example.com", "a.b.example.com"}, false},
		{"a.example.com", []string{"*.example.com"}, []string{"a.example.com"}, false},
		{"*.example.com", []string{"*.a.example.com", "*.com"}, []string{"*.a.example.com", "*.example.com"}, false},
		{"A.Example.com", []string{"a.example.COM"}, []string{"a.example.com"}, false},
		{"b.example.com", []string{"a.example.com"}, nil, false},
	}
	for _, tt := range tests {
		var hs []gwv1Hostname
		for _, h := range tt.route {
			hs = append(hs, gwv1Hostname(h))
		}
		lh := strings.ToLower(tt.listener)
		got, all := intersect(lh, hs)
		if !equalStrings(got, tt.want) || all != tt.all {
			t.Errorf("intersect(%q, %v) = %v, %v, want %v, %v", tt.listener, tt.route, got, all, tt.want, tt.all)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type gwv1Hostname = gwv1.Hostname

// TestSupportedFeaturesAreKnown: every feature claimed is one of the
// pinned module's, so a typo never claims nothing.
func TestSupportedFeaturesAreKnown(t *testing.T) {
	for _, perGateway := range []bool{false, true} {
		for _, f := range SupportedFeatures(perGateway) {
			if features.GetFeature(features.FeatureName(f.Name)).Name == "" {
				t.Errorf("supported feature %q is not a feature of sigs.k8s.io/gateway-api/pkg/features", f.Name)
			}
		}
	}
}

// TestSchemesKeepListenersApart: a route of an HTTPS listener is not
// served in clear text, and the HTTP listener's redirect to HTTPS is not
// answered over HTTPS (no redirect loop); a route of both is served on
// both.
func TestSchemesKeepListenersApart(t *testing.T) {
	data, err := os.ReadFile("testdata/schemes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tb := table(t, string(data))
	checkRequests(t, tb, []request{
		{host: "app.example.com", path: "/", want: "to-https.0.0", redirect: "https://app.example.com/"},
		{host: "app.example.com", path: "/", tls: true, want: "secure-only.0.0"},
		{host: "app.example.com", path: "/both", want: "both.0.0"},
		{host: "app.example.com", path: "/both", tls: true, want: "both.0.0"},
		{host: "other.test", path: "/split", want: "split-hosts.0.0.http"},
		{host: "other.test", path: "/split", tls: true, want: ""},
		{host: "admin.example.com", path: "/split", tls: true, want: "split-hosts.0.0.https"},
		{host: "other.test", path: "/everywhere", tls: true, want: "everywhere.0.0"},
	})
}

// perGatewayPorts are the local ports of testdata/per-gateway*.yaml's
// Gateways, as their Services would map them; "three" has none yet.
func perGatewayPorts(ns, name string) map[int32]int32 {
	return map[string]map[int32]int32{"default/one": {80: 20000}, "default/two": {80: 20001, 8080: 20002}, "default/iso": {80: 20003}}[ns+"/"+name]
}

// TestPerGatewayIsolation: with per-Gateway listeners, two Gateways on the
// same port with catch-all routes never see each other's requests; a
// parentRef's port attaches to that listener only; a Gateway whose
// Service has not mapped its port yet serves nothing and says Pending.
func TestPerGatewayIsolation(t *testing.T) {
	data, err := os.ReadFile("testdata/per-gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := parseObjects(t, data).input()
	in.Ports = perGatewayPorts
	res := Translate(in, Options{PerGateway: true})
	for _, p := range res.Problems {
		t.Errorf("unexpected problem: %s", p)
	}
	if want := []Listener{{Port: 20000}, {Port: 20001}, {Port: 20002}, {Port: 20003}}; !slices.Equal(res.Listeners, want) {
		t.Errorf("listeners %v, want %v", res.Listeners, want)
	}
	checkRequests(t, tableOf(t, res), []request{
		{host: "a.test", path: "/", port: 20000, want: "on-one.0.0"},
		{host: "a.test", path: "/", port: 20001, want: "on-two.0.0"},
		{host: "a.test", path: "/", port: 20002, want: "on-two.0.0"},
		{host: "a.test", path: "/alt", port: 20002, want: "two-alt-only.0.0"},
		{host: "a.test", path: "/alt", port: 20001, want: "on-two.0.0"},
		{host: "a.test", path: "/alt", port: 20000, want: "on-one.0.0"},
		{host: "a.test", path: "/", port: 8080, want: ""}, // the shared listener serves no Gateway
		// Listener isolation on one port.
		{host: "abc.foo.test", path: "/abc", port: 20003, want: "iso-abc.0.0"},
		{host: "abc.foo.test", path: "/wild", port: 20003, want: "gw-isolate.default.iso.abc"},
		{host: "abc.foo.test", path: "/empty", port: 20003, want: "gw-isolate.default.iso.abc"},
		{host: "bar.foo.test", path: "/wild", port: 20003, want: "iso-wild.0.0"},
		{host: "bar.foo.test", path: "/empty", port: 20003, want: "gw-isolate.default.iso.wild"},
		{host: "other.test", path: "/empty", port: 20003, want: "iso-empty.0.0"},
		{host: "other.test", path: "/wild", port: 20003, want: ""},
	})
	three := res.Gateways["default/three"]
	if c := meta.FindStatusCondition(three.Listeners[0].Conditions, "Programmed"); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Pending" {
		t.Errorf("listener of a Gateway without its Service: Programmed %+v, want False/Pending", c)
	}
	if n := three.Listeners[0].AttachedRoutes; n != 1 {
		t.Errorf("attachedRoutes %d, want 1 (attached, served once the port is mapped)", n)
	}
}
