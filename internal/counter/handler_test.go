package counter

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

func newTestService(t *testing.T, store Store) http.Handler {
	t.Helper()
	return New(Options{Instance: "counter-7f9c", Version: "v2", Store: store,
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)}).Handler()
}

func get(t *testing.T, h http.Handler, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestCountNegotiation(t *testing.T) {
	tests := []struct {
		name        string
		header      map[string]string
		wantType    string
		wantBody    string // exact, when set
		wantContain string
	}{
		{name: "curl gets the talk's line", header: map[string]string{"User-Agent": "curl/8.5.0", "Accept": "*/*"},
			wantType: "text/plain; charset=utf-8", wantBody: "[counter-7f9c] Redis counter value=1\n"},
		{name: "wget gets the talk's line", header: map[string]string{"User-Agent": "Wget/1.21"},
			wantType: "text/plain; charset=utf-8", wantBody: "[counter-7f9c] Redis counter value=1\n"},
		{name: "no headers gets text", wantType: "text/plain; charset=utf-8", wantBody: "[counter-7f9c] Redis counter value=1\n"},
		{name: "browser gets HTML in the version's colour", header: map[string]string{"User-Agent": "Mozilla/5.0", "Accept": "text/html,*/*;q=0.8"},
			wantType: "text/html; charset=utf-8", wantContain: `background:#2da44e`},
		{name: "JSON on request", header: map[string]string{"Accept": "application/json"},
			wantType: "application/json", wantBody: `{"instance":"counter-7f9c","version":"v2","count":1}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestService(t, &Memory{})
			w := get(t, h, "/", tt.header)
			if w.Code != http.StatusOK {
				t.Fatalf("GET / = %d, want 200; body %q", w.Code, w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantType)
			}
			if tt.wantBody != "" && w.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q", w.Body, tt.wantBody)
			}
			if !strings.Contains(w.Body.String(), tt.wantContain) {
				t.Errorf("body does not contain %q:\n%s", tt.wantContain, w.Body)
			}
		})
	}
}

func TestOnlyGETSlashIncrements(t *testing.T) {
	store := &Memory{}
	h := newTestService(t, store)
	for _, p := range []string{"/favicon.ico", "/healthz", "/readyz", "/metrics", "/version", "/nope"} {
		get(t, h, p, nil)
	}
	r := httptest.NewRequest(http.MethodHead, "/", nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	if n := store.n.Load(); n != 0 {
		t.Fatalf("count after favicon, probes, metrics, version, 404 and HEAD = %d, want 0", n)
	}
	for want := 1; want <= 3; want++ {
		w := get(t, h, "/", map[string]string{"Accept": "application/json"})
		var got countJSON
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Count != int64(want) {
			t.Errorf("GET / #%d count = %d, want %d", want, got.Count, want)
		}
	}
}

func TestIdentityHeadersOnEveryResponse(t *testing.T) {
	h := newTestService(t, &Memory{})
	for _, p := range []string{"/", "/favicon.ico", "/healthz", "/readyz", "/metrics", "/version", "/missing"} {
		w := get(t, h, p, nil)
		if v, i := w.Header().Get("X-Flotilla-Version"), w.Header().Get("X-Flotilla-Instance"); v != "v2" || i != "counter-7f9c" {
			t.Errorf("GET %s: X-Flotilla-Version, X-Flotilla-Instance = %q, %q; want v2, counter-7f9c", p, v, i)
		}
	}
}

func TestMetricsExposeFlaggerNames(t *testing.T) {
	h := newTestService(t, &Memory{})
	get(t, h, "/", nil)
	get(t, h, "/missing", nil)
	body, _ := io.ReadAll(get(t, h, "/metrics", nil).Body)
	for _, want := range []string{
		`http_request_duration_seconds_count{handler="GET /{$}",method="GET",status="200"} 1`,
		`http_request_duration_seconds_count{handler="none",method="GET",status="404"} 1`,
		`flotilla_http_requests_total{code="200",handler="GET /{$}"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	w := get(t, newTestService(t, &Memory{}), "/version", nil)
	var got map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	delete(got, "go_version")
	delete(got, "revision")
	if diff := cmp.Diff(map[string]string{"version": "v2", "instance": "counter-7f9c"}, got); diff != "" {
		t.Errorf("/version (-want +got):\n%s", diff)
	}
}
