package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHTTPLabelsArePatternsNotPaths(t *testing.T) {
	reg := NewRegistry("test")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.Handle("GET /metrics", Handler(reg))
	h := NewHTTP(reg).Wrap(mux)
	for _, p := range []string{"/items/1", "/items/2", "/ok", "/random-1", "/random-2"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/ok", nil))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	body := w.Body.String()
	for _, want := range []string{
		`http_request_duration_seconds_count{handler="GET /items/{id}",method="GET",status="418"} 2`,
		`http_request_duration_seconds_count{handler="GET /ok",method="GET",status="200"} 1`,
		`http_request_duration_seconds_count{handler="none",method="GET",status="404"} 2`,
		`http_request_duration_seconds_count{handler="none",method="other",status="405"} 1`,
		`flotilla_build_info{component="test"`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, "random-1") || strings.Contains(body, `/items/1"`) {
		t.Error("a raw path leaked into a label")
	}
}
