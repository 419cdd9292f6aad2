//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"testing"
)

// testPublicAbuse tries, through the gateway's public entry, what one
// anonymous client could once do to the whole system (issue 11): switch
// every demo pod's readiness off, read the apps' metrics, and eject every
// demo endpoint by asking for 503s. The system keeps serving.
func testPublicAbuse(t *testing.T, s *system) {
	send := func(method, path, host string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, s.gateway+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := freshClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s (Host %q): %v", method, path, host, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Private endpoints: answered by the gateway (404, or 405 for a method
	// the route does not allow), never by the apps.
	for _, c := range []struct{ method, path, host string }{
		{"POST", "/demo/readyz/disable", ""},
		{"POST", "/readyz/disable", "minikube.test"},
		{"POST", "/demo//readyz/./disable", ""},
		{"GET", "/demo/metrics", ""},
		{"GET", "/counter/metrics", ""},
		{"GET", "/flask/metrics", "flaskapp.test"},
		{"GET", "/demo/x/../readyz", ""},
	} {
		if code := send(c.method, c.path, c.host); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s (Host %q) through the gateway = %d, want 404 or 405 from the gateway", c.method, c.path, c.host, code)
		}
	}
	// Each demo pod's own /readyz (through the API server, not the
	// gateway) still passes: no attempt reached a pod.
	for _, p := range s.podNames(t, s.ns, "app.kubernetes.io/name=demo") {
		if out, err := s.run(t.Context(), "", "get", "--raw", "/api/v1/namespaces/"+s.ns+"/pods/"+p+":8080/proxy/readyz"); err != nil {
			t.Errorf("demo pod %s: /readyz after the readiness-disable attempts: %v %s", p, err, out)
		}
	}

	// 503s on demand: 20 per demo pod and gateway replica would once have
	// ejected every endpoint. At most half are ejected now, never the last.
	pods := s.podNames(t, s.ns, "app.kubernetes.io/name=demo")
	gws := s.podNames(t, s.ns, "app.kubernetes.io/name=gateway")
	for range 20 * len(pods) * len(gws) {
		if code := send("GET", "/demo/status/503", ""); code != http.StatusServiceUnavailable {
			t.Fatalf("GET /demo/status/503 = %d, want the demo's 503", code)
		}
	}
	failed := 0
	for i := range 100 {
		if code := send("GET", "/demo/", ""); code != http.StatusOK {
			failed++
			t.Logf("request %d after the 503s: %d", i, code)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 100 requests failed after a client asked for 503s: the system must keep serving", failed)
	}
	t.Logf("after %d × /demo/status/503 through the gateway, 100 of 100 normal requests were answered 200", 20*len(pods)*len(gws))
}
