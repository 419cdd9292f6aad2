//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

// liveSnapshot logs in to a gateway pod's live view with the admin token
// (POST /ui/login, the page's own way) and returns GET /ui/snapshot: that
// replica's snapshot merged with its peers'.
func (s *system) liveSnapshot(ctx context.Context, pod string) (*liveview.Snapshot, error) {
	ip, err := s.run(ctx, "", "get", "pod", "-n", s.ns, pod, "-o", "jsonpath={.status.podIP}")
	if err != nil {
		return nil, err
	}
	token, err := s.adminToken(ctx)
	if err != nil {
		return nil, err
	}
	base := "http://" + strings.TrimSpace(ip) + ":9901"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/ui/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := freshClient.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) == 0 {
		return nil, fmt.Errorf("gateway %s: live view login: %s", pod, resp.Status)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/ui/snapshot", nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = freshClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("gateway %s: GET /ui/snapshot: %s", pod, resp.Status)
	}
	var snap liveview.Snapshot
	if err := json.NewDecoder(io.LimitReader(resp.Body, 32<<20)).Decode(&snap); err != nil {
		return nil, fmt.Errorf("gateway %s: /ui/snapshot: %v", pod, err)
	}
	return &snap, nil
}

// testLiveView checks the live view's Kubernetes parts on the system,
// after RollingUpgrade: every gateway replica's page merges every
// replica (GET /live/snapshot of each is its own), the counter's
// instances name their pods, and the timeline has the counter's
// rollouts (ReplicaSets) and pods turning ready and terminating.
func testLiveView(t *testing.T, s *system) {
	gateways := slices.Sorted(slices.Values(s.podNames(t, s.ns, "app.kubernetes.io/name=gateway")))
	counters := s.podNames(t, s.ns, counterPods)
	for _, pod := range gateways {
		own := s.mustAdmin(t, pod, "GET", "/live/snapshot", "")
		var snap liveview.Snapshot
		if err := json.Unmarshal([]byte(own), &snap); err != nil || !slices.Equal(snap.Replicas, []string{pod}) {
			t.Errorf("gateway %s: GET /live/snapshot replicas %v (%v), want its own only", pod, snap.Replicas, err)
		}
	}
	// Traffic through the gateway, so that every replica has some.
	for range 50 {
		if _, err := fetch(t.Context(), s.gateway+"/counter", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, pod := range gateways {
		var last string
		deadline := time.Now().Add(convergeTimeout)
		for {
			snap, err := s.liveSnapshot(t.Context(), pod)
			last = fmt.Sprint(err)
			if err == nil {
				got := slices.Sorted(slices.Values(snap.Replicas))
				last = fmt.Sprintf("replicas %v, missing %v; want %v", got, snap.Missing, gateways)
				if slices.Equal(got, gateways) && len(snap.Missing) == 0 {
					checkLiveKubernetes(t, s, pod, snap, counters)
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway %s: live view: %s", pod, last)
			}
			sleep(t, time.Second)
		}
	}
}

// checkLiveKubernetes: the counter's instances name their pods, the
// timeline has its rollouts and pods.
func checkLiveKubernetes(t *testing.T, s *system, gw string, snap *liveview.Snapshot, counters []string) {
	t.Helper()
	named := 0
	for _, svc := range snap.Services {
		for _, v := range svc.Versions {
			for _, in := range v.Instances {
				if slices.Contains(counters, in.Pod) {
					named++
				}
			}
		}
	}
	if named == 0 {
		t.Errorf("gateway %s: no instance names a counter pod %v", gw, counters)
	}
	kinds := map[string]int{}
	var rollout bool
	for _, e := range snap.Events {
		kinds[e.Kind]++
		if e.Kind == "rollout" && strings.Contains(e.Message, "Deployment "+s.ns+"/counter") {
			rollout = true
		}
	}
	if !rollout || kinds["pod-ready"] == 0 || kinds["pod-terminating"] == 0 {
		t.Errorf("gateway %s: timeline kinds %v, want the counter's rollout, pod-ready and pod-terminating", gw, kinds)
	}
	t.Logf("gateway %s: replicas %v, timeline %v", gw, snap.Replicas, kinds)
}
