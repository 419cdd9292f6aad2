package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHTTPSRedirect(t *testing.T) {
	u := newUpstream(t, "u")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes:
  - {name: secure, match: {path: {type: Prefix, value: /app}}, httpsRedirect: {}, backends: [{name: u}]}
  - {name: alt, match: {path: {type: Prefix, value: /alt}}, httpsRedirect: {port: 8443, statusCode: 301}, backends: [{name: u}]}
  - {name: plain, backends: [{name: u}]}
`, u.addr()), Options{})
	for _, tt := range []struct {
		url, host string
		code      int
		location  string
	}{
		{"http://x.test/app/a%20b?q=1", "x.test:8080", 308, "https://x.test/app/a%20b?q=1"},
		{"http://x.test/alt", "x.test", 301, "https://x.test:8443/alt"},
		{"http://x.test/app", "[::1]:8080", 308, "https://[::1]/app"},
		{"http://x.test/app", "[::1]", 308, "https://[::1]/app"},
		{"https://x.test/app", "x.test", 200, ""},
		{"http://x.test/other", "x.test", 200, ""},
	} {
		t.Run(tt.url+" "+tt.host, func(t *testing.T) {
			r := httptest.NewRequest("POST", tt.url, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			f.gw.ServeHTTP(w, r)
			if w.Code != tt.code || w.Header().Get("Location") != tt.location {
				t.Errorf("got %d Location %q, want %d %q", w.Code, w.Header().Get("Location"), tt.code, tt.location)
			}
			if w.Code == http.StatusOK && u.last(t).Method != "POST" {
				t.Error("the request did not reach the backend")
			}
		})
	}
}
