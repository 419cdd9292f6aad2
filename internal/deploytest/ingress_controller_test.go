package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/ingress"
)

// TestIngressControllerComponent: components/ingress-controller turns the
// gateway into the Ingress controller with least privilege: reads of what
// the translation needs, writes only to Ingress status, Events and its
// own Lease.
func TestIngressControllerComponent(t *testing.T) {
	dir := t.TempDir()
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
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shop\nresources:\n  - " + rel(filepath.Join(kustomizeRoot, "base")) +
		"\ncomponents:\n  - " + rel(filepath.Join(kustomizeRoot, "components", "ingress-controller")) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := renderKustomize(t, dir)

	class := find[*networkingv1.IngressClass](objs, "IngressClass", "", "flotilla")
	if class == nil || class.Spec.Controller != ingress.DefaultControllerName {
		t.Errorf("IngressClass flotilla: want controller %q, got %+v", ingress.DefaultControllerName, class)
	}
	dep := find[*appsv1.Deployment](objs, "Deployment", "shop", "gateway")
	if dep == nil {
		t.Fatal("no Deployment gateway")
	}
	args := dep.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--ingress-class=flotilla", "--publish-service=$(POD_NAMESPACE)/gateway"} {
		if !slices.Contains(args, want) {
			t.Errorf("gateway args %v: want %s", args, want)
		}
	}
	// The secret directory on a writable volume: checkFlotillaContainer.
	env := dep.Spec.Template.Spec.Containers[0].Env
	if !slices.ContainsFunc(env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil }) {
		t.Errorf("gateway env %v: want POD_NAMESPACE from the downward API (used by --publish-service and the Lease)", env)
	}

	cr := find[*rbacv1.ClusterRole](objs, "ClusterRole", "", "flotilla-ingress-controller")
	if cr == nil {
		t.Fatal("no ClusterRole flotilla-ingress-controller")
	}
	// What it may grant is checkRBAC's (grants), run by validate.
	crb := find[*rbacv1.ClusterRoleBinding](objs, "ClusterRoleBinding", "", "flotilla-ingress-controller")
	if crb == nil || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "gateway" || crb.Subjects[0].Namespace != "shop" {
		t.Errorf("ClusterRoleBinding: want the gateway ServiceAccount of the overlay's namespace (shop), got %+v", crb)
	}
	lease := find[*rbacv1.Role](objs, "Role", "shop", "gateway-ingress-leader")
	if lease == nil {
		t.Fatal("no Role gateway-ingress-leader")
	}
	for _, r := range lease.Rules {
		if !slices.Equal(r.APIGroups, []string{"coordination.k8s.io"}) || !slices.Equal(r.Resources, []string{"leases"}) ||
			slices.Contains(r.Verbs, "update") && !slices.Equal(r.ResourceNames, []string{"flotilla-ingress-leader"}) || strings.Contains(strings.Join(r.Verbs, ","), "*") {
			t.Errorf("lease Role rule %+v: want leases only, updates of flotilla-ingress-leader only", r)
		}
	}
}
