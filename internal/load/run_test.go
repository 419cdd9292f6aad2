package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serve starts a target whose handler is told the request's arrival number,
// from 0.
func serve(t *testing.T, h func(n int64, w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(n.Add(1)-1, w, r) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func answer(w http.ResponseWriter, version, instance string) {
	w.Header().Set(headerVersion, version)
	w.Header().Set(headerInstance, instance)
	io.WriteString(w, "ok\n")
}

func run(t *testing.T, c Config) Summary {
	t.Helper()
	s, err := Run(t.Context(), c, Options{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	return s
}

func count(cs []Count, version, instance string) int64 {
	for _, c := range cs {
		if c.Version == version && c.Instance == instance {
			return c.Count
		}
	}
	return 0
}

func TestVersionShares(t *testing.T) {
	// Of every 5 requests, 3 answer v1 (from two instances), 1 v2 and 1
	// without identity headers.
	url := serve(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		switch n % 5 {
		case 0:
			answer(w, "v2", "b-1")
		case 4:
			io.WriteString(w, "anonymous\n")
		default:
			answer(w, "v1", []string{"a-1", "a-2"}[n%2])
		}
	})
	s := run(t, Config{URL: url, Concurrency: 4, Requests: 500})
	if s.Requests != 500 || s.Status[200] != 500 || s.Errors != 0 {
		t.Fatalf("requests, 200s, errors = %d, %d, %d; want 500, 500, 0", s.Requests, s.Status[200], s.Errors)
	}
	for _, want := range []Count{
		{Version: "v1", Count: 300, Share: .6},
		{Version: "v2", Count: 100, Share: .2},
		{Version: Unknown, Count: 100, Share: .2},
	} {
		if got := count(s.Versions, want.Version, ""); got != want.Count {
			t.Errorf("version %s: count = %d, want %d", want.Version, got, want.Count)
		}
	}
	if got := s.Versions[len(s.Versions)-1]; got.Version != Unknown || got.Share != .2 {
		t.Errorf("last version = %+v, want unknown with share 0.2", got)
	}
	if a1, a2 := count(s.Instances, "v1", "a-1"), count(s.Instances, "v1", "a-2"); a1+a2 != 300 || a1 == 0 || a2 == 0 {
		t.Errorf("v1 instances a-1, a-2 = %d, %d; want both, summing to 300", a1, a2)
	}
	if got := count(s.Instances, Unknown, Unknown); got != 100 {
		t.Errorf("unknown/unknown = %d, want 100", got)
	}
}

func TestErrorsByKind(t *testing.T) {
	// Of every 10 requests: one 503, one reset, one past the timeout.
	url := serve(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		switch n % 10 {
		case 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 1:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
			conn.Close()
		case 2:
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	// No keep-alive: a request that fails on a reused connection may be
	// retried by the transport, which would blur the counts.
	c := Config{URL: url, Concurrency: 5, Requests: 50, Timeout: 500 * time.Millisecond, DisableKeepAlive: true, MaxErrorRate: 0.25}
	s := run(t, c)
	want := ErrorKinds{ServerErr: 5, Reset: 5, Timeout: 5}
	if s.ErrorKinds != want {
		t.Errorf("ErrorKinds = %+v, want %+v", s.ErrorKinds, want)
	}
	if s.Requests != 50 || s.Errors != 15 || s.ErrorRate != 0.3 || s.Status[503] != 5 || s.Status[204] != 35 {
		t.Errorf("requests, errors, rate, 503s, 204s = %d, %d, %v, %d, %d; want 50, 15, 0.3, 5, 35",
			s.Requests, s.Errors, s.ErrorRate, s.Status[503], s.Status[204])
	}
	if len(s.Failures) != 1 || !strings.Contains(s.Failures[0], "--max-error-rate 25 %") {
		t.Errorf("Failures = %q, want one naming --max-error-rate 25 %%", s.Failures)
	}
	if s.Latency.Max < c.Timeout {
		t.Errorf("Latency.Max = %v, want timed-out requests counted at ≥ %v", s.Latency.Max, c.Timeout)
	}
	// One sample per kind of failure, each 5 times, none naming the local
	// address (it differs for every connection).
	if len(s.ErrorSamples) != 3 {
		t.Fatalf("ErrorSamples = %+v, want 3 distinct failures", s.ErrorSamples)
	}
	for _, want := range []string{"503 Service Unavailable", "reset by peer", "deadline exceeded"} {
		i := slices.IndexFunc(s.ErrorSamples, func(e ErrorSample) bool { return strings.Contains(e.Error, want) })
		if i < 0 || s.ErrorSamples[i].Count != 5 {
			t.Errorf("ErrorSamples = %+v, want %q 5 times", s.ErrorSamples, want)
		}
	}
	for i, e := range s.ErrorSamples {
		if strings.Contains(e.Error, "->") {
			t.Errorf("sample %q names the local address", e.Error)
		}
		if e.First < 0 || e.First > s.Elapsed || i > 0 && e.First < s.ErrorSamples[i-1].First {
			t.Errorf("samples' first times %+v: want within the run (%v), in order", s.ErrorSamples, s.Elapsed)
		}
	}
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := run(t, Config{URL: "http://" + addr + "/", Concurrency: 2, Requests: 20, MaxErrorRate: 1})
	if s.ErrorKinds != (ErrorKinds{Refused: 20}) || s.ErrorRate != 1 || len(s.Versions) != 0 {
		t.Errorf("ErrorKinds, ErrorRate, Versions = %+v, %v, %v; want 20 refused, 1, none", s.ErrorKinds, s.ErrorRate, s.Versions)
	}
	if len(s.Failures) != 0 {
		t.Errorf("Failures = %q, want none with --max-error-rate 1", s.Failures)
	}
	if len(s.ErrorSamples) != 1 || s.ErrorSamples[0].Count != 20 ||
		s.ErrorSamples[0].Error != "dial tcp "+addr+": connect: connection refused" {
		t.Errorf("ErrorSamples = %+v, want 20× dial tcp %s: connect: connection refused", s.ErrorSamples, addr)
	}
}

func TestErrorSamplesBounded(t *testing.T) {
	a, b := newTally(), newTally()
	for i := range 20 {
		a.record(nil, fmt.Errorf("failure %d", i), time.Millisecond, time.Duration(20-i)*time.Second)
	}
	b.record(nil, fmt.Errorf("failure 0"), time.Millisecond, time.Second)
	b.merge(a)
	s := summarize(Config{Concurrency: 1}, b, time.Minute)
	var total int64
	for _, e := range s.ErrorSamples {
		total += e.Count
	}
	if n := len(s.ErrorSamples); n > maxSamples+1 || s.ErrorSamples[n-1].Error != otherFailures || total != 21 {
		t.Fatalf("ErrorSamples = %+v, want at most %d texts, then (other failures), 21 in all", s.ErrorSamples, maxSamples)
	}
	if e := s.ErrorSamples[0]; e.Error != "failure 0" || e.Count != 2 || e.First != time.Second {
		t.Errorf("first sample = %+v, want failure 0, twice, first at 1s (the earlier of the two)", e)
	}
	var text bytes.Buffer
	s.writeText(&text, Config{})
	if !strings.Contains(text.String(), "2× failure 0 (first at 1.00s)") || !strings.Contains(text.String(), "(other failures)") {
		t.Errorf("text summary:\n%s\nwant the samples listed", text.String())
	}
}

func TestClipDefangsTerminalControls(t *testing.T) {
	if got := clip("v1\x1b[2J\x1b]0;pwned\x07", 40); strings.ContainsAny(got, "\x1b\x07") || !strings.HasPrefix(got, "v1?[2J") {
		t.Errorf("clip = %q, want control characters replaced", got)
	}
}

func TestLatencyPercentiles(t *testing.T) {
	// One request in 20 takes 100ms, the others none: p50 and p90 must be
	// fast, p99 and max at least 100ms. Only lower bounds are exact on a
	// busy machine, so the upper ones are the order of the percentiles,
	// and 5 % of the fast requests may stall without failing p90.
	const slow = 100 * time.Millisecond
	url := serve(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n%20 == 19 {
			time.Sleep(slow)
		}
		answer(w, "v1", "a")
	})
	s := run(t, Config{URL: url, Concurrency: 4, Requests: 200})
	l := s.Latency
	if l.P50 >= slow || l.P90 >= slow {
		t.Errorf("p50, p90 = %v, %v; want both below %v", l.P50, l.P90, slow)
	}
	if l.P99 < slow {
		t.Errorf("p99 = %v, want ≥ %v", l.P99, slow)
	}
	if !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latency %+v is not ordered", l)
	}
}

// TestOpenLoopKeepsScheduleDuringStall: at 200/s for 1s, a target that
// holds every request from 200ms on until request 100 (due at 500ms)
// arrives. The load must keep coming while it stalls (about 60 requests
// are held at once) and the stall must show in the latency: requests due
// during it count their wait, so p90 is about 200ms. The stall ends by
// the schedule rather than the clock, so a test machine that starves the
// client for a while delays the requests without changing the outcome.
func TestOpenLoopKeepsScheduleDuringStall(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	held := 0
	release := make(chan struct{})
	url := serve(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		hold := n < 99 && time.Since(first) >= 200*time.Millisecond
		if hold {
			held++
		}
		if n == 99 {
			close(release)
		}
		mu.Unlock()
		if hold {
			select {
			case <-release:
			case <-time.After(2 * time.Second): // the schedule slipped: fail below, not hang
			}
		}
		answer(w, "v1", "a")
	})
	s := run(t, Config{URL: url, Rate: 200, Duration: time.Second})
	if s.Requests != 200 || s.Unsent != 0 || s.Errors != 0 {
		t.Errorf("requests, unsent, errors = %d, %d, %d; want the whole schedule, 200, 0, 0", s.Requests, s.Unsent, s.Errors)
	}
	if mu.Lock(); held < 40 {
		t.Errorf("%d requests were sent while the target held them, want about 60: the schedule waited", held)
	}
	mu.Unlock()
	if s.Latency.P90 < 100*time.Millisecond || s.Latency.Max < 250*time.Millisecond {
		t.Errorf("p90, max = %v, %v; want ≥ 100ms, ≥ 250ms: the stall is hidden", s.Latency.P90, s.Latency.Max)
	}
}

// TestClosedLoopHidesStall documents why open loop exists: a target holds
// every request arriving from 200ms to 500ms after the first until 500ms.
// One worker waits out the stall in a single request, so the percentiles
// barely move (coordinated omission), and fewer requests are sent.
func TestClosedLoopHidesStall(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	stalled := 0
	url := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		since := time.Since(first)
		inStall := since >= 200*time.Millisecond && since < 500*time.Millisecond
		if inStall {
			stalled++
		}
		mu.Unlock()
		if inStall {
			time.Sleep(500*time.Millisecond - since)
		}
		answer(w, "v1", "a")
	})
	s := run(t, Config{URL: url, Concurrency: 1, Duration: time.Second})
	if mu.Lock(); stalled != 1 {
		t.Errorf("%d requests arrived during the stall, want 1", stalled)
	}
	mu.Unlock()
	if s.Latency.P90 >= 100*time.Millisecond || s.Latency.Max < 250*time.Millisecond {
		t.Errorf("p90, max = %v, %v; want < 100ms, ≥ 250ms", s.Latency.P90, s.Latency.Max)
	}
}

func TestOpenLoopCapsInFlight(t *testing.T) {
	// Every request hangs past the end: with at most 3 in flight, 3 are
	// sent and the rest of the schedule is reported as unsent.
	url := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(400 * time.Millisecond)
		answer(w, "v1", "a")
	})
	s := run(t, Config{URL: url, Rate: 100, Concurrency: 3, Duration: 200 * time.Millisecond})
	if s.Requests != 3 || s.Unsent != 17 {
		t.Errorf("requests, unsent = %d, %d; want 3, 17", s.Requests, s.Unsent)
	}
}

// TestOpenLoopCountsQueueing: one request in flight at a time, 20ms each,
// cannot keep up with 100/s. Requests start late, and their latency counts
// from when they were due, so it grows to hundreds of ms instead of
// showing the 20ms of the server alone.
func TestOpenLoopCountsQueueing(t *testing.T) {
	url := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(20 * time.Millisecond)
		answer(w, "v1", "a")
	})
	s := run(t, Config{URL: url, Rate: 100, Concurrency: 1, Duration: 500 * time.Millisecond})
	if s.Requests+s.Unsent != 50 || s.Requests > 26 {
		t.Errorf("requests, unsent = %d, %d; want at most 26 sent of the 50 due", s.Requests, s.Unsent)
	}
	if s.Latency.P90 < 100*time.Millisecond {
		t.Errorf("p90 = %v, want ≥ 100ms: the wait for the busy worker is hidden", s.Latency.P90)
	}
}

func TestBoundedRunsEnd(t *testing.T) {
	url := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { answer(w, "v1", "a") })
	tests := []struct {
		name         string
		cfg          Config
		wantRequests int64 // 0: any
		minElapsed   time.Duration
	}{
		{name: "open loop, duration", cfg: Config{Rate: 50, Duration: 300 * time.Millisecond}, wantRequests: 15, minElapsed: 280 * time.Millisecond},
		{name: "open loop, requests", cfg: Config{Rate: 100, Requests: 10}, wantRequests: 10, minElapsed: 90 * time.Millisecond},
		{name: "open loop, requests first", cfg: Config{Rate: 100, Requests: 5, Duration: time.Hour}, wantRequests: 5},
		{name: "closed loop, duration", cfg: Config{Concurrency: 2, Duration: 200 * time.Millisecond}, minElapsed: 200 * time.Millisecond},
		{name: "closed loop, duration first", cfg: Config{Concurrency: 2, Duration: 100 * time.Millisecond, Requests: 1e9}, minElapsed: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.URL = url
			s := run(t, tt.cfg)
			if tt.wantRequests != 0 && s.Requests != tt.wantRequests {
				t.Errorf("Requests = %d, want %d", s.Requests, tt.wantRequests)
			}
			if s.Requests == 0 || s.Errors != 0 {
				t.Errorf("Requests, Errors = %d, %d; want some, 0", s.Requests, s.Errors)
			}
			if s.Elapsed < tt.minElapsed || s.Elapsed > tt.minElapsed+time.Second {
				t.Errorf("Elapsed = %v, want %v to %v", s.Elapsed, tt.minElapsed, tt.minElapsed+time.Second)
			}
		})
	}
}

func TestInterrupt(t *testing.T) {
	// Half the requests hang: an interrupted run must not wait for them,
	// nor count them.
	url := serve(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n%2 == 1 {
			<-r.Context().Done()
			return
		}
		answer(w, "v1", "a")
	})
	for _, c := range []Config{{Concurrency: 4, Duration: time.Minute}, {Rate: 100, Duration: time.Minute}} {
		c.URL = url
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		s, err := Run(ctx, c, Options{})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !s.Interrupted || s.Requests == 0 || s.Errors != 0 || s.Elapsed > time.Second {
			t.Errorf("%s: interrupted, requests, errors, elapsed = %v, %d, %d, %v; want true, some, 0, about 200ms",
				describe(c), s.Interrupted, s.Requests, s.Errors, s.Elapsed)
		}
	}
}

func TestExpectVersions(t *testing.T) {
	url := serve(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		switch n % 3 {
		case 0:
			answer(w, "v1", "a")
		case 1:
			answer(w, "v2", "b")
		default:
			w.Write([]byte("no identity"))
		}
	})
	tests := []struct {
		name   string
		expect []string
		want   []string // substrings, one per failure
	}{
		{name: "any", want: nil},
		{name: "only v1", expect: []string{"v1"}, want: []string{`"v2"`, `"unknown"`}},
		{name: "v1 or v2", expect: []string{"v1", "v2"}, want: []string{`"unknown"`}},
		{name: "all three", expect: []string{"v1", "v2", Unknown}, want: nil},
		{name: "spaces after commas", expect: []string{"v1", " v2"}, want: []string{`"unknown"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := run(t, Config{URL: url, Concurrency: 1, Requests: 9, ExpectVersions: tt.expect})
			if len(s.Failures) != len(tt.want) {
				t.Fatalf("Failures = %q, want %d naming %q", s.Failures, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(s.Failures[i], w) || !strings.Contains(s.Failures[i], "--expect-version") {
					t.Errorf("Failures[%d] = %q, want it to name %s and --expect-version", i, s.Failures[i], w)
				}
			}
		})
	}
}

func TestRequestOptions(t *testing.T) {
	type seen struct {
		method, host, body, header, accept string
		close                              bool
		remote                             string
	}
	var mu sync.Mutex
	var got []seen
	url := serve(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.Host, string(b), r.Header.Get("X-Canary"), r.Header.Get("Accept-Encoding"), r.Close, r.RemoteAddr})
		mu.Unlock()
		answer(w, "v1", "a")
	})
	tests := []struct {
		name      string
		cfg       Config
		wantHost  string
		wantClose bool
		maxConns  int
	}{
		{name: "host flag, keep-alive", cfg: Config{Method: "PUT", Host: "counter.local", Body: `{"n":1}`, Headers: []string{"X-Canary: always"}},
			// Two workers, but a connection goes back to the pool just after its
			// body is read, so a worker fast enough may dial a third.
			wantHost: "counter.local", maxConns: 4},
		{name: "host header, no keep-alive", cfg: Config{Method: "PUT", Body: `{"n":1}`, Headers: []string{"X-Canary: always", "Host: demo.local"}, DisableKeepAlive: true},
			wantHost: "demo.local", wantClose: true, maxConns: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			tt.cfg.URL, tt.cfg.Concurrency, tt.cfg.Requests = url, 2, 20
			if s := run(t, tt.cfg); s.Status[200] != 20 {
				t.Fatalf("Status = %v, want 20 × 200", s.Status)
			}
			conns := map[string]bool{}
			for _, g := range got {
				conns[g.remote] = true
				want := seen{"PUT", tt.wantHost, `{"n":1}`, "always", "", tt.wantClose, g.remote}
				if g != want {
					t.Fatalf("server saw %+v, want %+v", g, want)
				}
			}
			if len(conns) > tt.maxConns || (tt.wantClose && len(conns) != 20) {
				t.Errorf("%d connections for 20 requests, want at most %d", len(conns), tt.maxConns)
			}
		})
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	if _, err := Run(t.Context(), Config{URL: "http://x/"}, Options{}); err == nil || !strings.Contains(err.Error(), "--rate or --concurrency") {
		t.Errorf("Run() error = %v, want the missing mode named", err)
	}
}

// BenchmarkClosedLoop measures the client's cost per request, the target
// (an httptest server answering at once) included.
func BenchmarkClosedLoop(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { answer(w, "v1", "a") }))
	defer srv.Close()
	b.ReportAllocs()
	s, err := Run(b.Context(), Config{URL: srv.URL, Concurrency: 8, Requests: int64(b.N)}, Options{})
	if err != nil || s.Errors != 0 {
		b.Fatalf("Run() = %v, %d errors", err, s.Errors)
	}
}
