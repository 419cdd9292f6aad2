//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// image is the flotilla image of a version, as make images builds it.
func image(version string) string { return "ghcr.io/flotilla-dev/flotilla:" + version }

// testRollingUpgrade is the talk's `kubectl set image` upgrade of the
// counter, under loadRate requests/s through the gateway: v1 → v2 → v1 →
// v2, each checked (the counter stays on v2: what follows does not care). No request may
// fail, and the answers move from the old version to the new one: the
// first second of the load sees only the old version, the last only the
// new one.
func testRollingUpgrade(t *testing.T, s *system) {
	steps := []struct{ from, to string }{{"v1", "v2"}, {"v2", "v1"}, {"v1", "v2"}}
	for i, st := range steps {
		name := fmt.Sprintf("rolling upgrade %d counter %s→%s, gateway /counter", i+1, st.from, st.to)
		s.waitGateway(t, "counter", "app.kubernetes.io/name=counter")
		tr := startLoad(t, name, load.Config{URL: s.gateway + "/counter"})
		sleep(t, 3*time.Second)
		s.kc(t, s.ns, "set", "image", "deploy/counter", "counter="+image(st.to))
		s.waitRolledOut(t, "deploy/counter")
		// The old pods are gone from the API once rolled out, but may still
		// drain; wait until only new pods exist, then a little more so the
		// last seconds are the new version's alone.
		s.waitPods(t, "app.kubernetes.io/name=counter", 2)
		sleep(t, 4*time.Second)
		sum := tr.stopNoFailures(t)
		checkMoved(t, name, tr.tl, sum, st.from, st.to)
	}
}

// checkMoved checks that a load's answers moved from version from to
// version to: only from in the first second with answers, only to in the
// last, both in the totals. Failed requests are judged elsewhere.
func checkMoved(t *testing.T, name string, tl *timeline, sum load.Summary, from, to string) {
	t.Helper()
	secs := tl.answered()
	if len(secs) < 2 {
		t.Errorf("%s: %d seconds with answers, want more", name, len(secs))
		return
	}
	if first := secs[0]; first.served() != from {
		t.Errorf("%s: the first second (t=%.0fs) saw %s, want %s only", name, first.at, first.served(), from)
	}
	if last := secs[len(secs)-1]; last.served() != to {
		t.Errorf("%s: the last second (t=%.0fs) saw %s, want %s only", name, last.at, last.served(), to)
	}
	got := map[string]int64{}
	for _, v := range sum.Versions {
		if v.Version != load.Unknown {
			got[v.Version] = v.Count
		}
	}
	if got[from] == 0 || got[to] == 0 || len(got) != 2 {
		t.Errorf("%s: versions %s, want %s and %s only", name, versions(sum), from, to)
	}
}
