package deploytest

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestStrategyOverlays pins what each strategy's README relies on: the
// Deployments with their versions and replicas, the rollout settings, and
// which tracks the plain demo Service (NodePort 30881) reaches.
func TestStrategyOverlays(t *testing.T) {
	type track struct {
		Tag      string
		Replicas int32
	}
	tests := []struct {
		strategy    string
		deployments map[string]track // demo Deployments
		selects     []string         // Deployments behind the demo Service
		check       func(t *testing.T, objs []object)
	}{
		{
			strategy:    "recreate",
			deployments: map[string]track{"demo": {"v1", 3}},
			selects:     []string{"demo"},
			check: func(t *testing.T, objs []object) {
				if d := find[*appsv1.Deployment](objs, "Deployment", "flotilla-recreate", "demo"); d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
					t.Errorf("demo strategy = %+v, want Recreate alone", d.Spec.Strategy)
				}
			},
		},
		{
			strategy:    "ramped",
			deployments: map[string]track{"demo": {"v1", 4}},
			selects:     []string{"demo"},
			check: func(t *testing.T, objs []object) {
				d := find[*appsv1.Deployment](objs, "Deployment", "flotilla-ramped", "demo")
				// No minReadySeconds: the gateway watches EndpointSlices.
				if ru := d.Spec.Strategy.RollingUpdate; d.Spec.MinReadySeconds != 0 || ru == nil || ru.MaxSurge.String() != "1" || ru.MaxUnavailable.String() != "0" {
					t.Errorf("demo minReadySeconds %d, strategy %+v; want 0, maxSurge 1, maxUnavailable 0", d.Spec.MinReadySeconds, ru)
				}
			},
		},
		{
			strategy:    "blue-green",
			deployments: map[string]track{"demo-blue": {"v1", 2}, "demo-green": {"v2", 2}},
			selects:     []string{"demo-blue"},
		},
		{
			strategy:    "canary",
			deployments: map[string]track{"demo-stable": {"v1", 3}, "demo-canary": {"v2", 1}},
			selects:     []string{"demo-canary", "demo-stable"},
		},
		{
			strategy:    "ab-testing",
			deployments: map[string]track{"demo-a": {"v1", 2}, "demo-b": {"v2", 2}},
			selects:     []string{"demo-a"},
		},
		{
			strategy:    "shadow",
			deployments: map[string]track{"demo-primary": {"v1", 2}, "demo-shadow": {"v2", 1}},
			selects:     []string{"demo-primary"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.strategy, func(t *testing.T) {
			t.Parallel()
			ns := "flotilla-" + tt.strategy
			objs := renderKustomize(t, filepath.Join(kustomizeRoot, "strategies", tt.strategy))
			got := map[string]track{}
			for _, w := range workloads(objs) {
				if w.labels["app.kubernetes.io/name"] != "demo" {
					continue
				}
				if w.obj.Namespace != ns {
					t.Errorf("%s: namespace %q, want %s", w.obj, w.obj.Namespace, ns)
				}
				img := w.spec.Containers[0].Image
				got[w.obj.Name] = track{img[strings.LastIndex(img, ":")+1:], ptrOr(w.obj.Obj.(*appsv1.Deployment).Spec.Replicas, 1)}
			}
			if diff := cmp.Diff(tt.deployments, got); diff != "" {
				t.Errorf("demo Deployments (-want +got):\n%s", diff)
			}
			svc := find[*corev1.Service](objs, "Service", ns, "demo")
			if svc == nil || svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].NodePort != 30881 {
				t.Fatalf("Service %s/demo: want NodePort 30881, got %+v", ns, svc)
			}
			var behind []string
			for _, w := range selected(svc.Spec.Selector, ns, workloads(objs)) {
				behind = append(behind, w.obj.Name)
			}
			slices.Sort(behind)
			if diff := cmp.Diff(tt.selects, behind); diff != "" {
				t.Errorf("Deployments behind Service demo (-want +got):\n%s", diff)
			}
			if gw := find[*corev1.Service](objs, "Service", ns, "gateway-nodeport"); gw == nil || gw.Spec.Ports[0].NodePort != 30081 {
				t.Errorf("Service %s/gateway-nodeport: want NodePort 30081, got %+v", ns, gw)
			}
			if tt.check != nil {
				tt.check(t, objs)
			}
		})
	}
}
