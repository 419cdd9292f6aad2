package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gateway"
)

// TestUpRoutesExposeOnlyPublicEndpoints runs the real gateway on `flotilla
// up`'s routes: the apps' probes, metrics and control endpoints answer 404
// from the gateway, other methods than GET and HEAD never reach an app, the
// public paths do.
func TestUpRoutesExposeOnlyPublicEndpoints(t *testing.T) {
	var reached atomic.Int64
	addrs := map[string][]string{}
	for _, name := range []string{"counter", "demo", "index"} {
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Test") != "" {
				reached.Add(1)
			}
		}))
		t.Cleanup(srv.Close)
		addrs[name] = []string{strings.TrimPrefix(srv.URL, "http://")}
	}
	gw, err := gateway.New(upRoutes(addrs, nil, nil), gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	do := func(method, host, path string) (int, bool) {
		r := httptest.NewRequest(method, "http://"+host+path, nil)
		r.Header.Set("X-Test", "1")
		w := httptest.NewRecorder()
		before := reached.Load()
		gw.ServeHTTP(w, r)
		return w.Code, reached.Load() != before
	}
	entries := []struct{ host, prefix string }{{"localhost", "/counter"}, {"localhost", "/demo"}, {"localhost", "/limited"}, {"flaskapp.test", "/flask"}, {"minikube.test", ""}}
	for _, e := range entries {
		for _, p := range []string{"/healthz", "/readyz", "/readyz/enable", "/readyz/disable", "/metrics", "/metrics/"} {
			for _, m := range []string{"GET", "HEAD", "POST"} {
				if code, hit := do(m, e.host, e.prefix+p); code != http.StatusNotFound || hit {
					t.Errorf("%s %s%s%s = %d, reached an app: %v; want 404 from the gateway", m, e.host, e.prefix, p, code, hit)
				}
			}
		}
		for _, m := range []string{"POST", "PUT", "DELETE"} {
			if code, hit := do(m, e.host, e.prefix+"/echo"); (code != http.StatusNotFound && code != http.StatusMethodNotAllowed) || hit {
				t.Errorf("%s %s%s/echo = %d, reached an app: %v; want 404 or 405", m, e.host, e.prefix, code, hit)
			}
		}
		for _, m := range []string{"GET", "HEAD"} {
			if code, hit := do(m, e.host, e.prefix+"/ping"); code != http.StatusOK || !hit {
				t.Errorf("%s %s%s/ping = %d, reached an app: %v; want 200 from an app", m, e.host, e.prefix, code, hit)
			}
		}
	}
}
