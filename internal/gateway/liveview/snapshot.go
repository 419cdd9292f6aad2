package liveview

import (
	"cmp"
	"slices"
	"time"
)

// Snapshot is what the live view shows: services (routes) → versions →
// instances, each with live statistics, and the timeline. It is plain
// data, JSON-encoded for the page, and mergeable across gateway replicas
// (Merge).
type Snapshot struct {
	// Time is the last tick: every History ends here, one point a second.
	Time time.Time `json:"time"`
	// Replicas are the gateway replicas whose traffic it counts.
	Replicas []string `json:"replicas"`
	// Missing are the peer replicas known (on Kubernetes, the gateway
	// Service's endpoints) whose snapshot could not be fetched: their
	// traffic is not counted. The page shows len(Replicas) of
	// len(Replicas)+len(Missing).
	Missing []MissingReplica `json:"missing,omitempty"`
	// WindowSeconds is the window of Rate, ErrorShare and the quantiles.
	WindowSeconds int       `json:"windowSeconds"`
	Services      []Service `json:"services"`
	// Events is the timeline, oldest first.
	Events []Event `json:"events"`
}

// MissingReplica is a peer replica left out of a merged snapshot.
type MissingReplica struct {
	Name string `json:"name"`
	// Error says why: the fetch's error, or how old its last answer is.
	Error string `json:"error"`
}

// Service is one route with a traffic split.
type Service struct {
	Name string `json:"name"`
	// Paused: the route's weights are held (see the gateway's SetPaused).
	Paused bool `json:"paused,omitempty"`
	// Backends are the route's backends and live weights, in config order.
	Backends []BackendWeight `json:"backends"`
	Stats    Stats           `json:"stats"`
	Versions []Version       `json:"versions"`
}

// BackendWeight is one backend of a route's split.
type BackendWeight struct {
	Name   string `json:"name"`
	Weight int    `json:"weight"`
}

// Version is the traffic of one version of a service: the answer's
// X-Flotilla-Version, else the instance's version label, else the
// backend's name.
type Version struct {
	Name string `json:"name"`
	// Backends are the backends it was seen behind.
	Backends []string `json:"backends"`
	// Share is its part of the service's requests in the window (0..1);
	// TotalShare its part of all requests counted.
	Share      float64    `json:"share"`
	TotalShare float64    `json:"totalShare"`
	Stats      Stats      `json:"stats"`
	Instances  []Instance `json:"instances"`
}

// Instance states.
const (
	StateReady     = "ready"
	StateUnhealthy = "unhealthy" // failing active health checks
	StateEjected   = "ejected"   // kept out by passive outlier detection
	StateDraining  = "draining"  // terminating, still serving
	StateGone      = "gone"      // no longer an endpoint; recent traffic only
)

// Instance is one endpoint of a backend as one version.
type Instance struct {
	Address string `json:"address"`
	Backend string `json:"backend"`
	InstanceMeta
	// State is one of the State constants; LastError the last failed
	// health check's error.
	State     string `json:"state"`
	LastError string `json:"lastError,omitempty"`
	InFlight  int64  `json:"inFlight"`
	Stats     Stats  `json:"stats"`
}

// Stats are request statistics: totals since the gateway started, the
// window's counts and latency histogram, and the derived rate, error
// share and quantiles (Derive recomputes them after a merge).
type Stats struct {
	Total       uint64 `json:"total"`
	TotalErrors uint64 `json:"totalErrors"`
	// Requests, Errors and Latency count the window.
	Requests uint64    `json:"requests"`
	Errors   uint64    `json:"errors"`
	Latency  Histogram `json:"latency"`
	// Rate is requests a second over the window; ErrorShare 0..1.
	Rate       float64 `json:"rate"`
	ErrorShare float64 `json:"errorShare"`
	P50Ms      float64 `json:"p50Ms"`
	P99Ms      float64 `json:"p99Ms"`
	// History is the last HistoryLen seconds, oldest first, ending at
	// Snapshot.Time; left out of JSON when it is all zero (most instances
	// of a large config), which decodes as empty.
	History History `json:"history,omitzero"`
}

// History is requests and errors a second, as two columns of equal
// length (compact in JSON). Latency is kept for the window only: the
// page charts traffic, and a column of histograms would be most of the
// snapshot's size.
type History struct {
	N      []uint64 `json:"n"`
	Errors []uint64 `json:"e"`
}

// IsZero reports whether no request was counted (JSON leaves it out).
func (h History) IsZero() bool {
	for i, n := range h.N {
		if n != 0 || i < len(h.Errors) && h.Errors[i] != 0 {
			return false
		}
	}
	return true
}

func newHistory() History {
	return History{N: make([]uint64, HistoryLen), Errors: make([]uint64, HistoryLen)}
}

// add adds o's counts into s; o's history ends shift seconds before s's.
func (s *Stats) add(o *Stats, shift int) {
	s.Total += o.Total
	s.TotalErrors += o.TotalErrors
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Latency.Add(&o.Latency)
	if len(s.History.N) < len(o.History.N) {
		pad := make([]uint64, len(o.History.N)-len(s.History.N))
		s.History.N = append(pad, s.History.N...)
		s.History.Errors = append(slices.Clone(pad), s.History.Errors...)
	}
	for i := range o.History.N {
		j := len(s.History.N) - len(o.History.N) + i - shift
		if j < 0 || j >= len(s.History.N) {
			continue
		}
		s.History.N[j] += o.History.N[i]
		if i < len(o.History.Errors) && j < len(s.History.Errors) {
			s.History.Errors[j] += o.History.Errors[i]
		}
	}
}

func (s *Stats) derive(window int) {
	s.Rate = float64(s.Requests) / float64(max(window, 1))
	s.ErrorShare = 0
	if s.Requests > 0 {
		s.ErrorShare = float64(s.Errors) / float64(s.Requests)
	}
	s.P50Ms, s.P99Ms = s.Latency.QuantileMs(.5), s.Latency.QuantileMs(.99)
}

// RouteInput is a route as the gateway describes it to Snapshot and
// Tick.
type RouteInput struct {
	Name     string
	Paused   bool
	Backends []BackendInput
}

// BackendInput is one backend of a route: its weight, recorder and
// endpoints.
type BackendInput struct {
	Name      string
	Weight    int
	Recorder  *Recorder
	Endpoints []EndpointInput
}

// EndpointInput is one endpoint's health.
type EndpointInput struct {
	Address string
	// Healthy: passes active checks; Ejected: kept out by passive
	// detection; Draining: terminating but serving.
	Healthy, Ejected, Draining bool
	LastError                  string
	InFlight                   int64
}

// State names the endpoint's state (a State constant).
func (e EndpointInput) State() string {
	switch {
	case !e.Healthy:
		return StateUnhealthy
	case e.Ejected:
		return StateEjected
	case e.Draining:
		return StateDraining
	}
	return StateReady
}

// Snapshot builds the snapshot of routes from the recorders as of the
// last Tick, as replica.
func (c *Collector) Snapshot(replica string, routes []RouteInput) *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.end
	if end.IsZero() {
		end = time.Now()
	}
	snap := &Snapshot{Time: end, Replicas: []string{replica}, WindowSeconds: c.window, Services: []Service{}, Events: c.events.List()}
	for _, rt := range routes {
		snap.Services = append(snap.Services, c.service(rt))
	}
	snap.Derive()
	return snap
}

func (c *Collector) service(rt RouteInput) Service {
	svc := Service{Name: rt.Name, Paused: rt.Paused, Versions: []Version{}}
	versions := map[string]*Version{}
	version := func(name, backend string) *Version {
		v := versions[name]
		if v == nil {
			v = &Version{Name: name, Instances: []Instance{}, Stats: Stats{History: newHistory()}}
			versions[name] = v
		}
		if !slices.Contains(v.Backends, backend) {
			v.Backends = append(v.Backends, backend)
		}
		return v
	}
	type ik struct{ version, addr string }
	for _, b := range rt.Backends {
		svc.Backends = append(svc.Backends, BackendWeight{Name: b.Name, Weight: b.Weight})
		instances := map[ik]*Instance{}
		live := map[string]EndpointInput{}
		for _, e := range b.Endpoints {
			live[e.Address] = e
		}
		instance := func(ver, addr string) *Instance {
			in := instances[ik{ver, addr}]
			if in == nil {
				in = &Instance{Address: addr, Backend: b.Name, InstanceMeta: c.meta[instKey{b.Name, addr}], State: StateGone, Stats: Stats{History: newHistory()}}
				if e, ok := live[addr]; ok {
					in.State, in.LastError, in.InFlight = e.State(), e.LastError, e.InFlight
				}
				instances[ik{ver, addr}] = in
			}
			return in
		}
		// Requests whose answer named no version (a 502 from the gateway,
		// an app without the header) count under the version the same
		// endpoint names in its other answers, else its version label,
		// else the version the backend answers with most, else the
		// backend's name: a failing canary's errors stay the canary's.
		var dominant string
		var most uint64
		named := map[string]string{} // endpoint → its most frequent named version
		counts := map[string]uint64{}
		seen := map[string]bool{} // endpoints with traffic
		var series map[seriesKey]*series
		if b.Recorder != nil {
			series = *b.Recorder.m.Load()
		}
		for k, s := range series {
			if k.version == "" || k.version == OverflowVersion {
				continue
			}
			n := s.n.Load()
			if n > most {
				dominant, most = k.version, n
			}
			if k.endpoint != "" && n >= counts[k.endpoint] {
				named[k.endpoint], counts[k.endpoint] = k.version, n
			}
		}
		for k, s := range series {
			st := s.stats(c.window)
			ver := cmp.Or(k.version, named[k.endpoint], c.meta[instKey{b.Name, k.endpoint}].Version, dominant, b.Name)
			version(ver, b.Name).Stats.add(&st, 0)
			if k.endpoint == "" {
				continue
			}
			if _, ok := live[k.endpoint]; !ok && st.Requests == 0 {
				continue // gone, and quiet for the window
			}
			seen[k.endpoint] = true
			instance(ver, k.endpoint).Stats.add(&st, 0)
		}
		for _, e := range b.Endpoints {
			if seen[e.Address] {
				continue
			}
			ver := cmp.Or(c.meta[instKey{b.Name, e.Address}].Version, dominant, b.Name)
			version(ver, b.Name)
			instance(ver, e.Address)
		}
		for k, in := range instances {
			v := versions[k.version]
			v.Instances = append(v.Instances, *in)
		}
	}
	for _, v := range versions {
		slices.SortFunc(v.Instances, func(a, b Instance) int {
			return cmp.Or(cmp.Compare(a.Backend, b.Backend), cmp.Compare(a.Address, b.Address))
		})
		svc.Versions = append(svc.Versions, *v)
	}
	slices.SortFunc(svc.Versions, func(a, b Version) int { return cmp.Compare(a.Name, b.Name) })
	return svc
}

// Derive recomputes every derived field (rates, error shares, quantiles,
// shares, the service totals) from the counts: after building or
// merging.
func (s *Snapshot) Derive() {
	for i := range s.Services {
		svc := &s.Services[i]
		svc.Stats = Stats{History: newHistory()}
		for j := range svc.Versions {
			v := &svc.Versions[j]
			for k := range v.Instances {
				v.Instances[k].Stats.derive(s.WindowSeconds)
			}
			v.Stats.derive(s.WindowSeconds)
			svc.Stats.add(&v.Stats, 0)
		}
		svc.Stats.derive(s.WindowSeconds)
		for j := range svc.Versions {
			v := &svc.Versions[j]
			v.Share, v.TotalShare = 0, 0
			if svc.Stats.Requests > 0 {
				v.Share = float64(v.Stats.Requests) / float64(svc.Stats.Requests)
			}
			if svc.Stats.Total > 0 {
				v.TotalShare = float64(v.Stats.Total) / float64(svc.Stats.Total)
			}
		}
	}
}

// severity orders instance states for Merge: the worst any replica sees
// wins.
var severity = map[string]int{StateGone: 0, StateReady: 1, StateDraining: 2, StateUnhealthy: 3, StateEjected: 4}

// Merge combines snapshots of several gateway replicas into one: counts,
// histograms and histories are summed (aligned by time), never averaged,
// so rates add up and quantiles are those of all requests; an instance's
// state is the worst any replica sees; the timelines are interleaved by
// time. Weights and pause come from the first snapshot that has the
// service (every replica follows the same configuration). The inputs are
// not modified.
func Merge(snaps ...*Snapshot) *Snapshot {
	out := &Snapshot{Replicas: []string{}, Services: []Service{}}
	for _, s := range snaps {
		if s == nil {
			continue
		}
		if s.Time.After(out.Time) {
			out.Time = s.Time
		}
		if out.WindowSeconds == 0 {
			out.WindowSeconds = s.WindowSeconds
		}
	}
	for _, s := range snaps {
		if s == nil {
			continue
		}
		shift := int(out.Time.Sub(s.Time).Round(time.Second) / time.Second)
		for _, r := range s.Replicas {
			if !slices.Contains(out.Replicas, r) {
				out.Replicas = append(out.Replicas, r)
			}
		}
		replica := ""
		if len(s.Replicas) == 1 {
			replica = s.Replicas[0]
		}
		for _, e := range s.Events {
			if e.Replica == "" {
				e.Replica = replica
			}
			out.Events = append(out.Events, e)
		}
		for _, svc := range s.Services {
			i := slices.IndexFunc(out.Services, func(o Service) bool { return o.Name == svc.Name })
			if i < 0 {
				out.Services = append(out.Services, Service{Name: svc.Name, Paused: svc.Paused, Backends: slices.Clone(svc.Backends), Versions: []Version{}})
				i = len(out.Services) - 1
			}
			mergeVersions(&out.Services[i], svc.Versions, shift)
		}
	}
	slices.SortStableFunc(out.Events, func(a, b Event) int { return a.Time.Compare(b.Time) })
	out.Events = dedupeEvents(out.Events)
	if n := len(out.Events); n > DefaultMaxEvents {
		out.Events = out.Events[n-DefaultMaxEvents:]
	}
	for i := range out.Services {
		slices.SortFunc(out.Services[i].Versions, func(a, b Version) int { return cmp.Compare(a.Name, b.Name) })
	}
	out.Derive()
	return out
}

func mergeVersions(svc *Service, vs []Version, shift int) {
	for _, v := range vs {
		i := slices.IndexFunc(svc.Versions, func(o Version) bool { return o.Name == v.Name })
		if i < 0 {
			svc.Versions = append(svc.Versions, Version{Name: v.Name, Instances: []Instance{}, Stats: Stats{History: newHistory()}})
			i = len(svc.Versions) - 1
		}
		mv := &svc.Versions[i]
		for _, b := range v.Backends {
			if !slices.Contains(mv.Backends, b) {
				mv.Backends = append(mv.Backends, b)
			}
		}
		mv.Stats.add(&v.Stats, shift)
		for _, in := range v.Instances {
			j := slices.IndexFunc(mv.Instances, func(o Instance) bool { return o.Backend == in.Backend && o.Address == in.Address })
			if j < 0 {
				c := in
				c.Stats = Stats{History: newHistory()}
				c.InFlight = 0
				mv.Instances = append(mv.Instances, c)
				j = len(mv.Instances) - 1
			}
			mi := &mv.Instances[j]
			mi.Stats.add(&in.Stats, shift)
			mi.InFlight += in.InFlight
			if severity[in.State] > severity[mi.State] {
				mi.State, mi.LastError = in.State, in.LastError
			}
			if mi.Pod == "" {
				mi.InstanceMeta = in.InstanceMeta
			}
		}
		slices.SortFunc(mv.Instances, func(a, b Instance) int {
			return cmp.Or(cmp.Compare(a.Backend, b.Backend), cmp.Compare(a.Address, b.Address))
		})
	}
}

// SameEventWindow is how close in time two replicas' reports of the same
// event (a Kubernetes rollout, an endpoint every replica saw leave) must
// be for Merge to show them once.
const SameEventWindow = 3 * time.Second

// dedupeEvents drops, from events sorted by time, an event that repeats
// one of another replica within SameEventWindow before it: every replica
// watches the same Kubernetes objects and endpoints, and the merged
// timeline shows each change once (with the first replica that saw it).
func dedupeEvents(events []Event) []Event {
	out := events[:0]
	for _, e := range events {
		dup := false
		for i := len(out) - 1; i >= 0 && e.Time.Sub(out[i].Time) <= SameEventWindow; i-- {
			o := out[i]
			if o.Replica != e.Replica && o.Kind == e.Kind && o.Message == e.Message && o.Service == e.Service && o.Backend == e.Backend && o.Instance == e.Instance {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, e)
		}
	}
	return out
}
