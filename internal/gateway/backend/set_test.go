package backend

import (
	"slices"
	"strings"
	"testing"
)

func picks(t *testing.T, p *Pool, n int) []string {
	t.Helper()
	var got []string
	for range n {
		e, _ := p.Acquire(req(), nil)
		addr := "none"
		if e != nil {
			e.Done()
			addr = e.Addr
		}
		if !slices.Contains(got, addr) {
			got = append(got, addr)
		}
	}
	slices.Sort(got)
	return got
}

func TestSetEndpoints(t *testing.T) {
	const kube = `{name: b, kubernetes: {service: s, port: http}}`
	type step struct {
		name  string
		set   []Target
		picks string // the endpoints Acquire picks, sorted
		avail string // Snapshot's available endpoints
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"no endpoints until set", []step{{"start", nil, "none", ""}}},
		{"ready endpoints", []step{{"two", []Target{{Addr: "10.0.0.2:80"}, {Addr: "10.0.0.1:80"}}, "10.0.0.1:80,10.0.0.2:80", "10.0.0.1:80,10.0.0.2:80"}}},
		{"a draining endpoint gets no new requests while one is ready", []step{
			{"both ready", []Target{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}}, "10.0.0.1:80,10.0.0.2:80", "10.0.0.1:80,10.0.0.2:80"},
			{"one terminating", []Target{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80", Draining: true}}, "10.0.0.1:80", "10.0.0.1:80"},
			{"it is gone", []Target{{Addr: "10.0.0.1:80"}}, "10.0.0.1:80", "10.0.0.1:80"},
		}},
		{"draining endpoints serve when none is ready", []step{
			{"all terminating", []Target{{Addr: "10.0.0.1:80", Draining: true}, {Addr: "10.0.0.2:80", Draining: true}}, "10.0.0.1:80,10.0.0.2:80", "10.0.0.1:80,10.0.0.2:80"},
			{"a new one ready", []Target{{Addr: "10.0.0.1:80", Draining: true}, {Addr: "10.0.0.3:80"}}, "10.0.0.3:80", "10.0.0.3:80"},
		}},
		{"all gone", []step{
			{"one", []Target{{Addr: "10.0.0.1:80"}}, "10.0.0.1:80", "10.0.0.1:80"},
			{"none", []Target{}, "none", ""},
		}},
		{"listed twice: ready wins", []step{
			{"dup", []Target{{Addr: "10.0.0.1:80", Draining: true}, {Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}}, "10.0.0.1:80,10.0.0.2:80", "10.0.0.1:80,10.0.0.2:80"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(backendConfig(t, kube), Options{Logger: quiet})
			defer p.Close()
			for _, s := range tt.steps {
				if s.set != nil {
					p.SetEndpoints(s.set)
				}
				if got := strings.Join(picks(t, p, 20), ","); got != s.picks {
					t.Errorf("%s: Acquire() picks %s, want %s", s.name, got, s.picks)
				}
				var avail []string
				for _, e := range p.Snapshot() {
					if e.Available {
						avail = append(avail, e.Addr)
					}
				}
				if got := strings.Join(avail, ","); got != s.avail {
					t.Errorf("%s: Snapshot() available %s, want %s", s.name, got, s.avail)
				}
				if p.Available() != (s.avail != "") {
					t.Errorf("%s: Available() = %v, want %v", s.name, p.Available(), s.avail != "")
				}
			}
		})
	}
}

// TestSetEndpointsKeepsState: an endpoint that stays keeps its in-flight
// count and ejection across updates, also when it starts draining, and a
// request in flight to an endpoint that left finishes.
func TestSetEndpointsKeepsState(t *testing.T) {
	p := New(backendConfig(t, `{name: b, kubernetes: {service: s, port: http}, outlier: {consecutiveFailures: 1}}`), Options{Logger: quiet})
	defer p.Close()
	p.SetEndpoints([]Target{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}, {Addr: "10.0.0.3:80"}})
	eps := p.all.Load().eps
	one, two := eps[0], eps[1]
	held, _ := p.Acquire(req(), []*Endpoint{two, eps[2]}) // in flight on 10.0.0.1
	if held != one {
		t.Fatalf("Acquire(skip 2 and 3) = %v, want 10.0.0.1", held.Addr)
	}
	p.ReportResult(two, 0, errRefused) // ejects 10.0.0.2
	p.SetEndpoints([]Target{{Addr: "10.0.0.3:80"}, {Addr: "10.0.0.2:80"}, {Addr: "10.0.0.1:80", Draining: true}})
	got := p.all.Load().eps
	if got[0] != one || got[1] != two {
		t.Fatal("SetEndpoints replaced endpoints that stayed")
	}
	if one.inFlight.Load() != 1 {
		t.Errorf("in flight on the draining endpoint = %d, want 1", one.inFlight.Load())
	}
	if s := p.Snapshot(); s[1].EjectedUntil.IsZero() || s[1].Available {
		t.Errorf("Snapshot()[1] = %+v, want the ejection kept", s[1])
	}
	if s := p.Snapshot(); !s[0].Draining || s[0].Available || s[0].InFlight != 1 {
		t.Errorf("Snapshot()[0] = %+v, want draining, not available, 1 in flight", s[0])
	}
	p.SetEndpoints([]Target{{Addr: "10.0.0.3:80"}})
	held.Done() // the request in flight on a removed endpoint finishes
	if held.inFlight.Load() != 0 {
		t.Errorf("in flight after Done = %d", held.inFlight.Load())
	}
	if got := strings.Join(picks(t, p, 10), ","); got != "10.0.0.3:80" {
		t.Errorf("Acquire() picks %s, want 10.0.0.3:80", got)
	}
}

// TestSetEndpointsHost: a TLS backend verifies against the endpoint's
// Host, not the IP.
func TestSetEndpointsHost(t *testing.T) {
	p := New(backendConfig(t, `{name: b, kubernetes: {service: s, port: http}}`), Options{Logger: quiet})
	defer p.Close()
	p.SetEndpoints([]Target{{Addr: "10.0.0.1:443", Host: "s.ns.svc"}})
	if got := p.HostOf("10.0.0.1:443"); got != "s.ns.svc" {
		t.Errorf("HostOf() = %q, want s.ns.svc", got)
	}
}
