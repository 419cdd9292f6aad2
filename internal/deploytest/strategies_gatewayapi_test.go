package deploytest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	gwconfig "github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// gatewayAPIStrategies are the Gateway API variants of the strategies
// (deploy/kubernetes/strategies/gateway-api/<name>) and the version each
// demo Service answers as.
var gatewayAPIStrategies = map[string]map[string]string{
	"recreate":   {"demo": "v1"},
	"ramped":     {"demo": "v1"},
	"blue-green": {"demo-blue": "v1", "demo-green": "v2"},
	"canary":     {"demo-stable": "v1", "demo-canary": "v2"},
	"ab-testing": {"demo-a": "v1", "demo-b": "v2"},
	"shadow":     {"demo-primary": "v1", "demo-shadow": "v2"},
}

// variant is a rendered Gateway API variant running in the real gateway:
// the rendered ConfigMap's routes file, plus the translation of the
// rendered Gateway API objects installed as the controller installs it
// (SetExtraPart), every backend an upstream answering as its Service's
// version.
type variant struct {
	objs  []object
	gw    *gateway.Gateway
	ups   map[string]*upstream // by Service name
	addrs map[string]string    // the upstreams' host:port, by Service name
}

func runVariant(t *testing.T, name string) *variant {
	t.Helper()
	versions, ok := gatewayAPIStrategies[name]
	if !ok {
		t.Fatalf("no variant %s", name)
	}
	v := &variant{objs: renderKustomize(t, filepath.Join(kustomizeRoot, "strategies", "gateway-api", name)), ups: map[string]*upstream{}, addrs: map[string]string{}}
	cm := find[*corev1.ConfigMap](v.objs, "ConfigMap", "flotilla-"+name, "gateway")
	if cm == nil {
		t.Fatal("no ConfigMap gateway")
	}
	gw, _ := realGatewayData(t, name, []byte(cm.Data["gateway.yaml"]), nil)
	v.gw = gw
	for svc, ver := range versions {
		u := &upstream{version: ver}
		srv := httptest.NewServer(u)
		t.Cleanup(srv.Close)
		v.ups[svc] = u
		v.addrs[svc] = strings.TrimPrefix(srv.URL, "http://")
	}
	v.apply(t)
	return v
}

// apply translates the variant's objects (as edited) and installs the
// result, as the controller does after every change.
func (v *variant) apply(t *testing.T) {
	t.Helper()
	res := translateRender(v.objs, "flotilla")
	if len(res.Problems) > 0 {
		t.Fatalf("translation problems: %v", res.Problems)
	}
	for i, b := range res.Backends {
		addr, ok := v.addrs[b.Kubernetes.Service]
		if !ok {
			t.Fatalf("backend %s: Service %s has no upstream in the test", b.Name, b.Kubernetes.Service)
		}
		res.Backends[i].Kubernetes = nil
		res.Backends[i].Addresses = []string{addr}
	}
	if err := v.gw.SetExtraPart("gatewayapi", &gateway.Extra{Backends: res.Backends, Routes: res.Routes}); err != nil {
		t.Fatal(err)
	}
}

// route returns the variant's HTTPRoute demo, to edit as kubectl patch does.
func (v *variant) route(t *testing.T, name string) *gwv1.HTTPRoute {
	t.Helper()
	r := find[*gwv1.HTTPRoute](v.objs, "HTTPRoute", "flotilla-"+name, "demo")
	if r == nil {
		t.Fatal("no HTTPRoute demo")
	}
	return r
}

// TestGatewayAPIStrategies runs the real gateway on each Gateway API
// variant as the controller translates it, and checks what the README
// promises: the same split as the file-config overlay's, per request.
func TestGatewayAPIStrategies(t *testing.T) {
	t.Run("recreate and ramped: one backend", func(t *testing.T) {
		for _, s := range []string{"recreate", "ramped"} {
			v := runVariant(t, s)
			if got := send(t, v.gw, 20, nil); got["v1"] != 20 {
				t.Errorf("%s: versions %v, want v1 only", s, got)
			}
		}
	})
	t.Run("blue-green: all to blue until the HTTPRoute is patched", func(t *testing.T) {
		v := runVariant(t, "blue-green")
		if got := send(t, v.gw, 50, nil); got["v1"] != 50 {
			t.Errorf("before the flip: versions %v, want v1 only", got)
		}
		// The README's kubectl patch of the weights.
		refs := v.route(t, "blue-green").Spec.Rules[0].BackendRefs
		*refs[0].Weight, *refs[1].Weight = 0, 100
		v.apply(t)
		if got := send(t, v.gw, 50, nil); got["v2"] != 50 {
			t.Errorf("after the flip: versions %v, want v2 only", got)
		}
	})
	t.Run("canary: 10 percent, then the promotion steps", func(t *testing.T) {
		v := runVariant(t, "canary")
		refs := v.route(t, "canary").Spec.Rules[0].BackendRefs
		for _, step := range []struct{ stable, canary int32 }{{90, 10}, {50, 50}, {0, 100}} {
			*refs[0].Weight, *refs[1].Weight = step.stable, step.canary
			v.apply(t)
			const n = 2000
			got := send(t, v.gw, n, nil)
			// ± 2.5 points, the README's tolerance; the seeded random
			// makes it exact from run to run anyway.
			want := float64(step.canary) / 100
			if share := float64(got["v2"]) / n; share < want-0.025 || share > want+0.025 {
				t.Errorf("weights %d/%d: canary share %.3f (%v), want %.2f ± 0.025", step.stable, step.canary, share, got, want)
			}
		}
	})
	t.Run("ab-testing: header and cookie reach b", func(t *testing.T) {
		v := runVariant(t, "ab-testing")
		for _, tt := range []struct {
			name string
			prep func(*http.Request)
			want string
		}{
			{"nothing", nil, "v1"},
			{"header", func(r *http.Request) { r.Header.Set("X-Variant", "b") }, "v2"},
			{"other header value", func(r *http.Request) { r.Header.Set("X-Variant", "a") }, "v1"},
			{"cookie", func(r *http.Request) { r.Header.Set("Cookie", "variant=b") }, "v2"},
			{"cookie among others", func(r *http.Request) { r.Header.Set("Cookie", "session=1; variant=b; theme=dark") }, "v2"},
			{"cookie last", func(r *http.Request) { r.Header.Set("Cookie", "session=1;variant=b") }, "v2"},
			{"other cookie", func(r *http.Request) { r.Header.Set("Cookie", "variant=c; b=variant") }, "v1"},
			{"longer value", func(r *http.Request) { r.Header.Set("Cookie", "variant=bb") }, "v1"},
			{"longer name", func(r *http.Request) { r.Header.Set("Cookie", "xvariant=b") }, "v1"},
			{"value in another cookie", func(r *http.Request) { r.Header.Set("Cookie", "note=variant=b") }, "v1"},
		} {
			if got := send(t, v.gw, 20, tt.prep); got[tt.want] != 20 {
				t.Errorf("%s: versions %v, want %s only", tt.name, got, tt.want)
			}
		}
	})
	t.Run("shadow: answers from the primary, copies to the shadow", func(t *testing.T) {
		v := runVariant(t, "shadow")
		for i := 1; i <= 30; i++ {
			if got := send(t, v.gw, 1, nil); got["v1"] != 1 {
				t.Fatalf("request %d: versions %v, want v1", i, got)
			}
			// Copies go out in the background: wait for each, within a
			// bound far above what a local request takes.
			deadline := time.Now().Add(10 * time.Second)
			for v.ups["demo-shadow"].hits() < i && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := v.ups["demo-shadow"].hits(); got != i {
				t.Fatalf("after %d requests the shadow got %d copies", i, got)
			}
		}
		if got := v.ups["demo-primary"].hits(); got != 30 {
			t.Errorf("primary got %d requests, want 30", got)
		}
	})
}

// TestGatewayAPIStrategiesExposeOnlyPublicEndpoints: as
// TestShippedRoutesExposeOnlyPublicEndpoints for the file-config
// overlays, the probes, metrics and control endpoints answer 404 from the
// gateway (with any method, with A/B's header or cookie too), other
// methods than GET and HEAD never reach a backend, and the public paths
// work, with the variant's HTTPRoute next to the routes file.
func TestGatewayAPIStrategiesExposeOnlyPublicEndpoints(t *testing.T) {
	for name := range gatewayAPIStrategies {
		t.Run(name, func(t *testing.T) {
			v := runVariant(t, name)
			leaked := func() int {
				n := 0
				for _, u := range v.ups {
					n += u.markedHits()
				}
				return n
			}
			do := func(method, path string, prep func(*http.Request)) int {
				r := httptest.NewRequest(method, "http://gateway"+path, nil)
				r.Header.Set(markHeader, "1")
				if prep != nil {
					prep(r)
				}
				w := httptest.NewRecorder()
				v.gw.ServeHTTP(w, r)
				return w.Code
			}
			preps := map[string]func(*http.Request){
				"plain":  nil,
				"header": func(r *http.Request) { r.Header.Set("X-Variant", "b") },
				"cookie": func(r *http.Request) { r.Header.Set("Cookie", "variant=b") },
			}
			for _, p := range privatePaths {
				for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut} {
					for pn, prep := range preps {
						before := leaked()
						if code := do(m, p, prep); code != http.StatusNotFound || leaked() != before {
							t.Errorf("%s %s (%s) = %d, reached a backend: %v; want 404 from the gateway", m, p, pn, code, leaked() != before)
						}
					}
				}
			}
			for _, p := range []string{"/", "/echo", "/ping", "/x"} {
				for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "TRACE"} {
					before := leaked()
					if code := do(m, p, nil); (code != http.StatusNotFound && code != http.StatusMethodNotAllowed) || leaked() != before {
						t.Errorf("%s %s = %d, reached a backend: %v; want 404 or 405 from the gateway", m, p, code, leaked() != before)
					}
				}
			}
			// Last: a shadow's copies of these arrive in the background.
			for _, p := range []string{"/", "/echo", "/ping", "/x"} {
				for _, m := range []string{http.MethodGet, http.MethodHead} {
					before := leaked()
					if code := do(m, p, nil); code != http.StatusOK || leaked() <= before {
						t.Errorf("%s %s = %d, want 200 from a backend", m, p, code)
					}
				}
			}
		})
	}
}

// TestGatewayAPIVariantChecksCatch breaks a variant's render one way at a
// time: validate names the problem, so the checks that pass on the real
// variants can fail.
func TestGatewayAPIVariantChecksCatch(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(objs []object)
		want   string
	}{
		{"a backendRef to a port the Service lacks", func(objs []object) {
			r := find[*gwv1.HTTPRoute](objs, "HTTPRoute", "flotilla-canary", "demo")
			p := gwv1.PortNumber(9999)
			r.Spec.Rules[0].BackendRefs[1].Port = &p
		}, "ResolvedRefs is False"},
		{"a backendRef to a Service the render lacks", func(objs []object) {
			r := find[*gwv1.HTTPRoute](objs, "HTTPRoute", "flotilla-canary", "demo")
			r.Spec.Rules[0].BackendRefs[0].Name = "demo-stabel"
		}, "Service flotilla-canary/demo-stabel not found"},
		{"a parentRef to a Gateway the render lacks", func(objs []object) {
			r := find[*gwv1.HTTPRoute](objs, "HTTPRoute", "flotilla-canary", "demo")
			r.Spec.ParentRefs[0].Name = "egde"
		}, "attaches to no Gateway"},
		{"no gateway serving the class", func(objs []object) {
			for _, w := range workloads(objs) {
				c := &w.spec.Containers[0]
				for i, a := range c.Args {
					if strings.HasPrefix(a, "--gateway-class=") {
						c.Args[i] = "--gateway-class=other"
					}
				}
			}
		}, "no gateway of the render serves it"},
		{"a filter the gateway cannot honour", func(objs []object) {
			r := find[*gwv1.HTTPRoute](objs, "HTTPRoute", "flotilla-canary", "demo")
			r.Spec.Rules[0].Filters = append(r.Spec.Rules[0].Filters, gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef,
				ExtensionRef: &gwv1.LocalObjectReference{Group: "example.com", Kind: "Thing", Name: "x"}})
		}, "Gateway API translation: Warning"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := renderKustomize(t, filepath.Join(kustomizeRoot, "strategies", "gateway-api", "canary"))
			if errs := validate(objs); len(errs) > 0 {
				t.Fatalf("the variant itself: %v", errs)
			}
			tt.mutate(objs)
			errs := validate(objs)
			found := false
			for _, err := range errs {
				found = found || strings.Contains(err.Error(), tt.want)
			}
			if !found {
				t.Errorf("validate = %v, want a problem saying %q", errs, tt.want)
			}
		})
	}
}

// httprouteRef is an HTTPRoute a kubectl command names.
var httprouteRef = regexp.MustCompile(`httproute ([a-z0-9-]+)`)

// TestGatewayAPIStrategiesREADME: the commands of each strategy's section
// of strategies/gateway-api/README.md name objects of that variant's
// render (HTTPRoutes included), and its URLs use the variant's NodePorts.
func TestGatewayAPIStrategiesREADME(t *testing.T) {
	const doc = "../../deploy/kubernetes/strategies/gateway-api/README.md"
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(data), "\n## ")[1:] {
		title, body, _ := strings.Cut(part, "\n")
		sections[title] = body
	}
	for title, name := range map[string]string{"Recreate": "recreate", "Ramped": "ramped", "Blue/green": "blue-green", "Canary": "canary", "A/B testing": "ab-testing", "Shadow": "shadow"} {
		t.Run(name, func(t *testing.T) {
			body, ok := sections[title]
			if !ok {
				t.Fatalf("%s: no section %q", doc, title)
			}
			if !strings.Contains(body, "apply -k deploy/kubernetes/strategies/gateway-api/"+name+"\n") {
				t.Errorf("%s: section %q does not apply the variant %s", doc, title, name)
			}
			objs := renderKustomize(t, filepath.Join(kustomizeRoot, "strategies", "gateway-api", name))
			for _, err := range checkCommands(doc+" "+title, body, objs, "flotilla-"+name, nodePorts(objs)) {
				t.Error(err)
			}
			for _, m := range kubectlLine.FindAllStringSubmatch(body, -1) {
				for _, r := range httprouteRef.FindAllStringSubmatch(m[2], -1) {
					if find[*gwv1.HTTPRoute](objs, "HTTPRoute", m[1], r[1]) == nil {
						t.Errorf("%s: %q: no HTTPRoute %s/%s", doc, m[0], m[1], r[1])
					}
				}
			}
		})
	}
}

// installHTTPRoutes translates the Gateway API objects of a render (the
// class of its GatewayClass of ours) and installs the result in gw as the
// controller does, each translated backend an upstream answering as its
// Service's name, added to ups by backend name. A render without
// HTTPRoutes changes nothing.
func installHTTPRoutes(t *testing.T, gw *gateway.Gateway, objs []object, ups map[string]*upstream) {
	t.Helper()
	class := ""
	for _, o := range objs {
		if c, ok := o.Obj.(*gwv1.GatewayClass); ok {
			class = c.Name
		}
	}
	if class == "" {
		return
	}
	res := translateRender(objs, class)
	if len(res.Problems) > 0 {
		t.Fatalf("translation problems: %v", res.Problems)
	}
	for i, b := range res.Backends {
		u := &upstream{version: b.Kubernetes.Service}
		srv := httptest.NewServer(u)
		t.Cleanup(srv.Close)
		res.Backends[i].Kubernetes = nil
		res.Backends[i].Addresses = []string{strings.TrimPrefix(srv.URL, "http://")}
		ups[b.Name] = u
	}
	if err := gw.SetExtraPart("gatewayapi", &gateway.Extra{Backends: res.Backends, Routes: res.Routes}); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayAPIStrategyOverlays: each variant is its strategy's overlay
// (the same namespace, demo Deployments with their versions and replicas,
// and NodePorts 30081 and 30881, as TestStrategyOverlays pins them) with the
// gateway serving the class flotilla, a Gateway edge, an HTTPRoute demo,
// and a routes file that routes nothing to the demo itself (every answer
// of the demo comes through the HTTPRoute).
func TestGatewayAPIStrategyOverlays(t *testing.T) {
	for name := range gatewayAPIStrategies {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := "flotilla-" + name
			base := renderKustomize(t, filepath.Join(kustomizeRoot, "strategies", name))
			objs := renderKustomize(t, filepath.Join(kustomizeRoot, "strategies", "gateway-api", name))
			demos := func(objs []object) map[string]string {
				out := map[string]string{}
				for _, w := range workloads(objs) {
					if w.labels["app.kubernetes.io/name"] == "demo" {
						d := w.obj.Obj.(*appsv1.Deployment)
						out[w.obj.Namespace+"/"+w.obj.Name] = fmt.Sprintf("%s x%d %s", w.spec.Containers[0].Image, ptrOr(d.Spec.Replicas, 1), d.Spec.Strategy.Type)
					}
				}
				return out
			}
			if diff := cmp.Diff(demos(base), demos(objs)); diff != "" {
				t.Errorf("demo Deployments differ from the strategy's overlay (-overlay +variant):\n%s", diff)
			}
			for svc, port := range map[string]int32{"gateway-nodeport": 30081, "demo": 30881} {
				if s := find[*corev1.Service](objs, "Service", ns, svc); s == nil || s.Spec.Ports[0].NodePort != port {
					t.Errorf("Service %s/%s: want NodePort %d, got %+v", ns, svc, port, s)
				}
			}
			dep := find[*appsv1.Deployment](objs, "Deployment", ns, "gateway")
			if dep == nil || !slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--gateway-class=flotilla") {
				t.Errorf("Deployment %s/gateway: want --gateway-class=flotilla, got %+v", ns, dep)
			}
			if g := find[*gwv1.Gateway](objs, "Gateway", ns, "edge"); g == nil || g.Spec.GatewayClassName != "flotilla" {
				t.Errorf("Gateway %s/edge of the class flotilla: got %+v", ns, g)
			}
			if r := find[*gwv1.HTTPRoute](objs, "HTTPRoute", ns, "demo"); r == nil || len(r.Spec.ParentRefs) != 1 || r.Spec.ParentRefs[0].Name != "edge" {
				t.Errorf("HTTPRoute %s/demo attached to edge: got %+v", ns, r)
			}
			cm := find[*corev1.ConfigMap](objs, "ConfigMap", ns, "gateway")
			cfg, err := gwconfig.Parse([]byte(cm.Data["gateway.yaml"]))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range cfg.Routes {
				if r.DirectResponse == nil {
					t.Errorf("routes file route %s sends to backends; the variant's routes are its HTTPRoute's", r.Name)
				}
			}
		})
	}
}
