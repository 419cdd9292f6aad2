package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

// versionServer answers as version v (no header when v is ""), with
// status code.
func versionServer(t *testing.T, v string, code int) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if v != "" {
			w.Header().Set("X-Flotilla-Version", v)
		}
		w.WriteHeader(code)
		io.WriteString(w, v)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// TestLiveStatsByVersion: requests through the gateway are counted by
// the version the answer names (else the backend's name) and by the
// endpoint that answered; 5xx answers and transport failures count as
// errors.
func TestLiveStatsByVersion(t *testing.T) {
	v1, v2, plain, broken := versionServer(t, "v1", 200), versionServer(t, "v2", 200), versionServer(t, "", 200), versionServer(t, "v3", 500)
	dead := deadAddr(t)
	gw, err := New(mustParse(t, fmt.Sprintf(`
backends:
- {name: blue, addresses: [%q]}
- {name: green, addresses: [%q]}
- {name: plain, addresses: [%q]}
- {name: broken, addresses: [%q]}
- {name: dead, addresses: [%q]}
routes:
- {name: split, match: {hosts: [split.test]}, backends: [{name: blue, weight: 50}, {name: green, weight: 50}]}
- {name: plain, match: {hosts: [plain.test]}, backends: [{name: plain}]}
- {name: broken, match: {hosts: [broken.test]}, backends: [{name: broken}]}
- {name: dead, match: {hosts: [dead.test]}, backends: [{name: dead}]}
`, v1, v2, plain, broken, dead)), Options{Registry: prometheus.NewRegistry(), Replica: "gw-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()
	send := func(host string, n int) {
		for range n {
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Host = host
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	send("split.test", 40)
	send("plain.test", 5)
	send("broken.test", 3)
	send("dead.test", 3)
	gw.live.Tick(time.Now(), gw.routeInputs())
	snap := gw.LiveSnapshot()
	if len(snap.Replicas) != 1 || snap.Replicas[0] != "gw-test" {
		t.Errorf("replicas = %v", snap.Replicas)
	}
	got := map[string]string{}
	for _, svc := range snap.Services {
		for _, v := range svc.Versions {
			var eps []string
			for _, in := range v.Instances {
				eps = append(eps, fmt.Sprintf("%s:%d", in.State, in.Stats.Total))
			}
			got[svc.Name+"/"+v.Name] = fmt.Sprintf("total %d errors %d instances %v", v.Stats.Total, v.Stats.TotalErrors, eps)
		}
	}
	want := map[string]string{
		"split/v1":    "total 20 errors 0 instances [ready:20]",
		"split/v2":    "total 20 errors 0 instances [ready:20]",
		"plain/plain": "total 5 errors 0 instances [ready:5]",
		"broken/v3":   "total 3 errors 3 instances [ready:3]", // 500s
		"dead/dead":   "total 3 errors 3 instances [ready:3]", // 502: nobody answered, no version
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s, want %s", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("versions = %v", got)
	}
}

// TestLiveStatsOff: with DisableLiveStats nothing is counted, and the
// topology is still there.
func TestLiveStatsOff(t *testing.T) {
	gw, err := New(mustParse(t, fmt.Sprintf(`
backends: [{name: blue, addresses: [%q]}]
routes: [{name: app, backends: [{name: blue}]}]
`, versionServer(t, "v1", 200))), Options{Registry: prometheus.NewRegistry(), DisableLiveStats: true})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	rec := httptest.NewRecorder()
	gw.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	gw.live.Tick(time.Now(), gw.routeInputs())
	s := gw.LiveSnapshot()
	if len(s.Services) != 1 || s.Services[0].Stats.Total != 0 || len(s.Services[0].Versions) != 1 || len(s.Services[0].Versions[0].Instances) != 1 {
		t.Errorf("snapshot with stats off = %+v", s.Services)
	}
}

// TestPauseHoldsWeights: a paused route refuses weight changes (409 on
// the admin API) and keeps its live weights across a reload of the file,
// whose other changes apply; resuming lets changes through again. Each
// step is on the timeline.
func TestPauseHoldsWeights(t *testing.T) {
	a, b := versionServer(t, "v1", 200), versionServer(t, "v2", 200)
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.yaml")
	write := func(blue, green int, timeout string) {
		os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: blue, addresses: [%q]}, {name: green, addresses: [%q]}]
routes: [{name: app, timeout: %s, backends: [{name: blue, weight: %d}, {name: green, weight: %d}]}]
`, a, b, timeout, blue, green)), 0o600)
	}
	write(90, 10, "5s")
	gw, err := NewFromFile(Options{ConfigPath: path, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	weights := func() string {
		w, _ := gw.Weights("app")
		return fmt.Sprintf("blue=%d green=%d", w["blue"], w["green"])
	}
	if err := gw.SetWeights("app", map[string]int{"blue": 80, "green": 20}); err != nil {
		t.Fatal(err)
	}
	if err := gw.SetPaused("app", true); err != nil {
		t.Fatal(err)
	}
	if err := gw.SetPaused("nope", true); !errors.Is(err, ErrNoRoute) {
		t.Errorf("SetPaused(nope) = %v, want ErrNoRoute", err)
	}
	if err := gw.SetWeights("app", map[string]int{"blue": 0, "green": 100}); !errors.Is(err, ErrPaused) {
		t.Errorf("SetWeights while paused = %v, want ErrPaused", err)
	}
	srv := httptest.NewServer(gw.AdminHandler())
	defer srv.Close()
	req, _ := http.NewRequest("PUT", srv.URL+"/routes/app/weights", strings.NewReader(`{"green": 100}`))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("admin PUT weights while paused = %d, want 409", resp.StatusCode)
	}
	write(50, 50, "7s")
	if err := gw.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if w := weights(); w != "blue=80 green=20" {
		t.Errorf("weights after a reload while paused = %s, want the held blue=80 green=20", w)
	}
	if to := gw.state.Load().cfg.Routes[0].Timeout; to != 7*time.Second {
		t.Errorf("timeout after the reload = %v, want the file's 7s", to)
	}
	if !gw.Paused("app") {
		t.Error("Paused(app) = false")
	}
	if err := gw.SetPaused("app", false); err != nil {
		t.Fatal(err)
	}
	if err := gw.SetWeights("app", map[string]int{"blue": 0, "green": 100}); err != nil || weights() != "blue=0 green=100" {
		t.Errorf("SetWeights after resume = %v, weights %s", err, weights())
	}
	write(60, 40, "7s")
	if err := gw.ReloadFile(); err != nil || weights() != "blue=60 green=40" {
		t.Errorf("reload after resume = %v, weights %s; want the file's", err, weights())
	}
	var kinds []string
	for _, e := range gw.LiveView().Events() {
		kinds = append(kinds, e.Kind)
	}
	want := []string{liveview.KindReload, liveview.KindWeights, liveview.KindPaused, liveview.KindReload, liveview.KindResumed, liveview.KindWeights, liveview.KindReload}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("timeline kinds = %v, want %v", kinds, want)
	}
}
