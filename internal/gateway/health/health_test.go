package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

func TestObserveCheckThresholds(t *testing.T) {
	hc := &config.HealthCheck{HealthyThreshold: 2, UnhealthyThreshold: 3}
	var s Status
	now := time.Unix(0, 0)
	fail := errors.New("status 500")
	steps := []struct {
		err        error
		wantChange Change
		wantUp     bool
	}{
		{fail, Unchanged, true},
		{fail, Unchanged, true},
		{nil, Unchanged, true}, // a pass resets the failure run
		{fail, Unchanged, true},
		{fail, Unchanged, true},
		{fail, WentDown, false},
		{nil, Unchanged, false},
		{fail, Unchanged, false}, // a failure resets the pass run
		{nil, Unchanged, false},
		{nil, CameUp, true},
	}
	for i, st := range steps {
		if got := s.ObserveCheck(st.err, hc, now); got != st.wantChange {
			t.Errorf("step %d: ObserveCheck() = %v, want %v", i, got, st.wantChange)
		}
		if got := s.Available(now); got != st.wantUp {
			t.Errorf("step %d: Available() = %v, want %v", i, got, st.wantUp)
		}
	}
}

// TestPassingChecksEndEjection: HealthyThreshold passes of checks begun
// after an ejection end it early; a failure restarts the count, and a
// check begun before the ejection does not count.
func TestPassingChecksEndEjection(t *testing.T) {
	hc := &config.HealthCheck{HealthyThreshold: 2, UnhealthyThreshold: 3}
	o := &config.Outlier{ConsecutiveFailures: 1, BaseEjection: time.Minute, MaxEjection: time.Hour}
	t0 := time.Unix(1000, 0)
	var s Status
	if d := s.Eject(o, t0); d != time.Minute {
		t.Fatalf("Eject() = %s, want 1m", d)
	}
	steps := []struct {
		name       string
		err        error
		started    time.Time
		wantChange Change
		wantAvail  bool
	}{
		{"check begun before the ejection", nil, t0.Add(-time.Second), Unchanged, false},
		{"first pass", nil, t0.Add(time.Second), Unchanged, false},
		{"a failure restarts the count", errors.New("status 500"), t0.Add(2 * time.Second), Unchanged, false},
		{"pass 1 of 2", nil, t0.Add(3 * time.Second), Unchanged, false},
		{"pass 2 of 2", nil, t0.Add(4 * time.Second), EjectionEnded, true},
		{"later passes change nothing", nil, t0.Add(5 * time.Second), Unchanged, true},
	}
	for _, st := range steps {
		if got := s.ObserveCheck(st.err, hc, st.started); got != st.wantChange {
			t.Errorf("%s: ObserveCheck() = %v, want %v", st.name, got, st.wantChange)
		}
		if got := s.Available(st.started); got != st.wantAvail {
			t.Errorf("%s: Available() = %v, want %v", st.name, got, st.wantAvail)
		}
	}
	if !s.EjectedUntil().IsZero() {
		t.Errorf("EjectedUntil() = %v after the ejection ended, want zero", s.EjectedUntil())
	}
	// The backoff still remembers the ejection: the next one is longer.
	if d := s.Eject(o, t0.Add(10*time.Second)); d != 2*time.Minute {
		t.Errorf("next Eject() = %s, want 2m", d)
	}
}

// TestFailedCountsOnlyWhatTheEndpointCannotChoose: by default a status
// the application answered never counts, whatever it is; transport
// failures always do; CountStatuses adds statuses.
func TestFailedCountsOnlyWhatTheEndpointCannotChoose(t *testing.T) {
	refused := errors.New("dial tcp 10.0.0.1:80: connect: connection refused")
	tests := []struct {
		name   string
		count  []int
		status int
		err    error
		want   bool
	}{
		{"app 503 by default", nil, 503, nil, false},
		{"app 502 by default", nil, 502, nil, false},
		{"app 504 by default", nil, 504, nil, false},
		{"app 500 by default", nil, 500, nil, false},
		{"200", nil, 200, nil, false},
		{"connect refused", nil, 0, refused, true},
		{"transport error with count list", []int{503}, 0, refused, true},
		{"listed 503", []int{502, 503, 504}, 503, nil, true},
		{"unlisted 500", []int{502, 503, 504}, 500, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &config.Outlier{CountStatuses: tt.count}
			if got := Failed(o, tt.status, tt.err); got != tt.want {
				t.Errorf("Failed(%v, %d, %v) = %v, want %v", tt.count, tt.status, tt.err, got, tt.want)
			}
		})
	}
}

func TestObserveRequestEjectsWithBackoff(t *testing.T) {
	o := &config.Outlier{ConsecutiveFailures: 3, BaseEjection: 10 * time.Second, MaxEjection: 35 * time.Second}
	var s Status
	now := time.Unix(1000, 0)
	// failN reports n failures and ejects when they trip, as the pool
	// does when its rules allow.
	failN := func(n int) time.Duration {
		var d time.Duration
		for range n {
			if s.ObserveRequest(true, o, now) {
				d = s.Eject(o, now)
			}
		}
		return d
	}
	if d := failN(2); d != 0 || !s.Available(now) {
		t.Fatalf("after 2 failures: ejected for %s, available %v; want not ejected", d, s.Available(now))
	}
	s.ObserveRequest(false, o, now) // a success resets the run
	if d := failN(2); d != 0 {
		t.Fatalf("success did not reset the failure run")
	}
	if d := failN(1); d != 10*time.Second {
		t.Fatalf("first ejection = %s, want 10s", d)
	}
	if s.Available(now.Add(9*time.Second)) || !s.Ejected(now.Add(9*time.Second)) {
		t.Error("available during ejection")
	}
	if s.ObserveRequest(true, o, now.Add(time.Second)) {
		t.Error("failures during an ejection must not count")
	}
	now = now.Add(10 * time.Second)
	if !s.Available(now) || s.Ejected(now) {
		t.Fatal("not available after the ejection ended")
	}
	for _, want := range []time.Duration{20 * time.Second, 35 * time.Second, 35 * time.Second} {
		if d := failN(3); d != want {
			t.Fatalf("next ejection = %s, want %s", d, want)
		}
		now = now.Add(want)
	}
	now = now.Add(2 * o.MaxEjection) // quiet for long enough: backoff resets
	if d := failN(3); d != 10*time.Second {
		t.Errorf("ejection after a quiet period = %s, want 10s", d)
	}
}

// TestRefusedEjectionRestartsTheRun: when the pool refuses an ejection
// (cap reached), the endpoint trips again only after as many failures
// more, so a refused ejection is retried without a log line per request.
func TestRefusedEjectionRestartsTheRun(t *testing.T) {
	o := &config.Outlier{ConsecutiveFailures: 3, BaseEjection: 10 * time.Second, MaxEjection: time.Minute}
	var s Status
	now := time.Unix(1000, 0)
	var trips []int
	for i := 1; i <= 7; i++ {
		if s.ObserveRequest(true, o, now) {
			trips = append(trips, i)
		}
	}
	if len(trips) != 2 || trips[0] != 3 || trips[1] != 6 {
		t.Errorf("trips at failures %v, want [3 6]", trips)
	}
	if !s.Available(now) {
		t.Error("tripping alone ejected the endpoint; only Eject may")
	}
}

func TestChecker(t *testing.T) {
	code := http.StatusOK
	var gotPath, gotUA string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotUA = r.URL.Path, r.UserAgent()
		w.WriteHeader(code)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := &Checker{Client: srv.Client(), Config: &config.HealthCheck{Path: "/readyz", Timeout: time.Second}}
	if err := c.Check(context.Background(), addr); err != nil {
		t.Fatalf("Check() = %v, want nil", err)
	}
	if gotPath != "/readyz" || !strings.HasPrefix(gotUA, "flotilla-gateway-health") {
		t.Errorf("check arrived as path %q, user agent %q", gotPath, gotUA)
	}
	code = http.StatusServiceUnavailable
	if err := c.Check(context.Background(), addr); err == nil || err.Error() != "status 503" {
		t.Errorf("Check() = %v, want status 503", err)
	}
	c.Config.ExpectedStatuses = []int{503}
	if err := c.Check(context.Background(), addr); err != nil {
		t.Errorf("Check() with 503 expected = %v, want nil", err)
	}
	srv.Close()
	if err := c.Check(context.Background(), addr); err == nil {
		t.Error("Check(closed server) = nil, want an error")
	}
}
