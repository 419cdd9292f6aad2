package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// appServer is a real upstream like the demo app: /status/503 answers
// 503 because the client asked for it; anything else 200 with its name.
type appServer struct {
	*httptest.Server
	name   string
	normal atomic.Int64 // normal requests served
}

func newAppServer(t *testing.T, name string) *appServer {
	a := &appServer{name: name}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status/503" {
			http.Error(w, "503 as requested", http.StatusServiceUnavailable)
			return
		}
		a.normal.Add(1)
		fmt.Fprint(w, name)
	}))
	t.Cleanup(a.Close)
	return a
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStatus503AbuseLeavesBackendServing is issue 11's attack: any client
// asks the app for /status/503 over and over. Before, five per endpoint
// ejected every endpoint and everyone got 503 for 30s to 5m. With the
// defaults the app's 503s count for nothing; even where an operator
// counts 503s, at most half the endpoints go, never the last.
func TestStatus503AbuseLeavesBackendServing(t *testing.T) {
	tests := []struct {
		name         string
		outlier      string
		wantServing  int // endpoints that still get normal requests, at least
		wantAllThree bool
	}{
		{"defaults", "", 3, true},
		{"503 counted, default share", ", outlier: {countStatuses: [503], consecutiveFailures: 1}", 2, false},
		{"503 counted, share 100%", ", outlier: {countStatuses: [503], consecutiveFailures: 1, maxEjectionPercent: 100}", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps := []*appServer{newAppServer(t, "a"), newAppServer(t, "b"), newAppServer(t, "c")}
			var addrs []string
			for _, a := range apps {
				addrs = append(addrs, fmt.Sprintf("%q", strings.TrimPrefix(a.URL, "http://")))
			}
			f := start(t, fmt.Sprintf(`
backends: [{name: demo, addresses: [%s]%s}]
routes: [{name: demo, match: {path: {value: /demo}}, rewrite: {path: {type: ReplacePrefix, value: /}}, backends: [{name: demo}]}]
`, strings.Join(addrs, ", "), tt.outlier), Options{})
			url, client := f.srv.URL, f.srv.Client()

			for i := range 50 {
				code, body := get(t, client, url+"/demo/status/503")
				if code != 503 || !strings.Contains(body, "as requested") {
					t.Fatalf("abuse request %d: %d %q, want the app's own 503", i, code, body)
				}
			}
			for i := range 30 {
				code, body := get(t, client, url+"/demo/")
				if code != 200 {
					t.Fatalf("normal request %d after the abuse: %d %q, want 200", i, code, body)
				}
			}
			serving := 0
			for _, a := range apps {
				if a.normal.Load() > 0 {
					serving++
				}
			}
			if serving < tt.wantServing || tt.wantAllThree && serving != 3 {
				t.Errorf("%d of 3 endpoints got normal requests, want at least %d", serving, tt.wantServing)
			}
		})
	}
}
