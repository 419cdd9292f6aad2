//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

const gatewayPods = "app.kubernetes.io/name=gateway"

// testFleetRateLimit: the shipped /limited route admits 50 requests a
// second (burst 50) in total, whatever the number of gateway replicas:
// with three, hammered at three times the limit on a new connection per
// request (so kube-proxy spreads them over the replicas), the admitted
// count is the limit within 5%, every replica admitted some, and the
// rest got 429 with Retry-After.
func testFleetRateLimit(t *testing.T, s *system) {
	s.kc(t, s.ns, "scale", "deploy/gateway", "--replicas=3")
	defer func() {
		s.kc(t, s.ns, "scale", "deploy/gateway", "--replicas=2")
		s.waitPods(t, gatewayPods, 2)
	}()
	s.waitRolledOut(t, "deploy/gateway")
	s.waitPods(t, gatewayPods, 3)
	pods := s.podNames(t, s.ns, gatewayPods)
	s.waitGateway(t, "demo", "app.kubernetes.io/name=demo")
	admitted := func() map[string]float64 {
		m := map[string]float64{}
		for _, pod := range pods {
			out, err := s.podMetrics(t.Context(), s.ns, pod, 9901)
			if err != nil {
				t.Fatalf("gateway %s metrics: %v", pod, err)
			}
			m[pod] = metricValue(out, `flotilla_gateway_policy_decisions_total{decision="allow",policy="rateLimit:fleet",reason="",route="limited"}`)
		}
		return m
	}
	before := admitted()
	// The bucket starts full (50); a second's rest refills it after any
	// earlier test's requests.
	sleep(t, 2*time.Second)

	const limit, burst, rate = 50, 50, 150
	sum, err := load.Run(t.Context(), load.Config{URL: s.gateway + "/limited/", Rate: rate, Duration: 15 * time.Second,
		Timeout: loadTimeout, DisableKeepAlive: true}, load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := limit*sum.Elapsed.Seconds() + burst
	got := float64(sum.Status[http.StatusOK])
	errPct := 100 * (got - want) / want
	t.Logf("3 gateway replicas, %d req/s for %s: %d admitted, %d refused (429), want %.0f admitted: error %+.2f%%; statuses %v",
		rate, sum.Elapsed.Round(time.Millisecond), sum.Status[200], sum.Status[429], want, errPct, sum.Status)
	if math.Abs(errPct) > 5 {
		t.Errorf("admitted %v, want %.0f ± 5%%: the limit is not the fleet's", got, want)
	}
	if n := sum.Status[200] + sum.Status[429]; n != sum.Requests {
		t.Errorf("answers other than 200 and 429: %v (errors %v)", sum.Status, sum.ErrorKinds)
	}
	after := admitted()
	var per []string
	for _, pod := range pods {
		d := after[pod] - before[pod]
		per = append(per, fmt.Sprintf("%s=%.0f", pod, d))
		if d == 0 {
			t.Errorf("gateway %s admitted nothing: the load did not reach every replica", pod)
		}
	}
	t.Logf("admitted per replica: %s", strings.Join(per, " "))

	r, err := fetch(t.Context(), s.gateway+"/limited/", "", nil)
	for i := 0; err == nil && r.Status != http.StatusTooManyRequests && i < 200; i++ {
		r, err = fetch(t.Context(), s.gateway+"/limited/", "", nil)
	}
	if err != nil || r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Header.Get("RateLimit-Policy"), `"fleet";q=50;w=1`) {
		t.Errorf("over the limit: %v %d %v, want 429 with Retry-After and RateLimit-Policy", err, r.Status, r.Header)
	}
}
