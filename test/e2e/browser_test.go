//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// browser is Debian's chromium, headless, driven over the DevTools
// protocol (chromedp), collecting every console error and uncaught
// exception of the pages it opens.
type browser struct {
	t        *testing.T
	ctx      context.Context
	shots    string
	mu       sync.Mutex
	problems []string
}

// screenshotDir is where the suite's screenshots go: $FLOTILLA_SCREENSHOTS,
// else a folder of its own that outlives the test; printed by the tests.
var screenshotDir = sync.OnceValues(func() (string, error) {
	if d := os.Getenv("FLOTILLA_SCREENSHOTS"); d != "" {
		return d, os.MkdirAll(d, 0o755)
	}
	return os.MkdirTemp("", "flotilla-e2e-screenshots-")
})

// newBrowser starts chromium (make deps installs it) for the test.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no chromium on PATH: run make deps (apt-get install chromium)")
	}
	shots, err := screenshotDir()
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	b := &browser{t: t, ctx: ctx, shots: shots}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ex := ev.ExceptionDetails.Exception; ex != nil {
			msg += " " + ex.Description
		}
		b.problems = append(b.problems, "exception: "+msg)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value))
			}
			b.problems = append(b.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.problems = append(b.problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
		}
	}
}

// do runs actions, failing the test with the page's problems on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute) // a busy 2-core machine
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v (page problems: %q)", what, err, b.pageProblems())
	}
}

// eval evaluates a JavaScript expression that yields a string.
func (b *browser) eval(what, expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// shot writes a screenshot of the whole page as NAME.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

func (b *browser) pageProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// checkNoProblems fails the test if a page logged an error.
func (b *browser) checkNoProblems() {
	b.t.Helper()
	if p := b.pageProblems(); len(p) > 0 {
		b.t.Errorf("the page logged errors:\n%s", strings.Join(p, "\n"))
	}
}

// liveVersion is one version row of a service on the live view's page.
type liveVersion struct {
	Version string  `json:"version"`
	Share   float64 `json:"share"`
	Total   int     `json:"total"`
}

// liveVersions reads what the page shows of service's versions.
func (b *browser) liveVersions(service string) map[string]liveVersion {
	b.t.Helper()
	raw := b.eval("read the page", fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('[data-service=%q] tr.version')].map(r => ({
		version: r.dataset.version, share: +r.dataset.share, total: +r.dataset.total})))`, service))
	var rows []liveVersion
	if err := json.Unmarshal([]byte(raw), &rows); err != nil {
		b.t.Fatalf("page data %q: %v", raw, err)
	}
	out := map[string]liveVersion{}
	for _, r := range rows {
		out[r.Version] = r
	}
	return out
}

// livePage is the live view of one gateway replica open in the browser,
// with the per-version counts of one service when it opened.
type livePage struct {
	b       *browser
	service string
	svc     string // its CSS selector
	before  map[string]liveVersion
}

// openLiveView opens the live view of the first gateway replica of s.
func openLiveView(t *testing.T, s *system, service string) *livePage {
	t.Helper()
	return openLiveViewOn(t, s, s.podNames(t, s.ns, "app.kubernetes.io/name=gateway")[0], service)
}

// openLiveViewOn logs in to the live view of gateway pod (its pod address,
// the admin token of its Secret, the page's own login form), waits for
// service and for every replica to be merged ("2/2 gateway replicas").
func openLiveViewOn(t *testing.T, s *system, pod, service string) *livePage {
	t.Helper()
	ip := strings.TrimSpace(s.kc(t, s.ns, "get", "pod", pod, "-o", "jsonpath={.status.podIP}"))
	token, err := s.adminToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p := &livePage{b: newBrowser(t), service: service, svc: fmt.Sprintf("[data-service=%q]", service)}
	p.b.do("log in to the live view of "+pod, chromedp.Navigate("http://"+ip+":9901/ui/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login-button")),
		chromedp.WaitVisible(chromedp.CSS(p.svc+" tr.version")))
	eventually(t, convergeTimeout, "the page merges both gateway replicas", func() error {
		if h := p.b.eval("read the header", `document.getElementById('updated').textContent`); !strings.Contains(h, "2/2 gateway replicas") {
			return fmt.Errorf("header %q", h)
		}
		return nil
	})
	p.before = p.b.liveVersions(service)
	return p
}

// checkShares waits until the page has counted at least sum's requests
// since it opened (both replicas merged), then compares each version's
// share with the load tool's: within tol.
func (p *livePage) checkShares(t *testing.T, sum load.Summary, tol float64) {
	t.Helper()
	delta := func(shown map[string]liveVersion) (map[string]int, int) {
		d, n := map[string]int{}, 0
		for v, row := range shown {
			d[v] = row.Total - p.before[v].Total
			n += d[v]
		}
		return d, n
	}
	// Settled: at least the load's requests, and the same count two
	// seconds apart (the page merges its peers' last answers, a second or
	// two behind its own).
	var got map[string]int
	n, last := 0, -1
	eventually(t, convergeTimeout, "the page counts the load's requests", func() error {
		sleep(t, 2*time.Second)
		got, n = delta(p.b.liveVersions(p.service))
		if settled := n == last; int64(n) < sum.Requests || !settled {
			last = n
			return fmt.Errorf("the page counted %d requests (2 s before: %d), the load %d", n, last, sum.Requests)
		}
		return nil
	})
	for _, v := range sum.Versions {
		page, tool := float64(got[v.Version])/float64(n), float64(v.Count)/float64(sum.Requests)
		t.Logf("live view: %s %.1f%% of %d requests; load tool %.1f%% of %d", v.Version, 100*page, n, 100*tool, sum.Requests)
		if math.Abs(page-tool) > tol {
			t.Errorf("live view share of %s %.1f%%, the load tool counted %.1f%%: want within %.0f points", v.Version, 100*page, 100*tool, 100*tol)
		}
	}
}
