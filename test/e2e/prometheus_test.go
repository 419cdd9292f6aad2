//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// The local cluster's Prometheus (test/e2e/cluster, phase prometheus)
// scrapes every pod through Kubernetes service discovery every 2 s.
// promInterval is the range the Flagger and Grafana queries are evaluated
// over: the 10 s load run and the wait for the scrape after it, with room
// for a slow machine.
const promInterval = "30s"

// prometheus returns a client of the cluster's Prometheus (PROMETHEUS_URL,
// set by test/e2e/cluster/env.sh).
func prometheus(t *testing.T) promv1.API {
	t.Helper()
	u := os.Getenv("PROMETHEUS_URL")
	if u == "" {
		t.Fatal("PROMETHEUS_URL is not set: run the suite with make e2e (test/e2e/cluster/env.sh sets it)")
	}
	c, err := api.NewClient(api.Config{Address: u})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c)
}

// promQuery evaluates q at ts and returns its vector; a query Prometheus
// refuses (a parse error) fails the test naming the query.
func promQuery(t *testing.T, p promv1.API, q string, ts time.Time) model.Vector {
	t.Helper()
	v, warnings, _, err := p.Query(t.Context(), q, ts)
	if err != nil {
		t.Fatalf("Prometheus query %s: %v", q, err)
	}
	if len(warnings) > 0 {
		t.Logf("Prometheus query %s: warnings %v", q, warnings)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		t.Fatalf("Prometheus query %s: got %s, want a vector", q, v.Type())
	}
	return vec
}

// promScalar is the single sample of q at ts; ok is false when q has none.
func promScalar(t *testing.T, p promv1.API, q string, ts time.Time) (float64, bool) {
	t.Helper()
	vec := promQuery(t, p, q, ts)
	if len(vec) != 1 {
		return 0, false
	}
	return float64(vec[0].Value), true
}

// waitScraped waits until Prometheus has scraped every gateway replica of
// ns once after now, so counters read afterwards are current.
func waitScraped(t *testing.T, p promv1.API, ns string, replicas int) time.Time {
	t.Helper()
	// timestamp() of a bare selector is the scrape's time (of an expression
	// it would be the evaluation's); up is 1 when that scrape succeeded.
	q := fmt.Sprintf(`count((timestamp(up{namespace=%q,app="gateway"}) > %.3f) and (up == 1))`, ns, float64(time.Now().UnixMilli())/1000)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if v, ok := promScalar(t, p, q, time.Now()); ok && int(v) >= replicas {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not scraped %d gateway replicas of namespace %s within 60 s (%s)", replicas, ns, q)
		}
		sleep(t, time.Second)
	}
}

// metricTemplate reads a Flagger MetricTemplate's query from
// deploy/kubernetes/components/flagger and fills Flagger's variables.
func metricTemplate(t *testing.T, name, ns, target string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir("components", "flagger"), "metric-templates.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var mt struct {
			Metadata struct{ Name string }
			Spec     struct{ Query string }
		}
		if err := yaml.Unmarshal([]byte(doc), &mt); err != nil {
			t.Fatalf("metric-templates.yaml: %v", err)
		}
		if mt.Metadata.Name == name {
			return strings.NewReplacer("{{ namespace }}", ns, "{{ target }}", target, "{{ interval }}", promInterval).Replace(mt.Spec.Query)
		}
	}
	t.Fatalf("metric-templates.yaml has no MetricTemplate %s", name)
	return ""
}

// checkFlagger evaluates the Flagger MetricTemplates against Prometheus
// after a canary load run through the gateway of ns, as Flagger's
// analysis would: the success rate must be ≥ 99 % and the p99 under the
// route timeout. It also checks Prometheus against the load tool: the
// canary's requests counted by the gateways' metrics between before and
// after equal the answers the load tool got from the canary's version.
func checkFlagger(t *testing.T, s *system, target, canaryVersion string, before time.Time, sum load.Summary, routeTimeout time.Duration) {
	t.Helper()
	p := prometheus(t)
	after := waitScraped(t, p, s.ns, 2)
	backend := fmt.Sprintf(`flotilla_gateway_requests_total{namespace=%q,backend=~"(gw[.]%s[.])?%s-canary([.].+)?"}`, s.ns, s.ns, target)
	counted := func(ts time.Time) float64 {
		v, _ := promScalar(t, p, "sum("+backend+")", ts)
		return v
	}
	b, a := counted(before), counted(after)
	got := a - b
	t.Logf("Prometheus: %.0f canary requests counted at %s, %.0f at %s", b, before.Format("15:04:05.000"), a, after.Format("15:04:05.000"))
	var want float64
	for _, v := range sum.Versions {
		if v.Version == canaryVersion {
			want = float64(v.Count)
		}
	}
	// The load tool does not count requests its stop cut short; the gateway does.
	t.Logf("Prometheus: the gateways counted %.0f requests to the canary, the load tool %.0f answers from %s", got, want, canaryVersion)
	if want == 0 || got < want || got > want+math.Max(5, 0.01*want) {
		t.Errorf("Prometheus counted %.0f canary requests through the gateways, the load tool %.0f answers from %s: want equal (+ at most the requests in flight at stop)", got, want, canaryVersion)
	}

	rate, ok := promScalar(t, p, metricTemplate(t, "flotilla-request-success-rate", s.ns, target), after)
	loadRate := 100 * (1 - sum.ErrorRate)
	t.Logf("Flagger request-success-rate: %.2f %% (load tool: %.2f %%)", rate, loadRate)
	if !ok || rate < 99 || math.Abs(rate-loadRate) > 1 {
		t.Errorf("Flagger request-success-rate = %.2f (data: %v), want ≥ 99 and within 1 point of the load tool's %.2f", rate, ok, loadRate)
	}
	p99, ok := promScalar(t, p, metricTemplate(t, "flotilla-request-duration", s.ns, target), after)
	t.Logf("Flagger request-duration (p99): %.1f ms (route timeout %v)", p99, routeTimeout)
	if !ok || math.IsNaN(p99) || p99 <= 0 || p99 >= float64(routeTimeout.Milliseconds()) {
		t.Errorf("Flagger request-duration = %.1f ms (data: %v), want a p99 above 0 and under the route timeout %v", p99, ok, routeTimeout)
	}
}

// checkDashboard evaluates every query of the Grafana dashboard
// (deploy/kubernetes/components/grafana-dashboard) for namespace ns: each
// must parse and return data.
func checkDashboard(t *testing.T, ns string, at time.Time) {
	t.Helper()
	p := prometheus(t)
	b, err := os.ReadFile(filepath.Join(deployDir("components", "grafana-dashboard"), "flotilla.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("flotilla.json: %v", err)
	}
	n := 0
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			q := strings.NewReplacer("$namespace", ns, "$__rate_interval", promInterval).Replace(target.Expr)
			if vec := promQuery(t, p, q, at); len(vec) == 0 {
				t.Errorf("dashboard panel %q: query %s returned no data", panel.Title, q)
			}
			n++
		}
	}
	if n == 0 {
		t.Error("the dashboard has no queries")
	}
	t.Logf("Grafana dashboard: %d queries of %d panels parsed and returned data", n, len(dash.Panels))
}
