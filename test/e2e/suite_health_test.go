//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// readinessDelay is what the readiness test sets FLOTILLA_READINESS_DELAY to.
const readinessDelay = 10 * time.Second

// appRequests sums a flotilla pod's flotilla_http_requests_total over its
// application handlers: probes and metrics scrapes apart.
func appRequests(metrics string) float64 {
	var n float64
	for line := range strings.Lines(metrics) {
		if !strings.HasPrefix(line, "flotilla_http_requests_total{") {
			continue
		}
		if strings.Contains(line, `handler="GET /readyz"`) || strings.Contains(line, `handler="GET /healthz"`) || strings.Contains(line, `handler="GET /metrics"`) {
			continue
		}
		series, _, _ := strings.Cut(line, "} ")
		n += metricValue(line, series+"}")
	}
	return n
}

// testReadinessDelay rolls the demo to pods that fail /readyz for their
// first 10 s (FLOTILLA_READINESS_DELAY, as docs/deploy.md shows) under load
// through the gateway and the NodePort: no request fails, and no new pod
// serves a request in its first 10 s, read from its own metrics while it
// waits.
func testReadinessDelay(t *testing.T, s *system) {
	old := s.podNames(t, s.ns, "app.kubernetes.io/name=demo")
	s.waitGateway(t, "demo", "app.kubernetes.io/name=demo")
	gw := startLoad(t, "readiness delay rollout, gateway minikube.test", load.Config{URL: s.gateway + "/", Host: "minikube.test"})
	np := startLoad(t, "readiness delay rollout, NodePort, new connection per request", load.Config{URL: s.demo + "/", DisableKeepAlive: true})
	sleep(t, 3*time.Second)
	s.kc(t, s.ns, "set", "env", "deploy/demo", "FLOTILLA_READINESS_DELAY="+readinessDelay.String())

	// While the rollout goes on, read each new pod's metrics as often as
	// possible. A read whose process_start_time_seconds (the pod's own,
	// from the same read) plus the delay is still ahead of the time after
	// the read came back was taken during the readiness delay: a non-zero
	// request count then is traffic before ready. No pod status is
	// waited for (the kubelet reports a container's start seconds late on
	// a busy machine): a new pod is read as soon as it is listed.
	checked := map[string]int{} // reads while not yet ready, by pod
	served := map[string]float64{}
	ctx := t.Context()
	deadline := time.Now().Add(rolloutLongTimeout)
	for done := false; !done; {
		switch err := s.rolledOut(ctx, "deploy/demo"); {
		case err == nil:
			done = true
		case time.Now().After(deadline):
			t.Fatalf("deploy/demo not rolled out after %v: %v", rolloutLongTimeout, err)
		}
		for _, pod := range s.podNames(t, s.ns, "app.kubernetes.io/name=demo") {
			if slices.Contains(old, pod) {
				continue
			}
			m, err := s.podMetrics(ctx, s.ns, pod, 8080)
			now := time.Now()
			started := metricValue(m, "process_start_time_seconds")
			if err != nil || started == 0 || now.After(time.UnixMilli(int64(started*1000)).Add(readinessDelay)) {
				continue
			}
			checked[pod]++
			if n := appRequests(m); n > 0 {
				t.Errorf("pod %s served %v requests %v after its process started, before its readiness delay of %v ended",
					pod, n, now.Sub(time.UnixMilli(int64(started*1000))).Round(100*time.Millisecond), readinessDelay)
			}
		}
		sleep(t, 200*time.Millisecond)
	}
	sleep(t, 3*time.Second)
	gw.stopNoFailures(t)
	np.stopNoFailures(t)

	// The new pods did get traffic once ready, so the check above could fail.
	for _, pod := range s.podNames(t, s.ns, "app.kubernetes.io/name=demo") {
		if m, err := s.podMetrics(ctx, s.ns, pod, 8080); err == nil {
			served[pod] = appRequests(m)
		}
	}
	t.Logf("metric reads per new pod while younger than %v: %v; application requests served per pod by the end: %v", readinessDelay, checked, served)
	if len(checked) == 0 {
		t.Errorf("no new pod's metrics could be read during its readiness delay: nothing was checked")
	}
	for pod, n := range served {
		if n == 0 {
			t.Errorf("pod %s served no request at all, even once ready", pod)
		}
	}

	s.kc(t, s.ns, "set", "env", "deploy/demo", "FLOTILLA_READINESS_DELAY-")
	s.waitRolledOut(t, "deploy/demo")
	s.waitPods(t, "app.kubernetes.io/name=demo", 2)
}

// testLivenessRestart adds a demo pod that turns unhealthy after 200
// application requests (FLOTILLA_DIE_AFTER_REQUESTS, FLOTILLA_DIE_MODE=unhealthy:
// it keeps running but answers 503, and /readyz still passes, so only its
// liveness probe and the gateway's passive health checks notice). Under
// load through the gateway: the liveness probe restarts it, the gateway
// ejects it after a few 503s instead of sending it a third of the traffic,
// and the two healthy pods serve the rest.
func testLivenessRestart(t *testing.T, s *system) {
	const dieAfter = 200
	raw := s.kc(t, s.ns, "get", "deploy/demo", "-o", "json")
	var d map[string]any
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatal(err)
	}
	// The live Deployment, renamed, one replica, its pods told apart by a
	// label but still selected by the demo's Services (and so the gateway).
	d["metadata"] = map[string]any{"name": "demo-faulty", "labels": map[string]any{"app.kubernetes.io/name": "demo"}}
	delete(d, "status")
	spec := d["spec"].(map[string]any)
	spec["replicas"] = 1
	spec["selector"].(map[string]any)["matchLabels"].(map[string]any)["e2e"] = "faulty"
	tmpl := spec["template"].(map[string]any)
	tmpl["metadata"].(map[string]any)["labels"].(map[string]any)["e2e"] = "faulty"
	ctr := tmpl["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	ctr["env"] = append(ctr["env"].([]any),
		map[string]any{"name": "FLOTILLA_DIE_AFTER_REQUESTS", "value": fmt.Sprint(dieAfter)},
		map[string]any{"name": "FLOTILLA_DIE_MODE", "value": "unhealthy"})
	manifest, _ := json.Marshal(d)
	s.apply(t, s.ns, string(manifest))
	t.Cleanup(func() { s.run(context.Background(), "", "delete", "-n", s.ns, "deploy/demo-faulty", "--wait=false") })
	s.waitRolledOut(t, "deploy/demo-faulty")
	faulty := s.podNames(t, s.ns, "e2e=faulty")
	if len(faulty) != 1 {
		t.Fatalf("faulty demo pods %q, want one", faulty)
	}
	pod := faulty[0]
	s.waitGateway(t, "demo", "app.kubernetes.io/name=demo")
	healthy := slices.DeleteFunc(s.podNames(t, s.ns, "app.kubernetes.io/name=demo"), func(p string) bool { return p == pod })
	gwPods := s.podNames(t, s.ns, "app.kubernetes.io/name=gateway")
	// Ejections of demo endpoints so far, summed over the gateway replicas.
	ejections := func() float64 {
		var n float64
		for _, gw := range gwPods {
			m, err := s.podMetrics(t.Context(), s.ns, gw, 9901)
			if err != nil {
				t.Fatal(err)
			}
			n += metricValue(m, `flotilla_gateway_ejections_total{backend="demo"}`)
		}
		return n
	}
	ejections0 := ejections()

	tr := startLoad(t, "liveness restart, gateway minikube.test", load.Config{URL: s.gateway + "/", Host: "minikube.test"})
	// Restarted by the liveness probe (not by exiting: it does not exit),
	// then ready again.
	eventually(t, 3*time.Minute, "faulty pod restarted and ready again", func() error {
		ready, restarts, err := s.podsReady(t.Context(), s.ns, "e2e=faulty")
		if err != nil {
			return err
		}
		if restarts[pod] < 1 || !ready[pod] {
			return fmt.Errorf("pod %s: restarts %d, ready %v", pod, restarts[pod], ready[pod])
		}
		return nil
	})
	sleep(t, 3*time.Second)
	sum := tr.stop(t)
	_, restarts, err := s.podsReady(t.Context(), s.ns, "e2e=faulty")
	if err != nil {
		t.Fatal(err)
	}
	why := s.kc(t, s.ns, "get", "events", "--field-selector", "involvedObject.name="+pod, "-o",
		`jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
	t.Logf("faulty pod %s: %d restarts; its events:\n%s", pod, restarts[pod], why)
	if !strings.Contains(why, "failed liveness probe, will be restarted") {
		t.Errorf("pod %s: no event says the liveness probe restarted it", pod)
	}

	// Every failure is the faulty pod's 503, and the gateway stopped
	// sending to it after a few. At a gateway replica the failures come in
	// runs: a run ends with an ejection (after 5 in a row) or, once per
	// death, with the restarted pod's first success. How many ejections
	// there were (one per death and replica when the liveness probe
	// restarts the pod within the 30 s ejection; more when the machine is
	// slow and an ejection ends first) is read from the gateways' own
	// metrics. 10 a run: 5, and as many again for requests already in
	// flight.
	deaths := int64(restarts[pod] + 1)
	ejected := int64(ejections() - ejections0)
	runs := ejected + int64(len(gwPods))*deaths
	bound := 10 * runs
	if sum.Errors != sum.ErrorKinds.ServerErr || sum.Errors > bound {
		t.Errorf("%d failed requests (%d 5xx), want only 503s and at most %d (10 a run of failures: %d ejections, %d deaths, %d gateway replicas)",
			sum.Errors, sum.ErrorKinds.ServerErr, bound, ejected, deaths, len(gwPods))
	}
	if ejected == 0 {
		t.Errorf("no gateway replica ejected the faulty pod")
	}
	byPod := map[string]int64{}
	for _, c := range sum.Instances {
		byPod[c.Instance] += c.Count
	}
	for _, p := range healthy {
		if byPod[p] == 0 {
			t.Errorf("healthy pod %s answered nothing: %v", p, byPod)
		}
	}
	t.Logf("answers by pod: %v (faulty %s, %d failed requests, %d ejections, bound %d)", byPod, pod, sum.Errors, ejected, bound)
}
