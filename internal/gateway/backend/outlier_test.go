package backend

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var errRefused = errors.New("dial tcp: connect: connection refused")

// ejectedAddrs lists the endpoints passive detection keeps out now.
func ejectedAddrs(p *Pool) []string {
	var out []string
	for _, e := range p.Snapshot() {
		if !e.EjectedUntil.IsZero() {
			out = append(out, e.Addr)
		}
	}
	return out
}

// endpointList is n IP endpoints as a YAML flow sequence.
func endpointList(n int) string {
	var a []string
	for i := range n {
		a = append(a, fmt.Sprintf("%q", fmt.Sprintf("10.0.0.%d:80", i+1)))
	}
	return "[" + strings.Join(a, ", ") + "]"
}

// ejectCounter counts OnEject calls.
type ejectCounter struct {
	mu sync.Mutex
	n  int
}

func (c *ejectCounter) inc(string) { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *ejectCounter) get() int   { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestWhatCountsAsFailure: with the defaults no status the application
// answers ejects an endpoint, however often; a transport failure does;
// outlier.countStatuses opts statuses in.
func TestWhatCountsAsFailure(t *testing.T) {
	tests := []struct {
		name        string
		outlier     string
		status      int
		err         error
		wantEjected int
	}{
		{"app 503, defaults", "", 503, nil, 0},
		{"app 502, defaults", "", 502, nil, 0},
		{"app 504, defaults", "", 504, nil, 0},
		{"app 500, defaults", "", 500, nil, 0},
		{"connection refused, defaults", "", 0, errRefused, 1},
		{"app 503, counted", "outlier: {countStatuses: [503]}", 503, nil, 1},
		{"app 500, not in the list", "outlier: {countStatuses: [502, 503, 504]}", 500, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ej ejectCounter
				cfg := `{name: b, addresses: ` + endpointList(3)
				if tt.outlier != "" {
					cfg += ", " + tt.outlier
				}
				p := New(backendConfig(t, cfg+"}"), Options{Logger: quiet, OnEject: ej.inc})
				defer p.Close()
				bad := p.all.Load().eps[0]
				for range 50 { // ten times the default threshold of 5
					p.ReportResult(bad, tt.status, tt.err)
				}
				if got := len(ejectedAddrs(p)); got != tt.wantEjected {
					t.Errorf("50 × ReportResult(%d, %v): ejected %v, want %d ejected", tt.status, tt.err, ejectedAddrs(p), tt.wantEjected)
				}
				if got := ej.get(); got != tt.wantEjected {
					t.Errorf("OnEject calls = %d, want %d", got, tt.wantEjected)
				}
			})
		})
	}
}

// TestMaxEjectionPercent: every endpoint fails; at most
// maxEjectionPercent of them (at least one) are ejected, and never the
// last available one.
func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		endpoints   int
		percent     string // "" for the default (50)
		wantEjected int
	}{
		{3, "", 1},
		{4, "", 2},
		{10, "", 5},
		{2, "", 1},
		{1, "", 0},    // the last endpoint is never ejected
		{10, "10", 1}, // Envoy's default
		{3, "10", 1},  // at least one
		{3, "100", 2}, // all but the last available one
		{1, "100", 0}, // ditto
		{5, "0", 0},   // ejection off
		{5, "40", 2},  // 2 of 5
		{7, "50", 3},  // rounded down
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d endpoints, %s%%", tt.endpoints, tt.percent), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := `{name: b, addresses: ` + endpointList(tt.endpoints)
				if tt.percent != "" {
					cfg += ", outlier: {maxEjectionPercent: " + tt.percent + "}"
				}
				var ej ejectCounter
				p := New(backendConfig(t, cfg+"}"), Options{Logger: quiet, OnEject: ej.inc})
				defer p.Close()
				for range 3 { // refused ejections are retried, and refused again
					for _, e := range p.all.Load().eps {
						for range 5 {
							p.ReportResult(e, 0, errRefused)
						}
					}
				}
				if got := ejectedAddrs(p); len(got) != tt.wantEjected {
					t.Errorf("ejected %v, want %d of %d", got, tt.wantEjected, tt.endpoints)
				}
				if ej.get() != tt.wantEjected {
					t.Errorf("OnEject calls = %d, want %d", ej.get(), tt.wantEjected)
				}
				if !p.Available() {
					t.Error("Available() = false: every endpoint was taken out")
				}
			})
		})
	}
}

// TestLastAvailableEndpointNeverEjected: with the other endpoint failing
// its active checks, the one left is not ejected even though the share
// would allow it.
func TestLastAvailableEndpointNeverEjected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &fakeUpstreams{status: map[string]int{"10.0.0.1:80": 200, "10.0.0.2:80": 500}}
		p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80", "10.0.0.2:80"], healthCheck: {interval: 1s, unhealthyThreshold: 1}, outlier: {maxEjectionPercent: 100, panicThreshold: 0}}`),
			Options{Transport: up, Logger: quiet})
		defer p.Close()
		synctest.Wait()
		if got := addrs(p); !slices.Equal(got, []string{"10.0.0.1:80"}) {
			t.Fatalf("available = %v, want [10.0.0.1:80]", got)
		}
		last := p.all.Load().eps[0]
		for range 20 {
			p.ReportResult(last, 0, errRefused)
		}
		if got := ejectedAddrs(p); len(got) != 0 {
			t.Errorf("ejected %v, want none: it is the last available endpoint", got)
		}
		e, _ := p.Acquire(req(), nil)
		if e != last {
			t.Fatalf("Acquire() = %v, want the last available endpoint", e)
		}
		e.Done()
	})
}

// TestPassingChecksEndEjectionEarly: an endpoint ejected for 5m is back
// after healthyThreshold passing checks, not after 5m.
func TestPassingChecksEndEjectionEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &fakeUpstreams{status: map[string]int{"10.0.0.1:80": 200, "10.0.0.2:80": 200}}
		p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80", "10.0.0.2:80"], healthCheck: {interval: 1s, healthyThreshold: 2}, outlier: {baseEjection: 5m}}`),
			Options{Transport: up, Logger: quiet})
		defer p.Close()
		synctest.Wait() // the first round of checks
		bad := p.all.Load().eps[1]
		for range 5 {
			p.ReportResult(bad, 0, errRefused)
		}
		if got := ejectedAddrs(p); !slices.Equal(got, []string{"10.0.0.2:80"}) {
			t.Fatalf("ejected %v, want [10.0.0.2:80]", got)
		}
		time.Sleep(time.Second) // one pass of two
		synctest.Wait()
		if got := addrs(p); len(got) != 1 {
			t.Fatalf("after 1 passing check: available = %v, want only 10.0.0.1:80", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := addrs(p); len(got) != 2 {
			t.Fatalf("after 2 passing checks: available = %v, want both (ejection ended early)", got)
		}
		if got := ejectedAddrs(p); len(got) != 0 {
			t.Errorf("ejected %v after the ejection ended", got)
		}

		// A failing check keeps the ejection: only passes end it.
		up.set("10.0.0.2:80", 500)
		for range 5 {
			p.ReportResult(bad, 0, errRefused)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := addrs(p); len(got) != 1 {
			t.Errorf("ejected and failing checks: available = %v, want only 10.0.0.1:80", got)
		}
	})
}

// TestPanicThreshold: below panicThreshold percent available, Acquire
// lifts the ejections (passive detection can be wrong or gamed) and
// balances over every endpoint that passes its active checks; an endpoint
// its own check calls down is never picked, panic or not.
func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		down      int    // of 4 endpoints, the first ones fail active checks
		ejected   int    // the next ones are ejected by passive detection
		threshold string // "" for the default (50)
		wantPanic bool
		wantPick  int // distinct endpoints Acquire picks from; 0: none
	}{
		{"all up", 0, 0, "", false, 4},
		{"half ejected is not below 50%", 0, 2, "", false, 2},
		{"three of four ejected", 0, 3, "", true, 4},
		{"two down, one ejected: the ejected one comes back, the down ones not", 2, 1, "", true, 2},
		{"three down: nothing to lift", 3, 0, "", false, 1},
		{"all down: 503, never the failing ones", 4, 0, "", false, 0},
		{"three ejected, panic off", 0, 3, "0", false, 1},
		{"one ejected, threshold 80", 0, 1, "80", true, 4},
		{"one ejected, threshold 75", 0, 1, "75", false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				up := &fakeUpstreams{status: map[string]int{}}
				for i := range 4 {
					code := 200
					if i < tt.down {
						code = 500
					}
					up.set(fmt.Sprintf("10.0.0.%d:80", i+1), code)
				}
				outlier := "maxEjectionPercent: 100"
				if tt.threshold != "" {
					outlier += ", panicThreshold: " + tt.threshold
				}
				cfg := `{name: b, addresses: ` + endpointList(4) + `, healthCheck: {interval: 1s, unhealthyThreshold: 1}, outlier: {` + outlier + `}}`
				p := New(backendConfig(t, cfg), Options{Transport: up, Logger: quiet})
				defer p.Close()
				synctest.Wait()
				for _, e := range p.all.Load().eps[tt.down : tt.down+tt.ejected] {
					for range 5 {
						p.ReportResult(e, 0, errRefused)
					}
				}
				synctest.Wait()
				if got := p.Panicking(); got != tt.wantPanic {
					t.Errorf("Panicking() = %v, want %v", got, tt.wantPanic)
				}
				if got, want := p.Available(), tt.down+tt.ejected < 4; got != want {
					t.Errorf("Available() = %v, want %v (panic routing does not make endpoints available)", got, want)
				}
				picked := map[string]bool{}
				for range 32 {
					e, _ := p.Acquire(req(), nil)
					if e == nil {
						break
					}
					picked[e.Addr] = true
					e.Done()
				}
				if len(picked) != tt.wantPick {
					t.Errorf("Acquire() picked %d distinct endpoints (%v), want %d", len(picked), picked, tt.wantPick)
				}
				for i := range tt.down {
					if addr := fmt.Sprintf("10.0.0.%d:80", i+1); picked[addr] {
						t.Errorf("Acquire() picked %s, which fails its active checks", addr)
					}
				}
			})
		})
	}
}

// TestPanicRoutingEndsWhenEndpointsRecover: panic routing is recomputed
// with every health change.
func TestPanicRoutingEndsWhenEndpointsRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &fakeUpstreams{status: map[string]int{"10.0.0.1:80": 200, "10.0.0.2:80": 200, "10.0.0.3:80": 500}}
		p := New(backendConfig(t, `{name: b, addresses: ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], healthCheck: {interval: 1s, unhealthyThreshold: 1}}`),
			Options{Transport: up, Logger: quiet})
		defer p.Close()
		synctest.Wait()
		for range 5 {
			p.ReportResult(p.all.Load().eps[0], 0, errRefused)
		}
		synctest.Wait()
		if !p.Panicking() {
			t.Fatal("one of three available (one ejected, one down): Panicking() = false")
		}
		up.set("10.0.0.3:80", 200)
		time.Sleep(time.Second)
		synctest.Wait()
		// A second later the third endpoint passes its check, and the
		// ejected one's passing check has ended its ejection.
		if p.Panicking() {
			t.Fatal("all passing again: Panicking() = true, want false")
		}
		if got := addrs(p); len(got) != 3 {
			t.Fatalf("all passing again: available = %v, want all three", got)
		}
	})
}

// BenchmarkAcquireReport is the pool's share of every proxied request:
// pick, report a success, done.
func BenchmarkAcquireReport(b *testing.B) {
	p := New(backendConfig(&testing.T{}, `{name: b, addresses: `+endpointList(3)+`}`), Options{Logger: quiet})
	defer p.Close()
	r := req()
	b.ReportAllocs()
	for b.Loop() {
		e, _ := p.Acquire(r, nil)
		p.ReportResult(e, 200, nil)
		e.Done()
	}
}
