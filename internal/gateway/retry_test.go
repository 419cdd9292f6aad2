package gateway

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/counter"
	"github.com/flotilla-dev/flotilla/internal/metrics"
	"github.com/flotilla-dev/flotilla/internal/redistest"
)

// cutProxy is a TCP proxy that forwards one request to target, waits
// until the target starts answering (it has acted on the request), then
// closes both connections without relaying a byte of the answer: the
// upstream connection broke after the request was read.
type cutProxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Go(func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer up.Close()
			up.SetDeadline(time.Now().Add(10 * time.Second))
			// Forward the request (a GET: its head is all of it).
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			if err := req.Write(up); err != nil {
				return
			}
			var b [1]byte
			io.ReadFull(up, b[:]) // the upstream answers: it has counted
		})
	}
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// TestCounterNeverCountedTwice runs the real counter on a real Redis
// behind the gateway, with the connection to it cut after the request was
// read: one client GET is one increment and a 502, never a retry, though
// GET is idempotent and the route allows retries.
func TestCounterNeverCountedTwice(t *testing.T) {
	rs := redistest.Start(t)
	store := counter.NewRedis(counter.RedisOptions{Addr: rs.Addr, Timeout: 2 * time.Second})
	t.Cleanup(func() { store.Close() })
	svc := counter.New(counter.Options{Instance: "counter-1", Version: "v1", Store: store,
		Registry: metrics.NewRegistry("counter"), Logger: slog.New(slog.DiscardHandler)})
	up := httptest.NewServer(svc.Handler())
	t.Cleanup(up.Close)
	cut := newCutProxy(t, strings.TrimPrefix(up.URL, "http://"))
	cut2 := newCutProxy(t, strings.TrimPrefix(up.URL, "http://"))
	f := start(t, fmt.Sprintf(`
backends: [{name: counter, addresses: [%q, %q]}]
routes: [{name: counter, backends: [{name: counter}], retries: {attempts: 3, backoff: 1ms}}]
`, cut.addr(), cut2.addr()), Options{})

	resp, body := f.do(t, "GET", "x.test", "/", nil, nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("GET / through a connection cut after the request = %d %q, want 502", resp.StatusCode, body)
	}
	if got, err := rs.Do("GET", "count"); err != nil || got != "1" {
		t.Errorf("Redis count after one client request = %q (%v), want 1: the request was sent again", got, err)
	}
	if n := cut.accepted.Load() + cut2.accepted.Load(); n != 1 {
		t.Errorf("upstream connections = %d, want 1", n)
	}
}

// TestRetryOnlyWhenNotSent: a failure before the request left (a refused
// connect) is retried on another endpoint, for any method; a failure
// after it was written is not, for any method; a route's RetryOn statuses
// are retried for idempotent methods only.
func TestRetryOnlyWhenNotSent(t *testing.T) {
	var hangupHits atomic.Int64
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangupHits.Add(1)
		panic(http.ErrAbortHandler) // read the request, then drop the connection
	}))
	t.Cleanup(hangup.Close)
	good := newUpstream(t, "good")
	var busyHits atomic.Int64
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		busyHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	dead := deadAddr(t)
	tests := []struct {
		name     string
		addrs    []string
		method   string
		retryOn  string
		status   int
		hits     *atomic.Int64
		wantHits int64
	}{
		{name: "refused connect: POST retried", addrs: []string{dead}, method: "POST", status: 200},
		{name: "cut after sending: GET not retried", addrs: []string{strings.TrimPrefix(hangup.URL, "http://")}, method: "GET", status: 502, hits: &hangupHits, wantHits: 1},
		{name: "cut after sending: POST not retried", addrs: []string{strings.TrimPrefix(hangup.URL, "http://")}, method: "POST", status: 502, hits: &hangupHits, wantHits: 1},
		{name: "RetryOn status: GET retried", addrs: []string{strings.TrimPrefix(busy.URL, "http://")}, method: "GET", retryOn: "retryOn: [503], ", status: 200, hits: &busyHits, wantHits: 1},
		{name: "RetryOn status: POST not retried", addrs: []string{strings.TrimPrefix(busy.URL, "http://")}, method: "POST", retryOn: "retryOn: [503], ", status: 503, hits: &busyHits, wantHits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hangupHits.Store(0)
			busyHits.Store(0)
			// The failing endpoint first: round robin tries it first.
			f := start(t, fmt.Sprintf(`
backends: [{name: b, addresses: [%q, %q], outlier: {consecutiveFailures: 100}}]
routes: [{name: r, backends: [{name: b}], retries: {attempts: 2, backoff: 1ms, %sbudget: 1}}]
`, tt.addrs[0], good.addr(), tt.retryOn), Options{})
			resp, body := f.do(t, tt.method, "x.test", "/", nil, nil)
			if resp.StatusCode != tt.status {
				t.Errorf("%s = %d %q, want %d", tt.method, resp.StatusCode, body, tt.status)
			}
			if tt.hits != nil && tt.hits.Load() != tt.wantHits {
				t.Errorf("failing endpoint saw %d requests, want %d", tt.hits.Load(), tt.wantHits)
			}
		})
	}
}

// TestTryTimeout: a route's tryTimeout bounds each try until its response
// headers arrive: a try that runs out answers 504 and is not retried,
// even with retries and another endpoint; once the headers came, the
// body streams past it; without it only the route timeout holds.
func TestTryTimeout(t *testing.T) {
	var stuckHits atomic.Int64
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stuckHits.Add(1)
		<-r.Context().Done() // never answers; the gateway gives up
	}))
	t.Cleanup(stuck.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("stream") != "" {
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, "head ")
			w.(http.Flusher).Flush()
		}
		select { // longer than the try timeout
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "tail")
	}))
	t.Cleanup(slow.Close)
	good := newUpstream(t, "good")
	f := start(t, fmt.Sprintf(`
backends:
  - {name: stuck, addresses: [%q, %q], outlier: {consecutiveFailures: 100}}
  - {name: slow, addresses: [%q]}
routes:
  - {name: stuck, match: {hosts: [stuck.test]}, backends: [{name: stuck}], tryTimeout: 50ms, timeout: 20s, retries: {attempts: 2, backoff: 1ms, budget: 1}}
  - {name: slow, match: {hosts: [slow.test]}, backends: [{name: slow}], tryTimeout: 50ms, timeout: 20s}
  - {name: untimed, match: {hosts: [untimed.test]}, backends: [{name: slow}], timeout: 20s}
`, strings.TrimPrefix(stuck.URL, "http://"), good.addr(), strings.TrimPrefix(slow.URL, "http://")), Options{})
	tests := []struct {
		name, host, target string
		status             int
		body               string
	}{
		{name: "no headers in time: 504, not retried", host: "stuck.test", target: "/", status: 504},
		{name: "headers in time: the body streams past the try timeout", host: "slow.test", target: "/?stream=1", status: 200, body: "head tail"},
		{name: "headers too late: 504", host: "slow.test", target: "/", status: 504},
		{name: "no tryTimeout: only the route timeout holds", host: "untimed.test", target: "/", status: 200, body: "tail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stuckHits.Store(0)
			before := good.hits.Load()
			resp, body := f.do(t, "GET", tt.host, tt.target, nil, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s%s = %d %q, want %d", tt.host, tt.target, resp.StatusCode, body, tt.status)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			if tt.status == 504 && !strings.Contains(body, `"error":"upstream_timeout"`) {
				t.Errorf("body = %q, want the upstream_timeout error", body)
			}
			if tt.host == "stuck.test" {
				if n := stuckHits.Load(); n != 1 {
					t.Errorf("stuck endpoint saw %d tries, want 1", n)
				}
				if good.hits.Load() != before {
					t.Errorf("a timed-out try was retried on the other endpoint")
				}
			}
		})
	}
}

// TestMinBackoff: retries.minBackoff is the least wait before each retry
// (Gateway API's retry.backoff), whatever the jitter draws. Only a lower
// bound is asserted, which a busy machine cannot break.
func TestMinBackoff(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	f := start(t, fmt.Sprintf(`
backends: [{name: b, addresses: [%q], outlier: {consecutiveFailures: 100}}]
routes: [{name: r, backends: [{name: b}], retries: {attempts: 2, backoff: 1ms, minBackoff: 80ms, retryOn: [503], budget: 1}}]
`, strings.TrimPrefix(busy.URL, "http://")), Options{})
	resp, body := f.do(t, "GET", "x.test", "/", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET = %d %q, want 503 after the retries", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 3 {
		t.Fatalf("upstream saw %d tries, want 3 (1 + 2 retries)", len(arrivals))
	}
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < 80*time.Millisecond {
			t.Errorf("retry %d came %s after the try before, want at least minBackoff 80ms", i, gap)
		}
	}
}

// TestRetryBudgetCountsRequests: the retry budget counts retrying
// requests, not each retry of one: a lone request gets every attempt
// its route allows, even beyond the budget's minimum of 3.
func TestRetryBudgetCountsRequests(t *testing.T) {
	var busyHits atomic.Int64
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		busyHits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	f := start(t, fmt.Sprintf(`
backends: [{name: b, addresses: [%q], outlier: {consecutiveFailures: 100}}]
routes: [{name: r, backends: [{name: b}], retries: {attempts: 5, backoff: 1ms, retryOn: [503], budget: 0}}]
`, strings.TrimPrefix(busy.URL, "http://")), Options{})
	resp, body := f.do(t, "GET", "x.test", "/", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET = %d %q, want 503 after the retries", resp.StatusCode, body)
	}
	if n := busyHits.Load(); n != 6 {
		t.Errorf("upstream saw %d tries, want 6 (1 + 5 retries, one unit of the budget)", n)
	}
}
