package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
)

// TestGatewayAPIComponent: components/gateway-api makes the gateway a
// Gateway API implementation with least privilege: the GatewayClass of
// its controller name, reads of what the translation needs, writes only
// to status, Events and its own Lease (grants, checked by validate).
func TestGatewayAPIComponent(t *testing.T) {
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
		"\ncomponents:\n  - " + rel(filepath.Join(kustomizeRoot, "components", "gateway-api")) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := renderKustomize(t, dir)
	for _, err := range validate(objs) {
		if !isPeerProblem(err) {
			t.Error(err)
		}
	}
	// kustomize does not know GatewayClass is cluster-scoped (no CRD
	// schema) and gives it the overlay's namespace; the API server drops
	// the namespace of a cluster-scoped object.
	class := find[*gwv1.GatewayClass](objs, "GatewayClass", "shop", "flotilla")
	if class == nil || string(class.Spec.ControllerName) != gatewayapi.DefaultControllerName {
		t.Errorf("GatewayClass flotilla: want controllerName %q, got %+v", gatewayapi.DefaultControllerName, class)
	}
	dep := find[*appsv1.Deployment](objs, "Deployment", "shop", "gateway")
	if dep == nil {
		t.Fatal("no Deployment gateway")
	}
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--gateway-class=flotilla") {
		t.Errorf("gateway args %v: want --gateway-class=flotilla", args)
	}
	crb := find[*rbacv1.ClusterRoleBinding](objs, "ClusterRoleBinding", "", "flotilla-gateway-api")
	if crb == nil || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "gateway" || crb.Subjects[0].Namespace != "shop" {
		t.Errorf("ClusterRoleBinding: want the gateway ServiceAccount of shop, got %+v", crb)
	}
	lease := find[*rbacv1.Role](objs, "Role", "shop", "gateway-api-leader")
	if lease == nil {
		t.Fatal("no Role gateway-api-leader")
	}
	for _, r := range lease.Rules {
		if slices.Contains(r.Verbs, "update") && !slices.Equal(r.ResourceNames, []string{"flotilla-gateway-api-leader"}) {
			t.Errorf("lease Role rule %+v: updates of flotilla-gateway-api-leader only", r)
		}
	}
}
