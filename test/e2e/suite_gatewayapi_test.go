//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// gatewayAPIConfig replaces the canary overlay's gateway.yaml: no routes to
// the demo of its own, so every answer of v1 or v2 comes through the
// HTTPRoute; only the overlay's route that hides the probes is kept.
const gatewayAPIConfig = `apiVersion: flotilla.dev/v1alpha1
kind: Gateway
routes:
  - name: private
    match:
      path: {type: Regex, value: "/(healthz|readyz|metrics)(/.*)?"}
    directResponse: {status: 404, body: "not found\n"}
`

// gatewayAPIObjects are what a user of the component writes
// (docs/gateway-api.md): a Gateway of the class flotilla with one HTTP
// listener, and a canary HTTPRoute, 90 % stable (v1) and 10 % canary (v2).
const gatewayAPIObjects = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: flotilla
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: demo}
spec:
  parentRefs: [{name: edge}]
  rules:
  - backendRefs:
    - {name: demo-stable, port: 8080, weight: 90}
    - {name: demo-canary, port: 8080, weight: 10}
`

// gatewayAPIController is the GatewayClass's controllerName of
// components/gateway-api.
const gatewayAPIController = "flotilla.dev/gateway-controller"

// TestGatewayAPI runs the gateway as a Gateway API implementation on the
// cluster: the standard-channel CRDs of the pinned module, the canary
// strategy's tracks with components/gateway-api, a Gateway and a weighted
// HTTPRoute. The controller writes the status of all three on a real API
// server, the gateway splits 90/10 as the HTTPRoute says, and a kubectl
// patch of the weights under load reaches every replica with no failed
// request: HTTPRoute weights are how live weights are shared.
func TestGatewayAPI(t *testing.T) {
	c := newCluster(t)
	start := time.Now()
	installGatewayAPICRDs(t, c)
	waitGatewayAPIAlone(t, c)
	s := &system{cluster: c}
	s.ns = c.namespace(t, "gwapi")
	// The component's cluster-scoped objects: the GatewayClass flotilla
	// and the ClusterRole (the same everywhere, left in place) and the
	// ClusterRoleBinding, renamed for this namespace and deleted with it.
	crb := "flotilla-gateway-api-" + s.ns
	t.Cleanup(func() {
		if _, err := c.run(context.Background(), "", "delete", "clusterrolebinding", crb, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	c.applyMoved(t, s.ns, gatewayAPIOverlay(t), fmt.Sprintf(`
  - target: {kind: ClusterRoleBinding, name: flotilla-gateway-api}
    patch: |-
      - {op: replace, path: /metadata/name, value: %s}`, crb))
	c.apply(t, s.ns, gatewayAPIObjects)
	s.waitRolledOut(t, "deploy/demo-stable", "deploy/demo-canary", "deploy/gateway")
	t.Logf("CRDs, canary tracks and gateway rolled out in %v", time.Since(start).Round(100*time.Millisecond))

	s.gateway = fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, s.ns, "gateway-nodeport", 80))
	stable, canary := "gw."+s.ns+".demo-stable.http", "gw."+s.ns+".demo-canary.http"
	route := "gw." + s.ns + ".demo.0.0"
	checkGatewayAPIStatus(t, s)
	s.waitGateway(t, stable, "track=stable")
	s.waitGateway(t, canary, "track=canary")
	waitWeights(t, s, route, stable, canary, 90, 10)
	t.Logf("status written, and every gateway replica serving the HTTPRoute, %v after the start", time.Since(start).Round(100*time.Millisecond))

	// The status converged: no more writes. A controller that finds a
	// difference on every sync (a field the API server defaults or
	// normalises) would write again and again.
	versions0 := gatewayAPIVersions(t, s)

	// The split by HTTPRoute weight, as testCanary checks the overlay's:
	// ± 2.5 points over 2000 answers.
	name := "canary 90/10 by HTTPRoute weights, gateway NodePort"
	tr := startLoad(t, name, load.Config{URL: s.gateway + "/"})
	sleep(t, 10*time.Second)
	sum := tr.stopNoFailures(t)
	got := share(sum, "v2")
	t.Logf("%s: v2 share %.1f%% of %d answers, want 10%% ± 2.5 points", name, 100*got, sum.Requests)
	if math.Abs(got-0.10) > 0.025 || share(sum, "v1")+got < 0.999 {
		t.Errorf("%s: versions %s (v2 %.1f%%), want v2 at 10%% ± 2.5 points and v1 the rest", name, versions(sum), 100*got)
	}
	if v := gatewayAPIVersions(t, s); !maps.Equal(v, versions0) {
		t.Errorf("status rewritten without a change: resourceVersions %v, then %v", versions0, v)
	}

	// Promotion: kubectl patch of the HTTPRoute under load.
	name = "promotion 90/10 → 0/100 by kubectl patch httproute, gateway NodePort"
	tr = startLoad(t, name, load.Config{URL: s.gateway + "/"})
	sleep(t, 2*time.Second)
	patched := time.Now()
	s.kc(t, s.ns, "patch", "httproute", "demo", "--type=json", "-p",
		`[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":0},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":100}]`)
	waitWeights(t, s, route, stable, canary, 0, 100)
	t.Logf("every gateway replica had the patched weights %v after kubectl patch", time.Since(patched).Round(10*time.Millisecond))
	// Every replica on its own (its pod address), and the NodePort.
	probes := []probe{{name: name + ", NodePort probe", cfg: load.Config{URL: s.gateway + "/"}}}
	for _, ip := range s.readyIPs(t, "app.kubernetes.io/name=gateway") {
		probes = append(probes, probe{name: name + ", probe of replica " + ip, cfg: load.Config{URL: "http://" + ip + "/"}})
	}
	expectOnly(t, "v2", probes...)
	sum = tr.stopNoFailures(t)
	checkVersions(t, name, sum, "v1", "v2")
	checkGatewayAPIStatus(t, s)

	// The Gateway deleted: the HTTPRoute keeps no entry of ours in
	// status.parents (an empty list: the CRD requires the field).
	s.kc(t, s.ns, "delete", "gateway", "edge")
	eventually(t, convergeTimeout, "HTTPRoute demo without our parent entry once the Gateway is gone", func() error {
		out := strings.TrimSpace(s.kc(t, s.ns, "get", "httproute", "demo", "-o", `jsonpath={range .status.parents[*]}{.controllerName} {.parentRef.name};{end}`))
		if out != "" {
			return fmt.Errorf("status.parents %q", out)
		}
		return nil
	})
	t.Logf("TestGatewayAPI took %v", time.Since(start).Round(100*time.Millisecond))
}

// waitGatewayAPIAlone waits until no namespace of an earlier run of this
// test is left. Every gateway of the class flotilla serves the routes of
// every Gateway of the class on its one listener (docs/gateway-api.md), so
// an earlier run's HTTPRoute, older and as specific as this one's, wins
// while its namespace terminates (a rerun saw 518 of 2000 requests answer
// 503 from its vanishing backends), and its controller writes status too.
func waitGatewayAPIAlone(t *testing.T, c *cluster) {
	t.Helper()
	start := time.Now()
	eventually(t, convergeTimeout, "earlier TestGatewayAPI namespaces gone", func() error {
		out, err := c.run(t.Context(), "", "get", "namespaces", "-o", `jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}`)
		if err != nil {
			return err
		}
		var left []string
		for _, ns := range strings.Fields(out) {
			if strings.HasPrefix(ns, "e2e-gwapi-") {
				left = append(left, ns)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("namespaces %q still there", left)
		}
		return nil
	})
	if d := time.Since(start); d > time.Second {
		t.Logf("waited %v for an earlier run's namespace to go", d.Round(100*time.Millisecond))
	}
}

// installGatewayAPICRDs applies the standard-channel CRDs of the
// sigs.k8s.io/gateway-api module go.mod pins (server-side: idempotent, and
// too large for a client-side apply's annotation), leaves them installed
// and waits until they are served.
func installGatewayAPICRDs(t *testing.T, c *cluster) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/gateway-api: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	files, err := filepath.Glob(filepath.Join(dir, "gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s (%v)", dir, err)
	}
	c.must(t, "", "apply", "--server-side", "-f", dir)
	var crds []string
	for _, f := range files {
		// gateway.networking.k8s.io_httproutes.yaml → crd/httproutes.gateway.networking.k8s.io
		group, plural, _ := strings.Cut(strings.TrimSuffix(filepath.Base(f), ".yaml"), "_")
		if strings.HasPrefix(plural, "vap_") {
			continue // the ValidatingAdmissionPolicy of safe upgrades
		}
		crds = append(crds, "crd/"+plural+"."+group)
	}
	c.must(t, "", append([]string{"wait", "--for=condition=Established", "--timeout=60s"}, crds...)...)
}

// gatewayAPIOverlay writes a kustomization of the canary strategy with
// components/gateway-api and gatewayAPIConfig, and returns its directory.
func gatewayAPIOverlay(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [%s]
components: [%s]
configMapGenerator:
  - name: gateway
    namespace: flotilla-canary
    behavior: replace
    files: [gateway.yaml]
    options:
      disableNameSuffixHash: true
      labels: {app.kubernetes.io/name: gateway}
`, rel(deployDir("strategies", "canary")), rel(deployDir("components", "gateway-api")))
	for name, data := range map[string]string{"kustomization.yaml": k, "gateway.yaml": gatewayAPIConfig} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkGatewayAPIStatus waits until the controller has written the status
// the objects should have: GatewayClass Accepted, Gateway Accepted and
// Programmed with the gateway Service's address, its listener Programmed
// with the route attached, and the HTTPRoute Accepted with its refs
// resolved under our controllerName.
func checkGatewayAPIStatus(t *testing.T, s *system) {
	t.Helper()
	start := time.Now()
	want := strings.TrimSpace(s.kc(t, s.ns, "get", "service", "gateway", "-o", "jsonpath={.spec.clusterIP}"))
	get := func(args ...string) (string, error) {
		out, err := s.run(t.Context(), "", append([]string{"-n", s.ns, "get"}, args...)...)
		return strings.TrimSpace(out), err
	}
	cond := func(typ string) string { return fmt.Sprintf(`{.status.conditions[?(@.type==%q)].status}`, typ) }
	eventually(t, convergeTimeout, "Gateway API status", func() error {
		var problems []string
		check := func(what, got, want string, err error) {
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", what, err))
			} else if got != want {
				problems = append(problems, fmt.Sprintf("%s %q, want %q", what, got, want))
			}
		}
		got, err := get("gatewayclass", "flotilla", "-o", "jsonpath="+cond("Accepted"))
		check("GatewayClass flotilla Accepted", got, "True", err)
		got, err = get("gateway", "edge", "-o", "jsonpath="+cond("Accepted")+" "+cond("Programmed"))
		check("Gateway edge Accepted Programmed", got, "True True", err)
		got, err = get("gateway", "edge", "-o", `jsonpath={range .status.addresses[*]}{.type}={.value} {end}`)
		check("Gateway edge status.addresses", got, "IPAddress="+want, err)
		got, err = get("gateway", "edge", "-o", `jsonpath={range .status.listeners[*]}{.name} {.attachedRoutes} {.conditions[?(@.type=="Programmed")].status}{end}`)
		check("Gateway edge listeners (name attachedRoutes Programmed)", got, "http 1 True", err)
		got, err = get("httproute", "demo", "-o", `jsonpath={range .status.parents[*]}{.controllerName} {.parentRef.name} {.conditions[?(@.type=="Accepted")].status} {.conditions[?(@.type=="ResolvedRefs")].status}{"\n"}{end}`)
		check("HTTPRoute demo parents (controller parent Accepted ResolvedRefs)", got, gatewayAPIController+" edge True True", err)
		if len(problems) > 0 {
			return fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		return nil
	})
	t.Logf("GatewayClass Accepted, Gateway Programmed at %s, HTTPRoute Accepted and ResolvedRefs, %v after the check began", want, time.Since(start).Round(100*time.Millisecond))
}

// waitWeights waits until every gateway replica's route has the weights
// wantStable:wantCanary (in the same ratio: the gateway divides them by
// their greatest common divisor), as its admin API shows them.
func waitWeights(t *testing.T, s *system, route, stable, canary string, wantStable, wantCanary int) {
	t.Helper()
	eventually(t, convergeTimeout, fmt.Sprintf("route %s weights %d:%d on every gateway replica", route, wantStable, wantCanary), func() error {
		for _, pod := range s.podNames(t, s.ns, "app.kubernetes.io/name=gateway") {
			out, err := s.admin(t.Context(), pod, "GET", "/routes/"+route+"/weights", "")
			if err != nil {
				return err
			}
			var got map[string]int
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				return fmt.Errorf("gateway %s: GET /routes/%s/weights: %v (%q)", pod, route, err, out)
			}
			gs, okS := got[stable]
			gc, okC := got[canary]
			if len(got) != 2 || !okS || !okC || gs*wantCanary != gc*wantStable || gs+gc == 0 {
				return fmt.Errorf("gateway %s: weights %v", pod, got)
			}
		}
		return nil
	})
}

// gatewayAPIVersions returns the resourceVersions of the GatewayClass, the
// Gateway and the HTTPRoute.
func gatewayAPIVersions(t *testing.T, s *system) map[string]string {
	t.Helper()
	v := map[string]string{}
	for _, obj := range []string{"gatewayclass/flotilla", "gateway/edge", "httproute/demo"} {
		v[obj] = strings.TrimSpace(s.kc(t, s.ns, "get", obj, "-o", "jsonpath={.metadata.resourceVersion}"))
	}
	return v
}
