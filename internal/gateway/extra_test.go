package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

func routeNames(gw *Gateway) []string {
	var out []string
	for _, r := range gw.state.Load().table.Routes() {
		out = append(out, r.Name)
	}
	return out
}

// TestSetExtraSurvivesFileReloads: the extra config is merged after the
// file's, kept across reloads of the file, and an invalid one changes
// nothing.
func TestSetExtraSurvivesFileReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(routeYAML("one")), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, stop := watched(t, path)
	defer stop()
	x := &Extra{Backends: []config.Backend{{Name: "ing.b", Addresses: []string{"127.0.0.1:2"}}},
		Routes: []config.Route{{Name: "ing.r", Match: config.Match{Path: &config.PathMatch{Type: config.PathPrefix, Value: "/ing"}}, Backends: []config.BackendRef{{Name: "ing.b"}}}}}
	if err := gw.SetExtra(x); err != nil {
		t.Fatalf("SetExtra() = %v", err)
	}
	if got := routeNames(gw); !slices.Equal(got, []string{"one", "ing.r"}) {
		t.Fatalf("routes = %v, want [one ing.r]", got)
	}
	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte(routeYAML("two")), 0o600)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file's new route", func() bool { return routeName(gw) == "two" })
	if got := routeNames(gw); !slices.Equal(got, []string{"two", "ing.r"}) {
		t.Fatalf("after the file changed, routes = %v, want [two ing.r]", got)
	}
	bad := &Extra{Routes: []config.Route{{Name: "ing.bad", Backends: []config.BackendRef{{Name: "missing"}}}}}
	if err := gw.SetExtra(bad); err == nil {
		t.Fatal("SetExtra(route to a missing backend) = nil, want an error")
	}
	if got := routeNames(gw); !slices.Equal(got, []string{"two", "ing.r"}) {
		t.Fatalf("after a bad extra, routes = %v, want the last good [two ing.r]", got)
	}
	if err := gw.SetExtra(nil); err != nil {
		t.Fatal(err)
	}
	if got := routeNames(gw); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("after SetExtra(nil), routes = %v, want [two]", got)
	}
}

func TestSetExtraInMemory(t *testing.T) {
	c, err := config.Parse([]byte(routeYAML("base")))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	x := &Extra{Backends: []config.Backend{{Name: "ing.b", Addresses: []string{"127.0.0.1:2"}}},
		Routes: []config.Route{{Name: "ing.r", Backends: []config.BackendRef{{Name: "ing.b"}}}}}
	if err := gw.SetExtra(x); err != nil {
		t.Fatal(err)
	}
	if got := routeNames(gw); !slices.Equal(got, []string{"base", "ing.r"}) {
		t.Fatalf("routes = %v, want [base ing.r]", got)
	}
}

// TestSetExtraPartKeepsOtherParts: two controllers' parts are served
// together; one part's update or bad config leaves the other's routes.
func TestSetExtraPartKeepsOtherParts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(routeYAML("one")), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, stop := watched(t, path)
	defer stop()
	part := func(prefix string) *Extra {
		return &Extra{Backends: []config.Backend{{Name: prefix + ".b", Addresses: []string{"127.0.0.1:2"}}},
			Routes: []config.Route{{Name: prefix + ".r", Match: config.Match{Path: &config.PathMatch{Type: config.PathPrefix, Value: "/" + prefix}}, Backends: []config.BackendRef{{Name: prefix + ".b"}}}}}
	}
	if err := gw.SetExtraPart("ingress", part("ing")); err != nil {
		t.Fatal(err)
	}
	if err := gw.SetExtraPart("gatewayapi", part("gw")); err != nil {
		t.Fatal(err)
	}
	if got := routeNames(gw); !slices.Equal(got, []string{"one", "gw.r", "ing.r"}) {
		t.Fatalf("routes = %v, want [one gw.r ing.r]", got)
	}
	bad := &Extra{Routes: []config.Route{{Name: "gw.bad", Backends: []config.BackendRef{{Name: "missing"}}}}}
	if err := gw.SetExtraPart("gatewayapi", bad); err == nil {
		t.Fatal("SetExtraPart(bad) = nil, want an error")
	}
	if err := gw.SetExtraPart("ingress", nil); err != nil {
		t.Fatalf("after another part's bad config, SetExtraPart(ingress, nil) = %v", err)
	}
	if got := routeNames(gw); !slices.Equal(got, []string{"one", "gw.r"}) {
		t.Fatalf("routes = %v, want [one gw.r]: the bad part kept its last good value", got)
	}
}
