package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGatewayKubernetesBackendWithoutCluster: a config naming a Service
// cannot start where no API server is configured, and says which backend
// and how to point it at one.
func TestGatewayKubernetesBackendWithoutCluster(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: web, kubernetes: {service: web, port: http}}]
routes: [{name: all, backends: [{name: web}]}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-kubeconfig")
	code, _, errOut := runWith(t, "gateway", "--config", cfg, "--addr", gwFreeAddr(t), "--admin-addr", "", "--kubeconfig", missing)
	want := `backends[0].kubernetes (backend "web"): kubernetes discovery: kubeconfig:`
	if code == ExitOK || !strings.Contains(errOut, want) || !strings.Contains(errOut, missing) {
		t.Errorf("gateway = %d, stderr %q; want a failure containing %q and the file", code, errOut, want)
	}
}

// TestGatewayIngressOnlyConfig: with --ingress-class a config file
// without routes is accepted (the routes come from Ingresses): the
// gateway gets as far as connecting to the API server, which fails here;
// without the flag the same file is refused for its missing routes.
func TestGatewayIngressOnlyConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\ndefaults: {timeout: 5s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-kubeconfig")
	code, _, errOut := runWith(t, "gateway", "--config", cfg, "--addr", gwFreeAddr(t), "--admin-addr", "", "--kubeconfig", missing)
	if code == ExitOK || !strings.Contains(errOut, "routes: want at least one route") {
		t.Errorf("gateway without --ingress-class = %d, stderr %q; want the missing routes named", code, errOut)
	}
	code, _, errOut = runWith(t, "gateway", "--config", cfg, "--addr", gwFreeAddr(t), "--admin-addr", "", "--kubeconfig", missing, "--ingress-class", "flotilla")
	if code == ExitOK || strings.Contains(errOut, "routes: want at least one route") || !strings.Contains(errOut, missing) {
		t.Errorf("gateway --ingress-class = %d, stderr %q; want the config accepted and a failure naming the kubeconfig", code, errOut)
	}
}
