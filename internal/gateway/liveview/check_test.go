package liveview

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzPeerSnapshot: whatever a peer answers, decoding, Check and Merge
// with a local snapshot never panic, and a merge keeps the local
// snapshot's history length.
func FuzzPeerSnapshot(f *testing.F) {
	c := NewCollector(CollectorOptions{})
	r := c.Recorder("app", "blue")
	fill(r, "v1", "10.0.0.1:80", 5, 1, time.Millisecond)
	routes := []RouteInput{{Name: "app", Backends: []BackendInput{{Name: "blue", Weight: 100, Recorder: r, Endpoints: []EndpointInput{{Address: "10.0.0.1:80", Healthy: true}}}}}}
	t0 := time.Unix(1000, 0)
	c.Tick(t0, routes)
	local := c.Snapshot("gw-a", routes)
	peer, _ := json.Marshal(c.Snapshot("gw-b", routes))
	f.Add(peer)
	f.Add([]byte(`{"time": "1970-01-01T00:16:40Z", "replicas": ["b"], "windowSeconds": 10, "services": [{"name": "app", "versions": [{"name": "v1", "stats": {"history": {"n": [1, 2], "e": [0, 1]}}, "instances": [{"address": "x", "state": "weird"}]}]}]}`))
	f.Add([]byte(`{"time": "1970-01-01T00:00:00Z", "replicas": ["b"], "windowSeconds": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Snapshot
		if json.Unmarshal(data, &s) != nil || s.Check() != nil {
			return
		}
		m := Merge(local, &s)
		for _, svc := range m.Services {
			for _, v := range svc.Versions {
				if len(v.Stats.History.N) < HistoryLen || len(v.Stats.History.N) != len(v.Stats.History.Errors) {
					t.Fatalf("merged history of %s/%s: %d and %d points", svc.Name, v.Name, len(v.Stats.History.N), len(v.Stats.History.Errors))
				}
			}
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("merged snapshot does not encode: %v", err)
		}
	})
}
