package load

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeTally fills t as if versions answered with status 200 in the given
// numbers, plus errs.
func fakeTally(versions map[string]int64, errs [numKinds]int64) *tally {
	t := newTally()
	for v, n := range versions {
		resp := &http.Response{StatusCode: 200, Header: http.Header{headerVersion: {v}, headerInstance: {v + "-pod"}}}
		for range n {
			t.record(resp, nil, time.Millisecond, 0)
		}
	}
	for k, n := range errs {
		t.requests += n
		t.errs[k] += n
	}
	return t
}

func newTestView(t *testing.T, c Config, o Options) *view {
	t.Helper()
	c.URL = "http://127.0.0.1:1/counter"
	r, err := newRunner(c.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	r.start = time.Unix(1000, 0)
	return newView(c.withDefaults(), o, r)
}

func TestPlainLinesShowLastSecond(t *testing.T) {
	var out bytes.Buffer
	v := newTestView(t, Config{Rate: 40, Duration: 10 * time.Second, PerInstance: true}, Options{Out: &out})
	v.frame(v.r.start.Add(500*time.Millisecond), fakeTally(map[string]int64{"v1": 10}, [numKinds]int64{}))
	v.frame(v.r.start.Add(1500*time.Millisecond), fakeTally(map[string]int64{"v1": 10, "v2": 30}, [numKinds]int64{kindReset: 2}))
	v.frame(v.r.start.Add(2600*time.Millisecond), fakeTally(map[string]int64{"v1": 10, "v2": 30}, [numKinds]int64{kindReset: 2}))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out.String())
	}
	// Nothing answered in the last second.
	if want := "rate=0.0/s"; !strings.Contains(lines[2], want) || !strings.Contains(lines[2], "versions_1s=- versions=v1:25%,v2:75% instances_1s=- ") {
		t.Errorf("line 3 = %q, want rate=0.0/s and versions_1s=-, instances_1s=-", lines[2])
	}
	for _, want := range []string{"load t=0.5s requests=10 rate=20.0/s", "versions_1s=v1:100% versions=v1:100%"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line 1 = %q, want it to contain %q", lines[0], want)
		}
	}
	// In the second since 0.5s, only v2 answered: 30 of 32 requests.
	for _, want := range []string{"load t=1.5s requests=42 rate=32.0/s", "errors=2 error_rate=4.76%", "versions_1s=v2:100% versions=v1:25%,v2:75%",
		"instances_1s=v2/v2-pod:100% instances=v1/v1-pod:25%,v2/v2-pod:75%"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("line 2 = %q, want it to contain %q", lines[1], want)
		}
	}
}

func TestTTYFrame(t *testing.T) {
	var out bytes.Buffer
	v := newTestView(t, Config{Concurrency: 8, Requests: 200, PerInstance: true}, Options{Out: &out, TTY: true})
	v.frame(v.r.start.Add(time.Second), fakeTally(map[string]int64{"v1": 75, "v2": 25}, [numKinds]int64{}))
	first := out.String()
	for _, want := range []string{
		"GET http://127.0.0.1:1/counter  closed loop, 8 workers\n",
		strings.Repeat("█", 15) + strings.Repeat("░", 15) + "  50%  1.00s  100 requests", // 100 of 200
		"v1               ███████████████░░░░░   75%  ███████████████░░░░░   75%       75\n",
		"  v1-pod         ███████████████░░░░░   75%",
		"v2               █████░░░░░░░░░░░░░░░   25%",
		"status    200 ×100\n",
		"errors    0 (0.00%)",
		"latency   p50 1.00ms",
	} {
		if !strings.Contains(first, want) {
			t.Errorf("frame lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(first, "\x1b[") {
		t.Errorf("first frame moves the cursor: %q", first)
	}
	out.Reset()
	v.frame(v.r.start.Add(2*time.Second), fakeTally(map[string]int64{"v1": 75, "v2": 25}, [numKinds]int64{}))
	wantUp := "\x1b[" + strconv.Itoa(strings.Count(first, "\n")) + "F\x1b[J"
	if !strings.HasPrefix(out.String(), wantUp) {
		t.Errorf("second frame starts %q, want %q to draw over the first", out.String()[:10], wantUp)
	}
}

func TestTTYFrameFitsWidth(t *testing.T) {
	var out bytes.Buffer
	v := newTestView(t, Config{Concurrency: 8, Duration: time.Minute, PerInstance: true}, Options{Out: &out, TTY: true})
	v.cfg.URL = "http://a-very-long-host-name.example.com:8080/a/very/long/path?with=a&query=string"
	tl := newTally()
	for i := range 8 {
		resp := &http.Response{StatusCode: 200 + i, Header: http.Header{headerVersion: {"v1"}, headerInstance: {"counter-" + strconv.Itoa(i)}}}
		tl.record(resp, nil, time.Millisecond, 0)
	}
	v.frame(v.r.start.Add(time.Second), tl)
	for _, want := range []string{"  counter-5 ", "  … 2 more instances\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("frame lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "counter-6") {
		t.Errorf("frame shows more than %d instances:\n%s", maxInstances, out.String())
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if n := len([]rune(line)); n > width {
			t.Errorf("line of %d runes, want ≤ %d: %q", n, width, line)
		}
	}
}

func TestRunWithLiveView(t *testing.T) {
	url := serve(t, func(n int64, w http.ResponseWriter, _ *http.Request) { answer(w, []string{"v1", "v2"}[n%2], "a") })
	var out bytes.Buffer
	s, err := Run(t.Context(), Config{URL: url, Rate: 100, Duration: 600 * time.Millisecond}, Options{Out: &out, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"\x1b[?25l", "v1  ", "\x1b[?25h", "flotilla load: " + url + ", open loop at 100/s", "  result     ok\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if s.Requests != 60 {
		t.Errorf("Requests = %d, want 60", s.Requests)
	}
}

func TestSummaryText(t *testing.T) {
	c := Config{URL: "http://h/", Rate: 10, Concurrency: 5, MaxErrorRate: 0.01}
	s := summarize(c, fakeTally(map[string]int64{"v1": 90, "v2": 8}, [numKinds]int64{kindTimeout: 2}), 10*time.Second)
	s.check(c)
	var b bytes.Buffer
	s.writeText(&b, Config{Rate: s.TargetRate, Concurrency: s.Concurrency})
	want := `flotilla load: http://h/, open loop at 10/s (at most 5 in flight)
  requests   100 in 10.00s: 10.0/s
  errors     2 (2.00%): refused 0, reset 0, timeout 2, 5xx 0, other 0
  status     200 ×98
  versions   v1              91.8%        90
               v1-pod        91.8%        90
             v2               8.2%         8
               v2-pod         8.2%         8
  latency    min 1.00ms  mean 1.00ms  p50 1.00ms  p90 1.00ms  p99 1.00ms  p99.9 1.00ms  max 1.00ms
  FAILED     error rate 2 % (2 of 100) is above --max-error-rate 1 %
`
	if b.String() != want {
		t.Errorf("writeText() =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestSummaryJSON(t *testing.T) {
	s := summarize(Config{URL: "http://h/", Concurrency: 2}, fakeTally(map[string]int64{"v1": 3}, [numKinds]int64{}), 1500*time.Millisecond)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	lat, _ := got["latency"].(map[string]any)
	if got["elapsed_seconds"] != 1.5 || got["mode"] != "closed" || got["requests"] != 3.0 || lat["p99_ms"] != 1.0 ||
		got["status"].(map[string]any)["200"] != 3.0 || got["failures"] == nil {
		t.Errorf("JSON = %s, want elapsed_seconds 1.5, mode closed, requests 3, latency.p99_ms 1, status.200 3, failures []", b)
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{0, "░░░░"}, {1, "████"}, {2, "████"}, {-1, "░░░░"}, {0.5, "██░░"}, {1.0 / 32, "▏░░░"}, {0.3, "█▎░░"},
	}
	for _, tt := range tests {
		if got := bar(tt.f, 4); got != tt.want {
			t.Errorf("bar(%v, 4) = %q, want %q", tt.f, got, tt.want)
		}
	}
}

func TestFmtDur(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{812 * time.Microsecond, "812µs"}, {1234567, "1.23ms"}, {12345678, "12.3ms"}, {123456789, "123ms"}, {1234567890, "1.23s"},
	}
	for _, tt := range tests {
		if got := fmtDur(tt.d); got != tt.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestRecordDoesNotAllocate: once a version and instance have been seen,
// recording another answer from them costs no allocation, so the tally
// stays off the load's CPU profile.
func TestRecordDoesNotAllocate(t *testing.T) {
	tl := newTally()
	resp := &http.Response{StatusCode: 200, Header: http.Header{headerVersion: {"v1"}, headerInstance: {"counter-1"}}}
	tl.record(resp, nil, time.Millisecond, 0)
	if n := testing.AllocsPerRun(100, func() { tl.record(resp, nil, 2*time.Millisecond, 0) }); n != 0 {
		t.Errorf("record() allocates %v times, want 0", n)
	}
}
