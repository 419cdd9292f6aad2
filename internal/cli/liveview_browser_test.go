package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
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

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-dev/flotilla/internal/demo"
)

// findChromium returns Debian's chromium (make deps installs it), or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startDemo serves a real demo service of version on loopback.
func startDemo(t *testing.T, instance, version string) string {
	t.Helper()
	cfg := demo.Config{Instance: instance, Version: version, DieMode: "exit",
		StreamIdleTimeout: demo.DefaultStreamIdleTimeout, StreamMaxLifetime: demo.DefaultStreamMaxLifetime}
	svc := demo.New(demo.Options{Config: cfg, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), PodIP: "127.0.0.1"})
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestLiveViewInBrowser runs `flotilla gateway` with a token-protected
// admin API in front of real demo services (v1 twice behind "blue", v2
// behind "green") and drives the live view in headless chromium: the
// login form, no console errors or exceptions, per-version shares that
// track what the clients counted, and a blue/green flip clicked on the
// page under load that moves the traffic without a failed request.
// Screenshots go to $FLOTILLA_SCREENSHOTS, else a temporary folder; the
// test prints where.
func TestLiveViewInBrowser(t *testing.T) {
	browser := findChromium()
	if browser == "" {
		if os.Getenv("FLOTILLA_REQUIRE_BROWSER") != "" {
			t.Fatal("FLOTILLA_REQUIRE_BROWSER is set but no chromium was found: run make deps (apt-get install chromium)")
		}
		t.Skip("no chromium on PATH: run make deps (apt-get install chromium), or set FLOTILLA_REQUIRE_BROWSER to make this a failure")
	}
	shots := os.Getenv("FLOTILLA_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	v1a, v1b, v2 := startDemo(t, "demo-v1-a", "v1"), startDemo(t, "demo-v1-b", "v1"), startDemo(t, "demo-v2", "v2")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends:
- {name: blue, addresses: [%q, %q], healthCheck: {path: /readyz, interval: 1s}}
- {name: green, addresses: [%q], healthCheck: {path: /readyz, interval: 1s}}
routes:
- {name: canary, match: {hosts: [canary.test]}, backends: [{name: blue, weight: 70}, {name: green, weight: 30}]}
- {name: bluegreen, match: {hosts: [bg.test]}, backends: [{name: blue, weight: 100}, {name: green, weight: 0}]}
`, v1a, v1b, v2)), 0o600)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(adminTestToken+"\n"), 0o600)
	dataAddr, adminAddr := gwFreeAddr(t), gwFreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuf
	e := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"gateway", "--config", cfg, "--addr", dataAddr, "--admin-addr", adminAddr,
			"--admin-token-file", tokenFile, "--shutdown-timeout", "2s"}, e)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop")
		}
		if strings.Contains(stderr.String()+stdout.String(), adminTestToken) {
			t.Error("the token appears in the gateway's output")
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	get := func(host string) (string, error) {
		req, _ := http.NewRequest("GET", "http://"+dataAddr+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.Header.Get("X-Flotilla-Version"), nil
	}
	waitLong(t, "the gateway serves both routes", func() bool {
		_, err1 := get("canary.test")
		_, err2 := get("bg.test")
		return err1 == nil && err2 == nil
	})
	if !strings.Contains(stderr.String(), "http://"+adminAddr+"/ui/") {
		t.Errorf("the gateway's log does not name the live view's URL http://%s/ui/: %s", adminAddr, stderr.String())
	}

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, "exception: "+msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				problems = append(problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				problems = append(problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cc := context.WithTimeout(bctx, 2*time.Minute) // generous: a busy 2-core machine
		defer cc()
		if err := chromedp.Do(c, actions...); err != nil {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%s: %v (page problems: %q)", what, err, problems)
		}
	}
	eval := func(what, expr string) string {
		t.Helper()
		c, cc := context.WithTimeout(bctx, 2*time.Minute)
		defer cc()
		v, err := chromedp.Run(c, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		c, cc := context.WithTimeout(bctx, 2*time.Minute)
		defer cc()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// versions reads what the page shows of a service's versions.
	type shown struct {
		Version    string  `json:"version"`
		Share      float64 `json:"share"`
		TotalShare float64 `json:"totalShare"`
		Total      int     `json:"total"`
	}
	versions := func(service string) []shown {
		raw := eval("read the page", fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('[data-service=%q] tr.version')].map(r => ({
			version: r.dataset.version, share: +r.dataset.share, totalShare: +r.dataset.totalShare, total: +r.dataset.total})))`, service))
		var out []shown
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("page data %q: %v", raw, err)
		}
		return out
	}
	total := func(vs []shown) (n int) {
		for _, v := range vs {
			n += v.Total
		}
		return n
	}

	run("log in", chromedp.Navigate("http://"+adminAddr+"/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminTestToken),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.CSS(`[data-service="canary"] tr.version`)))
	before := total(versions("canary"))

	// A known split: 70/30 by weight; the page must match what the
	// clients counted by X-Flotilla-Version.
	const n = 1000
	var counted sync.Map
	var wg sync.WaitGroup
	var failed atomic.Int64
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	for range 8 {
		wg.Go(func() {
			for range jobs {
				v, err := get("canary.test")
				if err != nil {
					failed.Add(1)
					continue
				}
				c, _ := counted.LoadOrStore(v, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
	var page []shown
	waitLong(t, "the page counts every request", func() bool {
		page = versions("canary")
		return total(page) >= before+n
	})
	shot("liveview-canary")
	for _, v := range page {
		c, _ := counted.Load(v.Version)
		if c == nil {
			t.Errorf("the page shows version %q, which no client saw", v.Version)
			continue
		}
		want := float64(c.(*atomic.Int64).Load()) / n
		// Every request of the page's count is one of the clients' (the
		// readiness checks do not go through the route).
		if math.Abs(v.TotalShare-want) > 0.02 {
			t.Errorf("page share of %s = %.3f, clients counted %.3f", v.Version, v.TotalShare, want)
		}
		weight := map[string]float64{"v1": .7, "v2": .3}[v.Version]
		if math.Abs(want-weight) > 0.05 {
			t.Errorf("clients counted %.3f of %s, weight %.2f", want, v.Version, weight)
		}
	}
	if len(page) != 2 {
		t.Errorf("page shows versions %+v, want v1 and v2", page)
	}

	// Blue/green: flip on the page while load runs; no request may fail.
	stop := make(chan struct{})
	var flipWG sync.WaitGroup
	var sent, flipFailed, afterV2 atomic.Int64
	var lastErr atomic.Value
	for range 4 {
		flipWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, err := get("bg.test")
				sent.Add(1)
				if err != nil {
					flipFailed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				if v == "v2" {
					afterV2.Add(1)
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	waitLong(t, "the page shows blue/green traffic on v1", func() bool {
		for _, v := range versions("bluegreen") {
			if v.Version == "v1" && v.Total > 0 {
				return true
			}
		}
		return false
	})
	shot("liveview-before-flip")
	run("click flip", chromedp.Click(chromedp.CSS(`[data-service="bluegreen"] button[data-action="flip"]`)))
	waitLong(t, "traffic moves to v2", func() bool { return afterV2.Load() > 200 })
	waitLong(t, "the page shows v2 taking the traffic", func() bool {
		for _, v := range versions("bluegreen") {
			if v.Version == "v2" && v.Share > 0.5 {
				return true
			}
		}
		return false
	})
	shot("liveview-during-flip")
	close(stop)
	flipWG.Wait()
	if f := flipFailed.Load(); f != 0 {
		t.Errorf("%d of %d requests failed across the flip (last: %v)", f, sent.Load(), lastErr.Load())
	}
	for range 20 {
		if v, err := get("bg.test"); err != nil || v != "v2" {
			t.Fatalf("after the flip bg.test answered %q, %v; want v2", v, err)
		}
	}
	var weights string
	waitLong(t, "the page shows the flipped weights", func() bool {
		weights = eval("read the weights bar", `[...document.querySelectorAll('[data-service="bluegreen"] .weights div')].map(d => d.dataset.backend+'='+d.dataset.weight).join(' ')`)
		return weights == "blue=0 green=100"
	})
	timeline := eval("read the timeline", `document.getElementById('timeline').textContent`)
	if !strings.Contains(timeline, "weights of bluegreen set to blue 0, green 100") {
		t.Errorf("timeline lacks the flip: %q", timeline)
	}
	shot("liveview-after-flip")

	// Keyboard: pause the canary with Enter on its focused button; the
	// focus survives the snapshots that re-render the numbers, and a
	// second Enter resumes.
	pause := chromedp.CSS(`[data-service="canary"] button[data-action="pause"]`)
	run("focus pause", chromedp.Focus(pause), chromedp.KeyEvent("\r"))
	waitLong(t, "the page shows canary paused", func() bool {
		return eval("read pause", `document.querySelector('[data-service="canary"]').dataset.paused + ' ' + document.querySelector('[data-service="canary"] button[data-action="pause"]').getAttribute('aria-pressed')`) == "true true"
	})
	focused := func() string {
		return eval("read focus", `(document.activeElement.closest('[data-service]') || {dataset: {}}).dataset.service + '/' + document.activeElement.dataset.action`)
	}
	updated := eval("read the time", `document.getElementById('updated').textContent`)
	waitLong(t, "a new snapshot", func() bool { return eval("read the time", `document.getElementById('updated').textContent`) != updated })
	if f := focused(); f != "canary/pause" {
		t.Errorf("after a snapshot the focus is on %q, want canary/pause", f)
	}
	run("resume", chromedp.KeyEvent("\r"))
	waitLong(t, "the page shows canary resumed", func() bool {
		return eval("read pause", `document.querySelector('[data-service="canary"]').dataset.paused`) == "false"
	})
	run("phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	shot("liveview-phone")

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(problems, "\n"))
	}
}

// waitLong polls cond every 200 ms for up to 2 minutes: the browser and
// the one-second snapshots make this slower than waitUntil's checks,
// and a busy 2-core machine slower still.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
