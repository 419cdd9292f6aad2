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
		err         error
		wantFlipped bool
		wantUp      bool
	}{
		{fail, false, true},
		{fail, false, true},
		{nil, false, true}, // a pass resets the failure run
		{fail, false, true},
		{fail, false, true},
		{fail, true, false},
		{nil, false, false},
		{fail, false, false}, // a failure resets the pass run
		{nil, false, false},
		{nil, true, true},
	}
	for i, st := range steps {
		if got := s.ObserveCheck(st.err, hc); got != st.wantFlipped {
			t.Errorf("step %d: ObserveCheck() = %v, want %v", i, got, st.wantFlipped)
		}
		if got := s.Available(now); got != st.wantUp {
			t.Errorf("step %d: Available() = %v, want %v", i, got, st.wantUp)
		}
	}
}

func TestObserveRequestEjectsWithBackoff(t *testing.T) {
	o := &config.Outlier{ConsecutiveFailures: 3, BaseEjection: 10 * time.Second, MaxEjection: 35 * time.Second}
	var s Status
	now := time.Unix(1000, 0)
	failN := func(n int) time.Duration {
		var d time.Duration
		for range n {
			d = s.ObserveRequest(true, o, now)
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
	if s.Available(now.Add(9 * time.Second)) {
		t.Error("available during ejection")
	}
	if d := s.ObserveRequest(true, o, now.Add(time.Second)); d != 0 {
		t.Error("failures during an ejection must not extend it")
	}
	now = now.Add(10 * time.Second)
	if !s.Available(now) {
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
