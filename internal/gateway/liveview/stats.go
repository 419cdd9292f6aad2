package liveview

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limits of what one Recorder keeps: a backend that answers with a new
// X-Flotilla-Version on every request, or a discovery that churns
// endpoints, cannot make it grow without bound.
const (
	// MaxSeries is how many (version, endpoint) pairs one route's backend
	// keeps; requests of further pairs count under version "other".
	MaxSeries = 64
	// MaxTotalSeries caps the pairs of all recorders together (about
	// 32 KiB of history each): many routes' backends answering with
	// made-up versions cannot exhaust memory; past it, every new pair
	// counts under "other" of its recorder.
	MaxTotalSeries = 4096
	// MaxVersionLen caps a version taken from a response header (bytes).
	MaxVersionLen = 64
	// HistoryLen is the rolling history's length in ticks (seconds).
	HistoryLen = 120
	// DefaultWindow is the window of rates and quantiles, in ticks.
	DefaultWindow = 10
)

// OverflowVersion is the version counted once a Recorder has MaxSeries.
const OverflowVersion = "other"

type seriesKey struct{ version, endpoint string }

// series counts one route's backend's requests answered by one version at
// one endpoint. The atomics are written on the request path; the rest is
// read and written only by the Collector under its mutex.
type series struct {
	key     seriesKey
	n, errs atomic.Uint64
	buckets [NumBuckets]atomic.Uint64

	last sample // cumulative at the last tick
	ring [HistoryLen]sample
	head int // next slot of ring
	idle int // ticks in a row without a request
}

func (s *series) observe(failed bool, d time.Duration) {
	s.n.Add(1)
	if failed {
		s.errs.Add(1)
	}
	s.buckets[bucketOf(d.Microseconds())].Add(1)
}

// sample is one second of a series (or its cumulative counts).
type sample struct {
	n, errs uint64
	h       Histogram
}

// cumulative reads the counters; the reads are not one atomic step, so a
// second may be off by the requests in flight between them.
func (s *series) cumulative() sample {
	var p sample
	p.n, p.errs = s.n.Load(), s.errs.Load()
	for i := range s.buckets {
		p.h[i] = s.buckets[i].Load()
	}
	return p
}

// Recorder counts one route's backend's requests by version and endpoint.
// Observe is safe for concurrent use, takes no lock and allocates nothing
// once a pair has been seen; a nil Recorder records nothing.
type Recorder struct {
	c      *Collector
	m      atomic.Pointer[map[seriesKey]*series] // copy on write
	mu     sync.Mutex                            // serialises writers of m
	route  string
	backnd string
	unused int // ticks in a row not in use and empty; c.mu's
}

// Observe counts one request: the version the answer named ("" when it
// named none), the endpoint that answered ("" when none did), whether it
// failed (a 5xx status or a transport error) and its duration.
func (r *Recorder) Observe(version, endpoint string, failed bool, d time.Duration) {
	if r == nil {
		return
	}
	if len(version) > MaxVersionLen {
		version = version[:MaxVersionLen]
	}
	s := (*r.m.Load())[seriesKey{version, endpoint}]
	if s == nil {
		s = r.add(seriesKey{version, endpoint})
	}
	s.observe(failed, d)
}

// add creates the series of k (or the overflow series), copying the map.
func (r *Recorder) add(k seriesKey) *series {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.m.Load()
	if s := old[k]; s != nil {
		return s
	}
	if len(old) >= MaxSeries || r.c != nil && r.c.total.Load() >= MaxTotalSeries {
		k = seriesKey{version: OverflowVersion}
		if s := old[k]; s != nil {
			return s
		}
	}
	if r.c != nil {
		r.c.total.Add(1)
	}
	// Copies of the strings: the key must not keep a response's header
	// block alive.
	s := &series{key: seriesKey{version: string([]byte(k.version)), endpoint: string([]byte(k.endpoint))}}
	next := make(map[seriesKey]*series, len(old)+1)
	for kk, v := range old {
		next[kk] = v
	}
	next[s.key] = s
	r.m.Store(&next)
	return s
}

// tick samples every series into its history and drops those idle for
// twice the history. c.mu is held.
func (r *Recorder) tick() {
	var drop []seriesKey
	for k, s := range *r.m.Load() {
		cur := s.cumulative()
		var d sample
		d.n, d.errs = cur.n-s.last.n, cur.errs-s.last.errs
		for i := range d.h {
			d.h[i] = cur.h[i] - s.last.h[i]
		}
		s.last = cur
		s.ring[s.head] = d
		s.head = (s.head + 1) % HistoryLen
		if d.n == 0 {
			s.idle++
			if s.idle > 2*HistoryLen {
				drop = append(drop, k)
			}
		} else {
			s.idle = 0
		}
	}
	if len(drop) == 0 {
		return
	}
	r.mu.Lock()
	next := map[seriesKey]*series{}
	for k, v := range *r.m.Load() {
		next[k] = v
	}
	for _, k := range drop {
		delete(next, k)
	}
	r.m.Store(&next)
	r.mu.Unlock()
	if r.c != nil {
		r.c.total.Add(-int64(len(drop)))
	}
}

// stats reads a series: totals, the window and the history, oldest
// first, always HistoryLen points. c.mu is held.
func (s *series) stats(window int) Stats {
	st := Stats{History: newHistory()}
	cur := s.cumulative()
	st.Total, st.TotalErrors = cur.n, cur.errs
	for i := range HistoryLen {
		p := &s.ring[(s.head+i)%HistoryLen]
		st.History.N[i], st.History.Errors[i] = p.n, p.errs
		if i >= HistoryLen-window {
			st.Requests += p.n
			st.Errors += p.errs
			st.Latency.Add(&p.h)
		}
	}
	return st
}

// InstanceMeta is what discovery knows of an endpoint beyond its address.
type InstanceMeta struct {
	// Pod is the pod's name ("" outside Kubernetes).
	Pod string `json:"pod,omitempty"`
	// Version is the pod's app.kubernetes.io/version label: the version
	// of requests whose answer names none (X-Flotilla-Version wins).
	Version string `json:"version,omitempty"`
}

type instKey struct{ backend, addr string }

// Collector owns the Recorders, samples them once a second (Tick), keeps
// the timeline and builds snapshots. Its methods are safe for concurrent
// use.
type Collector struct {
	mu     sync.Mutex
	recs   map[instKey]*Recorder // by route, backend
	meta   map[instKey]InstanceMeta
	states map[instKey]string // endpoint states at the last tick
	seen   bool               // states holds a first tick
	end    time.Time          // last tick
	window int
	events *Timeline
	total  atomic.Int64 // series of all recorders (MaxTotalSeries)
}

// CollectorOptions configure a Collector.
type CollectorOptions struct {
	// Window is the window of rates and quantiles in ticks (default
	// DefaultWindow, at most HistoryLen).
	Window int
	// MaxEvents is the timeline's length (default DefaultMaxEvents).
	MaxEvents int
}

// NewCollector returns an empty collector.
func NewCollector(o CollectorOptions) *Collector {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	o.Window = min(o.Window, HistoryLen)
	return &Collector{recs: map[instKey]*Recorder{}, meta: map[instKey]InstanceMeta{}, states: map[instKey]string{},
		window: o.Window, events: NewTimeline(o.MaxEvents)}
}

// Recorder returns the recorder of a route's backend, the same one for
// the same names: statistics outlive config reloads.
func (c *Collector) Recorder(route, backend string) *Recorder {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := instKey{route, backend}
	if r := c.recs[k]; r != nil {
		return r
	}
	r := &Recorder{c: c, route: route, backnd: backend}
	empty := map[seriesKey]*series{}
	r.m.Store(&empty)
	c.recs[k] = r
	return r
}

// SetInstance records what discovery knows of backend's endpoint addr
// (its pod, its version label); a zero meta forgets it.
func (c *Collector) SetInstance(backend, addr string, m InstanceMeta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m == (InstanceMeta{}) {
		delete(c.meta, instKey{backend, addr})
		return
	}
	c.meta[instKey{backend, addr}] = m
}

// Event adds an event to the timeline (Time defaults to now).
func (c *Collector) Event(e Event) { c.events.Add(e) }

// Events returns the timeline, oldest first.
func (c *Collector) Events() []Event { return c.events.List() }

// Tick samples every recorder into its history (call it once a second)
// and records in the timeline how the endpoints of routes changed since
// the last tick: added, removed, ejected, recovered, unhealthy, healthy,
// draining.
func (c *Collector) Tick(now time.Time, routes []RouteInput) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.end = now
	live := map[instKey]bool{}
	for _, rt := range routes {
		for _, b := range rt.Backends {
			live[instKey{rt.Name, b.Name}] = true
		}
	}
	for k, r := range c.recs {
		r.tick()
		// A route or backend gone and its series idled out: forgotten
		// after a few ticks (not at once: a reload may be handing it out
		// while the inputs of this tick were taken).
		if r.unused = r.unused + 1; live[k] || len(*r.m.Load()) > 0 {
			r.unused = 0
		} else if r.unused > 3 {
			delete(c.recs, k)
		}
	}
	states := map[instKey]string{}
	for _, rt := range routes {
		for _, b := range rt.Backends {
			for _, e := range b.Endpoints {
				states[instKey{b.Name, e.Address}] = e.State()
			}
		}
	}
	if c.seen {
		for k, st := range states {
			old, ok := c.states[k]
			switch {
			case !ok:
				c.events.Add(Event{Time: now, Kind: KindEndpointAdded, Backend: k.backend, Instance: k.addr, Message: "endpoint " + k.addr + " added (" + st + ")"})
			case old != st:
				c.events.Add(Event{Time: now, Kind: stateKind(old, st), Backend: k.backend, Instance: k.addr, Message: "endpoint " + k.addr + ": " + old + " → " + st})
			}
		}
		for k := range c.states {
			if _, ok := states[k]; !ok {
				c.events.Add(Event{Time: now, Kind: KindEndpointRemoved, Backend: k.backend, Instance: k.addr, Message: "endpoint " + k.addr + " removed"})
			}
		}
	}
	c.states, c.seen = states, true
}

func stateKind(old, cur string) string {
	switch cur {
	case StateEjected:
		return KindEjected
	case StateUnhealthy:
		return KindUnhealthy
	case StateDraining:
		return KindDraining
	}
	if old == StateEjected {
		return KindRecovered
	}
	return KindHealthy
}
