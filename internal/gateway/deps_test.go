package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestConfigDependsOnNothingButYAML keeps the layering honest: the config
// package is pure data, importing only the standard library and the YAML
// decoder.
func TestConfigDependsOnNothingButYAML(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./config").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/flotilla-dev/flotilla/internal/gateway/config" && p != "gopkg.in/yaml.v3" {
			t.Errorf("internal/gateway/config depends on %s", p)
		}
	}
}

// TestLiveViewIsPureData: the live view's data package imports only the
// standard library, so the page (liveui), the gateway and, on
// Kubernetes, the peer fetcher all depend on it and not on each other.
func TestLiveViewIsPureData(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./liveview").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/flotilla-dev/flotilla/internal/gateway/liveview" {
			t.Errorf("internal/gateway/liveview depends on %s", p)
		}
	}
}
