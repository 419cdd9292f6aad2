package probe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func status(h http.HandlerFunc) (int, string) {
	w := httptest.NewRecorder()
	h(w, httptest.NewRequest("GET", "/", nil))
	return w.Code, w.Body.String()
}

func TestReadiness(t *testing.T) {
	var p Probes
	failing := errors.New("connection refused")
	var dep error
	p.AddCheck("Redis at redis:6379", func(context.Context) error { return dep })

	steps := []struct {
		name     string
		do       func()
		want     int
		wantBody string
	}{
		{"zero value is ready", func() {}, 200, "ok"},
		{"dependency down", func() { dep = failing }, 503, "not ready: Redis at redis:6379: connection refused"},
		{"dependency back", func() { dep = nil }, 200, "ok"},
		{"disabled by request", func() { p.SetEnabled(false) }, 503, "readiness disabled"},
		{"enabled again", func() { p.SetEnabled(true) }, 200, "ok"},
		{"starting", func() { p.SetStarting(true, false) }, 503, "starting"},
		{"started", func() { p.SetStarting(true, true) }, 200, "ok"},
		{"draining is final", func() { p.Drain(); p.SetEnabled(true) }, 503, "shutting down"},
	}
	for _, s := range steps {
		s.do()
		code, body := status(p.Readyz)
		if code != s.want || !strings.Contains(body, s.wantBody) {
			t.Errorf("%s: /readyz = %d %q, want %d containing %q", s.name, code, body, s.want, s.wantBody)
		}
	}
}

func TestReadinessCheckIsBounded(t *testing.T) {
	p := Probes{Timeout: 50 * time.Millisecond}
	p.AddCheck("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	start := time.Now()
	if code, _ := status(p.Readyz); code != 503 {
		t.Errorf("/readyz with a hung check = %d, want 503", code)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("/readyz took %s with Timeout 50ms", took)
	}
}

func TestLiveness(t *testing.T) {
	var p Probes
	p.SetStarting(false, false)
	if code, _ := status(p.Healthz); code != 503 {
		t.Errorf("not yet live: /healthz = %d, want 503", code)
	}
	p.SetStarting(true, false)
	if code, _ := status(p.Healthz); code != 200 {
		t.Errorf("live: /healthz = %d, want 200", code)
	}
	p.Drain()
	if code, _ := status(p.Healthz); code != 200 {
		t.Errorf("draining: /healthz = %d, want 200 (a draining process must not be killed)", code)
	}
}
