//go:build e2e

package e2e

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMain starts what later tests need built (Helm) in the background, so
// a cold machine compiles while the first tests wait on the cluster; it
// removes Helm's build directory at the end.
func TestMain(m *testing.M) {
	flag.Parse()
	helm := runs("TestHelm") || runs("TestHelmGatewayAPI")
	if helm {
		go helmBuild()
	}
	code := m.Run()
	if helm {
		helmBuild() // done by now, or ending: never left running
		if helmDir != "" {
			os.RemoveAll(helmDir)
		}
	}
	os.Exit(code)
}

// runs reports whether -test.run selects the top-level test name (or
// names a pattern that does not compile, which go test refuses anyway).
func runs(name string) bool {
	pattern, _, _ := strings.Cut(flag.Lookup("test.run").Value.String(), "/")
	if pattern == "" {
		return true
	}
	re, err := regexp.Compile(pattern)
	return err != nil || re.MatchString(name)
}
