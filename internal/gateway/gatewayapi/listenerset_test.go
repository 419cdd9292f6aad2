package gatewayapi

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// facts renders what a conformance test can read of res as lines such as
// "listenerset ns/name Accepted=False NotAllowed" (every condition also
// without its reason, for the tests that accept any),
// "listenerset ns/name listener l attachedRoutes=3" and
// "httproute ns/name parent ListenerSet ns/name Accepted=True Accepted".
func facts(res Result) []string {
	var out []string
	add := func(prefix string, cs []metav1.Condition) {
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s %s=%s %s", prefix, c.Type, c.Status, c.Reason), fmt.Sprintf("%s %s=%s", prefix, c.Type, c.Status))
		}
	}
	for k, g := range res.Gateways {
		add("gateway "+k, g.Conditions)
		n := int32(0)
		if g.AttachedListenerSets != nil {
			n = *g.AttachedListenerSets
		}
		out = append(out, fmt.Sprintf("gateway %s attachedListenerSets=%d", k, n))
		for _, l := range g.Listeners {
			add(fmt.Sprintf("gateway %s listener %s", k, l.Name), l.Conditions)
		}
	}
	for k, s := range res.ListenerSets {
		add("listenerset "+k, s.Conditions)
		out = append(out, fmt.Sprintf("listenerset %s listeners=%d", k, len(s.Listeners)))
		for _, l := range s.Listeners {
			p := fmt.Sprintf("listenerset %s listener %s", k, l.Name)
			add(p, l.Conditions)
			out = append(out, fmt.Sprintf("%s attachedRoutes=%d", p, l.AttachedRoutes))
			for _, sk := range l.SupportedKinds {
				out = append(out, fmt.Sprintf("%s supports %s/%s", p, *sk.Group, sk.Kind))
			}
		}
	}
	for k, ps := range res.RouteParents {
		for _, p := range ps {
			kind, ns := "Gateway", ""
			if p.ParentRef.Kind != nil {
				kind = string(*p.ParentRef.Kind)
			}
			if p.ParentRef.Namespace != nil {
				ns = string(*p.ParentRef.Namespace)
			}
			add(fmt.Sprintf("httproute %s parent %s %s/%s", k, kind, ns, p.ParentRef.Name), p.Conditions)
		}
	}
	return out
}

// accepted are the listener conditions of the conformance suite's
// generateAcceptedListenerConditions, any reason.
func accepted(prefix string) []string {
	return []string{prefix + " Accepted=True", prefix + " ResolvedRefs=True", prefix + " Programmed=True"}
}

func conflicted(prefix, reason string) []string {
	return []string{prefix + " Accepted=False " + reason, prefix + " Programmed=False " + reason, prefix + " Conflicted=True " + reason}
}

// TestListenerSetConformance replays, on each conformance test's objects
// (testdata/listenerset-*.yaml), what the test asserts on status: the
// conditions with the reasons it expects, the Gateway's
// attachedListenerSets, the listeners' attachedRoutes and the routes'
// parents. Requests are TestServeListenerSetHTTPRouting's.
func TestListenerSetConformance(t *testing.T) {
	const ns = "gateway-conformance-infra"
	ls := func(name string) string { return "listenerset " + ns + "/" + name }
	gw := func(name string) string { return "gateway " + ns + "/" + name }
	join := func(parts ...[]string) []string { return slices.Concat(parts...) }
	tests := []struct {
		name string // ShortName
		file string
		want []string
		// absent are facts that must not hold.
		absent []string
	}{
		{name: "ListenerSetAllowedNamespaceNone", file: "allowed-namespace-none", want: []string{
			gw("gateway-does-not-allow-listenerset") + " Accepted=True",
			gw("gateway-does-not-allow-listenerset") + " attachedListenerSets=0",
			ls("listenerset-not-allowed") + " Accepted=False NotAllowed",
			ls("listenerset-not-allowed") + " Programmed=False NotAllowed",
		}},
		{name: "ListenerSetAllowedNamespaceSame", file: "allowed-namespace-same", want: join([]string{
			gw("gateway-allows-listenerset-in-same-namespace") + " Accepted=True",
			gw("gateway-allows-listenerset-in-same-namespace") + " attachedListenerSets=1",
			ls("listenerset-in-same-namespace") + " Accepted=True Accepted",
			ls("listenerset-in-same-namespace") + " Programmed=True Programmed",
			"listenerset gateway-api-listenerset-not-allowed-ns/listenerset-in-different-namespace Accepted=False NotAllowed",
			"listenerset gateway-api-listenerset-not-allowed-ns/listenerset-in-different-namespace Programmed=False NotAllowed",
		}, accepted(ls("listenerset-in-same-namespace")+" listener listenerset-in-same-namespace-listener"))},
		{name: "ListenerSetAllowedNamespaceSelector", file: "allowed-namespace-selector", want: join([]string{
			gw("gateway-allows-listenerset-in-selected-namespace") + " Accepted=True",
			gw("gateway-allows-listenerset-in-selected-namespace") + " attachedListenerSets=1",
			"listenerset gateway-api-listenerset-selector-allowed-ns/listenerset-in-selected-namespace Accepted=True Accepted",
			"listenerset gateway-api-listenerset-selector-allowed-ns/listenerset-in-selected-namespace Programmed=True Programmed",
			"listenerset gateway-api-listenerset-selector-not-allowed-ns/listenerset-not-in-selected-namespace Accepted=False NotAllowed",
			"listenerset gateway-api-listenerset-selector-not-allowed-ns/listenerset-not-in-selected-namespace Programmed=False NotAllowed",
		}, accepted("listenerset gateway-api-listenerset-selector-allowed-ns/listenerset-in-selected-namespace listener listenerset-in-selected-namespace-listener"))},
		{name: "ListenerSetAllowedRoutesNamespaces", file: "allowed-routes-namespaces", want: join([]string{
			gw("gateway-with-listener-sets-test-allowed-routes") + " Accepted=True",
			gw("gateway-with-listener-sets-test-allowed-routes") + " attachedListenerSets=2",
			"httproute " + ns + "/route-in-same-namespace parent ListenerSet " + ns + "/listenerset-test-allowed-routes-namespaces Accepted=True Accepted",
			"httproute gateway-api-routes-allowed-ns/route-in-selected-namespace parent ListenerSet " + ns + "/listenerset-test-allowed-routes-namespaces Accepted=True Accepted",
			"httproute gateway-api-routes-not-allowed-ns/route-not-in-selected-namespace parent ListenerSet " + ns + "/listenerset-test-allowed-routes-namespaces Accepted=True Accepted",
			ls("listenerset-test-allowed-routes-namespaces") + " listeners=3",
			ls("listenerset-test-allowed-routes-namespaces") + " listener listener-set-listener-allowed-routes-all attachedRoutes=3",
			ls("listenerset-test-allowed-routes-namespaces") + " listener listener-set-listener-allowed-routes-all supports gateway.networking.k8s.io/HTTPRoute",
			ls("listenerset-test-allowed-routes-namespaces") + " listener listener-set-listener-allowed-routes-same attachedRoutes=1",
			ls("listenerset-test-allowed-routes-namespaces") + " listener listener-set-listener-allowed-routes-selector attachedRoutes=1",
			"httproute gateway-api-ls-cross-ns/route-in-listenerset-namespace parent ListenerSet gateway-api-ls-cross-ns/listenerset-test-allowed-routes-cross-ns Accepted=True Accepted",
			"httproute " + ns + "/route-in-gateway-namespace parent ListenerSet gateway-api-ls-cross-ns/listenerset-test-allowed-routes-cross-ns Accepted=False NotAllowedByListeners",
			"listenerset gateway-api-ls-cross-ns/listenerset-test-allowed-routes-cross-ns listeners=1",
			"listenerset gateway-api-ls-cross-ns/listenerset-test-allowed-routes-cross-ns listener listener-set-listener-allowed-routes-cross-ns-same attachedRoutes=1",
		}, accepted(ls("listenerset-test-allowed-routes-namespaces")+" listener listener-set-listener-allowed-routes-all"),
			accepted(ls("listenerset-test-allowed-routes-namespaces")+" listener listener-set-listener-allowed-routes-same"),
			accepted(ls("listenerset-test-allowed-routes-namespaces")+" listener listener-set-listener-allowed-routes-selector"),
			accepted("listenerset gateway-api-ls-cross-ns/listenerset-test-allowed-routes-cross-ns listener listener-set-listener-allowed-routes-cross-ns-same"))},
		{name: "ListenerSetDefaultNotAllowed", file: "default-not-allowed", want: []string{
			gw("gateway-default-does-not-allow-listenerset") + " Accepted=True",
			gw("gateway-default-does-not-allow-listenerset") + " attachedListenerSets=0",
			ls("listenerset-default-not-allowed") + " Accepted=False NotAllowed",
			ls("listenerset-default-not-allowed") + " Programmed=False NotAllowed",
		}},
		{name: "ListenerSetDualParentRefIndependence", file: "dual-parentref-independence", want: join([]string{
			gw("gateway-dual-parentref") + " Accepted=True",
			gw("gateway-dual-parentref") + " attachedListenerSets=1",
			ls("ls-dual-parentref") + " listeners=1",
			ls("ls-dual-parentref") + " listener ls-dual-parentref-listener attachedRoutes=2",
			"httproute " + ns + "/route-dual-parentref-both parent Gateway " + ns + "/gateway-dual-parentref Accepted=True",
			"httproute " + ns + "/route-dual-parentref-both parent ListenerSet " + ns + "/ls-dual-parentref Accepted=True",
			"httproute " + ns + "/route-dual-parentref-one parent Gateway " + ns + "/gateway-dual-parentref Accepted=False NoMatchingParent",
			"httproute " + ns + "/route-dual-parentref-one parent ListenerSet " + ns + "/ls-dual-parentref Accepted=True Accepted",
		}, accepted(ls("ls-dual-parentref")+" listener ls-dual-parentref-listener"))},
		{name: "ListenerSetGatewayParentSectionNameNotFound", file: "gateway-parent-section-name-not-found", want: join([]string{
			gw("gateway-section-name") + " Accepted=True",
			gw("gateway-section-name") + " attachedListenerSets=1",
			"httproute " + ns + "/route-via-listenerset parent ListenerSet " + ns + "/listenerset-section-name Accepted=True Accepted",
			"httproute " + ns + "/route-via-gateway parent Gateway " + ns + "/gateway-section-name Accepted=False NoMatchingParent",
		}, accepted(ls("listenerset-section-name")+" listener ls-only-listener"))},
		{name: "ListenerSetHostnameConflict", file: "hostname-conflict", want: join([]string{
			gw("gateway-with-listenerset-hostname-conflict") + " Accepted=True",
			gw("gateway-with-listenerset-hostname-conflict") + " attachedListenerSets=2",
			ls("listenerset-with-hostname-conflict-with-gateway-1") + " Accepted=True",
			ls("listenerset-with-hostname-conflict-with-gateway-1") + " Programmed=True Programmed",
			ls("listenerset-with-hostname-conflict-with-gateway-2") + " Accepted=False ListenersNotValid",
			ls("listenerset-with-hostname-conflict-with-gateway-2") + " Programmed=False ListenersNotValid",
			ls("listenerset-with-hostname-conflict-with-listener-set-1") + " Accepted=True",
			ls("listenerset-with-hostname-conflict-with-listener-set-1") + " Programmed=True Programmed",
			ls("listenerset-with-hostname-conflict-with-listener-set-2") + " Accepted=False ListenersNotValid",
			ls("listenerset-with-hostname-conflict-with-listener-set-2") + " Programmed=False ListenersNotValid",
		}, accepted(gw("gateway-with-listenerset-hostname-conflict")+" listener gateway-listener"),
			accepted(gw("gateway-with-listenerset-hostname-conflict")+" listener hostname-conflict-with-gateway-listener"),
			accepted(ls("listenerset-with-hostname-conflict-with-gateway-1")+" listener listener-set-1-listener"),
			conflicted(ls("listenerset-with-hostname-conflict-with-gateway-1")+" listener hostname-conflict-with-gateway-listener", "HostnameConflict"),
			accepted(ls("listenerset-with-hostname-conflict-with-gateway-1")+" listener hostname-conflict-with-listener-set-listener"),
			conflicted(ls("listenerset-with-hostname-conflict-with-gateway-2")+" listener hostname-conflict-with-gateway-listener", "HostnameConflict"),
			accepted(ls("listenerset-with-hostname-conflict-with-listener-set-1")+" listener listener-set-2-listener"),
			conflicted(ls("listenerset-with-hostname-conflict-with-listener-set-1")+" listener hostname-conflict-with-listener-set-listener", "HostnameConflict"),
			conflicted(ls("listenerset-with-hostname-conflict-with-listener-set-2")+" listener hostname-conflict-with-listener-set-listener", "HostnameConflict")),
			absent: []string{gw("gateway-with-listenerset-hostname-conflict") + " listener hostname-conflict-with-gateway-listener Conflicted=True"}},
		{name: "ListenerSetHTTPRouting", file: "http-routing", want: join([]string{
			gw("gateway-with-listener-sets-http-routing") + " Accepted=True",
			gw("gateway-with-listener-sets-http-routing") + " attachedListenerSets=2",
			"httproute " + ns + "/attaches-to-all-listeners parent Gateway " + ns + "/gateway-with-listener-sets-http-routing Accepted=True Accepted",
			"httproute " + ns + "/gateway-route parent Gateway " + ns + "/gateway-with-listener-sets-http-routing Accepted=True Accepted",
			"httproute " + ns + "/gateway-section-route parent Gateway " + ns + "/gateway-with-listener-sets-http-routing Accepted=True Accepted",
			"httproute " + ns + "/attaches-to-all-listeners parent ListenerSet " + ns + "/listener-set-http-routing-1 Accepted=True Accepted",
			"httproute " + ns + "/listener-set-http-routing-1-route parent ListenerSet " + ns + "/listener-set-http-routing-1 Accepted=True Accepted",
			"httproute " + ns + "/listener-set-http-routing-1-section-route parent ListenerSet " + ns + "/listener-set-http-routing-1 Accepted=True Accepted",
			"httproute " + ns + "/attaches-to-all-listeners parent ListenerSet " + ns + "/listener-set-http-routing-2 Accepted=True Accepted",
			"httproute " + ns + "/listener-set-http-routing-2-route parent ListenerSet " + ns + "/listener-set-http-routing-2 Accepted=True Accepted",
			ls("listener-set-http-routing-1") + " listeners=2",
			ls("listener-set-http-routing-1") + " listener listener-set-http-routing-1-listener-1 attachedRoutes=3",
			ls("listener-set-http-routing-1") + " listener listener-set-http-routing-1-listener-2 attachedRoutes=2",
			ls("listener-set-http-routing-2") + " listeners=2",
			ls("listener-set-http-routing-2") + " listener listener-set-http-routing-2-listener-1 attachedRoutes=2",
			ls("listener-set-http-routing-2") + " listener listener-set-http-routing-2-listener-2 attachedRoutes=2",
		}, accepted(gw("gateway-with-listener-sets-http-routing")+" listener gateway-listener-1"),
			accepted(ls("listener-set-http-routing-1")+" listener listener-set-http-routing-1-listener-1"),
			accepted(ls("listener-set-http-routing-1")+" listener listener-set-http-routing-1-listener-2"),
			accepted(ls("listener-set-http-routing-2")+" listener listener-set-http-routing-2-listener-1"),
			accepted(ls("listener-set-http-routing-2")+" listener listener-set-http-routing-2-listener-2"))},
		{name: "ListenerSetProtocolConflict", file: "protocol-conflict", want: join([]string{
			gw("gateway-with-listenerset-protocol-conflict") + " Accepted=True",
			gw("gateway-with-listenerset-protocol-conflict") + " attachedListenerSets=2",
			ls("listenerset-with-protocol-conflict-with-gateway-1") + " Accepted=True",
			ls("listenerset-with-protocol-conflict-with-gateway-1") + " Programmed=True Programmed",
			ls("listenerset-with-protocol-conflict-with-gateway-2") + " Accepted=False ListenersNotValid",
			ls("listenerset-with-protocol-conflict-with-gateway-2") + " Programmed=False ListenersNotValid",
			ls("listenerset-with-protocol-conflict-with-listener-set-1") + " Accepted=True",
			ls("listenerset-with-protocol-conflict-with-listener-set-1") + " Programmed=True Programmed",
			ls("listenerset-with-protocol-conflict-with-listener-set-2") + " Accepted=False ListenersNotValid",
			ls("listenerset-with-protocol-conflict-with-listener-set-2") + " Programmed=False ListenersNotValid",
		}, accepted(gw("gateway-with-listenerset-protocol-conflict")+" listener gateway-listener"),
			accepted(gw("gateway-with-listenerset-protocol-conflict")+" listener protocol-conflict-with-gateway-listener"),
			accepted(ls("listenerset-with-protocol-conflict-with-gateway-1")+" listener listener-set-1-listener"),
			conflicted(ls("listenerset-with-protocol-conflict-with-gateway-1")+" listener protocol-conflict-with-gateway-listener", "ProtocolConflict"),
			accepted(ls("listenerset-with-protocol-conflict-with-gateway-1")+" listener protocol-conflict-with-listener-set-listener"),
			conflicted(ls("listenerset-with-protocol-conflict-with-gateway-2")+" listener protocol-conflict-with-gateway-listener", "ProtocolConflict"),
			accepted(ls("listenerset-with-protocol-conflict-with-listener-set-1")+" listener listener-set-2-listener"),
			conflicted(ls("listenerset-with-protocol-conflict-with-listener-set-1")+" listener protocol-conflict-with-listener-set-listener", "ProtocolConflict"),
			conflicted(ls("listenerset-with-protocol-conflict-with-listener-set-2")+" listener protocol-conflict-with-listener-set-listener", "ProtocolConflict"))},
		{name: "ListenerSetReferenceGrant", file: "reference-grant", want: []string{
			gw("gateway-with-listener-sets-test-reference-grant") + " Accepted=True",
			ls("listenerset-with-reference-grant") + " Accepted=True",
			ls("listenerset-with-reference-grant") + " Programmed=True",
			ls("listenerset-with-reference-grant") + " listener listenerset-with-reference-grant-listener ResolvedRefs=True",
			"listenerset gateway-api-listener-sets-test-reference-grant-ns/listenerset-without-reference-grant Accepted=False ListenersNotValid",
			"listenerset gateway-api-listener-sets-test-reference-grant-ns/listenerset-without-reference-grant Programmed=False ListenersNotValid",
			"listenerset gateway-api-listener-sets-test-reference-grant-ns/listenerset-without-reference-grant listener listenerset-without-reference-grant-listener ResolvedRefs=False RefNotPermitted",
		}},
		{name: "ListenerSetRouteStatusScopedToParentRef", file: "route-status-scoped-to-parentref", want: join([]string{
			gw("gateway-parentref") + " Accepted=True",
			gw("gateway-parentref") + " attachedListenerSets=1",
			ls("listenerset-parentref") + " listeners=1",
			ls("listenerset-parentref") + " listener listenerset-parentref-listener attachedRoutes=1",
			"httproute " + ns + "/route-parentref-gwonly parent Gateway " + ns + "/gateway-parentref Accepted=True",
			"httproute " + ns + "/route-parentref-lsonly parent ListenerSet " + ns + "/listenerset-parentref Accepted=True Accepted",
		}, accepted(ls("listenerset-parentref")+" listener listenerset-parentref-listener")),
			absent: []string{
				"httproute " + ns + "/route-parentref-gwonly parent ListenerSet " + ns + "/listenerset-parentref Accepted=True",
				"httproute " + ns + "/route-parentref-lsonly parent Gateway " + ns + "/gateway-parentref Accepted=True",
			}},
	}
	for _, tc := range tests {
		for _, perGateway := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/perGateway=%v", tc.name, perGateway), func(t *testing.T) {
				data, err := os.ReadFile("testdata/listenerset-" + tc.file + ".yaml")
				if err != nil {
					t.Fatal(err)
				}
				in := parseObjects(t, data).input()
				if perGateway {
					// Every Gateway's Service maps the ports its listeners
					// and its ListenerSets' need.
					in.Ports = func(string, string) map[int32]int32 { return map[int32]int32{80: 20000, 443: 20001} }
				}
				got := facts(Translate(in, Options{PerGateway: perGateway}))
				for _, w := range tc.want {
					if !slices.Contains(got, w) {
						t.Errorf("missing %q", w)
					}
				}
				for _, a := range tc.absent {
					if slices.Contains(got, a) {
						t.Errorf("unexpected %q", a)
					}
				}
				if t.Failed() {
					slices.Sort(got)
					t.Logf("got:\n%s", strings.Join(got, "\n"))
				}
			})
		}
	}
}

// TestServeListenerSetHTTPRouting sends ListenerSetHTTPRouting's requests
// through a real gateway serving the translation of its objects: each
// host reaches the routes of its own listener only.
func TestServeListenerSetHTTPRouting(t *testing.T) {
	data, err := os.ReadFile("testdata/listenerset-http-routing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v1, v2, v3 := newEcho(t, "infra-backend-v1"), newEcho(t, "infra-backend-v2"), newEcho(t, "infra-backend-v3")
	srv := serve(t, string(data), v1, v2, v3)
	gw1, gw2 := "gateway-listener-1.com", "gateway-listener-2.com"
	ls11, ls12 := "listener-set-http-routing-1-listener-1.com", "listener-set-http-routing-1-listener-2.com"
	ls21, ls22 := "listener-set-http-routing-2-listener-1.com", "listener-set-http-routing-2-listener-2.com"
	all := []string{gw1, gw2, ls11, ls12, ls21, ls22}
	// want is, by path, the backend each host reaches ("" a 404); the
	// conformance test's 36 cases.
	want := map[string]map[string]string{
		"/route":                                     {gw1: "infra-backend-v1", gw2: "infra-backend-v1", ls11: "infra-backend-v1", ls12: "infra-backend-v1", ls21: "infra-backend-v1", ls22: "infra-backend-v1"},
		"/gateway-route":                             {gw1: "infra-backend-v2", gw2: "infra-backend-v2"},
		"/gateway-section-route":                     {gw1: "infra-backend-v3"},
		"/listener-set-http-routing-1-route":         {ls11: "infra-backend-v2", ls12: "infra-backend-v2"},
		"/listener-set-http-routing-1-section-route": {ls11: "infra-backend-v3"},
		"/listener-set-http-routing-2-route":         {ls21: "infra-backend-v2", ls22: "infra-backend-v2"},
	}
	for path, byHost := range want {
		for _, host := range all {
			req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("GET %s%s: %v", host, path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch w := byHost[host]; {
			case w == "" && resp.StatusCode != http.StatusNotFound:
				t.Errorf("GET %s%s = %d %q, want 404", host, path, resp.StatusCode, body)
			case w != "" && (resp.StatusCode != http.StatusOK || string(body) != w):
				t.Errorf("GET %s%s = %d %q, want 200 %q", host, path, resp.StatusCode, body, w)
			}
		}
	}
}

// FuzzListenerSet: whatever a ListenerSet says (the API server's
// validation aside), Translate never panics, emits a config that validates
// and compiles (isolation routes included, whatever the listener names),
// and gives the ListenerSet both conditions and no programmed listener
// that is conflicted or not accepted.
func FuzzListenerSet(f *testing.F) {
	files, _ := filepath.Glob("testdata/*listenerset*.yaml")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		for _, s := range parseObjects(f, data).sets {
			s.Spec.ParentRef = gwv1.ParentGatewayReference{Name: "gw"}
			b, _ := sigsyaml.Marshal(s.Spec)
			f.Add(string(b), false)
		}
	}
	f.Add(`{parentRef: {name: gw}, listeners: [{name: http, port: 80, protocol: HTTP}, {name: http, port: 80, protocol: HTTPS}]}`, true)
	f.Add(`{parentRef: {name: gw}, listeners: [{name: "", port: 0, protocol: "", hostname: "*"}]}`, true)
	f.Add(`{parentRef: {name: gw}, listeners: [{name: a, port: 80, protocol: HTTP, hostname: "*.gw.test"}, {name: b, port: 80, protocol: HTTP, hostname: "x.gw.test"}]}`, true)
	const base = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flotilla}
spec: {controllerName: flotilla.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: flotilla
  listeners: [{name: http, port: 80, protocol: HTTP}, {name: named, port: 80, protocol: HTTP, hostname: gw.test}]
  allowedListeners: {namespaces: {from: All}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-set}
spec:
  parentRefs: [{kind: ListenerSet, name: fuzz}, {name: gw}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`
	objs := parseObjects(f, []byte(base))
	f.Fuzz(func(t *testing.T, spec string, perGateway bool) {
		var s gwv1.ListenerSetSpec
		if err := sigsyaml.Unmarshal([]byte(spec), &s); err != nil {
			return
		}
		in := objs.input()
		in.ListenerSets = []*gwv1.ListenerSet{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fuzz"}, Spec: s}}
		if perGateway {
			in.Ports = func(string, string) map[int32]int32 { return map[int32]int32{80: 20000, 443: 20001, 8080: 20002} }
		}
		res := Translate(in, Options{PerGateway: perGateway})
		if st, ok := res.ListenerSets["default/fuzz"]; ok {
			for _, typ := range []string{"Accepted", "Programmed"} {
				if meta.FindStatusCondition(st.Conditions, typ) == nil {
					t.Fatalf("no %s condition: %+v", typ, st.Conditions)
				}
			}
			for _, l := range st.Listeners {
				if meta.IsStatusConditionTrue(l.Conditions, "Programmed") && (meta.IsStatusConditionTrue(l.Conditions, "Conflicted") || !meta.IsStatusConditionTrue(l.Conditions, "Accepted")) {
					t.Fatalf("listener %s programmed though conflicted or not accepted: %+v", l.Name, l.Conditions)
				}
			}
		}
		c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Backends: res.Backends, Routes: res.Routes}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("emitted an invalid config: %v\nspec: %s", err, spec)
		}
		if _, err := route.CompileWith(c, route.Options{Policies: func(*config.Route) ([]route.Filter, error) { return nil, nil }}); err != nil {
			t.Fatalf("emitted a config that does not compile: %v", err)
		}
	})
}

// TestListenerSetCertificateGrant: a ListenerSet's certificateRefs to
// another namespace need a ReferenceGrant from kind ListenerSet of its
// own namespace; one from its Gateway's kind, or for another namespace,
// does not count.
func TestListenerSetCertificateGrant(t *testing.T) {
	data, err := os.ReadFile("testdata/listenerset-reference-grant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const lsKey = "gateway-conformance-infra/listenerset-with-reference-grant"
	tests := []struct {
		name  string
		from  string // the grant's from: kind and namespace ("" no grant)
		ns    string
		want  string
		files int // Secret files loaded
	}{
		{name: "grant from ListenerSet", from: "ListenerSet", ns: "gateway-conformance-infra", want: "True/ResolvedRefs", files: 2},
		{name: "grant from Gateway only", from: "Gateway", ns: "gateway-conformance-infra", want: "False/RefNotPermitted", files: 2},
		{name: "grant for another namespace", from: "ListenerSet", ns: "elsewhere", want: "False/RefNotPermitted"},
		{name: "no grant at all", want: "False/RefNotPermitted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := parseObjects(t, data)
			o.grants = nil
			if tc.from != "" {
				g := parseObjects(t, []byte(fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: g, namespace: gateway-conformance-web-backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: %s, namespace: %s}]
  to: [{group: "", kind: Secret}]
`, tc.from, tc.ns))).grants
				o.grants = g
			}
			res := Translate(o.input(), Options{})
			st := res.ListenerSets[lsKey]
			if len(st.Listeners) != 1 {
				t.Fatalf("listeners %+v", st.Listeners)
			}
			c := meta.FindStatusCondition(st.Listeners[0].Conditions, "ResolvedRefs")
			if got := string(c.Status) + "/" + c.Reason; got != tc.want {
				t.Errorf("ResolvedRefs = %s (%s), want %s", got, c.Message, tc.want)
			}
			// The Secret is loaded only for a listener allowed to use it
			// (the ListenerSet's, or the Gateway's with the Gateway grant).
			if len(res.Files) != tc.files {
				t.Errorf("files %d, want %d", len(res.Files), tc.files)
			}
		})
	}
}
