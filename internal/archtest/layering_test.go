// Package archtest keeps the dependency edges of STYLE.md honest: shared
// infrastructure imports no app package, app packages never import each
// other, and the gateway's config stays pure data.
package archtest

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/flotilla-dev/flotilla/internal/"

var (
	apps   = []string{"counter", "demo", "gateway", "load"}
	shared = []string{"httpserver", "probe", "metrics", "logging", "negotiate", "flagenv", "buildinfo"}
)

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Standard", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// area returns the top-level internal package of path ("gateway" for
// internal/gateway/route), or "".
func area(path string) string {
	rest, ok := strings.CutPrefix(path, mod)
	if !ok {
		return ""
	}
	a, _, _ := strings.Cut(rest, "/")
	return a
}

func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages; the test is looking in the wrong place", len(pkgs))
	}
	for _, p := range pkgs {
		from := area(p.ImportPath)
		for _, imp := range p.Imports {
			to := area(imp)
			switch {
			case to == "" || to == from:
			case slices.Contains(shared, from) && (slices.Contains(apps, to) || to == "cli"):
				t.Errorf("%s (shared infrastructure) imports %s", p.ImportPath, imp)
			case slices.Contains(apps, from) && slices.Contains(apps, to):
				t.Errorf("%s imports another app package, %s", p.ImportPath, imp)
			}
		}
		if p.ImportPath == mod+"gateway/config" {
			for _, imp := range p.Imports {
				if !strings.Contains(strings.Split(imp, "/")[0], ".") { // standard library
					continue
				}
				if !strings.Contains(imp, "yaml") {
					t.Errorf("gateway/config must be pure data; it imports %s", imp)
				}
			}
		}
	}
}
