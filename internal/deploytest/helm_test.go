package deploytest

import (
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	chartDir  = "../../deploy/helm/flotilla"
	helmCases = "testdata/helm"
	helmNS    = "flotilla-helm"
)

// helmTemplate renders the chart like `helm template flotilla <chart> -n
// flotilla-helm -f values`: values are checked against values.schema.json,
// then every template is rendered. The stream lists templates by path, each
// under a "# Source:" line as helm prints it.
func helmTemplate(values map[string]any) ([]byte, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	opts := chartutil.ReleaseOptions{Name: "flotilla", Namespace: helmNS, Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(chrt, values, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name, body := range files {
		if strings.HasSuffix(name, ".yaml") && strings.TrimSpace(body) != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		b.WriteString("---\n# Source: " + name + "\n" + strings.TrimLeft(files[name], "-\n") + "\n")
	}
	return []byte(b.String()), nil
}

func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// helmValueSets lists the value files the chart is rendered with: the test
// cases and the ones shipped next to the chart (values-local.yaml).
func helmValueSets(t *testing.T) []string {
	t.Helper()
	cases, err := filepath.Glob(filepath.Join(helmCases, "*.values.yaml"))
	if err != nil || len(cases) < 5 {
		t.Fatalf("want at least 5 value sets in %s, got %d (%v)", helmCases, len(cases), err)
	}
	shipped, err := filepath.Glob(filepath.Join(chartDir, "..", "values-*.yaml"))
	if err != nil || len(shipped) == 0 {
		t.Fatalf("no values-*.yaml next to the chart (%v)", err)
	}
	return append(cases, shipped...)
}

// TestHelmGolden renders the chart for every value set in testdata/helm
// (*.values.yaml) and deploy/helm/values-*.yaml, compares with the golden file next to it (-update
// rewrites them) and validates the objects like the kustomize overlays'.
func TestHelmGolden(t *testing.T) {
	for _, path := range helmValueSets(t) {
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".values.yaml"), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := helmTemplate(readValues(t, path))
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			raw := got
			got = maskGenerated(t, raw)
			golden := filepath.Join(helmCases, name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/deploytest -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("helm template differs from %s (-want +got; -update rewrites it):\n%s", golden, diff)
			}
			objs, err := decodeAll(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range validate(objs) {
				t.Error(err)
			}
		})
	}
}

// TestHelmStrategies checks what each strategy value must produce: the
// tracks' versions and the selector of the plain demo Service.
func TestHelmStrategies(t *testing.T) {
	tests := []struct {
		strategy    string
		deployments map[string]string // demo Deployment → image tag
		selects     string            // track the demo Service selects ("" all)
	}{
		{"rolling", map[string]string{"flotilla-demo": "v1"}, ""},
		{"recreate", map[string]string{"flotilla-demo": "v1"}, ""},
		{"blue-green", map[string]string{"flotilla-demo-blue": "v1", "flotilla-demo-green": "v2"}, "blue"},
		{"canary", map[string]string{"flotilla-demo-stable": "v1", "flotilla-demo-canary": "v2"}, ""},
		{"ab-testing", map[string]string{"flotilla-demo-a": "v1", "flotilla-demo-b": "v2"}, "a"},
		{"shadow", map[string]string{"flotilla-demo-primary": "v1", "flotilla-demo-shadow": "v2"}, "primary"},
	}
	for _, tt := range tests {
		t.Run(tt.strategy, func(t *testing.T) {
			t.Parallel()
			out, err := helmTemplate(map[string]any{"strategy": map[string]any{"type": tt.strategy}})
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeAll(out)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, w := range workloads(objs) {
				if w.labels["app.kubernetes.io/name"] == "demo" {
					img := w.spec.Containers[0].Image
					got[w.obj.Name] = img[strings.LastIndex(img, ":")+1:]
					recreate := w.obj.Obj.(*appsv1.Deployment).Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType
					if want := tt.strategy == "recreate"; recreate != want {
						t.Errorf("%s: Recreate = %v, want %v", w.obj, recreate, want)
					}
				}
			}
			if diff := cmp.Diff(tt.deployments, got); diff != "" {
				t.Errorf("demo Deployments → tags (-want +got):\n%s", diff)
			}
			svc := find[*corev1.Service](objs, "Service", "", "flotilla-demo") // helm leaves the namespace to the install
			if svc == nil || svc.Spec.Selector["track"] != tt.selects {
				t.Errorf("Service flotilla-demo selector = %v, want track %q", svc, tt.selects)
			}
			for _, err := range validate(objs) {
				t.Error(err)
			}
		})
	}
}

// TestHelmSchemaRejects: bad values fail before anything renders, with a
// message naming the value.
func TestHelmSchemaRejects(t *testing.T) {
	tests := []struct {
		name   string
		values string
		want   []string
	}{
		{"negative replicas", "counter: {replicas: -1}", []string{"/counter/replicas", "minimum"}},
		{"replicas as a string", "demo: {replicas: \"two\"}", []string{"/demo/replicas", "got string, want integer"}},
		{"unknown strategy", "strategy: {type: rainbow}", []string{"/strategy/type", "must be one of 'rolling'"}},
		{"canary weight above 100", "strategy: {type: canary, canary: {weight: 150}}", []string{"/strategy/canary/weight", "maximum"}},
		{"misspelt key", "gateway: {replica: 3}", []string{"/gateway", "replica"}},
		{"unknown top-level key", "redis-enabled: false", []string{"redis-enabled"}},
		{"duration without unit", "termination: {drainDelay: \"10\"}", []string{"/termination/drainDelay", "does not match pattern"}},
		{"nodePort out of range", "gateway: {service: {type: NodePort, nodePort: 80}}", []string{"/gateway/service/nodePort"}},
		{"root container", "podSecurityContext: {runAsNonRoot: false}", []string{"/podSecurityContext/runAsNonRoot"}},
		{"unknown persistence", "redis: {persistence: {type: hostPath}}", []string{"/redis/persistence/type", "must be one of 'pvc', 'emptyDir'"}},
		{"env that is not a flotilla variable", "demo: {env: {READINESS_DELAY: 10s}}", []string{"/demo/env", "READINESS_DELAY"}},
		{"blue-green active colour", "strategy: {type: blue-green, blueGreen: {active: purple}}", []string{"/strategy/blueGreen/active", "must be one of 'blue', 'green'"}},
		{"GatewayClass name not a DNS name", "gatewayAPI: {enabled: true, className: Flotilla_Class}", []string{"/gatewayAPI/className", "does not match pattern"}},
		{"misspelt Gateway API key", "gatewayAPI: {installCRD: true}", []string{"/gatewayAPI", "installCRD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v map[string]any
			if err := yaml.Unmarshal([]byte(tt.values), &v); err != nil {
				t.Fatal(err)
			}
			_, err := helmTemplate(v)
			if err == nil {
				t.Fatalf("helmTemplate(%s) succeeded, want a schema error", tt.values)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("helmTemplate(%s) error = %q, want it to contain %q", tt.values, err, w)
				}
			}
		})
	}
}

// TestHelmLint runs helm's linter on the chart with each value set: no
// message at all, not even INFO.
func TestHelmLint(t *testing.T) {
	for _, path := range append([]string{""}, helmValueSets(t)...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var vals map[string]any
			if path != "" {
				vals = readValues(t, path)
			}
			l := lint.All(chartDir, vals, helmNS, false)
			for _, m := range l.Messages {
				t.Errorf("helm lint: [%s] %s", []string{"INFO", "WARNING", "ERROR"}[m.Severity-support.InfoSev], m.Err)
			}
		})
	}
}

// maskGenerated replaces the chart's generated secrets (random on every
// render) with a fixed mark, so goldens compare. The objects are still
// validated with the real values.
func maskGenerated(t *testing.T, stream []byte) []byte {
	t.Helper()
	objs, err := decodeAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	out := string(stream)
	for _, o := range objs {
		if s, ok := o.Obj.(*corev1.Secret); ok {
			if s.Type == corev1.SecretTypeTLS {
				// The chart's generated CA and certificate.
				for key, v := range s.Data {
					if len(v) > 0 {
						out = strings.ReplaceAll(out, base64.StdEncoding.EncodeToString(v), "GENERATED-"+strings.ToUpper(key))
					}
				}
			}
			for _, key := range []string{"password", "token"} {
				if v := s.StringData[key]; len(v) == 32 {
					out = strings.ReplaceAll(out, v, "GENERATED-"+strings.ToUpper(key))
				}
			}
		}
	}
	return []byte(out)
}
