//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// strategy applies deploy/kubernetes/strategies/<name> as its README says,
// moved by applyMoved to a namespace of the test's own (the overlays all
// use NodePorts 30081 and 30881, one strategy at a time), and waits for its
// workloads. Its gateway and its demo Service are the entry points.
func strategy(t *testing.T, name string, workloads ...string) *system {
	t.Helper()
	s := &system{cluster: newCluster(t)}
	s.ns = s.namespace(t, name)
	s.applyMoved(t, s.ns, deployDir("strategies", name))
	s.waitRolledOut(t, append(workloads, "deploy/gateway")...)
	s.gateway = fmt.Sprintf("http://127.0.0.1:%d", s.nodePort(t, s.ns, "gateway-nodeport", 80))
	s.demo = fmt.Sprintf("http://127.0.0.1:%d", s.nodePort(t, s.ns, "demo", 8080))
	waitOK(t, s.gateway+"/ping", "")
	waitOK(t, s.demo+"/ping", "")
	return s
}

// TestStrategies performs every strategy overlay as its README says and
// checks what its user should see.
func TestStrategies(t *testing.T) {
	t.Run("Recreate", testRecreate)
	t.Run("Ramped", testRamped)
	t.Run("BlueGreen", testBlueGreen)
	t.Run("Canary", testCanary)
	t.Run("ABTesting", testABTesting)
	t.Run("Shadow", testShadow)
}

// overlap returns the first second of tl that shows version from answering
// after a second that showed version to: proof that from still answered
// after to had begun, whatever the timing of the live view. A line covers
// the answers since an earlier line's snapshot, at most two lines back, so
// only lines three or more apart are compared.
func overlap(tl *timeline, from, to string) (first, later second, ok bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i, sec := range tl.seconds {
		if _, ok := sec.versions[to]; !ok {
			continue
		}
		for _, l := range tl.seconds[min(i+3, len(tl.seconds)):] {
			if _, ok := l.versions[from]; ok {
				return sec, l, true
			}
		}
		break
	}
	return second{}, second{}, false
}

// mixedSeconds returns the seconds of tl in which more than one version of
// the application answered.
func mixedSeconds(tl *timeline) []second {
	var out []second
	for _, s := range tl.answered() {
		if strings.Contains(s.served(), "+") {
			out = append(out, s)
		}
	}
	return out
}

// upgradeUnderLoad sends load to the gateway and the demo Service while
// deploy/demo is set to v2 and rolled out, until only v2 pods are left
// and the gateway has them. Probes before the change see only v1, probes
// after it only v2 (expectOnly).
func upgradeUnderLoad(t *testing.T, s *system, what string, pods int, recreate bool, during ...func()) (gw, np *traffic) {
	s.waitGateway(t, s.backend("demo"), "app.kubernetes.io/name=demo")
	gwCfg := load.Config{URL: s.gateway + "/"}
	npCfg := load.Config{URL: s.demo + "/", DisableKeepAlive: true}
	gw = startLoad(t, what+", gateway", gwCfg)
	np = startLoad(t, what+", demo NodePort, new connection per request", npCfg)
	probes := []probe{{name: what + ", gateway probe", cfg: gwCfg}, {name: what + ", demo NodePort probe", cfg: npCfg}}
	expectOnly(t, "v1", probes...)
	s.kc(t, s.ns, "set", "image", "deploy/demo", "demo="+image("v2"))
	for _, f := range during {
		f()
	}
	s.waitRolledOut(t, "deploy/demo")
	s.waitPods(t, "app.kubernetes.io/name=demo", pods)
	s.waitGateway(t, s.backend("demo"), "app.kubernetes.io/name=demo")
	// Recreate leaves the demo Service without endpoints for a while.
	probes[1].refusedOK = recreate
	expectOnly(t, "v2", probes...)
	return gw, np
}

// testRecreate: only v1, a gap of errors, only v2; v1 never answers once
// v2 has.
func testRecreate(t *testing.T) { checkRecreate(t, strategy(t, "recreate", "deploy/demo"), 3) }

// checkRecreate is testRecreate on a deployed recreate system of pods demo
// pods (the routes file's or the Gateway API variant's).
func checkRecreate(t *testing.T, s *system, pods int) {
	gw, np := upgradeUnderLoad(t, s, "recreate v1→v2", pods, true)
	for _, tr := range []*traffic{gw, np} {
		sum := tr.stop(t)
		if sum.Errors == 0 {
			t.Errorf("%s: no failed request, want a gap between the versions", tr.name)
		}
		if first, later, ok := overlap(tr.tl, "v1", "v2"); ok {
			t.Errorf("%s: v1 answered at t=%.0fs, after v2 had answered at t=%.0fs", tr.name, later.at, first.at)
		}
		checkVersions(t, tr.name, sum, "v1", "v2")
	}
}

// testRamped: both versions answer during the ramp, no request fails;
// the live view of one gateway replica, open in headless chromium through
// the rollout, shows per-version counts that track the load tool's.
func testRamped(t *testing.T) {
	s := strategy(t, "ramped", "deploy/demo")
	page := openLiveView(t, s, "demo")
	sums := checkRamped(t, s, 4, func() {
		sleep(t, 4*time.Second) // into the ramp: both versions serve
		page.b.shot("liveview-cluster-rollout-during")
	}, func() {
		// Rolled out, the load still running: the page's rates (over
		// the last 10 s) come to show v2 with the traffic, however fast
		// or slow the rollout was.
		eventually(t, convergeTimeout, "the live view shows v2 with the traffic", func() error {
			if shown := page.b.liveVersions("demo"); shown["v2"].Share < 0.9 {
				return fmt.Errorf("rows %+v, want v2 with at least 90 %% of the last 10 s", shown)
			}
			return nil
		})
	})
	// Its counts since it opened: the gateway's load and its probes
	// (300 of about 4500 requests, v1 before and v2 after) are what the
	// gateways served.
	page.checkShares(t, sums[0], 0.03)
	page.b.shot("liveview-cluster-rollout-after")
	page.b.checkNoProblems()
}

// checkRamped is testRamped on a deployed ramped system of pods demo
// pods; during (if not nil) runs once the rollout has begun, rolled once
// it is done, both under load. It returns the summaries of the loads
// through the gateway and the NodePort.
func checkRamped(t *testing.T, s *system, pods int, during, rolled func()) []load.Summary {
	var hooks []func()
	if during != nil {
		hooks = append(hooks, during)
	}
	gw, np := upgradeUnderLoad(t, s, "ramped v1→v2", pods, false, hooks...)
	if rolled != nil {
		rolled()
	}
	var sums []load.Summary
	for _, tr := range []*traffic{gw, np} {
		sum := tr.stopNoFailures(t)
		if len(mixedSeconds(tr.tl)) == 0 {
			t.Errorf("%s: never both versions in the same second, want a mixed ramp", tr.name)
		}
		checkVersions(t, tr.name, sum, "v1", "v2")
		sums = append(sums, sum)
	}
	return sums
}

// setWeights sets a route's weights on every gateway replica through its
// admin API, reached through the API server's proxy to the pod.
func setWeights(t *testing.T, s *system, route, body string) {
	t.Helper()
	for _, pod := range s.podNames(t, s.ns, "app.kubernetes.io/name=gateway") {
		s.mustAdmin(t, pod, "PUT", "/routes/"+route+"/weights", body)
	}
}

// testBlueGreen flips from blue (v1) to green (v2) at once through the
// gateway's admin API, then the same with the plain Service's selector;
// no request fails, a probe before each flip sees only blue and a probe
// once it is done only green.
func testBlueGreen(t *testing.T) {
	s := strategy(t, "blue-green", "deploy/demo-blue", "deploy/demo-green")
	s.waitGateway(t, "demo-blue", "track=blue")
	s.waitGateway(t, "demo-green", "track=green")

	gwCfg := load.Config{URL: s.gateway + "/"}
	tr := startLoad(t, "blue/green flip by gateway weights", gwCfg)
	p := probe{name: "blue/green flip by gateway weights, probe", cfg: gwCfg}
	expectOnly(t, "v1", p)
	begin := time.Now()
	// Done when every replica has answered the call: a replica applies
	// the weights before it answers.
	setWeights(t, s, "demo", `{"demo-blue": 0, "demo-green": 100}`)
	t.Logf("weights flipped on every gateway replica in %v", time.Since(begin).Round(10*time.Millisecond))
	expectOnly(t, "v2", p)
	sum := tr.stopNoFailures(t)
	checkVersions(t, tr.name, sum, "v1", "v2")
	for _, pod := range s.podNames(t, s.ns, "app.kubernetes.io/name=gateway") {
		out := s.mustAdmin(t, pod, "GET", "/routes/demo/weights", "")
		var got map[string]int
		if err := json.Unmarshal([]byte(out), &got); err != nil || !maps.Equal(got, map[string]int{"demo-blue": 0, "demo-green": 100}) {
			t.Errorf("gateway %s: GET /routes/demo/weights = %q after the flip (%v), want demo-blue 0, demo-green 100", pod, out, err)
		}
	}

	// Plain Kubernetes: the Service's selector. kube-proxy applies it a
	// moment after the API has it; the flip is done when 20 answers in a
	// row (a new connection each) came from green: with both colours
	// still in kube-proxy's rules that has a chance of 2^-20.
	npCfg := load.Config{URL: s.demo + "/", DisableKeepAlive: true}
	tr = startLoad(t, "blue/green flip by Service selector, NodePort, new connection per request", npCfg)
	p = probe{name: "blue/green flip by Service selector, NodePort probe", cfg: npCfg}
	expectOnly(t, "v1", p)
	s.kc(t, s.ns, "patch", "service", "demo", "-p", `{"spec":{"selector":{"track":"green"}}}`)
	patched := time.Now()
	eventually(t, convergeTimeout, "20 answers in a row from green through the NodePort", func() error {
		for i := range 20 {
			r, err := fetch(t.Context(), s.demo+"/", "", nil)
			if err != nil {
				return err
			}
			if v := r.Header.Get("X-Flotilla-Version"); r.Status != 200 || v != "v2" {
				return fmt.Errorf("answer %d: status %d, version %q", i+1, r.Status, v)
			}
		}
		return nil
	})
	t.Logf("the NodePort answered only green from %v after the patch", time.Since(patched).Round(100*time.Millisecond))
	expectOnly(t, "v2", p)
	sum = tr.stopNoFailures(t)
	checkVersions(t, tr.name, sum, "v1", "v2")
}

// share returns version v's share of a load's answers, 0..1.
func share(sum load.Summary, v string) float64 {
	for _, c := range sum.Versions {
		if c.Version == v {
			return c.Share
		}
	}
	return 0
}

// testCanary: 10 % by gateway weight (± 2.5 points, as the README states
// for 1500 requests; the gateway's smooth weighted round robin is exact
// over every 100 requests of a replica), 25 % by replica ratio through the
// plain Service with a new connection per request (± 3.5 points: about
// three and a half standard deviations of 2000 coin flips).
func testCanary(t *testing.T) {
	s := strategy(t, "canary", "deploy/demo-stable", "deploy/demo-canary")
	s.waitGateway(t, "demo-stable", "track=stable")
	s.waitGateway(t, "demo-canary", "track=canary")
	for i, c := range []struct {
		name      string
		cfg       load.Config
		want, tol float64
	}{
		{"canary by gateway weight", load.Config{URL: s.gateway + "/"}, 0.10, 0.025},
		{"canary by replica ratio, NodePort, new connection per request", load.Config{URL: s.demo + "/", DisableKeepAlive: true}, 0.25, 0.035},
	} {
		var before time.Time
		if i == 0 {
			before = waitScraped(t, prometheus(t), s.ns, 2)
		}
		tr := startLoad(t, c.name, c.cfg)
		sleep(t, 10*time.Second)
		sum := tr.stopNoFailures(t)
		t.Logf("load stopped at %s", time.Now().Format("15:04:05.000"))
		got := share(sum, "v2")
		t.Logf("%s: v2 share %.1f%% of %d answers, want %.0f%% ± %.1f points", c.name, 100*got, sum.Requests, 100*c.want, 100*c.tol)
		if math.Abs(got-c.want) > c.tol || share(sum, "v1")+got < 0.999 {
			t.Errorf("%s: versions %s (v2 %.1f%%), want v2 at %.0f%% ± %.1f points and v1 the rest", c.name, versions(sum), 100*got, 100*c.want, 100*c.tol)
		}
		if i == 0 {
			// Prometheus in the loop: Flagger's analysis and the Grafana
			// dashboard, from what the cluster's Prometheus scraped.
			checkFlagger(t, s, "demo", "v2", before, sum, 10*time.Second)
			checkDashboard(t, s.ns, time.Now())
		}
	}
}

// testABTesting: the header or the cookie always reaches B (v2), everything
// else A (v1), as flotilla load --expect-version checks.
func testABTesting(t *testing.T) {
	checkABTesting(t, strategy(t, "ab-testing", "deploy/demo-a", "deploy/demo-b"))
}

// checkABTesting is testABTesting on a deployed A/B system.
func checkABTesting(t *testing.T, s *system) {
	s.waitGateway(t, s.backend("demo-a"), "track=a")
	s.waitGateway(t, s.backend("demo-b"), "track=b")
	for _, c := range []struct {
		name    string
		headers []string
		want    string
	}{
		{"A/B without header or cookie", nil, "v1"},
		{"A/B with X-Variant: b", []string{"X-Variant: b"}, "v2"},
		{"A/B with cookie variant=b", []string{"Cookie: variant=b"}, "v2"},
		{"A/B with X-Variant: a", []string{"X-Variant: a"}, "v1"},
	} {
		tr := startLoad(t, c.name, load.Config{URL: s.gateway + "/", Headers: c.headers, ExpectVersions: []string{c.want}})
		sleep(t, 5*time.Second)
		sum := tr.stopNoFailures(t)
		if len(sum.Failures) > 0 || len(sum.Versions) != 1 || sum.Versions[0].Version != c.want {
			t.Errorf("%s: versions %s, failures %q; want %s only", c.name, versions(sum), sum.Failures, c.want)
		}
	}
}

// testShadow: clients see only the primary (v1); the shadow (v2) served a
// copy of the requests, counted from each pod's own metrics.
func testShadow(t *testing.T) {
	checkShadow(t, strategy(t, "shadow", "deploy/demo-primary", "deploy/demo-shadow"))
}

// checkShadow is testShadow on a deployed shadow system.
func checkShadow(t *testing.T, s *system) {
	s.waitGateway(t, s.backend("demo-primary"), "track=primary")
	s.waitGateway(t, s.backend("demo-shadow"), "track=shadow")
	const series = `flotilla_http_requests_total{code="200",handler="GET /{$}"}`
	count := func(track string) (map[string]float64, float64) {
		byPod, total := map[string]float64{}, 0.0
		for _, pod := range s.podNames(t, s.ns, "track="+track) {
			m, err := s.podMetrics(t.Context(), s.ns, pod, 8080)
			if err != nil {
				t.Fatal(err)
			}
			byPod[pod] = metricValue(m, series)
			total += byPod[pod]
		}
		return byPod, total
	}
	// Every request on the route ends in one mirror result at each
	// gateway replica (sent, failed, dropped or skipped), counted when the
	// copy is done.
	mirrored := func() float64 {
		var n float64
		for _, pod := range s.podNames(t, s.ns, "app.kubernetes.io/name=gateway") {
			m, err := s.podMetrics(t.Context(), s.ns, pod, 9901)
			if err != nil {
				t.Fatal(err)
			}
			n += metricSum(m, "flotilla_gateway_mirror_requests_total")
		}
		return n
	}
	_, primary0 := count("primary")
	_, shadow0 := count("shadow")
	mirrored0 := mirrored()

	tr := startLoad(t, "shadow, gateway", load.Config{URL: s.gateway + "/", ExpectVersions: []string{"v1"}})
	sleep(t, 10*time.Second)
	sum := tr.stopNoFailures(t)
	if len(sum.Failures) > 0 {
		t.Errorf("shadow: the clients saw %s (%q), want v1 only", versions(sum), sum.Failures)
	}
	// The last copies may still be on their way: wait until the gateway
	// has a result for the copy of every answered request.
	eventually(t, convergeTimeout, "a mirror result for every request", func() error {
		if n := mirrored() - mirrored0; n < float64(sum.Requests) {
			return fmt.Errorf("%.0f mirror results for %d requests", n, sum.Requests)
		}
		return nil
	})
	primaryPods, primary := count("primary")
	shadowPods, shadow := count("shadow")
	primary, shadow = primary-primary0, shadow-shadow0
	t.Logf("shadow: %d answered requests; served on / by the primary pods %v (+%.0f), by the shadow pods %v (+%.0f, %.1f%% of the requests)",
		sum.Requests, primaryPods, primary, shadowPods, shadow, 100*shadow/math.Max(float64(sum.Requests), 1))
	if primary < float64(sum.Requests) {
		t.Errorf("shadow: the primary pods served %.0f requests, fewer than the %d answers", primary, sum.Requests)
	}
	// Copies beyond the in-flight cap are dropped on purpose; on a quiet
	// machine almost none are. Half is far below what a working mirror
	// delivers and far above what a broken one does.
	if shadow < 0.5*float64(sum.Requests) || shadow > primary {
		t.Errorf("shadow: the shadow pods served %.0f copies of %d requests (primary %.0f), want at least half and at most all", shadow, sum.Requests, primary)
	}
}
