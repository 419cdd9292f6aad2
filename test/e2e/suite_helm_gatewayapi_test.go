//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// TestHelmGatewayAPI installs the chart with gatewayAPI.enabled (and
// installCRDs, which finds the CRDs the suite applied and skips them), the
// canary strategy and HTTPS, under a GatewayClass of its own: the Gateway
// (HTTP and HTTPS listeners, the chart's certificate) is Programmed and the
// four HTTPRoutes Accepted; `helm test` reaches the counter through them;
// the demo splits 90/10 by the HTTPRoute's weights; and a flip PUT to one
// gateway replica's admin API is written to the HTTPRoute, which every
// replica follows, with no failed request.
func TestHelmGatewayAPI(t *testing.T) {
	c := newCluster(t)
	start := time.Now()
	installGatewayAPICRDs(t, c)
	ns := c.namespace(t, "helmgw")
	class := "flotilla-" + ns
	t.Cleanup(func() {
		// Cluster-scoped: not deleted with the namespace.
		ctx := context.Background()
		for _, obj := range []string{"gatewayclass/" + class, "clusterrolebinding/" + ns + "-flotilla-gateway-api", "clusterrole/" + ns + "-flotilla-gateway-api"} {
			if _, err := c.run(ctx, "", "delete", obj, "--ignore-not-found", "--wait=false"); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(fmt.Sprintf(`redis: {persistence: {type: emptyDir}}
gateway:
  service: {type: NodePort}
  tls: {enabled: true}
strategy: {type: canary}
gatewayAPI: {enabled: true, className: %s, installCRDs: true}
`, class)), 0o644); err != nil {
		t.Fatal(err)
	}
	run := helmRunner(t, c, ns)
	run("install", "flotilla", "../../deploy/helm/flotilla", "-f", values, "--wait", "--timeout", "5m")
	t.Logf("helm install with gatewayAPI.enabled done %v after the start", time.Since(start).Round(100*time.Millisecond))

	s := &system{cluster: c, ns: ns, gatewayAPI: true}
	counter, stable, canary := s.backend("flotilla-counter-headless"), s.backend("flotilla-demo-stable-headless"), s.backend("flotilla-demo-canary-headless")
	s.waitGateway(t, counter, "app.kubernetes.io/name=counter")
	s.waitGateway(t, stable, "app.kubernetes.io/name=demo,track=stable")
	s.waitGateway(t, canary, "app.kubernetes.io/name=demo,track=canary")
	cond := func(typ string) string { return fmt.Sprintf(`{.conditions[?(@.type==%q)].status}`, typ) }
	eventually(t, convergeTimeout, "the chart's Gateway Programmed and its HTTPRoutes Accepted", func() error {
		var problems []string
		out, err := s.run(t.Context(), "", "-n", ns, "get", "gateway", "flotilla", "-o",
			`jsonpath={.status.conditions[?(@.type=="Programmed")].status} {range .status.listeners[*]}{.name}=`+cond("Programmed")+` {end}`)
		if err != nil || strings.TrimSpace(out) != "True http=True https=True" {
			problems = append(problems, fmt.Sprintf("Gateway flotilla Programmed, listeners: %q (%v)", out, err))
		}
		for _, r := range []string{"flask", "counter", "minikube", "demo"} {
			out, err := s.run(t.Context(), "", "-n", ns, "get", "httproute", "flotilla-"+r, "-o",
				`jsonpath={range .status.parents[*]}`+cond("Accepted")+` `+cond("ResolvedRefs")+`{end}`)
			if err != nil || strings.TrimSpace(out) != "True True" {
				problems = append(problems, fmt.Sprintf("HTTPRoute flotilla-%s Accepted ResolvedRefs: %q (%v)", r, out, err))
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		return nil
	})
	gw := fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, ns, "flotilla-gateway", 80))
	waitOK(t, gw+"/counter", "")
	waitOK(t, gw+"/flask", "flaskapp.test")
	run("test", "flotilla", "--timeout", "5m")

	route := "gw." + ns + ".flotilla-demo.0.0"
	waitWeights(t, s, route, stable, canary, 90, 10)
	name := "helm canary 90/10 by HTTPRoute weights, /demo/ through the gateway NodePort"
	tr := startLoad(t, name, load.Config{URL: gw + "/demo/"})
	sleep(t, 10*time.Second)
	sum := tr.stopNoFailures(t)
	if got := share(sum, "v2"); got < 0.075 || got > 0.125 || share(sum, "v1")+got < 0.999 {
		t.Errorf("%s: versions %s (v2 %.1f%%), want v2 at 10%% ± 2.5 points and v1 the rest", name, versions(sum), 100*got)
	}

	name = "helm canary promoted through one replica's admin API, written to the HTTPRoute"
	tr = startLoad(t, name, load.Config{URL: gw + "/demo/"})
	sleep(t, 2*time.Second)
	pods := s.podNames(t, ns, "app.kubernetes.io/name=gateway")
	code, where, body, err := s.adminPut(t.Context(), pods[0], "/routes/"+route+"/weights", fmt.Sprintf(`{%q: 0, %q: 100}`, stable, canary))
	if err != nil || code != http.StatusOK || !strings.HasPrefix(where, "HTTPRoute "+ns+"/flotilla-demo spec.rules[0]") {
		t.Fatalf("PUT /routes/%s/weights on %s = %d %q (%s, %v), want 200 written to HTTPRoute %s/flotilla-demo spec.rules[0]", route, pods[0], code, where, body, err, ns)
	}
	waitWeights(t, s, route, stable, canary, 0, 100)
	expectOnly(t, "v2", probe{name: name + ", probe", cfg: load.Config{URL: gw + "/demo/"}})
	sum = tr.stopNoFailures(t)
	checkVersions(t, name, sum, "v1", "v2")
	// The other HTTPRoute of the demo (minikube.test) keeps its weights:
	// one rule of one HTTPRoute was written.
	waitWeights(t, s, "gw."+ns+".flotilla-minikube.0.0", stable, canary, 90, 10)
	t.Logf("TestHelmGatewayAPI took %v", time.Since(start).Round(100*time.Millisecond))
}
