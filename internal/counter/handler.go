package counter

import (
	"context"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
	"github.com/flotilla-dev/flotilla/internal/metrics"
	"github.com/flotilla-dev/flotilla/internal/negotiate"
	"github.com/flotilla-dev/flotilla/internal/probe"
)

// Service is one counter replica.
type Service struct {
	instance, version string
	store             Store
	probes            *probe.Probes
	handler           http.Handler
	log               *slog.Logger
}

// Options wire a Service.
type Options struct {
	Instance, Version string
	Store             Store
	// Registry receives the HTTP metrics and is served on /metrics.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// New returns a counter service. Its readiness follows the store.
func New(o Options) *Service {
	s := &Service{instance: o.Instance, version: o.Version, store: o.Store, probes: &probe.Probes{}, log: o.Logger}
	s.probes.AddCheck(o.Store.String(), o.Store.Ping)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.count)
	mux.HandleFunc("GET /favicon.ico", favicon)
	mux.HandleFunc("GET /healthz", s.probes.Healthz)
	mux.HandleFunc("GET /readyz", s.probes.Readyz)
	mux.Handle("GET /metrics", metrics.Handler(o.Registry))
	mux.Handle("GET /version", buildinfo.Handler(o.Instance, o.Version))
	s.handler = httpserver.Identity(o.Instance, o.Version, metrics.NewHTTP(o.Registry).Wrap(mux))
	return s
}

// Handler serves the counter's routes.
func (s *Service) Handler() http.Handler { return s.handler }

// Probes is the service's liveness and readiness state.
func (s *Service) Probes() *probe.Probes { return s.probes }

type countJSON struct {
	Instance string `json:"instance"`
	Version  string `json:"version"`
	Count    int64  `json:"count"`
}

// count increments the counter once per GET and answers in the client's
// format. HEAD answers without incrementing: it must not change state.
func (s *Service) count(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	n, err := s.store.Incr(r.Context())
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away; nobody to answer
		}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "increment failed", slog.String("store", s.store.String()), slog.String("error", err.Error()))
		http.Error(w, s.store.String()+" is unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	switch negotiate.Of(r) {
	case negotiate.JSON:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(countJSON{Instance: s.instance, Version: s.version, Count: n})
	case negotiate.HTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		c := buildinfo.ColourOf(s.version)
		page.Execute(w, pageData{Instance: s.instance, Version: s.version, Count: n, Colour: c.HTML, ColourName: c.Name})
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		// The talk's exact line, built without fmt on the hot path.
		b := make([]byte, 0, 64)
		b = append(b, '[')
		b = append(b, s.instance...)
		b = append(b, "] Redis counter value="...)
		b = strconv.AppendInt(b, n, 10)
		b = append(b, '\n')
		w.Write(b)
	}
}

// favicon answers without touching the counter, so a browser's second
// request does not count twice.
func favicon(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.WriteHeader(http.StatusNoContent)
}

// Close releases the store.
func (s *Service) Close(context.Context) error { return s.store.Close() }

type pageData struct {
	Instance, Version, Colour, ColourName string
	Count                                 int64
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flotilla counter {{.Version}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{margin:0;font-family:system-ui,sans-serif;background:{{.Colour}};color:#fff;display:grid;place-items:center;min-height:100vh}
main{text-align:center}.n{font-size:6rem;font-weight:700;margin:.2em 0}.meta{opacity:.85}
</style></head>
<body><main>
<div class="meta">Redis counter</div>
<div class="n">{{.Count}}</div>
<div class="meta">served by <b>{{.Instance}}</b> · version <b>{{.Version}}</b> ({{.ColourName}})</div>
</main></body></html>
`))
