//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// gatewayAPIStrategy applies the Gateway API variant of a strategy
// (deploy/kubernetes/strategies/gateway-api/<name>) as its README says,
// moved by applyMoved to a namespace of the test's own, and waits for its
// workloads. The variant's GatewayClass flotilla is renamed for the
// namespace (and the gateway serves that class): a gateway serves every
// Gateway of its class, so installations of one class would serve each
// other's routes (docs/gateway-api.md "One installation per class"); with
// a class each, no run waits for an earlier one's namespace to go. The
// cluster-scoped GatewayClass and ClusterRoleBinding are deleted with the
// test; the ClusterRole, the same for every installation, stays.
func gatewayAPIStrategy(t *testing.T, name string, workloads ...string) *system {
	t.Helper()
	return gatewayAPIStrategyPatched(t, name, "", workloads...)
}

// gatewayAPIStrategyPatched is gatewayAPIStrategy with more entries for
// applyMoved's patches list (e.g. fewer demo replicas).
func gatewayAPIStrategyPatched(t *testing.T, name, patches string, workloads ...string) *system {
	t.Helper()
	start := time.Now()
	c := newCluster(t)
	s := &system{cluster: c, gatewayAPI: true}
	s.ns = c.namespace(t, "gws-"+name)
	class, crb := "flotilla-"+s.ns, "flotilla-gateway-api-"+s.ns
	t.Cleanup(func() {
		ctx := context.Background()
		for _, obj := range []string{"clusterrolebinding/" + crb, "gatewayclass/" + class} {
			if _, err := c.run(ctx, "", "delete", obj, "--ignore-not-found", "--wait=false"); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	c.applyMoved(t, s.ns, deployDir("strategies", "gateway-api", name), fmt.Sprintf(`
  - target: {kind: ClusterRoleBinding, name: flotilla-gateway-api}
    patch: |-
      - {op: replace, path: /metadata/name, value: %[1]s}
  - target: {kind: GatewayClass, name: flotilla}
    patch: |-
      - {op: replace, path: /metadata/name, value: %[2]s}
  - target: {kind: Gateway, name: edge}
    patch: |-
      - {op: replace, path: /spec/gatewayClassName, value: %[2]s}
  - target: {kind: Deployment, name: gateway}
    patch: |-
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --gateway-class=%[2]s}`, crb, class)+patches)
	s.waitRolledOut(t, append(workloads, "deploy/gateway")...)
	s.gateway = fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, s.ns, "gateway-nodeport", 80))
	s.demo = fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, s.ns, "demo", 8080))
	waitOK(t, s.gateway+"/ping", "")
	waitOK(t, s.demo+"/ping", "")
	t.Logf("Gateway API variant %s rolled out and answering in %v", name, time.Since(start).Round(100*time.Millisecond))
	return s
}

// TestStrategiesGatewayAPI performs the Gateway API variant of every
// strategy as strategies/gateway-api/README.md says and checks what its
// user should see: the same as the routes-file overlays (TestStrategies),
// with the strategy in an HTTPRoute. Blue/green flips through one
// replica's admin API, which writes the HTTPRoute, and both replicas
// follow; the canary is promoted by kubectl patch of the HTTPRoute, and a
// gateway replica is deleted under load.
func TestStrategiesGatewayAPI(t *testing.T) {
	installGatewayAPICRDs(t, newCluster(t))
	t.Run("BlueGreen", testBlueGreenGatewayAPI)
	t.Run("Canary", testCanaryGatewayAPI)
	t.Run("ABTesting", func(t *testing.T) {
		checkABTesting(t, gatewayAPIStrategy(t, "ab-testing", "deploy/demo-a", "deploy/demo-b"))
	})
	t.Run("Shadow", func(t *testing.T) {
		checkShadow(t, gatewayAPIStrategy(t, "shadow", "deploy/demo-primary", "deploy/demo-shadow"))
	})
	// The rollouts: what Gateway API changes is the routing, not the
	// Deployment's strategy, so 2 demo pods instead of the overlays' 3
	// and 4 (TestStrategies rolls those), and both at once, after the
	// others (parallel subtests start when the sequential ones are done):
	// most of their time is the pods' drain, not CPU.
	twoPods := `
  - target: {kind: Deployment, name: demo}
    patch: |-
      - {op: replace, path: /spec/replicas, value: 2}`
	t.Run("Recreate", func(t *testing.T) {
		t.Parallel()
		checkRecreate(t, gatewayAPIStrategyPatched(t, "recreate", twoPods, "deploy/demo"), 2)
	})
	t.Run("Ramped", func(t *testing.T) {
		t.Parallel()
		checkRamped(t, gatewayAPIStrategyPatched(t, "ramped", twoPods, "deploy/demo"), 2, nil, nil)
	})
}

// adminPut sends PUT path with body to pod's admin API (its pod address,
// the token of its Secret) and returns the status, the
// Flotilla-Written-To header and the body.
func (s *system) adminPut(ctx context.Context, pod, path, body string) (int, string, string, error) {
	ip, err := s.run(ctx, "", "get", "pod", "-n", s.ns, pod, "-o", "jsonpath={.status.podIP}")
	if err != nil {
		return 0, "", "", err
	}
	token, err := s.adminToken(ctx)
	if err != nil {
		return 0, "", "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+strings.TrimSpace(ip)+":9901"+path, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := freshClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Flotilla-Written-To"), string(b), err
}

// httpRouteWeights returns the weights of rule 0 of HTTPRoute demo, and
// the field managers that wrote the HTTPRoute.
func (s *system) httpRouteWeights(t *testing.T) (weights, managers string) {
	t.Helper()
	weights = strings.TrimSpace(s.kc(t, s.ns, "get", "httproute", "demo", "-o", `jsonpath={range .spec.rules[0].backendRefs[*]}{.name}={.weight} {end}`))
	managers = strings.TrimSpace(s.kc(t, s.ns, "get", "httproute", "demo", "--show-managed-fields", "-o", `jsonpath={range .metadata.managedFields[*]}{.manager} {end}`))
	return weights, managers
}

// testBlueGreenGatewayAPI flips blue (v1) to green (v2) under load with one
// PUT to ONE gateway replica's admin API: it answers that it wrote the
// HTTPRoute, the HTTPRoute holds 0/100 under the field manager
// flotilla-admin, and every replica (probed on its own address, and the
// NodePort) serves only green; no request fails.
func testBlueGreenGatewayAPI(t *testing.T) {
	s := gatewayAPIStrategy(t, "blue-green", "deploy/demo-blue", "deploy/demo-green")
	blue, green, route := s.backend("demo-blue"), s.backend("demo-green"), "gw."+s.ns+".demo.0.0"
	s.waitGateway(t, blue, "track=blue")
	s.waitGateway(t, green, "track=green")
	waitWeights(t, s, route, blue, green, 100, 0)

	name := "blue/green flip through one replica's admin API, written to the HTTPRoute"
	gwCfg := load.Config{URL: s.gateway + "/"}
	tr := startLoad(t, name, gwCfg)
	probes := []probe{{name: name + ", NodePort probe", cfg: gwCfg}}
	for _, ip := range s.readyIPs(t, "app.kubernetes.io/name=gateway") {
		probes = append(probes, probe{name: name + ", probe of replica " + ip, cfg: load.Config{URL: "http://" + ip + "/"}})
	}
	expectOnly(t, "v1", probes...)
	pods := s.podNames(t, s.ns, "app.kubernetes.io/name=gateway")
	begin := time.Now()
	code, where, body, err := s.adminPut(t.Context(), pods[0], "/routes/"+route+"/weights", fmt.Sprintf(`{%q: 0, %q: 100}`, blue, green))
	if err != nil || code != http.StatusOK || !strings.HasPrefix(where, "HTTPRoute "+s.ns+"/demo spec.rules[0]") {
		t.Fatalf("PUT /routes/%s/weights on %s = %d %q (%s, %v), want 200 written to HTTPRoute %s/demo spec.rules[0]", route, pods[0], code, where, body, err, s.ns)
	}
	t.Logf("PUT to %s answered %v after it was sent: written to %s", pods[0], time.Since(begin).Round(time.Millisecond), where)
	waitWeights(t, s, route, blue, green, 0, 100)
	t.Logf("every gateway replica had the weights 0/100 %v after the PUT to one of them", time.Since(begin).Round(10*time.Millisecond))
	expectOnly(t, "v2", probes...)
	sum := tr.stopNoFailures(t)
	checkVersions(t, name, sum, "v1", "v2")
	weights, managers := s.httpRouteWeights(t)
	if want := "demo-blue=0 demo-green=100"; weights != want || !strings.Contains(managers, "flotilla-admin") {
		t.Errorf("HTTPRoute demo after the flip: weights %q, field managers %q; want %q written by flotilla-admin", weights, managers, want)
	}
	t.Run("LiveViewFlip", func(t *testing.T) { checkLiveViewFlip(t, s, route, blue, green, pods[len(pods)-1]) })
}

// checkLiveViewFlip flips blue/green back (green → blue) by a click on
// the live view of the other gateway replica than the one the admin API
// flipped, in headless chromium, under load through the NodePort (both
// replicas): no failed request, every replica follows (the page writes
// the HTTPRoute), the page logs no error, shows every replica merged
// ("2/2 gateway replicas") and per-version counts that match the load
// tool's within 2 points. Screenshots before, during and after.
func checkLiveViewFlip(t *testing.T, s *system, route, blue, green, pod string) {
	page := openLiveViewOn(t, s, pod, route)
	name := "blue/green flip back by a click on the live view, gateway NodePort"
	tr := startLoad(t, name, load.Config{URL: s.gateway + "/"})
	sleep(t, 3*time.Second)
	page.b.shot("liveview-cluster-before-flip")
	clicked := time.Now()
	page.b.do("click flip", chromedp.Click(chromedp.CSS(page.svc+" button[data-action=flip]")))
	waitWeights(t, s, route, blue, green, 100, 0)
	t.Logf("every gateway replica had 100/0 %v after the click", time.Since(clicked).Round(10*time.Millisecond))
	page.b.shot("liveview-cluster-during-flip")
	sleep(t, 3*time.Second)
	sum := tr.stopNoFailures(t)
	checkVersions(t, name, sum, "v2", "v1")
	page.checkShares(t, sum, 0.02)
	page.b.shot("liveview-cluster-after-flip")
	if weights, _ := s.httpRouteWeights(t); weights != "demo-blue=100 demo-green=0" {
		t.Errorf("HTTPRoute demo after the page's flip: weights %q, want demo-blue=100 demo-green=0", weights)
	}
	page.b.checkNoProblems()
}

// testCanaryGatewayAPI: 90/10 by HTTPRoute weights (± 2.5 points, as the
// routes file's canary); promotion to 0/100 by kubectl patch of the
// HTTPRoute under load with no failed request; then a gateway replica is
// deleted under load (GatewayReplicaDeleted).
func testCanaryGatewayAPI(t *testing.T) {
	s := gatewayAPIStrategy(t, "canary", "deploy/demo-stable", "deploy/demo-canary")
	stable, canary, route := s.backend("demo-stable"), s.backend("demo-canary"), "gw."+s.ns+".demo.0.0"
	s.waitGateway(t, stable, "track=stable")
	s.waitGateway(t, canary, "track=canary")
	waitWeights(t, s, route, stable, canary, 90, 10)

	name := "canary 90/10 by HTTPRoute weights, gateway NodePort"
	tr := startLoad(t, name, load.Config{URL: s.gateway + "/"})
	sleep(t, 10*time.Second)
	sum := tr.stopNoFailures(t)
	got := share(sum, "v2")
	t.Logf("%s: v2 share %.1f%% of %d answers, want 10%% ± 2.5 points", name, 100*got, sum.Requests)
	if math.Abs(got-0.10) > 0.025 || share(sum, "v1")+got < 0.999 {
		t.Errorf("%s: versions %s (v2 %.1f%%), want v2 at 10%% ± 2.5 points and v1 the rest", name, versions(sum), 100*got)
	}

	name = "canary promotion 90/10 → 0/100 by kubectl patch httproute, gateway NodePort"
	tr = startLoad(t, name, load.Config{URL: s.gateway + "/"})
	sleep(t, 2*time.Second)
	patched := time.Now()
	// As strategies/gateway-api/README.md says.
	s.kc(t, s.ns, "patch", "httproute", "demo", "--type=json", "-p",
		`[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":0},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":100}]`)
	waitWeights(t, s, route, stable, canary, 0, 100)
	t.Logf("every gateway replica had the promoted weights %v after kubectl patch", time.Since(patched).Round(10*time.Millisecond))
	probes := []probe{{name: name + ", NodePort probe", cfg: load.Config{URL: s.gateway + "/"}}}
	for _, ip := range s.readyIPs(t, "app.kubernetes.io/name=gateway") {
		probes = append(probes, probe{name: name + ", probe of replica " + ip, cfg: load.Config{URL: "http://" + ip + "/"}})
	}
	expectOnly(t, "v2", probes...)
	sum = tr.stopNoFailures(t)
	checkVersions(t, name, sum, "v1", "v2")

	t.Run("GatewayReplicaDeleted", func(t *testing.T) { checkGatewayReplicaDeleted(t, s, route, stable, canary) })
}

// checkGatewayReplicaDeleted deletes one gateway replica under load
// through the gateway's NodePort (kept-alive connections, as clients
// have): the replica drains (readiness fails, kube-proxy stops sending,
// the listener closes idle connections, in-flight requests finish) and no
// request fails. The Deployment's new replica reads the promoted weights
// from the HTTPRoute, not from its routes file: live weights survive a
// restart.
func checkGatewayReplicaDeleted(t *testing.T, s *system, route, stable, canary string) {
	before := s.podNames(t, s.ns, "app.kubernetes.io/name=gateway")
	name := "gateway replica deleted under load, gateway NodePort"
	tr := startLoad(t, name, load.Config{URL: s.gateway + "/", ExpectVersions: []string{"v2"}})
	sleep(t, 2*time.Second)
	deleted := time.Now()
	s.kc(t, s.ns, "delete", "pod", before[0], "--wait=true")
	t.Logf("gateway pod %s deleted (drained and gone) in %v", before[0], time.Since(deleted).Round(100*time.Millisecond))
	s.waitRolledOut(t, "deploy/gateway")
	eventually(t, convergeTimeout, "2 ready gateway replicas", func() error {
		if ips := s.readyIPs(t, "app.kubernetes.io/name=gateway"); len(ips) != 2 {
			return fmt.Errorf("ready gateway pods %q", ips)
		}
		return nil
	})
	waitWeights(t, s, route, stable, canary, 0, 100)
	sleep(t, 2*time.Second)
	sum := tr.stopNoFailures(t)
	if len(sum.Failures) > 0 {
		t.Errorf("%s: versions %s (%q), want v2 only", name, versions(sum), sum.Failures)
	}
	after := s.podNames(t, s.ns, "app.kubernetes.io/name=gateway")
	t.Logf("gateway replicas %q before, %q after; the new one serves the HTTPRoute's 0/100", before, after)
}

// apiServerOutage is how long TestGatewayAPIAPIServerDown keeps the API
// server down (FLOTILLA_E2E_APISERVER_OUTAGE overrides it, e.g. 30s).
// Past the controller-manager's node-monitor-grace-period (50 s), once
// the API server is back the controller-manager may mark the node Unknown
// and its pods not ready until the kubelet reports again: the cluster's
// own recovery, which the test waits for but does not count against the
// gateway.
func apiServerOutage(t *testing.T) time.Duration {
	if v := os.Getenv("FLOTILLA_E2E_APISERVER_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("FLOTILLA_E2E_APISERVER_OUTAGE=%q: want a positive duration", v)
		}
		return d
	}
	return time.Minute
}

// clusterPIDFile is the local cluster's PID file of a component
// (test/e2e/cluster/lib.sh: $STATE/pids/NAME.pid).
func clusterPIDFile(t *testing.T, name string) string {
	t.Helper()
	lib, err := filepath.Abs(filepath.Join("cluster", "lib.sh"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "bash", "-c", `source "$0" && echo "$PIDS"`, lib).Output()
	if err != nil {
		t.Fatalf("cluster/lib.sh: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), name+".pid")
}

// discoverySynced reads flotilla_gateway_discovery_synced of the gateway
// at ip (its admin port, straight to the pod: the API server's proxy is
// down with it), summed and counted over the namespaces it watches.
func discoverySynced(ctx context.Context, ip string) (synced, namespaces int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ip+":9901/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := freshClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "flotilla_gateway_discovery_synced{")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest[i:]), 64)
			if err == nil {
				namespaces++
				synced += int(v)
			}
		}
	}
	if namespaces == 0 {
		return 0, 0, fmt.Errorf("gateway %s: no flotilla_gateway_discovery_synced", ip)
	}
	return synced, namespaces, nil
}

// waitSynced waits until every gateway at ips reports its discovery
// synced (want true) in every namespace, or unsynced in all (false).
func waitSynced(t *testing.T, ips []string, want bool) {
	t.Helper()
	start := time.Now()
	eventually(t, convergeTimeout, fmt.Sprintf("flotilla_gateway_discovery_synced %v on every gateway replica", want), func() error {
		for _, ip := range ips {
			n, of, err := discoverySynced(t.Context(), ip)
			if err != nil {
				return err
			}
			if want && n != of || !want && n != 0 {
				return fmt.Errorf("gateway %s: synced in %d of %d namespaces", ip, n, of)
			}
		}
		return nil
	})
	t.Logf("every gateway replica reported discovery synced=%v %v after the check began", want, time.Since(start).Round(100*time.Millisecond))
}

// TestGatewayAPIAPIServerDown stops the local cluster's API server (by the
// PID its scripts recorded) for apiServerOutage while 200 requests/s flow
// through the canary variant's gateway: the gateway keeps serving its last
// good state (its routes from the HTTPRoute, its endpoints from the
// EndpointSlices), no request fails, and every replica reports the lost
// watch (flotilla_gateway_discovery_synced 0) until the API server is back
// (test/e2e/cluster/up.sh apiserver starts it again). Then the controller
// works again: a patch of the HTTPRoute reaches every replica.
//
// Runs only on the local cluster of test/e2e/cluster, as root (it signals
// the kube-apiserver process); skipped elsewhere.
func TestGatewayAPIAPIServerDown(t *testing.T) {
	pidFile := clusterPIDFile(t, "kube-apiserver")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Skipf("not the local cluster of test/e2e/cluster (%v): the test stops its API server by PID", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		t.Skipf("%s: pid %q is not a running process we may signal (%v)", pidFile, data, err)
	}
	outage := apiServerOutage(t)
	installGatewayAPICRDs(t, newCluster(t))
	s := gatewayAPIStrategy(t, "canary", "deploy/demo-stable", "deploy/demo-canary")
	stable, canary, route := s.backend("demo-stable"), s.backend("demo-canary"), "gw."+s.ns+".demo.0.0"
	s.waitGateway(t, stable, "track=stable")
	s.waitGateway(t, canary, "track=canary")
	waitWeights(t, s, route, stable, canary, 90, 10)
	// Addresses, taken while kubectl works.
	var ips []string
	for _, ip := range s.readyIPs(t, "app.kubernetes.io/name=gateway") {
		ips = append(ips, strings.TrimSuffix(ip, ":8080"))
	}
	waitSynced(t, ips, true)

	name := fmt.Sprintf("API server down for %v, gateway NodePort", outage)
	tr := startLoad(t, name, load.Config{URL: s.gateway + "/"})
	replicas := make([]*traffic, len(ips))
	for i, ip := range ips {
		replicas[i] = startLoad(t, name+", replica "+ip, load.Config{URL: "http://" + ip + ":8080/", Rate: loadRate / 2})
	}
	sleep(t, 2*time.Second)

	// Whatever happens below, the API server is started again.
	var restartOnce sync.Once
	restart := func() {
		restartOnce.Do(func() {
			up, err := filepath.Abs(filepath.Join("cluster", "up.sh"))
			if err == nil {
				var out []byte
				out, err = exec.Command(up, "apiserver").CombinedOutput()
				if err != nil {
					err = fmt.Errorf("%v: %s", err, out)
				}
			}
			if err != nil {
				t.Errorf("cluster/up.sh apiserver (restart the API server): %v", err)
			}
		})
	}
	t.Cleanup(restart)
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to kube-apiserver (pid %d): %v", pid, err)
	}
	eventually(t, convergeTimeout, "kube-apiserver gone", func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("pid %d still running", pid)
		}
		return nil
	})
	t.Logf("kube-apiserver (pid %d) stopped in %v", pid, time.Since(stopped).Round(100*time.Millisecond))
	waitSynced(t, ips, false)
	sleep(t, outage-time.Since(stopped))
	down := time.Since(stopped)
	restart()
	t.Logf("API server down for %v, up again %v after it was stopped", down.Round(100*time.Millisecond), time.Since(stopped).Round(100*time.Millisecond))
	for _, r := range replicas {
		sum := r.stopNoFailures(t)
		if share(sum, "v1")+share(sum, "v2") < 0.999 {
			t.Errorf("%s: versions %s, want v1 and v2 only", r.name, versions(sum))
		}
	}
	sum := tr.stopNoFailures(t)
	if got := share(sum, "v2"); math.Abs(got-0.10) > 0.025 {
		t.Errorf("%s: v2 share %.1f%% (%s), want the last good 90/10 ± 2.5 points", name, 100*got, versions(sum))
	}
	waitSynced(t, ips, true)

	// The controller watches again: a patch reaches every replica. (The
	// cluster's own recovery may mark pods not ready for a moment after a
	// long outage; the waits cover it.)
	s.kc(t, s.ns, "patch", "httproute", "demo", "--type=json", "-p",
		`[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":50},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":50}]`)
	waitWeights(t, s, route, stable, canary, 50, 50)
	s.waitGateway(t, stable, "track=stable")
	s.waitGateway(t, canary, "track=canary")
	// And the status writer: the HTTPRoute is still Accepted by us.
	eventually(t, convergeTimeout, "HTTPRoute demo Accepted after the outage", func() error {
		out := strings.TrimSpace(s.kc(t, s.ns, "get", "httproute", "demo", "-o", `jsonpath={range .status.parents[*]}{.controllerName} {.conditions[?(@.type=="Accepted")].status};{end}`))
		if out != gatewayAPIController+" True;" {
			return fmt.Errorf("status.parents %q", out)
		}
		return nil
	})
}
