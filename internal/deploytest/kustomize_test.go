package deploytest

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const kustomizeRoot = "../../deploy/kubernetes"

// kustomize builds the kustomization in dir as `kubectl kustomize` would.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return out
}

// overlays lists every directory under deploy/kubernetes that holds a
// Kustomization (Components are built through the overlays that use them
// and through TestKustomizeAllComponents).
func overlays(t *testing.T) (kustomizations, components []string) {
	t.Helper()
	err := filepath.WalkDir(kustomizeRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal(data, &head); err != nil {
			return err
		}
		dir := filepath.Dir(path)
		if head.Kind == "Component" {
			components = append(components, dir)
		} else {
			kustomizations = append(kustomizations, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kustomizations) < 16 {
		t.Fatalf("found only %d kustomizations under %s: %v", len(kustomizations), kustomizeRoot, kustomizations)
	}
	return kustomizations, components
}

func renderKustomize(t *testing.T, dir string) []object {
	t.Helper()
	objs, err := decodeAll(kustomize(t, dir))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return objs
}

// TestKustomizeOverlays builds every kustomization and validates what it
// renders. Partial bases (one app) are validated too; the checks that need
// a peer (a Service for a gateway backend) find it in the same build.
func TestKustomizeOverlays(t *testing.T) {
	dirs, _ := overlays(t)
	for _, dir := range dirs {
		rel, _ := filepath.Rel(kustomizeRoot, dir)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			objs := renderKustomize(t, dir)
			if len(objs) == 0 {
				t.Fatal("renders nothing")
			}
			// Partial: an app's base, or anything without its namespace
			// (the base, a strategy's track).
			partial := strings.HasPrefix(filepath.ToSlash(rel), "base/") || rel == "namespace" ||
				!slices.ContainsFunc(objs, func(o object) bool { return o.Kind == "Namespace" })
			for _, err := range validate(objs) {
				if partial && isPeerProblem(err) {
					continue
				}
				t.Error(err)
			}
		})
	}
}

// isPeerProblem reports a problem a partial base cannot avoid: the gateway
// base alone has no backends' Services, Redis's alone has no counter, the
// counter's base has no Redis Secret, and the namespace's default-deny
// comes with ../namespace.
func isPeerProblem(err error) bool {
	return strings.Contains(err.Error(), "no Service") || strings.Contains(err.Error(), "does not admit the counter") ||
		strings.Contains(err.Error(), "which this render does not create") ||
		strings.Contains(err.Error(), "no default-deny NetworkPolicy selects it")
}

// TestKustomizeAllComponents builds the top-level overlay with every
// component, so components no overlay uses are validated as well.
func TestKustomizeAllComponents(t *testing.T) {
	_, comps := overlays(t)
	dir := t.TempDir()
	// kustomize refuses absolute paths: refer to the tree from dir.
	rel := func(p string) string {
		a, err := filepath.Abs(p)
		if err == nil {
			a, err = filepath.Rel(dir, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var b strings.Builder
	b.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: flotilla\nresources:\n")
	b.WriteString("  - " + rel(filepath.Join(kustomizeRoot, "namespace")) + "\n")
	b.WriteString("  - " + rel(filepath.Join(kustomizeRoot, "base")) + "\ncomponents:\n")
	for _, c := range comps {
		// The strategies' own components (the Gateway API variants'
		// common part) replace the routes file for a strategy, not for
		// the base: built through their overlays only.
		if r, _ := filepath.Rel(kustomizeRoot, c); strings.HasPrefix(filepath.ToSlash(r), "strategies/") {
			continue
		}
		b.WriteString("  - " + rel(c) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := renderKustomize(t, dir)
	for _, err := range validate(objs) {
		t.Error(err)
	}
	for _, kind := range []string{"Ingress", "PersistentVolume", "ServiceMonitor", "NetworkPolicy", "HorizontalPodAutoscaler", "MetricTemplate"} {
		if !slices.ContainsFunc(objs, func(o object) bool { return o.Kind == kind }) {
			t.Errorf("no %s rendered with every component", kind)
		}
	}
}

// TestKustomizeEntryPoints pins the NodePorts the e2e suite and docs/deploy.md
// rely on, and the talk's Service names and ports.
func TestKustomizeEntryPoints(t *testing.T) {
	objs := renderKustomize(t, filepath.Join(kustomizeRoot, "local"))
	want := map[string][2]int32{ // Service → port, nodePort (0: ClusterIP)
		"redis":            {6379, 0},
		"counter":          {5000, 0},
		"demo":             {8080, 0},
		"gateway":          {80, 0},
		"gateway-nodeport": {80, 30080},
		"counter-nodeport": {5000, 30500},
		"demo-nodeport":    {8080, 30880},
	}
	for name, w := range want {
		svc := find[*corev1.Service](objs, "Service", "flotilla", name)
		if svc == nil {
			t.Errorf("Service flotilla/%s missing", name)
			continue
		}
		if got := svc.Spec.Ports[0]; got.Port != w[0] || got.NodePort != w[1] {
			t.Errorf("Service %s port %d nodePort %d, want %d %d", name, got.Port, got.NodePort, w[0], w[1])
		}
	}
	// HTTPS (components/tls): the second port of the gateway's Services.
	for name, w := range map[string][2]int32{"gateway": {443, 0}, "gateway-nodeport": {443, 30443}} {
		svc := find[*corev1.Service](objs, "Service", "flotilla", name)
		if svc == nil || len(svc.Spec.Ports) != 2 || svc.Spec.Ports[1].Name != "https" || svc.Spec.Ports[1].Port != w[0] ||
			svc.Spec.Ports[1].NodePort != w[1] || svc.Spec.Ports[1].TargetPort.String() != "https" {
			t.Errorf("Service %s: want a second port https %d → https, nodePort %d; got %+v", name, w[0], w[1], svc)
		}
	}
	pv := find[*corev1.PersistentVolume](objs, "PersistentVolume", "", "flotilla-redis")
	if pv == nil || pv.Spec.Local == nil || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Namespace != "flotilla" {
		t.Errorf("local overlay: want PersistentVolume flotilla-redis, a local volume reserved for namespace flotilla, got %+v", pv)
	}
	ns := find[*corev1.Namespace](objs, "Namespace", "", "flotilla")
	if ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace flotilla must enforce Pod Security restricted, got %+v", ns)
	}
}
