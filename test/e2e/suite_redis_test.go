//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

const (
	counterPods = "app.kubernetes.io/name=counter"
	redisPods   = "app.kubernetes.io/name=redis"
	// redisAddr is the counter's --redis-addr in deploy/kubernetes/base.
	redisAddr = "redis:6379"
	// outageRate is the rate of the load through the gateway while Redis is
	// away: not a zero-failure check, so less than loadRate.
	outageRate = 50
	// recoveryBound is how long after Redis is ready again requests
	// through the gateway may still fail (issue 10). The counters' own
	// 503s do not count as endpoint failures (outlier defaults), so the
	// gateway routes to a counter again once its /readyz passes (checks
	// every 2 s); the bound is what the issue allows, with room for a
	// busy machine.
	recoveryBound = 30 * time.Second
)

// testRedisRestart deletes the Redis pod, under load through the gateway.
// How long Redis is away is up to the machine (a second on a quiet one),
// so only what holds whatever the timing is checked: the StatefulSet
// brings Redis back on the same volume (append-only file) and the count
// goes on from where it was; every counter pod is ready again by itself,
// without a restart; no request hangs (every failure is a 503 answer);
// and from recoveryBound after the new Redis pod is ready no request
// through the gateway fails.
func testRedisRestart(t *testing.T, s *system) {
	before := s.counterValue(t, "before deleting Redis")
	restartsBefore := s.counterRestarts(t)
	oldUID := strings.TrimSpace(s.kc(t, s.ns, "get", "pod", "redis-0", "-o", "jsonpath={.metadata.uid}"))
	s.waitGateway(t, "counter", counterPods)

	tr := startLoad(t, "Redis pod deleted, gateway /counter", load.Config{URL: s.gateway + "/counter", Rate: outageRate})
	sleep(t, 2*time.Second)
	s.kc(t, s.ns, "delete", "pod", "redis-0", "--wait=false")
	deleted := time.Now()
	// A new redis-0 (another UID), Ready. The moment this loop sees it is
	// at or after the moment it became ready.
	var ready time.Time
	eventually(t, rolloutTimeout, "a new redis-0 ready", func() error {
		out, err := s.run(t.Context(), "", "get", "pod", "-n", s.ns, "redis-0", "-o",
			`jsonpath={.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil {
			return err
		}
		if f := strings.Fields(out); len(f) != 2 || f[0] == oldUID || f[1] != "True" {
			return fmt.Errorf("redis-0: uid and ready %q (the deleted one was %s)", out, oldUID)
		}
		ready = time.Now()
		return nil
	})
	t.Logf("a new redis-0 was ready %v after the deletion", ready.Sub(deleted).Round(100*time.Millisecond))
	s.waitCountersReady(t, "after Redis came back")

	// From recoveryBound after Redis was ready, every request through the
	// gateway (a new connection each, so both gateway replicas answer)
	// succeeds.
	sleep(t, time.Until(ready.Add(recoveryBound)))
	probe := startLoad(t, fmt.Sprintf("gateway /counter from %v after Redis was ready, new connection per request", recoveryBound),
		load.Config{URL: s.gateway + "/counter", Rate: outageRate, DisableKeepAlive: true})
	sleep(t, 5*time.Second)
	probe.stopNoFailures(t)
	checkAnswered(t, tr.stop(t))

	s.checkCountContinued(t, before, restartsBefore)
}

// testRedisOutage makes Redis go away for as long as the test needs:
// scales the Redis StatefulSet to 0 and waits until its pod is gone. Then
// every counter pod turns unready; a counter pod asked directly answers
// 503 with one line naming Redis and its address (README, "The counter
// and Redis"); the gateway, once it has no available counter, answers its
// own 503 no_healthy_upstream; nothing hangs. Scaled back to 1, the count
// goes on from where it was, every counter pod is ready again by itself
// and none restarted.
func testRedisOutage(t *testing.T, s *system) {
	before := s.counterValue(t, "before scaling Redis to 0")
	restartsBefore := s.counterRestarts(t)
	pods := s.podNames(t, s.ns, counterPods)
	s.waitGateway(t, "counter", counterPods)

	tr := startLoad(t, "Redis scaled to 0, gateway /counter", load.Config{URL: s.gateway + "/counter", Rate: outageRate})
	sleep(t, 2*time.Second)
	s.kc(t, s.ns, "scale", "statefulset/redis", "--replicas=0")
	s.waitPods(t, redisPods, 0)
	gone := time.Now()

	eventually(t, convergeTimeout, "every counter pod unready while Redis is away", func() error {
		ready, _, err := s.podsReady(t.Context(), s.ns, counterPods)
		if err != nil {
			return err
		}
		for p, ok := range ready {
			if ok {
				return fmt.Errorf("counter pod %s still ready (%v)", p, ready)
			}
		}
		return nil
	})
	t.Logf("every counter pod unready %v after the Redis pod was gone", time.Since(gone).Round(100*time.Millisecond))

	want := "Redis at " + redisAddr + " is unavailable: "
	for _, pod := range pods {
		r, err := s.podGet(t, s.ns, pod, 8080, "/")
		if err != nil {
			t.Fatalf("GET / of counter pod %s (Redis away): %v", pod, err)
		}
		line, _ := strings.CutSuffix(r.Body, "\n")
		if r.Status != http.StatusServiceUnavailable || !strings.HasPrefix(line, want) || len(line) == len(want) || strings.Contains(line, "\n") {
			t.Errorf("GET / of counter pod %s (Redis away): status %d, body %q; want 503 and one line %q followed by the error", pod, r.Status, r.Body, want+"…")
		}
		if inst := r.Header.Get("X-Flotilla-Instance"); inst != pod {
			t.Errorf("GET / of counter pod %s (Redis away): X-Flotilla-Instance %q", pod, inst)
		}
		t.Logf("counter pod %s, Redis away: %d %q", pod, r.Status, r.Body)
	}

	// The gateway has no available counter (waitGateway: none is ready).
	s.waitGateway(t, "counter", counterPods)
	for i := range 5 {
		r, err := fetch(t.Context(), s.gateway+"/counter", "", nil)
		if err != nil {
			t.Fatalf("gateway /counter %d (no counter available): %v (freshClient's timeout is %v)", i, err, freshClient.Timeout)
		}
		if r.Status != http.StatusServiceUnavailable || !strings.HasPrefix(r.Body, `{"error":"no_healthy_upstream","status":503,`) {
			t.Errorf("gateway /counter %d (no counter available): status %d, body %q; want the gateway's 503 no_healthy_upstream", i, r.Status, r.Body)
		}
	}

	// The gateway's fleet-wide rate limit (/limited, onError: allow)
	// fails open while its Redis is away.
	for i := range 5 {
		r, err := fetch(t.Context(), s.gateway+"/limited/", "", nil)
		if err != nil || r.Status != http.StatusOK {
			t.Errorf("gateway /limited %d (Redis away, onError allow): %v %d %q, want 200", i, err, r.Status, r.Body)
		}
	}

	s.kc(t, s.ns, "scale", "statefulset/redis", "--replicas=1")
	s.waitRolledOut(t, "statefulset/redis")
	s.waitCountersReady(t, "after Redis was scaled back to 1")
	// Until the gateway routes to the counters again (its ejections of
	// them end), so the load shows both sides of the outage.
	s.waitGateway(t, "counter", counterPods)
	sum := tr.stop(t)
	checkAnswered(t, sum)
	if sum.Status[http.StatusOK] == 0 || sum.Status[http.StatusServiceUnavailable] == 0 {
		t.Errorf("load through the gateway: status counts %v, want both 200s (before and after the outage) and 503s (during it)", sum.Status)
	}

	s.checkCountContinued(t, before, restartsBefore)
}

// checkAnswered fails the test unless every request of a load got an
// answer: a failure may be a 503, never a hang, a reset or a refusal.
func checkAnswered(t *testing.T, sum load.Summary) {
	t.Helper()
	if sum.Requests == 0 || sum.Errors != sum.Status[http.StatusServiceUnavailable] || sum.ErrorKinds.ServerErr != sum.Errors {
		t.Errorf("%d requests, %d failed (timeout %d, refused %d, reset %d, other %d), status counts %v: want every failure a 503 answer",
			sum.Requests, sum.Errors, sum.ErrorKinds.Timeout, sum.ErrorKinds.Refused, sum.ErrorKinds.Reset, sum.ErrorKinds.Other, sum.Status)
	}
}

// counterValue asks the counter's NodePort once and returns the value.
func (s *system) counterValue(t *testing.T, what string) int {
	t.Helper()
	r, err := fetch(t.Context(), s.counter+"/", "", nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	_, n := counterAnswer(t, what, r, s.podNames(t, s.ns, counterPods))
	return n
}

// counterRestarts returns the counter pods' restart counts.
func (s *system) counterRestarts(t *testing.T) map[string]int {
	t.Helper()
	_, restarts, err := s.podsReady(t.Context(), s.ns, counterPods)
	if err != nil {
		t.Fatal(err)
	}
	return restarts
}

// waitCountersReady waits until every counter pod is ready.
func (s *system) waitCountersReady(t *testing.T, when string) {
	t.Helper()
	start := time.Now()
	eventually(t, rolloutTimeout, "every counter pod ready "+when, func() error {
		ready, _, err := s.podsReady(t.Context(), s.ns, counterPods)
		if err != nil {
			return err
		}
		for p, ok := range ready {
			if !ok {
				return fmt.Errorf("counter pod %s unready (%v)", p, ready)
			}
		}
		return nil
	})
	t.Logf("every counter pod ready %s (waited %v)", when, time.Since(start).Round(100*time.Millisecond))
}

// checkCountContinued checks, once Redis is back, that the counter's next
// value is above before (the append-only file kept the count) and that
// no counter pod restarted.
func (s *system) checkCountContinued(t *testing.T, before int, restartsBefore map[string]int) {
	t.Helper()
	// The counters are ready; kube-proxy may add them back to the NodePort
	// a moment later.
	var r response
	eventually(t, convergeTimeout, "the counter's NodePort answers 200 again", func() error {
		var err error
		r, err = fetch(t.Context(), s.counter+"/", "", nil)
		if err == nil && r.Status != http.StatusOK {
			err = fmt.Errorf("status %d: %q", r.Status, r.Body)
		}
		return err
	})
	_, after := counterAnswer(t, "after Redis came back", r, s.podNames(t, s.ns, counterPods))
	t.Logf("value=%d before, value=%d after", before, after)
	if after <= before {
		t.Errorf("value=%d after Redis came back, want more than %d: the count did not survive", after, before)
	}
	if restarts := s.counterRestarts(t); !maps.Equal(restartsBefore, restarts) {
		t.Errorf("counter restarts %v before, %v after: a Redis outage must not restart the counters", restartsBefore, restarts)
	}
}
