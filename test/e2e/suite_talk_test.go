//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestSystem deploys the talk's demo (deploy/kubernetes/local) once and
// runs the talk's flows and operations against it, one after the other:
// each leaves 2 counters and 2 demos behind (the counter on v2 after
// RollingUpgrade, which nothing after it minds). A failure dumps the
// namespace.
func TestSystem(t *testing.T) {
	s := deploySystem(t)
	t.Logf("deployed deploy/kubernetes/local in %s: gateway %s, counter %s, demo %s", s.ns, s.gateway, s.counter, s.demo)
	t.Run("Talk", func(t *testing.T) { testTalk(t, s) })
	t.Run("DemoEndpoints", func(t *testing.T) { testDemoEndpoints(t, s) })
	t.Run("Edge", func(t *testing.T) { testEdge(t, s) })
	t.Run("Scale", func(t *testing.T) { testScale(t, s) })
	t.Run("FleetRateLimit", func(t *testing.T) { testFleetRateLimit(t, s) })
	t.Run("RollingUpgrade", func(t *testing.T) { testRollingUpgrade(t, s) })
	// Right after RollingUpgrade: its rollouts are in the timeline.
	t.Run("LiveView", func(t *testing.T) { testLiveView(t, s) })
	t.Run("ReadinessDelay", func(t *testing.T) { testReadinessDelay(t, s) })
	t.Run("LivenessRestart", func(t *testing.T) { testLivenessRestart(t, s) })
	t.Run("RedisRestart", func(t *testing.T) { testRedisRestart(t, s) })
	t.Run("RedisOutage", func(t *testing.T) { testRedisOutage(t, s) })
	t.Run("PublicAbuse", func(t *testing.T) { testPublicAbuse(t, s) })
}

// counterAnswer checks one answer of the counter and returns the pod named
// in it and the value.
func counterAnswer(t *testing.T, what string, r response, pods []string) (string, int) {
	t.Helper()
	m := counterLine.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil {
		t.Fatalf("%s: status %d, body %q, want 200 and %q", what, r.Status, r.Body, counterLine)
	}
	if !slices.Contains(pods, m[1]) {
		t.Errorf("%s: answered by %q, not one of the counter pods %q", what, m[1], pods)
	}
	n, _ := strconv.Atoi(m[2])
	return m[1], n
}

// testTalk is the talk's first demo: curl the counter's NodePort, then the
// same through the gateway as the talk's Ingress routes it.
func testTalk(t *testing.T, s *system) {
	pods := s.podNames(t, s.ns, "app.kubernetes.io/name=counter")
	prev := -1
	seen := map[string]bool{}
	try := func(what, url, host string) {
		t.Helper()
		r, err := fetch(t.Context(), url, host, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		pod, n := counterAnswer(t, what, r, pods)
		// One client, and nothing else increments (probes do not): each
		// answer is exactly one more.
		if prev >= 0 && n != prev+1 {
			t.Errorf("%s: value=%d after value=%d, want %d", what, n, prev, prev+1)
		}
		prev = n
		seen[pod] = true
	}
	for i := range 10 {
		try(fmt.Sprintf("NodePort request %d", i), s.counter+"/", "")
	}
	for i := range 5 {
		try(fmt.Sprintf("gateway flaskapp.test/flask request %d", i), s.gateway+"/flask", "flaskapp.test")
		try(fmt.Sprintf("gateway flaskapp.test/flask/ request %d", i), s.gateway+"/flask/", "flaskapp.test")
		try(fmt.Sprintf("gateway /counter request %d", i), s.gateway+"/counter", "")
	}
	t.Logf("25 counter answers from pods %v, value now %d", slices.Sorted(func(yield func(string) bool) {
		for p := range seen {
			if !yield(p) {
				return
			}
		}
	}), prev)

	// minikube.test is the demo, whatever the path.
	demoPods := s.podNames(t, s.ns, "app.kubernetes.io/name=demo")
	r, err := fetch(t.Context(), s.gateway+"/1line", "minikube.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(r.Body)
	if r.Status != http.StatusOK || len(f) < 2 || f[0] != "v1" || !slices.Contains(demoPods, f[1]) {
		t.Errorf("gateway minikube.test/1line: status %d, body %q, want 200 and \"v1 <demo pod> …\" (pods %q)", r.Status, r.Body, demoPods)
	}
	// A host the talk's Ingress does not know, with a path no route has.
	if r, err := fetch(t.Context(), s.gateway+"/nowhere", "unknown.test", nil); err != nil || r.Status != http.StatusNotFound {
		t.Errorf("gateway unknown.test/nowhere: %v, status %d, want 404", err, r.Status)
	}
}

// testDemoEndpoints visits every endpoint of the demo (the talk's k8sdemo),
// directly through its NodePort and through the gateway by the talk's host.
func testDemoEndpoints(t *testing.T, s *system) {
	demoPods := s.podNames(t, s.ns, "app.kubernetes.io/name=demo")
	cases := []struct {
		path   string
		status int
		want   string // in the body
	}{
		{"/", 200, "version v1"},
		{"/map", 200, "/delay/{duration}"},
		{"/1line", 200, "v1 "},
		{"/echo", 200, "GET /echo HTTP/1.1"},
		{"/ping", 200, "pong\n"},
		{"/test", 500, "test error"},
		{"/status/418", 418, "418 I'm a teapot"},
		{"/delay/0.1", 200, "delayed 100ms"},
	}
	for _, via := range []struct{ name, base, host string }{
		{"NodePort", s.demo, ""},
		{"gateway minikube.test", s.gateway, "minikube.test"},
	} {
		for _, c := range cases {
			r, err := fetch(t.Context(), via.base+c.path, via.host, nil)
			if err != nil {
				t.Errorf("%s %s: %v", via.name, c.path, err)
				continue
			}
			if r.Status != c.status || !strings.Contains(r.Body, c.want) {
				t.Errorf("%s %s: status %d, body %q; want %d and %q in the body", via.name, c.path, r.Status, r.Body, c.status, c.want)
			}
			if v, inst := r.Header.Get("X-Flotilla-Version"), r.Header.Get("X-Flotilla-Instance"); v != "v1" || !slices.Contains(demoPods, inst) {
				t.Errorf("%s %s: X-Flotilla-Version %q, X-Flotilla-Instance %q; want v1 and one of %q", via.name, c.path, v, inst, demoPods)
			}
		}
	}
	// The gateway passes the talk's host on and says who forwarded.
	r, err := fetch(t.Context(), s.gateway+"/echo", "minikube.test", nil)
	if err == nil && (!strings.Contains(r.Body, "Host: minikube.test") || !strings.Contains(r.Body, "X-Forwarded-For: ")) {
		t.Errorf("gateway minikube.test/echo: body %q, want the Host minikube.test and an X-Forwarded-For", r.Body)
	}
}
