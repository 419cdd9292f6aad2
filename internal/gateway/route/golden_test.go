package route

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestGoldenTables compiles every example config and compares the table,
// in match order, with testdata/<example>.golden. Regenerate with
// go test ./internal/gateway/route -update.
func TestGoldenTables(t *testing.T) {
	files, _ := filepath.Glob("../../../examples/gateway/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			// Policies need the gateway's state: the table shows where they are.
			tb, err := CompileWith(c, Options{Policies: func(*config.Route) ([]Filter, error) { return nil, nil }})
			if err != nil {
				t.Fatal(err)
			}
			got := tb.Describe()
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("table for %s differs from %s (-want +got):\n%s", f, golden, diff)
			}
		})
	}
}
