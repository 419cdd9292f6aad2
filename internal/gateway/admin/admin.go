// Package admin serves the gateway's admin API, on its own listener
// (loopback by default): routes, backends with health and in-flight
// counts, live weights, reload, metrics and probes. Every answer is JSON
// except /metrics. Serve it through Secure: a bearer token unless on
// loopback, a Host check, pprof only when asked for.
package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
	"github.com/flotilla-dev/flotilla/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Gateway is what the admin API needs of the gateway.
type Gateway interface {
	// Routes describes every route.
	Routes() any
	// Backends describes every backend and its endpoints.
	Backends() any
	// Table lists the routes in the order requests are matched.
	Table() string
	// Weights returns a route's live weights by backend name.
	Weights(route string) (map[string]int, error)
	// SetWeights changes some of a route's weights.
	SetWeights(route string, w map[string]int) error
	// ReloadFile re-reads the config file.
	ReloadFile() error
	// ConfigStatus reports the last configuration load.
	ConfigStatus() any
}

// LiveSource is a Gateway with a live view: GET /live/snapshot serves
// this replica's own snapshot (never a merge, so replicas that fetch each
// other count each request once), behind the admin token like the rest
// of the API; the live view's peer fetcher reads it.
type LiveSource interface {
	LiveSnapshot() *liveview.Snapshot
}

// LiveSnapshotPath is where LiveSource's snapshot is served.
const LiveSnapshotPath = "/live/snapshot"

// Errors the Gateway returns that map to 404, 422, 409 and 503; anything
// else is 400 for SetWeights and 422 for ReloadFile.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid")
	// ErrConflict: the change is refused in the current state (a route
	// whose weights are paused).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a store the change is written to (the Kubernetes
	// API) failed or refused it.
	ErrUnavailable = errors.New("unavailable")
)

// Probes is the readiness state served on /healthz and /readyz.
type Probes interface {
	Healthz(http.ResponseWriter, *http.Request)
	Readyz(http.ResponseWriter, *http.Request)
}

// MaxBody caps admin request bodies (64 KiB).
const MaxBody = 64 << 10

// Handler returns the admin API:
//
//	GET  /routes                  routes with their match and weights
//	GET  /backends                backends, endpoints, health, in flight
//	GET  /table                   routes in match order (text)
//	GET  /routes/{name}/weights   {"backend": weight, ...}
//	PUT  /routes/{name}/weights   set some weights atomically, where they
//	                              are kept (header Flotilla-Written-To)
//	POST /reload                  re-read the config file
//	GET  /config                  last load: ok, time, every error
//	GET  /live/snapshot           this replica's own live view snapshot
//	                              (JSON; its peers merge it), when g is
//	                              a LiveSource
//	GET  /metrics                 Prometheus metrics
//	GET  /healthz, /readyz        probes
//
// It checks nobody: serve it through Secure, which also adds
// /debug/pprof/ when asked to.
func Handler(g Gateway, p Probes, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, g.Routes()) })
	mux.HandleFunc("GET /backends", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, g.Backends()) })
	mux.HandleFunc("GET /table", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, g.Table())
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, g.ConfigStatus()) })
	mux.HandleFunc("GET /routes/{name}/weights", func(w http.ResponseWriter, r *http.Request) {
		ws, err := g.Weights(r.PathValue("name"))
		if err != nil {
			writeError(w, statusOf(err, http.StatusBadRequest), err)
			return
		}
		writeJSON(w, http.StatusOK, ws)
	})
	mux.HandleFunc("PUT /routes/{name}/weights", func(w http.ResponseWriter, r *http.Request) {
		var ws map[string]int
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ws); err != nil {
			writeError(w, http.StatusBadRequest, errors.New(`want a JSON object of backend name to weight, like {"blue": 0, "green": 100}`))
			return
		}
		// Where the weights are kept decides where they are written
		// (WeightWriter); a Gateway without it swaps them locally.
		if ww, ok := g.(WeightWriter); ok {
			done, err := ww.UpdateWeights(r.Context(), r.PathValue("name"), Set(ws))
			if err != nil {
				writeError(w, statusOf(err, http.StatusBadRequest), err)
				return
			}
			w.Header().Set(WrittenToHeader, done.Where)
			writeJSON(w, http.StatusOK, done.Weights)
			return
		}
		if err := g.SetWeights(r.PathValue("name"), ws); err != nil {
			writeError(w, statusOf(err, http.StatusBadRequest), err)
			return
		}
		ws, _ = g.Weights(r.PathValue("name"))
		w.Header().Set(WrittenToHeader, "local")
		writeJSON(w, http.StatusOK, ws)
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := g.ReloadFile(); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, g.ConfigStatus())
			return
		}
		writeJSON(w, http.StatusOK, g.ConfigStatus())
	})
	if ls, ok := g.(LiveSource); ok {
		mux.HandleFunc("GET "+LiveSnapshotPath, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(ls.LiveSnapshot()) // compact: peers fetch it every second
		})
	}
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", p.Healthz)
	mux.HandleFunc("GET /readyz", p.Readyz)
	return mux
}

func statusOf(err error, def int) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return def
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
