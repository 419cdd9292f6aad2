package livepeers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
	"github.com/flotilla-dev/flotilla/internal/gateway/livepeers"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

var token = []byte("0123456789abcdef0123456789abcdef")

// replica is one real gateway with its data and admin listeners on real
// TCP, in front of one app answering as version.
type replica struct {
	gw    *gateway.Gateway
	data  *httptest.Server
	admin *httptest.Server
}

func startReplica(t *testing.T, name, version string) *replica {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Flotilla-Version", version)
		io.WriteString(w, version)
	}))
	t.Cleanup(app.Close)
	cfg, err := config.Parse(fmt.Appendf(nil, `apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends:
- {name: blue, addresses: [%q]}
- {name: green, addresses: [%q]}
routes:
- {name: app, match: {hosts: [app.test]}, backends: [{name: blue, weight: 100}, {name: green, weight: 0}]}
`, strings.TrimPrefix(app.URL, "http://"), strings.TrimPrefix(app.URL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Registry: prometheus.NewRegistry(), Replica: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	r := &replica{gw: gw, data: httptest.NewServer(gw),
		admin: httptest.NewServer(admin.Secure(gw.AdminHandler(), admin.Options{Token: token}))}
	t.Cleanup(r.data.Close)
	t.Cleanup(r.admin.Close)
	return r
}

func (r *replica) send(t *testing.T, n int) {
	t.Helper()
	for range n {
		req, _ := http.NewRequest("GET", r.data.URL+"/", nil)
		req.Host = "app.test"
		resp, err := r.data.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func total(s *liveview.Snapshot) uint64 {
	var n uint64
	for _, svc := range s.Services {
		n += svc.Stats.Total
	}
	return n
}

// TestMergeOfTwoGateways: two real gateways, each fetching the other's
// snapshot from its admin API over TCP with the admin token; the page of
// either shows both replicas' traffic, once.
func TestMergeOfTwoGateways(t *testing.T) {
	a, b := startReplica(t, "gw-a", "v1"), startReplica(t, "gw-b", "v1")
	ma := livepeers.New(livepeers.Options{Local: a.gw.LiveSnapshot, Token: token})
	defer ma.Close()
	mb := livepeers.New(livepeers.Options{Local: b.gw.LiveSnapshot, Token: token})
	defer mb.Close()
	ma.SetPeers([]livepeers.Peer{{Name: "gw-b", URL: b.admin.URL}})
	mb.SetPeers([]livepeers.Peer{{Name: "gw-a", URL: a.admin.URL}})
	a.send(t, 30)
	b.send(t, 20)
	for _, m := range []*livepeers.Merger{ma, mb} {
		discoverytest.Eventually(t, "merged snapshot of both replicas", func() error {
			s := m.LiveSnapshot()
			if got := slices.Sorted(slices.Values(s.Replicas)); !slices.Equal(got, []string{"gw-a", "gw-b"}) || len(s.Missing) != 0 {
				return fmt.Errorf("replicas %v, missing %v", s.Replicas, s.Missing)
			}
			if n := total(s); n != 50 {
				return fmt.Errorf("total %d requests, want 50 (30 + 20, each counted once)", n)
			}
			return nil
		})
	}
	// The admin endpoint is this replica's own, never the merge.
	snap, err := livepeers.Fetch(context.Background(), http.DefaultClient, a.admin.URL, token, 10e9, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(snap.Replicas, []string{"gw-a"}) {
		t.Errorf("GET /live/snapshot replicas = %v, want [gw-a]", snap.Replicas)
	}
}

// TestBadPeers: a peer that hangs, one that answers garbage, one that
// answers too much and one that refuses the token are listed as missing
// with the reason; the good peer is merged, and the page is never held
// up by the hanging one.
func TestBadPeers(t *testing.T) {
	a, b := startReplica(t, "gw-a", "v1"), startReplica(t, "gw-b", "v2")
	entered, release := make(chan struct{}, 16), make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release) // before hang.Close: it waits for handlers
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"replicas": [`)
	}))
	defer garbage.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"replicas": ["x"], "services": [`)
		for i := range 100_000 { // ≈ 2 MB, no Content-Length (chunked)
			fmt.Fprintf(w, `{"name": "s%d"},`, i)
		}
		io.WriteString(w, `{}]}`)
	}))
	defer huge.Close()
	skewed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"time": %q, "replicas": ["skewed"], "windowSeconds": 10, "services": []}`, time.Now().Add(time.Hour).Format(time.RFC3339))
	}))
	defer skewed.Close()
	ma := livepeers.New(livepeers.Options{Local: a.gw.LiveSnapshot, Token: token, MaxBytes: 256 << 10})
	defer ma.Close()
	ma.SetPeers([]livepeers.Peer{
		{Name: "gw-b", URL: b.admin.URL},
		{Name: "hangs", URL: hang.URL},
		{Name: "garbage", URL: garbage.URL},
		{Name: "huge", URL: huge.URL},
		{Name: "other-token", URL: startOther(t)},
		{Name: "skewed", URL: skewed.URL},
	})
	a.send(t, 3)
	b.send(t, 4)
	ma.LiveSnapshot()
	<-entered // a round is waiting on the hanging peer now
	if s := ma.LiveSnapshot(); s.Replicas[0] != "gw-a" {
		t.Errorf("snapshot while a peer hangs: replicas %v, want gw-a first", s.Replicas)
	}
	want := map[string]string{
		"hangs":       "no answer within",
		"garbage":     "not a live view snapshot",
		"huge":        "larger than 262144 bytes",
		"other-token": "401 Unauthorized",
		"skewed":      "off this one's (more than 30s)",
	}
	discoverytest.Eventually(t, "bad peers missing, good one merged", func() error {
		s := ma.LiveSnapshot()
		if !slices.Equal(s.Replicas, []string{"gw-a", "gw-b"}) {
			return fmt.Errorf("replicas %v, want [gw-a gw-b]", s.Replicas)
		}
		if n := total(s); n != 7 {
			return fmt.Errorf("total %d, want 7", n)
		}
		if len(s.Missing) != len(want) {
			return fmt.Errorf("missing %v, want %d", s.Missing, len(want))
		}
		for _, m := range s.Missing {
			if !strings.Contains(m.Error, want[m.Name]) {
				return fmt.Errorf("missing %s: %q, want it to say %q", m.Name, m.Error, want[m.Name])
			}
			if strings.Contains(m.Error, string(token)) {
				return fmt.Errorf("missing %s: error contains the token", m.Name)
			}
		}
		return nil
	})
	// A peer that leaves is no longer listed.
	ma.SetPeers([]livepeers.Peer{{Name: "gw-b", URL: b.admin.URL}})
	if s := ma.LiveSnapshot(); len(s.Missing) != 0 {
		t.Errorf("after SetPeers: missing %v, want none", s.Missing)
	}
}

// startOther is a real gateway admin API with another token.
func startOther(t *testing.T) string {
	r := startReplica(t, "other", "v1")
	s := httptest.NewServer(admin.Secure(r.gw.AdminHandler(), admin.Options{Token: []byte("another-token-of-32-bytes-length")}))
	t.Cleanup(s.Close)
	return s.URL
}

// TestFetchRefusesMalformed: answers that are not one replica's snapshot
// of this version's shape are refused with the reason.
func TestFetchRefusesMalformed(t *testing.T) {
	good := `{"time": "2026-12-07T10:00:00Z", "replicas": ["gw-b"], "windowSeconds": 10, "services": []}`
	tests := []struct {
		name, ctype, body, want string
	}{
		{"ok", "application/json", good, ""},
		{"not JSON", "application/json", "<html>", "not a live view snapshot"},
		{"HTML content type", "text/html", good, `Content-Type "text/html"`},
		{"no replica", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": [], "windowSeconds": 10}`, "replicas: want one"},
		{"already merged", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": ["a", "b"], "windowSeconds": 10}`, "replicas: want one"},
		{"no time", "application/json", `{"replicas": ["a"], "windowSeconds": 10}`, "time: missing"},
		{"window", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": ["a"], "windowSeconds": 100000}`, "windowSeconds"},
		{"bucket out of range", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": ["a"], "windowSeconds": 10, "services": [{"name": "s", "versions": [{"name": "v", "stats": {"latency": [[99, 1]]}}]}]}`, "bucket 99 out of range"},
		{"long history", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": ["a"], "windowSeconds": 10, "services": [{"name": "s", "versions": [{"name": "v", "stats": {"history": {"n": [` + strings.Repeat("1,", 200) + `1], "e": []}}}]}]}`, "services[0].versions[0].stats.history: 201 seconds"},
		{"uneven history", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": ["a"], "windowSeconds": 10, "services": [{"name": "s", "versions": [{"name": "v", "stats": {"history": {"n": [1], "e": []}}}]}]}`, "1 counts and 0 error counts"},
		{"more errors than requests", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": ["a"], "windowSeconds": 10, "services": [{"name": "s", "versions": [{"name": "v", "stats": {"requests": 1, "errors": 2}}]}]}`, "more errors than requests"},
		{"missing list", "application/json", `{"time": "2026-12-07T10:00:00Z", "replicas": ["a"], "windowSeconds": 10, "missing": [{"name": "x"}]}`, "missing: a peer's own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != admin.LiveSnapshotPath || r.Header.Get("Authorization") != "Bearer "+string(token) {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Type", tt.ctype)
				io.WriteString(w, tt.body)
			}))
			defer s.Close()
			_, err := livepeers.Fetch(context.Background(), s.Client(), s.URL, token, 10e9, 1<<20)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Fetch() error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), s.URL) {
				t.Errorf("Fetch() error = %v, want it to name the peer and say %q", err, tt.want)
			}
		})
	}
}
