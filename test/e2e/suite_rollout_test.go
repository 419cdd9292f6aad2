//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// image is the flotilla image of a version, as make images builds it.
func image(version string) string { return "ghcr.io/flotilla-dev/flotilla:" + version }

// testRollingUpgrade is the talk's `kubectl set image` upgrade of the
// counter, under loadRate requests/s through the gateway: v1 → v2 → v1 →
// v2, each checked (the counter stays on v2: what follows does not care).
// No request may fail, and the answers move from the old version to the
// new one: a probe before the change sees only the old version, a probe
// once only new pods are left (and the gateway has them) only the new one.
func testRollingUpgrade(t *testing.T, s *system) {
	steps := []struct{ from, to string }{{"v1", "v2"}, {"v2", "v1"}, {"v1", "v2"}}
	for i, st := range steps {
		name := fmt.Sprintf("rolling upgrade %d counter %s→%s, gateway /counter", i+1, st.from, st.to)
		s.waitGateway(t, "counter", counterPods)
		tr := startLoad(t, name, load.Config{URL: s.gateway + "/counter"})
		p := probe{name: name + ", probe", cfg: load.Config{URL: s.gateway + "/counter"}}
		expectOnly(t, st.from, p)
		s.kc(t, s.ns, "set", "image", "deploy/counter", "counter="+image(st.to))
		s.waitRolledOut(t, "deploy/counter")
		// The old pods are gone from the API once rolled out, but may still
		// drain; wait until only new pods exist (their processes have
		// ended), and the gateway has the new ones.
		s.waitPods(t, counterPods, 2)
		s.waitGateway(t, "counter", counterPods)
		expectOnly(t, st.to, p)
		sum := tr.stopNoFailures(t)
		checkVersions(t, name, sum, st.from, st.to)
	}
}

// checkVersions checks that both versions, and no other, answered a load
// across a change. Which came first is the probes' business (expectOnly);
// failed requests are judged elsewhere.
func checkVersions(t *testing.T, name string, sum load.Summary, from, to string) {
	t.Helper()
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
