package deploytest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	gwconfig "github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// helmGatewayAPI renders the chart with a value set of testdata/helm and
// runs the real gateway on its routes file plus its HTTPRoutes, each
// backend an upstream answering as its Service's (or file backend's) name.
func helmGatewayAPI(t *testing.T, valueSet string) (*http.ServeMux, map[string]*upstream) {
	t.Helper()
	out, err := helmTemplate(readValues(t, filepath.Join(helmCases, valueSet+".values.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(out)
	if err != nil {
		t.Fatal(err)
	}
	cm := find[*corev1.ConfigMap](objs, "ConfigMap", "", "flotilla-gateway")
	if cm == nil {
		t.Fatal("no ConfigMap flotilla-gateway")
	}
	data := []byte(cm.Data["gateway.yaml"])
	versions := map[string]string{}
	for _, name := range []string{"demo-grpc", "demo-stable", "demo-canary", "demo-a", "demo-b", "demo-primary", "demo-shadow"} {
		versions[name] = name
	}
	gw, ups := realGatewayData(t, valueSet, data, versions)
	installHTTPRoutes(t, gw, objs, ups)
	mux := http.NewServeMux()
	mux.Handle("/", gw)
	return mux, ups
}

// TestHelmGatewayAPIRoutes: with gatewayAPI.enabled the chart's HTTPRoutes
// do what its routes file did for each strategy: the canary's weight
// (80/20 here, not sticky), A/B by the header or the cookie named in the
// values, and the talk's host and path routes with the prefix stripped.
func TestHelmGatewayAPIRoutes(t *testing.T) {
	t.Run("canary weight", func(t *testing.T) {
		gw, _ := helmGatewayAPI(t, "gateway-api-canary")
		const n = 2000
		got := send(t, gw, n, func(r *http.Request) { r.Host = "minikube.test" })
		if share := float64(got["flotilla-demo-canary-headless"]) / n; share < 0.175 || share > 0.225 {
			t.Errorf("canary share %.3f (%v), want 0.20 ± 0.025", share, got)
		}
	})
	t.Run("ab-testing header and cookie of the values", func(t *testing.T) {
		gw, ups := helmGatewayAPI(t, "gateway-api-ab-testing")
		const a, b = "flotilla-demo-a-headless", "flotilla-demo-b-headless"
		for _, tt := range []struct {
			name, host, path string
			prep             func(*http.Request)
			want             string
		}{
			{"nothing", "minikube.test", "/", nil, a},
			{"header", "minikube.test", "/", func(r *http.Request) { r.Header.Set("X-Group", "beta") }, b},
			{"header on /demo", "gateway", "/demo/x", func(r *http.Request) { r.Header.Set("X-Group", "beta") }, b},
			{"other header value", "minikube.test", "/", func(r *http.Request) { r.Header.Set("X-Group", "alpha") }, a},
			{"cookie", "minikube.test", "/", func(r *http.Request) { r.Header.Set("Cookie", "group.id=beta+1") }, b},
			{"cookie among others", "gateway", "/demo", func(r *http.Request) { r.Header.Set("Cookie", "s=1; group.id=beta+1") }, b},
			{"dot is not any character", "minikube.test", "/", func(r *http.Request) { r.Header.Set("Cookie", "groupxid=beta+1") }, a},
			{"plus is not a repeat", "minikube.test", "/", func(r *http.Request) { r.Header.Set("Cookie", "group.id=betaa1") }, a},
			{"longer value", "minikube.test", "/", func(r *http.Request) { r.Header.Set("Cookie", "group.id=beta+12") }, a},
		} {
			got := send(t, gw, 10, func(r *http.Request) {
				r.Host = tt.host
				r.URL.Path = tt.path
				if tt.prep != nil {
					tt.prep(r)
				}
			})
			if got[tt.want] != 10 {
				t.Errorf("%s: versions %v, want %s only", tt.name, got, tt.want)
			}
		}
		// /demo/x reached B as /x: the prefix is stripped.
		u := serviceUpstream(t, ups, b)
		u.mu.Lock()
		paths := slices.Clone(u.paths)
		u.mu.Unlock()
		if !slices.Contains(paths, "/x") || slices.Contains(paths, "/demo/x") {
			t.Errorf("B got paths %q, want /x and never /demo/x", paths)
		}
	})
	t.Run("counter by host and path", func(t *testing.T) {
		gw, ups := helmGatewayAPI(t, "gateway-api-shadow")
		for _, tt := range []struct{ host, path, wantPath string }{
			{"flaskapp.test", "/flask", "/"},
			{"flaskapp.test", "/flask/x", "/x"},
			{"gateway", "/counter/y", "/y"},
		} {
			got := send(t, gw, 1, func(r *http.Request) { r.Host = tt.host; r.URL.Path = tt.path })
			if got["flotilla-counter-headless"] != 1 {
				t.Errorf("%s%s: versions %v, want the counter", tt.host, tt.path, got)
			}
			u := serviceUpstream(t, ups, "flotilla-counter-headless")
			u.mu.Lock()
			last := u.paths[len(u.paths)-1]
			u.mu.Unlock()
			if last != tt.wantPath {
				t.Errorf("%s%s reached the counter as %q, want %q", tt.host, tt.path, last, tt.wantPath)
			}
		}
	})
}

// serviceUpstream is the upstream installHTTPRoutes made for Service svc.
func serviceUpstream(t *testing.T, ups map[string]*upstream, svc string) *upstream {
	t.Helper()
	for _, u := range ups {
		if u.version == svc {
			return u
		}
	}
	t.Fatalf("no upstream for Service %s", svc)
	return nil
}

// TestHelmGatewayAPICRDs: the CRD subchart holds exactly the standard
// channel of the sigs.k8s.io/gateway-api module go.mod pins, and Helm
// installs it only with gatewayAPI.installCRDs (a dependency whose
// condition is false is dropped before Helm installs CRDs).
func TestHelmGatewayAPICRDs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/gateway-api: %v", err)
	}
	dir, version, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	want, err := filepath.Glob(filepath.Join(dir, "config", "crd", "standard", "gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in the module (%v)", err)
	}
	vendored := filepath.Join(chartDir, "charts", "gateway-api-crds")
	got, _ := filepath.Glob(filepath.Join(vendored, "crds", "*.yaml"))
	if len(got) != len(want) {
		t.Errorf("%d files in %s/crds, want the module's %d", len(got), vendored, len(want))
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(vendored, "crds", filepath.Base(w)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the module's %s (%v): copy it again (charts/gateway-api-crds/README.md)", filepath.Base(w), version, err)
		}
	}
	var meta struct{ Version string }
	data, _ := os.ReadFile(filepath.Join(vendored, "Chart.yaml"))
	if err := yaml.Unmarshal(data, &meta); err != nil || "v"+meta.Version != version {
		t.Errorf("subchart version %q, want the module's %s", meta.Version, version)
	}
	for _, install := range []bool{false, true} {
		chrt, err := loader.Load(chartDir)
		if err != nil {
			t.Fatal(err)
		}
		vals := map[string]any{"gatewayAPI": map[string]any{"enabled": true, "installCRDs": install}}
		// What `helm install` does before it installs CRDs.
		if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
			t.Fatal(err)
		}
		n := len(chrt.CRDObjects())
		if install && n != len(want) || !install && n != 0 {
			t.Errorf("installCRDs %v: helm would install %d CRD files, want %d", install, n, map[bool]int{true: len(want)}[install])
		}
	}
}

// TestHelmGatewayAPIWithoutRedis: with Gateway API and without Redis (no
// /limited) the routes file keeps no backend but the demo's gRPC one: the
// counter and the demo's tracks are the HTTPRoutes' backends, and the
// file routes only the 404s and gRPC.
func TestHelmGatewayAPIWithoutRedis(t *testing.T) {
	for _, s := range []string{"rolling", "blue-green", "ab-testing"} {
		out, err := helmTemplate(map[string]any{"gatewayAPI": map[string]any{"enabled": true}, "redis": map[string]any{"enabled": false}, "strategy": map[string]any{"type": s}})
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range validate(objs) {
			t.Errorf("%s: %v", s, err)
		}
		cm := find[*corev1.ConfigMap](objs, "ConfigMap", "", "flotilla-gateway")
		cfg, err := gwconfig.Parse([]byte(cm.Data["gateway.yaml"]))
		if err != nil {
			t.Fatal(err)
		}
		var backends, routes []string
		for _, b := range cfg.Backends {
			backends = append(backends, b.Name)
		}
		for _, r := range cfg.Routes {
			routes = append(routes, r.Name)
		}
		if !slices.Equal(backends, []string{"demo-grpc"}) {
			t.Errorf("%s: routes file backends %q, want demo-grpc only", s, backends)
		}
		if want := []string{"flask-private", "minikube-private", "grpc-health", "grpc-echo", "private", "read-only", "flask-read-only"}; !slices.Equal(routes, want) {
			t.Errorf("%s: routes file routes %q, want %q", s, routes, want)
		}
	}
}
