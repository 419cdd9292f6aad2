package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func routeYAML(name string) string {
	return fmt.Sprintf("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: b, addresses: [\"127.0.0.1:1\"]}]\nroutes: [{name: %s, backends: [{name: b}]}]\n", name)
}

func watched(t *testing.T, path string) (*Gateway, func()) {
	t.Helper()
	gw, err := NewFromFile(Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := gw.WatchFile(ctx, 20*time.Millisecond); err != nil {
			t.Errorf("WatchFile() = %v", err)
		}
	})
	return gw, func() { cancel(); wg.Wait(); gw.Close() }
}

func routeName(gw *Gateway) string { return gw.state.Load().table.Routes()[0].Name }

func TestWatchFileEditAndInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(routeYAML("one")), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, stop := watched(t, path)
	defer stop()
	// Replace by rename, as editors and `kubectl cp` do.
	tmp := path + ".tmp"
	os.WriteFile(tmp, []byte(routeYAML("two")), 0o600)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload to route two", func() bool { return routeName(gw) == "two" })
	os.WriteFile(path, []byte(routeYAML("Bad Name")), 0o600)
	waitFor(t, "a failed reload", func() bool { return !gw.Status().OK })
	if routeName(gw) != "two" {
		t.Errorf("after an invalid file, route = %s, want two still serving", routeName(gw))
	}
	if errs := gw.Status().Errors; len(errs) != 1 || errs[0] == "" {
		t.Errorf("Status().Errors = %q, want one problem", errs)
	}
}

// TestWatchFileConfigMapSwap replays how the kubelet updates a ConfigMap
// volume: the file is a symlink through "..data", which is swapped
// atomically to a new timestamped directory.
func TestWatchFileConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	write := func(sub, route string) {
		os.Mkdir(filepath.Join(dir, sub), 0o755)
		if err := os.WriteFile(filepath.Join(dir, sub, "gateway.yaml"), []byte(routeYAML(route)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("..2026_11_27_01", "one")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("..2026_11_27_01", filepath.Join(dir, "..data")))
	must(os.Symlink("..data/gateway.yaml", filepath.Join(dir, "gateway.yaml")))
	gw, stop := watched(t, filepath.Join(dir, "gateway.yaml"))
	defer stop()

	write("..2026_11_27_02", "two")
	must(os.Symlink("..2026_11_27_02", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(os.RemoveAll(filepath.Join(dir, "..2026_11_27_01")))
	waitFor(t, "reload after the ..data swap", func() bool { return routeName(gw) == "two" })
}

func TestConfigFileOverCapRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	big := "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\n#" + strings.Repeat("x", config.MaxFileBytes) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFromFile(Options{ConfigPath: path}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("NewFromFile(%d-byte file) error = %v, want it refused as larger than the cap", len(big), err)
	}
}
