package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBackendRequestHeaders: a backend reference's own requestHeaders
// edit what that backend receives, after the route's; the other backend
// of the split gets only the route's, and a mirrored copy neither
// backend's.
func TestBackendRequestHeaders(t *testing.T) {
	v1, v2, shadow := newUpstream(t, "v1"), newUpstream(t, "v2"), newUpstream(t, "shadow")
	f := start(t, fmt.Sprintf(`
backends:
  - {name: v1, addresses: [%q]}
  - {name: v2, addresses: [%q]}
  - {name: shadow, addresses: [%q]}
routes:
  - name: split
    requestHeaders: {set: {X-Route: r, X-Over: route}, remove: [X-Drop]}
    mirror: {backend: shadow}
    backends:
      - {name: v1, weight: 1, requestHeaders: {set: {Backend: v1, X-Over: backend}, add: {X-Tag: one}, remove: [X-Keep-Not]}}
      - {name: v2, weight: 1}
`, v1.addr(), v2.addr(), shadow.addr()), Options{})
	hdr := map[string]string{"X-Drop": "1", "X-Keep-Not": "1", "X-Tag": "zero"}
	for range 4 { // smooth weighted round robin: v1, v2, v1, v2
		if resp, body := f.do(t, "GET", "x.test", "/", nil, hdr); resp.StatusCode != 200 {
			t.Fatalf("GET = %d %q", resp.StatusCode, body)
		}
	}
	if v1.hits.Load() != 2 || v2.hits.Load() != 2 {
		t.Fatalf("split v1=%d v2=%d, want 2 and 2", v1.hits.Load(), v2.hits.Load())
	}
	tests := []struct {
		name string
		u    *upstream
		want map[string]string // "" means absent
	}{
		{"the backend's edits after the route's", v1, map[string]string{"Backend": "v1", "X-Route": "r", "X-Over": "backend", "X-Tag": "zero,one", "X-Keep-Not": "", "X-Drop": ""}},
		{"the other backend: only the route's", v2, map[string]string{"Backend": "", "X-Route": "r", "X-Over": "route", "X-Tag": "zero", "X-Keep-Not": "1", "X-Drop": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.u.last(t).Header
			for k, want := range tt.want {
				if v := strings.Join(got.Values(k), ","); v != want {
					t.Errorf("%s: %s = %q, want %q", tt.u.name, k, v, want)
				}
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for shadow.hits.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("mirror saw %d copies, want 4", shadow.hits.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := shadow.last(t).Header; got.Get("Backend") != "" || got.Get("X-Route") != "r" {
		t.Errorf("mirrored copy: Backend %q X-Route %q, want no backend's edits, the route's", got.Get("Backend"), got.Get("X-Route"))
	}
}

// TestMultipleMirrors: a route's mirrors each get a copy of every
// request their percentage samples, body included (read once), with the
// route's header edits; the primary's answer is the client's.
func TestMultipleMirrors(t *testing.T) {
	primary, s1, s2, never := newUpstream(t, "primary"), newUpstream(t, "s1"), newUpstream(t, "s2"), newUpstream(t, "never")
	f := start(t, fmt.Sprintf(`
backends:
  - {name: primary, addresses: [%q]}
  - {name: s1, addresses: [%q]}
  - {name: s2, addresses: [%q]}
  - {name: never, addresses: [%q]}
routes:
  - name: r
    requestHeaders: {set: {X-Set: v}}
    backends: [{name: primary}]
    mirrors: [{backend: s1}, {backend: s2, percent: 100}, {backend: never, percent: 0}]
`, primary.addr(), s1.addr(), s2.addr(), never.addr()), Options{})
	const n = 3
	for i := range n {
		resp, body := f.do(t, "POST", "x.test", fmt.Sprintf("/m?i=%d", i), strings.NewReader("payload"), nil)
		if resp.StatusCode != 200 || body != "primary" {
			t.Fatalf("POST = %d %q, want 200 from primary", resp.StatusCode, body)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s1.hits.Load() < n || s2.hits.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("mirrors saw s1=%d s2=%d copies, want %d each", s1.hits.Load(), s2.hits.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, u := range []*upstream{s1, s2} {
		got := u.last(t)
		if got.Body != "payload" || got.Header.Get("X-Set") != "v" || got.Path != "/m" {
			t.Errorf("%s got %s %q body %q X-Set %q, want the request with its body and the route's edits", u.name, got.Method, got.Path, got.Body, got.Header.Get("X-Set"))
		}
	}
	if got := primary.last(t); got.Body != "payload" {
		t.Errorf("primary body = %q, want payload (replayed after the mirrors' read)", got.Body)
	}
	if never.hits.Load() != 0 {
		t.Errorf("a 0%% mirror got %d copies", never.hits.Load())
	}
}
