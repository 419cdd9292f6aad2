package liveview

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHistogramQuantile(t *testing.T) {
	one := func(us int64, n uint64) Histogram {
		var h Histogram
		h[bucketOf(us)] = n
		return h
	}
	var spread Histogram
	spread[bucketOf(1_000)] = 98 // ≤ 1 ms
	spread[bucketOf(90_000)] = 2 // 75..100 ms
	tests := []struct {
		name     string
		h        Histogram
		q        float64
		min, max float64 // ms
	}{
		{"empty", Histogram{}, .5, 0, 0},
		{"one bucket p50 interpolates inside it", one(1_000, 10), .5, .75, 1},
		{"one bucket p99", one(1_000, 10), .99, .75, 1},
		{"p50 of a spread is the fast bucket", spread, .5, .75, 1},
		{"p99 of a spread is the slow bucket", spread, .99, 75, 100},
		{"past the last bound is 30 s", one(60_000_000, 3), .99, 30_000, 30_000},
		{"below the first bound", one(10, 4), .5, 0, .1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.QuantileMs(tt.q); got < tt.min || got > tt.max {
				t.Errorf("QuantileMs(%v) = %v, want %v..%v", tt.q, got, tt.min, tt.max)
			}
		})
	}
}

func TestBucketOf(t *testing.T) {
	for _, tt := range []struct {
		us   int64
		want int
	}{{0, 0}, {100, 0}, {101, 1}, {1_000, 6}, {1_001, 7}, {30_000_000, NumBuckets - 2}, {30_000_001, NumBuckets - 1}, {math.MaxInt64, NumBuckets - 1}} {
		if got := bucketOf(tt.us); got != tt.want {
			t.Errorf("bucketOf(%d) = %d, want %d", tt.us, got, tt.want)
		}
	}
	if b := BucketBoundsMs(); len(b) != NumBuckets || !math.IsInf(b[NumBuckets-1], 1) || b[0] != .1 {
		t.Errorf("BucketBoundsMs() = %v", b)
	}
}

func TestHistogramJSON(t *testing.T) {
	var h Histogram
	h[3], h[7] = 5, 1
	b, err := json.Marshal(h)
	if err != nil || string(b) != "[[3,5],[7,1]]" {
		t.Fatalf("Marshal = %s, %v; want [[3,5],[7,1]]", b, err)
	}
	var back Histogram
	if err := json.Unmarshal(b, &back); err != nil || back != h {
		t.Fatalf("Unmarshal = %v, %v; want %v", back, err, h)
	}
	for _, tt := range []struct{ name, in, want string }{
		{"bucket out of range", "[[32,1]]", "bucket 32 out of range 0..31"},
		{"not a list", `{"3":5}`, "want [[bucket, count], ...]"},
		{"negative count", "[[1,-1]]", "want [[bucket, count], ...]"},
		{"a pair of three", "[[1,2,3]]", "want [[bucket, count], ...]"},
		{"strings", `[["1","2"]]`, "want [[bucket, count], ...]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			err := json.Unmarshal([]byte(tt.in), &h)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Unmarshal(%s) = %v, want an error naming %q", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzHistogramJSON(f *testing.F) {
	for _, s := range []string{"[]", "[[0,1]]", "[[31,99],[2,3]]", "[[32,1]]", "null", `[[1,"a"]]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var h Histogram
		if err := json.Unmarshal([]byte(s), &h); err != nil {
			return
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back Histogram
		if err := json.Unmarshal(b, &back); err != nil || back != h {
			t.Fatalf("round trip of %s: %s → %v, %v", s, b, back, err)
		}
	})
}

// TestObserveAllocatesNothing: the request path's recording, once a
// version and endpoint have been seen.
func TestObserveAllocatesNothing(t *testing.T) {
	c := NewCollector(CollectorOptions{})
	r := c.Recorder("app", "blue")
	version, ep := strings.Clone("v1"), strings.Clone("10.0.0.1:80")
	r.Observe(version, ep, false, time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() { r.Observe(version, ep, true, 3*time.Millisecond) }); n != 0 {
		t.Errorf("Observe allocates %v times per call, want 0", n)
	}
	var nilRec *Recorder
	nilRec.Observe("v1", ep, false, time.Millisecond) // off: no panic
}

func TestRecorderBounds(t *testing.T) {
	c := NewCollector(CollectorOptions{})
	r := c.Recorder("app", "blue")
	for i := range MaxSeries + 10 {
		r.Observe("v"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "", false, time.Millisecond)
	}
	long := strings.Repeat("v", 200)
	r.Observe(long, "", false, time.Millisecond)
	m := *r.m.Load()
	if len(m) != MaxSeries+1 {
		t.Errorf("series = %d, want MaxSeries+1 (the overflow)", len(m))
	}
	if s := m[seriesKey{version: OverflowVersion}]; s == nil || s.n.Load() != 11 {
		t.Errorf("overflow series = %v, want 11 requests", s)
	}
	if c.Recorder("app", "blue") != r {
		t.Error("Recorder(app, blue) returned a new recorder; statistics must outlive reloads")
	}
}

// TestCollectorBudget: many routes' backends answering with made-up
// versions stop at MaxTotalSeries pairs in all (then "other" per
// recorder); idle series and recorders of routes gone are forgotten, and
// free the budget.
func TestCollectorBudget(t *testing.T) {
	c := NewCollector(CollectorOptions{})
	perRec := MaxSeries
	recs := MaxTotalSeries/perRec + 8
	for i := range recs {
		r := c.Recorder(fmt.Sprintf("route-%d", i), "b")
		for j := range perRec + 5 {
			r.Observe(fmt.Sprintf("v%d", j), "", false, time.Millisecond)
		}
	}
	if n := c.total.Load(); n > MaxTotalSeries+int64(recs) {
		t.Fatalf("%d series in all, want at most MaxTotalSeries (%d) plus one overflow per recorder", n, MaxTotalSeries)
	}
	// Every route gone: after the idle period every series and recorder goes.
	now := time.Unix(0, 0)
	for range 2*HistoryLen + 5 {
		now = now.Add(time.Second)
		c.Tick(now, nil)
	}
	if n, left := c.total.Load(), len(c.recs); n != 0 || left != 0 {
		t.Errorf("after the idle period: %d series, %d recorders; want none", n, left)
	}
}

// fill records n requests of version at ep with latency d, failed ones
// first.
func fill(r *Recorder, version, ep string, n, failed int, d time.Duration) {
	for i := range n {
		r.Observe(version, ep, i < failed, d)
	}
}

func TestSnapshotVersionsAndInstances(t *testing.T) {
	c := NewCollector(CollectorOptions{Window: 10})
	blue, green := c.Recorder("app", "blue"), c.Recorder("app", "green")
	fill(blue, "v1", "10.0.0.1:80", 60, 0, time.Millisecond)
	fill(blue, "v1", "10.0.0.2:80", 10, 0, time.Millisecond)
	fill(blue, "", "10.0.0.1:80", 4, 4, time.Millisecond) // 502s from a v1 endpoint: v1's errors
	fill(green, "v2", "10.0.0.3:80", 30, 3, 50*time.Millisecond)
	fill(green, "", "10.0.0.4:80", 5, 0, time.Millisecond) // no header, a pod label
	c.SetInstance("green", "10.0.0.4:80", InstanceMeta{Pod: "web-v3-abc", Version: "v3"})
	routes := []RouteInput{{Name: "app", Backends: []BackendInput{
		{Name: "blue", Weight: 70, Recorder: blue, Endpoints: []EndpointInput{
			{Address: "10.0.0.1:80", Healthy: true}, {Address: "10.0.0.2:80", Healthy: true, Ejected: true},
			{Address: "10.0.0.9:80", Healthy: true}}}, // no traffic yet: the backend's version
		{Name: "green", Weight: 30, Recorder: green, Endpoints: []EndpointInput{
			{Address: "10.0.0.3:80", Healthy: false, LastError: "connection refused"}, {Address: "10.0.0.4:80", Healthy: true, Draining: true}}},
	}}}
	now := time.Unix(1000, 0)
	c.Tick(now, routes)
	s := c.Snapshot("gw-0", routes)
	if !s.Time.Equal(now) || s.WindowSeconds != 10 || len(s.Services) != 1 {
		t.Fatalf("snapshot = %+v", s)
	}
	svc := s.Services[0]
	type row struct {
		Version   string
		Requests  uint64
		Errors    uint64
		Share     float64
		Instances []string
	}
	var got []row
	for _, v := range svc.Versions {
		r := row{Version: v.Name, Requests: v.Stats.Requests, Errors: v.Stats.Errors, Share: math.Round(v.Share*1000) / 1000}
		for _, in := range v.Instances {
			r.Instances = append(r.Instances, in.Address+" "+in.State+" "+in.Pod)
		}
		got = append(got, r)
	}
	want := []row{
		{"v1", 74, 4, .679, []string{"10.0.0.1:80 ready ", "10.0.0.2:80 ejected ", "10.0.0.9:80 ready "}},
		{"v2", 30, 3, .275, []string{"10.0.0.3:80 unhealthy "}},
		{"v3", 5, 0, .046, []string{"10.0.0.4:80 draining web-v3-abc"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	v2 := svc.Versions[1]
	if v2.Stats.ErrorShare != .1 || v2.Stats.Rate != 3 || v2.Stats.P50Ms < 30 || v2.Stats.P50Ms > 50 {
		t.Errorf("v2 stats = rate %v, errors %v, p50 %v; want 3/s, 0.1, 30..50 ms", v2.Stats.Rate, v2.Stats.ErrorShare, v2.Stats.P50Ms)
	}
	if h := svc.Stats.History; svc.Stats.Total != 109 || len(h.N) != HistoryLen || len(h.Errors) != HistoryLen || h.N[HistoryLen-1] != 109 || h.Errors[HistoryLen-1] != 7 {
		t.Errorf("service total %d, history %d points ending %d (%d errors); want 109, %d, 109 (7)", svc.Stats.Total, len(h.N), h.N[HistoryLen-1], h.Errors[HistoryLen-1], HistoryLen)
	}
	if v2.Instances[0].LastError != "connection refused" {
		t.Errorf("unhealthy instance's error = %q", v2.Instances[0].LastError)
	}
	// A second tick without traffic: the window still counts the first
	// second, the history moves on, the totals stay.
	c.Tick(now.Add(time.Second), routes)
	s = c.Snapshot("gw-0", routes)
	if h := s.Services[0].Stats.History.N; h[HistoryLen-1] != 0 || h[HistoryLen-2] != 109 || s.Services[0].Stats.Requests != 109 {
		t.Errorf("after an idle tick: history ends %d, %d; window %d", h[HistoryLen-2], h[HistoryLen-1], s.Services[0].Stats.Requests)
	}
}

func TestTickRecordsEndpointChanges(t *testing.T) {
	c := NewCollector(CollectorOptions{})
	route := func(eps ...EndpointInput) []RouteInput {
		return []RouteInput{{Name: "app", Backends: []BackendInput{{Name: "web", Weight: 1, Endpoints: eps}}}}
	}
	ready := func(a string) EndpointInput { return EndpointInput{Address: a, Healthy: true} }
	now := time.Unix(1000, 0)
	steps := []struct {
		eps  []EndpointInput
		want []string // kind instance
	}{
		{[]EndpointInput{ready("a"), ready("b")}, nil}, // the first tick is the baseline
		{[]EndpointInput{ready("a"), ready("b"), ready("c")}, []string{"endpoint-added c"}},
		{[]EndpointInput{{Address: "a", Healthy: true, Ejected: true}, ready("b"), ready("c")}, []string{"ejected a"}},
		{[]EndpointInput{ready("a"), {Address: "b"}, ready("c")}, []string{"recovered a", "unhealthy b"}},
		{[]EndpointInput{ready("a"), ready("b")}, []string{"healthy b", "endpoint-removed c"}},
		{[]EndpointInput{ready("a"), {Address: "b", Healthy: true, Draining: true}}, []string{"draining b"}},
	}
	seen := 0
	for i, st := range steps {
		c.Tick(now.Add(time.Duration(i)*time.Second), route(st.eps...))
		evs := c.Events()[seen:]
		seen += len(evs)
		var got []string
		for _, e := range evs {
			got = append(got, e.Kind+" "+e.Instance)
			if e.Backend != "web" || e.Message == "" {
				t.Errorf("step %d: event %+v lacks its backend or message", i, e)
			}
		}
		if !cmp.Equal(st.want, got, cmp.Comparer(func(a, b []string) bool {
			return strings.Join(sorted(a), ",") == strings.Join(sorted(b), ",")
		})) {
			t.Errorf("step %d: events %v, want %v", i, got, st.want)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestTimelineKeepsTheLast(t *testing.T) {
	tl := NewTimeline(3)
	for i := range 5 {
		tl.Add(Event{Kind: "k", Message: string(rune('a' + i))})
	}
	var got string
	for _, e := range tl.List() {
		got += e.Message
		if e.Time.IsZero() {
			t.Error("Add left Time zero")
		}
	}
	if got != "cde" {
		t.Errorf("List() = %q, want cde (oldest first, the last three)", got)
	}
}

// TestMerge: two replicas' snapshots sum their counts and histograms
// (the merged p99 is the p99 of all requests, not an average), align
// their histories by time, keep the worst instance state and interleave
// the timelines.
func TestMerge(t *testing.T) {
	build := func(replica string, at time.Time, fast, slow int, state EndpointInput, event string) *Snapshot {
		c := NewCollector(CollectorOptions{})
		r := c.Recorder("app", "blue")
		fill(r, "v1", "10.0.0.1:80", fast, 0, time.Millisecond)
		fill(r, "v1", "10.0.0.1:80", slow, slow, 2*time.Second)
		c.Event(Event{Time: at, Kind: "weights", Message: event})
		routes := []RouteInput{{Name: "app", Backends: []BackendInput{{Name: "blue", Weight: 100, Recorder: r, Endpoints: []EndpointInput{state}}}}}
		c.Tick(at, routes)
		return c.Snapshot(replica, routes)
	}
	t0 := time.Unix(1000, 0)
	a := build("gw-a", t0, 990, 0, EndpointInput{Address: "10.0.0.1:80", Healthy: true}, "a")
	b := build("gw-b", t0.Add(time.Second), 0, 10, EndpointInput{Address: "10.0.0.1:80", Healthy: true, Ejected: true}, "b")
	aJSON, _ := json.Marshal(a)
	m := Merge(a, b)
	if again, _ := json.Marshal(a); string(again) != string(aJSON) {
		t.Error("Merge changed its input")
	}
	if !cmp.Equal(m.Replicas, []string{"gw-a", "gw-b"}) || !m.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("replicas %v, time %v", m.Replicas, m.Time)
	}
	v := m.Services[0].Versions[0]
	if v.Stats.Total != 1000 || v.Stats.Errors != 10 || math.Abs(v.Stats.ErrorShare-.01) > 1e-9 {
		t.Errorf("merged v1: total %d, errors %d, share %v; want 1000, 10, 0.01", v.Stats.Total, v.Stats.Errors, v.Stats.ErrorShare)
	}
	// p99 of 990 fast and 10 slow requests: the slow bucket edge, far
	// from either replica's p99 averaged ((~1 + ~2000)/2).
	if v.Stats.P99Ms > 2 || v.Stats.P99Ms < .75 {
		t.Errorf("merged p99 = %v ms, want the 99th of all requests (≤ 1 ms bucket)", v.Stats.P99Ms)
	}
	if p := v.Stats.Latency.QuantileMs(.995); p < 1500 {
		t.Errorf("merged p99.5 = %v ms, want in the 2 s bucket", p)
	}
	h := v.Stats.History
	if h.N[HistoryLen-1] != 10 || h.N[HistoryLen-2] != 990 || h.Errors[HistoryLen-1] != 10 || len(h.N) != HistoryLen {
		t.Errorf("merged history ends %d, %d (errors %d); want 990 then 10 (b is a second later), 10 errors", h.N[HistoryLen-2], h.N[HistoryLen-1], h.Errors[HistoryLen-1])
	}
	if in := v.Instances; len(in) != 1 || in[0].State != StateEjected || in[0].Stats.Total != 1000 {
		t.Errorf("merged instances = %+v, want one, ejected (the worst), 1000 requests", in)
	}
	if len(m.Events) != 2 || m.Events[0].Replica != "gw-a" || m.Events[1].Replica != "gw-b" {
		t.Errorf("merged events = %+v", m.Events)
	}
	if one := Merge(a); one.Services[0].Versions[0].Stats.Total != 990 {
		t.Errorf("Merge(a) total = %d, want 990", one.Services[0].Versions[0].Stats.Total)
	}
	// What a peer fetched over HTTP merges the same.
	var back Snapshot
	if err := json.Unmarshal(aJSON, &back); err != nil {
		t.Fatal(err)
	}
	if m2 := Merge(&back, b); m2.Services[0].Versions[0].Stats.Total != 1000 || m2.Services[0].Versions[0].Stats.P99Ms != v.Stats.P99Ms {
		t.Errorf("merge of a decoded snapshot differs: %+v", m2.Services[0].Versions[0].Stats)
	}
}

// TestIdleHistoryLeftOut: an all-zero history is left out of the JSON,
// and a decoded snapshot without one still merges.
func TestIdleHistoryLeftOut(t *testing.T) {
	c := NewCollector(CollectorOptions{})
	r := c.Recorder("app", "web")
	routes := []RouteInput{{Name: "app", Backends: []BackendInput{{Name: "web", Weight: 1, Recorder: r, Endpoints: []EndpointInput{{Address: "10.0.0.1:80", Healthy: true}}}}}}
	c.Tick(time.Unix(1000, 0), routes)
	idle, _ := json.Marshal(c.Snapshot("gw-a", routes))
	if strings.Contains(string(idle), `"history"`) {
		t.Errorf("idle snapshot has a history: %s", idle)
	}
	var back Snapshot
	if err := json.Unmarshal(idle, &back); err != nil {
		t.Fatal(err)
	}
	fill(r, "v1", "10.0.0.1:80", 5, 0, time.Millisecond)
	c.Tick(time.Unix(1001, 0), routes)
	m := Merge(&back, c.Snapshot("gw-b", routes))
	if h := m.Services[0].Versions[0].Stats.History; len(h.N) != HistoryLen || h.N[HistoryLen-1] != 5 {
		t.Errorf("merged history = %v", h.N)
	}
}

// TestMergeShowsSharedEventsOnce: the same change seen by every replica
// (a Kubernetes rollout, an endpoint leaving) shows once in the merged
// timeline; the same text far apart in time, or from one replica twice,
// stays.
func TestMergeShowsSharedEventsOnce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	snap := func(replica string, events ...Event) *Snapshot {
		return &Snapshot{Time: t0, Replicas: []string{replica}, WindowSeconds: 10, Events: events}
	}
	rollout := Event{Time: t0, Kind: "rollout", Message: "ReplicaSet demo-v2-abc created"}
	later := rollout
	later.Time = t0.Add(time.Second)
	far := rollout
	far.Time = t0.Add(SameEventWindow + time.Second)
	m := Merge(snap("gw-a", rollout, far), snap("gw-b", later), snap("gw-c", Event{Time: t0, Kind: "weights", Message: "other"}))
	var got []string
	for _, e := range m.Events {
		got = append(got, e.Replica+" "+e.Kind)
	}
	want := []string{"gw-a rollout", "gw-c weights", "gw-a rollout"}
	if !cmp.Equal(got, want) {
		t.Errorf("merged events = %q, want %q", got, want)
	}
}
