//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// testScale is the talk's `kubectl scale`: 4 counters answer from 4
// distinct pods; back to 2 under load, no request fails.
func testScale(t *testing.T, s *system) {
	s.kc(t, s.ns, "scale", "deploy/counter", "--replicas=4")
	s.waitRolledOut(t, "deploy/counter")
	pods := s.podNames(t, s.ns, "app.kubernetes.io/name=counter")
	if len(pods) != 4 {
		t.Fatalf("after scaling to 4: counter pods %q", pods)
	}
	// A new connection per request, as curl does: kube-proxy picks a pod
	// at random for each, so all 4 answer sooner or later.
	seen := map[string]int{}
	eventually(t, convergeTimeout, "answers from 4 distinct counter pods through the NodePort", func() error {
		r, err := fetch(t.Context(), s.counter+"/", "", nil)
		if err != nil {
			return err
		}
		pod, _ := counterAnswer(t, "NodePort", r, pods)
		seen[pod]++
		if len(seen) < 4 {
			return fmt.Errorf("answers so far by pod: %v", seen)
		}
		return nil
	})
	t.Logf("answers by pod through the NodePort: %v", seen)

	// Scale-down under load, through the gateway and through the NodePort
	// (a new connection per request, so every request meets kube-proxy's
	// current rules). The pods that go drain: no request may fail. First
	// every gateway replica has the 4 pods: which 2 go is the
	// Deployment's choice, and a gateway that knew only those 2 would
	// have nothing left to send to.
	s.waitGateway(t, "counter", counterPods)
	gw := startLoad(t, "scale 4→2, gateway /counter", load.Config{URL: s.gateway + "/counter"})
	np := startLoad(t, "scale 4→2, NodePort, new connection per request", load.Config{URL: s.counter + "/", DisableKeepAlive: true})
	sleep(t, 5*time.Second)
	s.kc(t, s.ns, "scale", "deploy/counter", "--replicas=2")
	s.waitPods(t, "app.kubernetes.io/name=counter", 2)
	sleep(t, 5*time.Second)
	for _, l := range []*traffic{gw, np} {
		sum := l.stopNoFailures(t)
		// The instances that answered are the 4 pods, then the 2 left.
		var inst []string
		for _, c := range sum.Instances {
			inst = append(inst, c.Instance)
		}
		for _, p := range inst {
			if !slices.Contains(pods, p) {
				t.Errorf("load %s: answered by %q, not one of the 4 counter pods %q", l.name, p, pods)
			}
		}
	}
}
