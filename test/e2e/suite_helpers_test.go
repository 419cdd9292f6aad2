//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// The suite's load: at least 200 requests/s, open loop, as the issue asks of
// every zero-failure check. A request fails when it gets no answer within
// loadTimeout or a 5xx; the timeout is generous because the machine is shared.
const (
	loadRate    = 200
	loadTimeout = 10 * time.Second
	// convergeTimeout bounds waits for the cluster to settle (endpoints,
	// kube-proxy rules, gateway health checks): not a speed assertion.
	convergeTimeout = 2 * time.Minute
)

// deployDir is a directory under deploy/kubernetes; tests run in test/e2e.
func deployDir(parts ...string) string {
	p, err := filepath.Abs(filepath.Join(append([]string{"..", "..", "deploy", "kubernetes"}, parts...)...))
	if err != nil {
		panic(err)
	}
	return p
}

// system is the talk's demo, deploy/kubernetes/local, in a namespace of
// its own.
type system struct {
	*cluster
	ns string
	// NodePort URLs on 127.0.0.1, no trailing slash.
	gateway, counter, demo string
}

// deploySystem applies deploy/kubernetes/local into a fresh namespace and
// waits until everything has rolled out and answers.
//
// The overlay is used as it is, through a kustomization that only moves it:
// namespace "e2e-system-…" instead of flotilla (the namespace object itself
// keeps its Pod Security labels), NodePorts assigned by the cluster instead
// of the fixed 30080/30500/30880 (so the suite runs next to a `kubectl apply
// -k deploy/kubernetes/local`), and Redis's local volume renamed, reserved
// for this namespace's claim and placed in a directory of its own, which
// the test creates: the node is this machine.
func deploySystem(t *testing.T) *system {
	t.Helper()
	s := &system{cluster: newCluster(t)}
	volDir := t.TempDir() // a placeholder until the namespace name is known
	pv := ""
	t.Cleanup(func() {
		if pv == "" {
			return
		}
		// After the namespace cleanup (cleanups run last-in first-out).
		if _, err := s.run(context.Background(), "", "delete", "pv", pv, "--wait=false", "--ignore-not-found"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		os.RemoveAll(volDir)
	})
	s.ns = s.namespace(t, "system")
	pv = "flotilla-redis-" + s.ns
	volDir = filepath.Join("/var/lib/flotilla/e2e", s.ns)
	if err := os.MkdirAll(volDir, 0o755); err != nil {
		t.Fatalf("Redis volume directory (the node is this machine): %v", err)
	}

	dir := t.TempDir()
	rel, err := filepath.Rel(dir, deployDir("local"))
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %[1]s
resources: [%[2]s]
patches:
  - target: {kind: Namespace, name: flotilla}
    patch: |-
      - {op: replace, path: /metadata/name, value: %[1]s}
  - target: {kind: Service, name: ".*-nodeport"}
    patch: |-
      - {op: remove, path: /spec/ports/0/nodePort}
  - target: {kind: PersistentVolume, name: flotilla-redis}
    patch: |-
      - {op: replace, path: /metadata/name, value: %[3]s}
      - {op: replace, path: /spec/claimRef/namespace, value: %[1]s}
      - {op: replace, path: /spec/local/path, value: %[4]s}
`, s.ns, rel, pv, volDir)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	s.applyKustomize(t, s.ns, dir)
	s.waitRollout(t, s.ns, "statefulset/redis", "deploy/counter", "deploy/demo", "deploy/gateway")
	s.gateway = fmt.Sprintf("http://127.0.0.1:%d", s.nodePort(t, s.ns, "gateway-nodeport", 80))
	s.counter = fmt.Sprintf("http://127.0.0.1:%d", s.nodePort(t, s.ns, "counter-nodeport", 5000))
	s.demo = fmt.Sprintf("http://127.0.0.1:%d", s.nodePort(t, s.ns, "demo-nodeport", 8080))
	// kube-proxy programs the NodePorts, and the gateway resolves its
	// backends, a moment after the objects exist.
	for _, u := range []string{s.counter + "/", s.demo + "/ping", s.gateway + "/counter", s.gateway + "/demo/ping"} {
		waitOK(t, u, "")
	}
	return s
}

// waitOK waits until GET url (with Host host, if not "") answers 200.
func waitOK(t *testing.T, url, host string) {
	t.Helper()
	eventually(t, convergeTimeout, "GET "+url, func() error {
		r, err := fetch(t.Context(), url, host, nil)
		if err == nil && r.Status != http.StatusOK {
			err = fmt.Errorf("status %d: %q", r.Status, r.Body)
		}
		return err
	})
}

// freshClient opens a new connection for every request, as curl does, so
// kube-proxy picks a pod for each one.
var freshClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// fetch is get with a Host header (none when host is "") and a new
// connection per request.
func fetch(ctx context.Context, url, host string, header http.Header) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return response{}, err
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := freshClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b.String()}, nil
}

// kc runs kubectl in namespace ns and returns its output; the test
// fails on error.
func (c *cluster) kc(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return c.must(t, "", append([]string{"-n", ns}, args...)...)
}

// podMetrics returns pod's /metrics on port, read through the API server's
// proxy (no port-forward; the node is reachable from the API server).
func (c *cluster) podMetrics(ctx context.Context, ns, pod string, port int) (string, error) {
	return c.run(ctx, "", "get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:%d/proxy/metrics", ns, pod, port))
}

// metricValue returns the value of the sample whose name and labels are
// exactly series (`flotilla_http_requests_total{code="200",handler="GET /{$}"}`),
// 0 when absent.
func metricValue(metrics, series string) float64 {
	for line := range strings.Lines(metrics) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return 0
}

// traffic is a run of internal/load in the background.
type traffic struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	sum    load.Summary
	err    error
	tl     *timeline
}

// startLoad sends cfg's load, by default loadRate requests/s with a
// loadTimeout per request, until stop is called.
func startLoad(t *testing.T, name string, cfg load.Config) *traffic {
	t.Helper()
	if cfg.Rate == 0 {
		cfg.Rate = loadRate
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = loadTimeout
	}
	cfg.Duration = time.Hour // ended by stop
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{name: name, cancel: cancel, done: make(chan struct{}), tl: &timeline{}}
	go func() {
		defer close(tr.done)
		tr.sum, tr.err = load.Run(ctx, cfg, load.Options{Out: tr.tl})
	}()
	t.Cleanup(tr.cancel) // in case the test ends early
	return tr
}

// stop ends the load, logs its summary and returns it. Requests still in
// flight are cut short and not counted.
func (tr *traffic) stop(t *testing.T) load.Summary {
	t.Helper()
	tr.cancel()
	<-tr.done
	if tr.err != nil {
		t.Fatalf("load %s: %v", tr.name, tr.err)
	}
	s := tr.sum
	t.Logf("LOAD %s: %d requests in %s (%.0f/s, %d unsent), %d failed (refused %d, reset %d, timeout %d, 5xx %d, other %d), versions %s, p99 %s, split over time: %s",
		tr.name, s.Requests, s.Elapsed.Round(100*time.Millisecond), s.Rate, s.Unsent, s.Errors,
		s.ErrorKinds.Refused, s.ErrorKinds.Reset, s.ErrorKinds.Timeout, s.ErrorKinds.ServerErr, s.ErrorKinds.Other,
		versions(s), s.Latency.P99.Round(time.Millisecond), tr.tl.String())
	return s
}

// stopNoFailures is stop that fails the test on any failed request.
func (tr *traffic) stopNoFailures(t *testing.T) load.Summary {
	t.Helper()
	s := tr.stop(t)
	if s.Requests == 0 {
		t.Errorf("load %s: no request was sent", tr.name)
	}
	if s.Errors > 0 {
		t.Errorf("load %s: %d of %d requests failed, want 0 (status counts %v)", tr.name, s.Errors, s.Requests, s.Status)
	}
	return s
}

// versions formats a summary's version counts: "v1:1234 v2:567".
func versions(s load.Summary) string {
	var b strings.Builder
	for _, v := range s.Versions {
		fmt.Fprintf(&b, "%s:%d ", v.Version, v.Count)
	}
	return strings.TrimSpace(b.String())
}

// timeline collects the versions that answered in each second of a load
// run, from the live view's plain lines (one a second).
type timeline struct {
	mu      sync.Mutex
	partial []byte
	seconds []second
}

// second is one line of the live view.
type second struct {
	at       float64            // seconds since the start
	versions map[string]float64 // share in percent, of the last second's answers
}

var viewLine = regexp.MustCompile(`^load t=([0-9.]+)s .* versions_1s=(.*?) versions=`)

func (tl *timeline) Write(p []byte) (int, error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.partial = append(tl.partial, p...)
	for {
		i := slices.Index(tl.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(tl.partial[:i])
		tl.partial = tl.partial[i+1:]
		m := viewLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, _ := strconv.ParseFloat(m[1], 64)
		sec := second{at: at, versions: map[string]float64{}}
		for _, f := range strings.Fields(m[2]) {
			name, pct, ok := strings.Cut(f, ":")
			if v, err := strconv.ParseFloat(strings.TrimSuffix(pct, "%"), 64); ok && err == nil && v > 0 {
				sec.versions[name] = v
			}
		}
		tl.seconds = append(tl.seconds, sec)
	}
}

// answered returns the seconds in which some version answered.
func (tl *timeline) answered() []second {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []second
	for _, s := range tl.seconds {
		if len(s.versions) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// kind is "v1", "v1+v2" or "none": which versions answered in a second.
func (s second) kind() string {
	if len(s.versions) == 0 {
		return "none"
	}
	names := make([]string, 0, len(s.versions))
	for v := range s.versions {
		names = append(names, v)
	}
	slices.Sort(names)
	return strings.Join(names, "+")
}

// String compresses the timeline into runs: "v1 0-12s, v1+v2 13-40s, v2 41-50s".
func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var parts []string
	for i := 0; i < len(tl.seconds); {
		j := i
		for j+1 < len(tl.seconds) && tl.seconds[j+1].kind() == tl.seconds[i].kind() {
			j++
		}
		parts = append(parts, fmt.Sprintf("%s %.0f-%.0fs", tl.seconds[i].kind(), tl.seconds[i].at, tl.seconds[j].at))
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// sleep waits d; a test's pacing (let a load run before and after a
// change), never an assertion.
func sleep(t *testing.T, d time.Duration) {
	select {
	case <-time.After(d):
	case <-t.Context().Done():
	}
}

// podsReady returns, for each pod matching selector, whether its Ready
// condition is True, and its containers' total restart count.
func (c *cluster) podsReady(ctx context.Context, ns, selector string) (map[string]bool, map[string]int, error) {
	out, err := c.run(ctx, "", "get", "pods", "-n", ns, "-l", selector, "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[*].restartCount}{"\n"}{end}`)
	if err != nil {
		return nil, nil, err
	}
	ready, restarts := map[string]bool{}, map[string]int{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ready[f[0]] = f[1] == "True"
		for _, r := range f[2:] {
			n, _ := strconv.Atoi(r)
			restarts[f[0]] += n
		}
	}
	return ready, restarts, nil
}
