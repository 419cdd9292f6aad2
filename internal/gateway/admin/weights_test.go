package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// stubGateway is an admin Gateway whose weights are written by write.
type stubGateway struct {
	write func(route string, w map[string]int) (Written, error)
	local int // SetWeights calls: never, when it is a WeightWriter
}

func (g *stubGateway) Routes() any                            { return nil }
func (g *stubGateway) Backends() any                          { return nil }
func (g *stubGateway) Table() string                          { return "" }
func (g *stubGateway) Weights(string) (map[string]int, error) { return map[string]int{}, nil }
func (g *stubGateway) SetWeights(string, map[string]int) error {
	g.local++
	return nil
}
func (g *stubGateway) ReloadFile() error { return nil }
func (g *stubGateway) ConfigStatus() any { return nil }
func (g *stubGateway) UpdateWeights(_ context.Context, route string, next NextWeights) (Written, error) {
	w, err := next(nil)
	if err != nil {
		return Written{}, err
	}
	return g.write(route, w)
}

type noProbes struct{}

func (noProbes) Healthz(http.ResponseWriter, *http.Request) {}
func (noProbes) Readyz(http.ResponseWriter, *http.Request)  {}

// TestPutWeightsWrittenTo: PUT /routes/{name}/weights goes through the
// Gateway's WeightWriter when it has one, says where it wrote in
// Flotilla-Written-To, and maps the writer's errors to 404, 422 and 503.
func TestPutWeightsWrittenTo(t *testing.T) {
	for _, tt := range []struct {
		name       string
		body       string
		written    Written
		err        error
		wantStatus int
		wantWhere  string
		wantBody   string
	}{
		{"written to an HTTPRoute", `{"a": 0, "b": 100}`, Written{Where: "HTTPRoute shop/demo spec.rules[0] resourceVersion 7", Weights: map[string]int{"a": 0, "b": 100}}, nil,
			200, "HTTPRoute shop/demo spec.rules[0] resourceVersion 7", `"b": 100`},
		{"no such route", `{"a": 1}`, Written{}, fmt.Errorf("%w: route %q", ErrNotFound, "x"), 404, "", "not found"},
		{"unknown backend", `{"c": 1}`, Written{}, fmt.Errorf("%w: no backend %q", ErrInvalid, "c"), 422, "", `no backend \"c\"`},
		{"API refused", `{"a": 1}`, Written{}, fmt.Errorf("weights not written (%w): forbidden", ErrUnavailable), 503, "", "forbidden"},
		{"other error", `{"a": 1}`, Written{}, errors.New("odd"), 400, "", "odd"},
		{"malformed body", `{"a": "x"}`, Written{}, nil, 400, "", "want a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := &stubGateway{write: func(string, map[string]int) (Written, error) { return tt.written, tt.err }}
			h := Handler(g, noProbes{}, prometheus.NewRegistry())
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("PUT", "/routes/demo/weights", strings.NewReader(tt.body)))
			if w.Code != tt.wantStatus || w.Header().Get(WrittenToHeader) != tt.wantWhere || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("PUT = %d, %s %q, %s; want %d, %q, a body with %q", w.Code, WrittenToHeader, w.Header().Get(WrittenToHeader), w.Body, tt.wantStatus, tt.wantWhere, tt.wantBody)
			}
			if g.local != 0 {
				t.Errorf("SetWeights called %d times, want the WeightWriter only", g.local)
			}
		})
	}
}
