// Package metrics holds the Prometheus instrumentation shared by Flotilla's
// services. Every component gets its own registry; nothing is global.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flotilla-dev/flotilla/internal/buildinfo"
)

// NewRegistry returns a registry with the Go runtime, process and
// flotilla_build_info collectors.
func NewRegistry(component string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	info := buildinfo.Get()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "flotilla_build_info",
			Help:        "Build of this process; always 1.",
			ConstLabels: prometheus.Labels{"component": component, "version": info.Version, "revision": info.Revision, "goversion": info.GoVersion},
		}, func() float64 { return 1 }),
	)
	return reg
}

// Handler serves reg in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// HTTP instruments a service's handlers with the metric names Flagger's
// built-in checks read: http_request_duration_seconds{status}.
type HTTP struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
}

// NewHTTP registers the HTTP server metrics on reg.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	m := &HTTP{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"handler", "method", "status"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"handler", "code"}),
	}
	reg.MustRegister(m.duration, m.requests)
	return m
}

// Wrap observes every request served by next. next should be a ServeMux:
// the handler label is the matched pattern, never the raw path, so label
// cardinality stays bounded.
func (m *HTTP) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		pattern := r.Pattern
		if pattern == "" {
			pattern = "none"
		}
		code := strconv.Itoa(sw.status)
		m.duration.WithLabelValues(pattern, methodLabel(r.Method), code).Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(pattern, code).Inc()
	})
}

// methodLabel keeps the method label to a fixed set.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
