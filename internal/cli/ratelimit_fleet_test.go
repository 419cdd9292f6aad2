package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/redistest"
)

// fleet is three `flotilla gateway` processes sharing one config.
type fleet struct {
	addrs []string
}

func startFleet(t *testing.T, bin, config string, n int) *fleet {
	t.Helper()
	f := &fleet{}
	for range n {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "gateway", "--config", config, "--addr", addr, "--admin-addr", "", "--access-log=false", "--log-level", "warn")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("gateway %s stderr:\n%s", addr, stderr.String())
			}
		})
		f.addrs = append(f.addrs, addr)
	}
	for _, a := range f.addrs {
		waitUntil(t, "gateway "+a+" serving", func() bool {
			resp, err := http.Get("http://" + a + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		})
	}
	return f
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hammer sends rate requests per second to path, spread over the fleet,
// for d, and counts the answers by status.
func (f *fleet) hammer(t *testing.T, path string, rate int, d time.Duration) (counts map[int]int, elapsed time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	counts = map[int]int{}
	var wg sync.WaitGroup
	var n atomic.Int64
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	sem := make(chan struct{}, 64) // bounded in flight
	for time.Since(start) < d {
		<-tick.C
		sem <- struct{}{}
		addr := f.addrs[int(n.Add(1))%len(f.addrs)]
		wg.Go(func() {
			defer func() { <-sem }()
			code := 0
			resp, err := client.Get("http://" + addr + path)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			counts[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts, time.Since(start)
}

// TestGlobalRateLimitFleet: one key hammered through three gateway
// processes sharing Redis at three times its limit gets the limit within
// 5% (the proof); with Redis killed, a fail-open limit lets
// requests through and a fail-closed one refuses them with 503, and both
// count again once Redis is back, without a restart.
func TestGlobalRateLimitFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s fleet run")
	}
	bin := buildFlotilla(t)
	rs := redistest.Start(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	defer backend.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	const limit = 50
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
redis: {address: %q, timeout: 100ms}
backends: [{name: b, addresses: [%q]}]
routes:
  - name: healthz
    match: {path: {type: Exact, value: /healthz}}
    directResponse: {status: 200, body: "ok"}
  - name: open
    match: {path: {type: Prefix, value: /open}}
    rateLimits: [{name: fleet, requests: %d, per: 1s, burst: %d, key: {source: route}, scope: global}]
    backends: [{name: b}]
  - name: closed
    match: {path: {type: Prefix, value: /closed}}
    rateLimits: [{name: fleet, requests: %d, per: 1s, burst: %d, key: {source: route}, scope: global, onError: deny}]
    backends: [{name: b}]
`, rs.Addr, strings.TrimPrefix(backend.URL, "http://"), limit, limit, limit, limit)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f := startFleet(t, bin, cfg, 3)

	counts, elapsed := f.hammer(t, "/open", 3*limit, 20*time.Second)
	want := float64(limit)*elapsed.Seconds() + limit
	got := float64(counts[200])
	errPct := 100 * (got - want) / want
	t.Logf("3 gateways, %d req/s offered for %s: %d admitted, %d refused (429), want %.0f: error %+.2f%%; all: %v",
		3*limit, elapsed.Round(time.Millisecond), counts[200], counts[429], want, errPct, counts)
	if errPct > 5 || errPct < -5 {
		t.Errorf("admitted %v, want %.0f ± 5%% (the fleet-wide limit)", got, want)
	}
	if counts[200]+counts[429] != sum(counts) {
		t.Errorf("answers other than 200 and 429: %v", counts)
	}

	rs.Kill()
	for _, p := range []struct {
		path string
		want int
	}{{"/open", 200}, {"/closed", 503}} {
		counts, _ := f.hammer(t, p.path, 30, 2*time.Second)
		if counts[p.want] != sum(counts) {
			t.Errorf("Redis down: %s answered %v, want only %d", p.path, counts, p.want)
		}
	}
	rs.Restart()
	// Back by itself: both limits count again (over the limit: 429s).
	for _, path := range []string{"/open", "/closed"} {
		waitUntil(t, path+" limited again after Redis restarted", func() bool {
			counts, _ := f.hammer(t, path, 3*limit, time.Second)
			return counts[429] > 0 && counts[503] == 0
		})
	}
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
