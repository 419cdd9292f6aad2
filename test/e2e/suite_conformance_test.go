//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestGatewayAPIConformance runs the official Gateway API conformance
// suite, profile GATEWAY-HTTP (test/conformance/run.sh: the suite's images
// built from its module, the gateway with components/gateway-api and
// gateway-api-per-gateway), and checks its report: every core test and
// every extended test of the features the GatewayClass claims passed. The
// report is written to test/conformance/report/ (docs/gateway-api.md).
func TestGatewayAPIConformance(t *testing.T) {
	c := newCluster(t)
	start := time.Now()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The suite removes its own namespaces; the gateway's goes here,
		// so that no second controller of the class flotilla outlives the
		// run (TestGatewayAPI runs one of its own).
		if _, err := c.run(context.Background(), "", "delete", "namespace", "flotilla-conformance", "--ignore-not-found", "--timeout=120s"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "test/conformance/run.sh"))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	out, err := cmd.CombinedOutput()
	report := filepath.Join(root, "test/conformance/report/flotilla-gateway-http.yaml")
	if err != nil {
		// Only the failed tests and the suite's summary: the whole log is
		// tens of thousands of lines.
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "--- FAIL") || strings.HasPrefix(l, "[conformance") {
				lines = append(lines, l)
			}
		}
		t.Errorf("test/conformance/run.sh: %v\n%s", err, strings.Join(lines, "\n"))
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	var r struct {
		Profiles []struct {
			Name string
			Core struct {
				Result     string
				Statistics struct{ Passed, Failed, Skipped int }
			}
			Extended struct {
				Result            string
				Statistics        struct{ Passed, Failed, Skipped int }
				SupportedFeatures []string `json:"supportedFeatures"`
			}
		}
	}
	if err := yaml.Unmarshal(data, &r); err != nil {
		t.Fatalf("report %s: %v", report, err)
	}
	if len(r.Profiles) != 1 || r.Profiles[0].Name != "GATEWAY-HTTP" {
		t.Fatalf("report profiles %+v, want GATEWAY-HTTP", r.Profiles)
	}
	p := r.Profiles[0]
	t.Logf("GATEWAY-HTTP core %s %+v, extended %s %+v (%d features), in %s", p.Core.Result, p.Core.Statistics,
		p.Extended.Result, p.Extended.Statistics, len(p.Extended.SupportedFeatures), time.Since(start).Round(time.Second))
	if p.Core.Result != "success" || p.Core.Statistics.Failed > 0 || p.Core.Statistics.Skipped > 0 {
		t.Errorf("core: %s %+v, want every test passed", p.Core.Result, p.Core.Statistics)
	}
	// 56: more than any implementation in the suite's v1.5 reports
	// (agentgateway 54); a feature silently no longer claimed shows here.
	if p.Extended.Result != "success" || p.Extended.Statistics.Failed > 0 || p.Extended.Statistics.Passed < 56 {
		t.Errorf("extended: %s %+v, want every test of the claimed features passed, at least 56", p.Extended.Result, p.Extended.Statistics)
	}
}
