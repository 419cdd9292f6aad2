package backend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// backendConfig parses one backend (a YAML flow mapping) with defaults.
func backendConfig(t *testing.T, b string) *config.Backend {
	t.Helper()
	c, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [" + b + "]\nroutes: [{name: r, backends: [{name: b}]}]\n"))
	if err != nil {
		t.Fatalf("config.Parse() error = %v", err)
	}
	return &c.Backends[0]
}

// fakeUpstreams answers health checks by address: a hand-written fake,
// because real connections never let a synctest bubble go idle.
type fakeUpstreams struct {
	mu     sync.Mutex
	status map[string]int
}

func (f *fakeUpstreams) set(addr string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[addr] = code
}

func (f *fakeUpstreams) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	code, ok := f.status[r.URL.Host]
	if !ok {
		return nil, errors.New("connection refused")
	}
	return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func addrs(p *Pool) []string {
	var out []string
	for _, e := range p.avail.Load().eps {
		out = append(out, e.Addr)
	}
	return out
}

var quiet = slog.New(slog.DiscardHandler)

func req() *http.Request { return httptest.NewRequest("GET", "/", nil) }

func TestActiveHealthChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &fakeUpstreams{status: map[string]int{"10.0.0.1:80": 200, "10.0.0.2:80": 200}}
		p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80", "10.0.0.2:80"], healthCheck: {interval: 1s, unhealthyThreshold: 2, healthyThreshold: 2}}`),
			Options{Transport: up, Logger: quiet})
		defer p.Close()
		synctest.Wait()
		if got := addrs(p); len(got) != 2 {
			t.Fatalf("available = %v, want both", got)
		}
		up.set("10.0.0.2:80", 503)
		time.Sleep(time.Second) // one failure: under the threshold
		synctest.Wait()
		if got := addrs(p); len(got) != 2 {
			t.Fatalf("after 1 failed check: available = %v, want both", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := addrs(p); len(got) != 1 || got[0] != "10.0.0.1:80" {
			t.Fatalf("after 2 failed checks: available = %v, want [10.0.0.1:80]", got)
		}
		for range 10 { // never picked while unhealthy
			e, _ := p.Acquire(req(), nil)
			if e.Addr != "10.0.0.1:80" {
				t.Fatalf("Acquire() = %s, want the healthy endpoint", e.Addr)
			}
			e.Done()
		}
		up.set("10.0.0.2:80", 200)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := addrs(p); len(got) != 2 {
			t.Fatalf("after 2 passing checks: available = %v, want both", got)
		}
		up.set("10.0.0.1:80", 500)
		up.set("10.0.0.2:80", 500)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if p.Available() || p.Panicking() {
			t.Fatalf("all unhealthy: Available() = %v, Panicking() = %v; want false, false", p.Available(), p.Panicking())
		}
		if e, _ := p.Acquire(req(), nil); e != nil { // panic routing lifts ejections, never failing checks
			t.Fatalf("all unhealthy: Acquire() = %s, want none (the gateway answers 503)", e.Addr)
		}
	})
}

func TestPassiveEjectionEndsByItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ejected []string
		p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80", "10.0.0.2:80"], outlier: {consecutiveFailures: 2, baseEjection: 10s}}`),
			Options{Logger: quiet, OnEject: func(b string) { ejected = append(ejected, b) }})
		defer p.Close()
		bad := p.all.Load().eps[1]
		p.Report(bad, true)
		p.Report(bad, true)
		if got := addrs(p); len(got) != 1 || got[0] != "10.0.0.1:80" {
			t.Fatalf("after ejection: available = %v, want [10.0.0.1:80]", got)
		}
		if len(ejected) != 1 || ejected[0] != "b" {
			t.Errorf("OnEject calls = %v, want [b]", ejected)
		}
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if got := addrs(p); len(got) != 1 {
			t.Fatalf("9s into a 10s ejection: available = %v", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := addrs(p); len(got) != 2 {
			t.Fatalf("after the ejection: available = %v, want both", got)
		}
	})
}

func TestDNSReResolved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		answer := []string{"10.0.0.2", "10.0.0.1"}
		var fail bool
		lookup := func(_ context.Context, host string) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			if host != "svc.test" {
				t.Errorf("LookupHost(%q), want svc.test", host)
			}
			if fail {
				return nil, errors.New("no such host")
			}
			return answer, nil
		}
		p := New(backendConfig(t, `{name: b, addresses: ["svc.test:8080", "10.9.9.9:1"], resolveInterval: 5s}`), Options{Logger: quiet, LookupHost: lookup})
		defer p.Close()
		synctest.Wait()
		if got := strings.Join(addrs(p), ","); got != "10.0.0.1:8080,10.0.0.2:8080,10.9.9.9:1" {
			t.Fatalf("endpoints = %s", got)
		}
		kept := p.all.Load().eps[1]
		kept.inFlight.Add(1) // state survives re-resolution
		mu.Lock()
		answer = []string{"10.0.0.2", "10.0.0.3"}
		mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := strings.Join(addrs(p), ","); got != "10.0.0.2:8080,10.0.0.3:8080,10.9.9.9:1" {
			t.Fatalf("after re-resolve: endpoints = %s", got)
		}
		if p.all.Load().eps[0] != kept || kept.inFlight.Load() != 1 {
			t.Error("endpoint 10.0.0.2:8080 was replaced, losing its state")
		}
		mu.Lock()
		fail = true
		mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := strings.Join(addrs(p), ","); got != "10.0.0.2:8080,10.0.0.3:8080,10.9.9.9:1" {
			t.Fatalf("after a failed resolve: endpoints = %s, want the last ones kept", got)
		}
	})
}

func TestAcquireMaxInFlightAndSkip(t *testing.T) {
	p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80", "10.0.0.2:80"], maxInFlight: 1}`), Options{Logger: quiet})
	defer p.Close()
	a, _ := p.Acquire(req(), nil)
	b, _ := p.Acquire(req(), nil)
	if a == nil || b == nil || a == b {
		t.Fatalf("Acquire() twice = %v, %v; want both endpoints", a, b)
	}
	if e, full := p.Acquire(req(), nil); e != nil || !full {
		t.Fatalf("Acquire() when all full = %v, %v; want nil, true", e, full)
	}
	a.Done()
	if e, full := p.Acquire(req(), []*Endpoint{a}); e != nil || !full {
		t.Fatalf("Acquire(skip a, b full) = %v, %v; want nil, true: a retry does not go back to a tried endpoint", e, full)
	}
	b.Done()
	for range 4 {
		e, _ := p.Acquire(req(), []*Endpoint{a})
		if e != b {
			t.Fatalf("Acquire(skip a) = %v, want b", e.Addr)
		}
		e.Done()
	}
}

func TestConsistentHashOnHeader(t *testing.T) {
	p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], balance: {policy: consistent_hash, hashOn: {header: X-User}}}`), Options{Logger: quiet})
	defer p.Close()
	r := req()
	r.Header.Set("X-User", "alice")
	first, _ := p.Acquire(r, nil)
	first.Done()
	for range 10 {
		e, _ := p.Acquire(r, nil)
		e.Done()
		if e != first {
			t.Fatalf("Acquire(same key) = %s, want %s", e.Addr, first.Addr)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80"]}`), Options{Logger: quiet})
	defer p.Close()
	for range 3 { // at least 3 retries are always allowed
		if !p.RetryStart(0.1) {
			t.Fatal("RetryStart() = false within the minimum of 3")
		}
	}
	if p.RetryStart(0.1) {
		t.Fatal("RetryStart() = true beyond the budget")
	}
	for range 100 {
		p.RequestStarted()
	}
	if !p.RetryStart(0.1) { // 10% of 100 in flight
		t.Fatal("RetryStart() = false with budget for 10")
	}
}
