package liveview

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkObserve is the request path's cost of the statistics: one
// map read and three atomic adds.
func BenchmarkObserve(b *testing.B) {
	r := NewCollector(CollectorOptions{}).Recorder("app", "blue")
	r.Observe("v1", "10.0.0.1:8080", false, time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		r.Observe("v1", "10.0.0.1:8080", false, time.Millisecond)
	}
}

// BenchmarkObserveParallel: every core counting into the same series,
// the worst case for the shared cache lines.
func BenchmarkObserveParallel(b *testing.B) {
	r := NewCollector(CollectorOptions{}).Recorder("app", "blue")
	r.Observe("v1", "10.0.0.1:8080", false, time.Millisecond)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe("v1", "10.0.0.1:8080", false, time.Millisecond)
		}
	})
}

// BenchmarkTickAndEncode is the once-a-second work while someone
// watches: a tick, a snapshot and its JSON, for 4 routes × 2 backends ×
// 3 endpoints with traffic.
func BenchmarkTickAndEncode(b *testing.B) {
	c := NewCollector(CollectorOptions{})
	var routes []RouteInput
	for i := range 4 {
		rt := RouteInput{Name: fmt.Sprintf("route-%d", i)}
		for j, v := range []string{"v1", "v2"} {
			bi := BackendInput{Name: fmt.Sprintf("b-%d-%d", i, j), Weight: 50, Recorder: c.Recorder(rt.Name, v)}
			for k := range 3 {
				addr := fmt.Sprintf("10.0.%d.%d:8080", i, j*3+k)
				bi.Endpoints = append(bi.Endpoints, EndpointInput{Address: addr, Healthy: true})
				for range 100 {
					bi.Recorder.Observe(v, addr, false, time.Duration(k+1)*time.Millisecond)
				}
			}
			rt.Backends = append(rt.Backends, bi)
		}
		routes = append(routes, rt)
	}
	now := time.Now()
	for i := range HistoryLen {
		c.Tick(now.Add(time.Duration(i)*time.Second), routes)
	}
	var size int
	b.ReportAllocs()
	for b.Loop() {
		c.Tick(now, routes)
		out, err := json.Marshal(c.Snapshot("gw", routes))
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "json-bytes")
}
