package deploytest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	gwconfig "github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// privatePaths are the apps' endpoints for the kubelet, Prometheus and
// operators (internal/counter/handler.go, internal/demo/demo.go): never
// routable from the gateway's entry port. POST /readyz/disable through a
// public route once turned every demo pod unready.
var privatePaths = []string{"/healthz", "/readyz", "/readyz/", "/readyz/enable", "/readyz/disable", "/metrics", "/metrics/", "/healthz/x"}

// entry is one way in: a Host and the path prefix the routes strip.
type entry struct{ host, prefix string }

// shippedRoutes lists every shipped routes file with its entries and the
// backends' versions realGateway needs.
var shippedRoutes = []struct {
	name     string
	path     string
	versions map[string]string
	entries  []entry
}{
	{"base", filepath.Join(kustomizeRoot, "base", "gateway", "gateway.yaml"), map[string]string{"counter": "counter", "demo": "demo", "demo-grpc": "demo-grpc"},
		[]entry{{"flaskapp.test", "/flask"}, {"minikube.test", ""}, {"gateway", "/counter"}, {"gateway", "/demo"}, {"gateway", "/limited"}, {"flaskapp.test", "/counter"}, {"other.test", "/demo"}}},
	{"recreate", strategyRoutes("recreate"), map[string]string{"demo": "v1"}, []entry{{"gateway", ""}}},
	{"ramped", strategyRoutes("ramped"), map[string]string{"demo": "v1"}, []entry{{"gateway", ""}}},
	{"blue-green", strategyRoutes("blue-green"), map[string]string{"demo-blue": "v1", "demo-green": "v2"}, []entry{{"gateway", ""}}},
	{"canary", strategyRoutes("canary"), map[string]string{"demo-stable": "v1", "demo-canary": "v2"}, []entry{{"gateway", ""}}},
	{"ab-testing", strategyRoutes("ab-testing"), map[string]string{"demo-a": "v1", "demo-b": "v2"}, []entry{{"gateway", ""}}},
	{"shadow", strategyRoutes("shadow"), map[string]string{"demo-primary": "v1", "demo-shadow": "v2"}, []entry{{"gateway", ""}}},
}

// TestShippedRoutesExposeOnlyPublicEndpoints runs the real gateway on every
// shipped routes file: probes, metrics and control endpoints answer 404
// from the gateway with any method and never reach a backend; other
// methods than GET and HEAD on public paths are refused (404 or 405)
// without reaching a backend; the public paths still work.
func TestShippedRoutesExposeOnlyPublicEndpoints(t *testing.T) {
	type routesFile struct {
		name     string
		data     []byte
		versions map[string]string
		entries  []entry
		objs     []object // a render whose HTTPRoutes add routes (gatewayAPI.enabled)
	}
	var files []routesFile
	for _, sr := range shippedRoutes {
		data, err := os.ReadFile(sr.path)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, routesFile{sr.name, data, sr.versions, sr.entries, nil})
	}
	// The chart's routes, for every value set: backends named demo* are
	// the demo's tracks.
	for _, path := range helmValueSets(t) {
		out, err := helmTemplate(readValues(t, path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		objs, err := decodeAll(out)
		if err != nil {
			t.Fatal(err)
		}
		var cm *corev1.ConfigMap
		for _, o := range objs {
			if c, ok := o.Obj.(*corev1.ConfigMap); ok && strings.HasSuffix(o.Name, "-gateway") {
				cm = c
			}
		}
		if cm == nil {
			t.Fatalf("%s: no gateway ConfigMap", path)
		}
		data := []byte(cm.Data["gateway.yaml"])
		cfg, err := gwconfig.Parse(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		versions := map[string]string{}
		for _, b := range cfg.Backends {
			versions[b.Name] = b.Name
		}
		entries := []entry{{"flaskapp.test", "/flask"}, {"minikube.test", ""}, {"gateway", "/counter"}, {"gateway", "/demo"}, {"flaskapp.test", "/counter"}, {"other.test", "/demo"}}
		if slices.ContainsFunc(cfg.Routes, func(r gwconfig.Route) bool { return r.Name == "limited" }) {
			entries = append(entries, entry{"gateway", "/limited"}) // redis.enabled
		}
		files = append(files, routesFile{"helm " + filepath.Base(path), data, versions, entries, objs})
	}
	for _, sr := range files {
		t.Run(sr.name, func(t *testing.T) {
			gw, ups := realGatewayData(t, sr.name, sr.data, sr.versions)
			// The chart's HTTPRoutes, translated and installed as the
			// controller does, next to the routes file.
			installHTTPRoutes(t, gw, sr.objs, ups)
			leaked := func() int {
				n := 0
				for _, u := range ups {
					n += u.markedHits()
				}
				return n
			}
			do := func(method, host, path string, prep func(*http.Request)) *httptest.ResponseRecorder {
				r := httptest.NewRequest(method, "http://"+host+path, nil)
				r.Header.Set(markHeader, "1")
				if prep != nil {
					prep(r)
				}
				w := httptest.NewRecorder()
				gw.ServeHTTP(w, r)
				return w
			}
			// A/B routes match on a header or cookie: try the private
			// paths with them too.
			preps := map[string]func(*http.Request){
				"plain":  nil,
				"header": func(r *http.Request) { r.Header.Set("X-Variant", "b") },
				"cookie": func(r *http.Request) { r.Header.Set("Cookie", "variant=b") },
			}
			for _, e := range sr.entries {
				for _, p := range privatePaths {
					for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut} {
						for pn, prep := range preps {
							before := leaked()
							w := do(m, e.host, e.prefix+p, prep)
							if w.Code != http.StatusNotFound || leaked() != before {
								t.Errorf("%s %s%s%s (%s) = %d, reached a backend: %v; want 404 from the gateway", m, e.host, e.prefix, p, pn, w.Code, leaked() != before)
							}
						}
					}
				}
				for _, p := range []string{"", "/", "/echo", "/ping", "/x"} {
					for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "TRACE"} {
						before := leaked()
						w := do(m, e.host, e.prefix+p, nil)
						if (w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed) || leaked() != before {
							t.Errorf("%s %s%s%s = %d, reached a backend: %v; want 404 or 405 from the gateway", m, e.host, e.prefix, p, w.Code, leaked() != before)
						}
					}
				}
			}
			// Last: a shadow's copies of these arrive in the background.
			for _, e := range sr.entries {
				for _, p := range []string{"", "/", "/echo", "/ping", "/x"} {
					for _, m := range []string{http.MethodGet, http.MethodHead} {
						before := leaked()
						if w := do(m, e.host, e.prefix+p, nil); w.Code != http.StatusOK || leaked() <= before {
							t.Errorf("%s %s%s%s = %d, want 200 from a backend", m, e.host, e.prefix, p, w.Code)
						}
					}
				}
			}
		})
	}
}
