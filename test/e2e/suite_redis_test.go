//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"
)

// testRedisRestart deletes the Redis pod. The StatefulSet brings it back on
// the same volume (append-only file), so the count goes on from where it
// was; meanwhile the counter pods fail /readyz (they cannot reach Redis)
// and, once Redis is back, become ready again by themselves, without a
// restart (their liveness probe does not depend on Redis).
func testRedisRestart(t *testing.T, s *system) {
	pods := s.podNames(t, s.ns, "app.kubernetes.io/name=counter")
	r, err := fetch(t.Context(), s.counter+"/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, before := counterAnswer(t, "before deleting Redis", r, pods)
	_, restartsBefore, err := s.podsReady(t.Context(), s.ns, "app.kubernetes.io/name=counter")
	if err != nil {
		t.Fatal(err)
	}

	s.kc(t, s.ns, "delete", "pod", "redis-0", "--wait=false")
	deleted := time.Now()
	eventually(t, convergeTimeout, "a counter pod unready while Redis is away", func() error {
		ready, _, err := s.podsReady(t.Context(), s.ns, "app.kubernetes.io/name=counter")
		if err != nil {
			return err
		}
		for p, ok := range ready {
			if !ok {
				t.Logf("counter pod %s unready %v after deleting redis-0", p, time.Since(deleted).Round(100*time.Millisecond))
				return nil
			}
		}
		return fmt.Errorf("all counter pods ready: %v", ready)
	})
	eventually(t, 3*time.Minute, "every counter pod ready again", func() error {
		ready, _, err := s.podsReady(t.Context(), s.ns, "app.kubernetes.io/name=counter")
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
	t.Logf("every counter pod ready again %v after deleting redis-0", time.Since(deleted).Round(100*time.Millisecond))
	var after int
	eventually(t, convergeTimeout, "the counter answers again", func() error {
		r, err := fetch(t.Context(), s.counter+"/", "", nil)
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK {
			return fmt.Errorf("status %d: %q", r.Status, r.Body)
		}
		_, after = counterAnswer(t, "after Redis came back", r, pods)
		return nil
	})
	t.Logf("value=%d before deleting Redis, value=%d after", before, after)
	if after <= before {
		t.Errorf("value=%d after Redis came back, want more than %d: the count did not survive", after, before)
	}
	_, restartsAfter, err := s.podsReady(t.Context(), s.ns, "app.kubernetes.io/name=counter")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(restartsBefore, restartsAfter) {
		t.Errorf("counter restarts %v before, %v after: a Redis outage must not restart the counters", restartsBefore, restartsAfter)
	}
}
