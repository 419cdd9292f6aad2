package gateway

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// gwMetrics are the gateway's Prometheus metrics. Labels come from config
// names (route, backend) and status codes only, never from raw paths.
type gwMetrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	ejections     *prometheus.CounterVec
	mirrors       *prometheus.CounterVec
	failures      *prometheus.CounterVec
	policy        *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	reloadSeconds prometheus.Histogram
	lastSuccess   prometheus.Gauge
	lastOK        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, g *Gateway) *gwMetrics {
	m := &gwMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_requests_total",
			Help: `Requests served, by route, backend and status code (route and backend "none" when no route matched; backend "redirect" for redirects).`,
		}, []string{"route", "backend", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flotilla_gateway_request_duration_seconds",
			Help:    "Time from request to the end of the response, by route and backend.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "backend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_retries_total",
			Help: "Retries to another endpoint, by route and backend.",
		}, []string{"route", "backend"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_ejections_total",
			Help: "Endpoints ejected by passive outlier detection, by backend.",
		}, []string{"backend"}),
		mirrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_mirror_requests_total",
			Help: "Mirrored request copies by route and result: sent, failed, dropped (too many in flight) or skipped (body too large).",
		}, []string{"route", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_proxy_failures_total",
			Help: `Requests of a route the gateway answered itself with an error, by route, backend ("none" when refused before one was picked) and error class (upstream_failure, upstream_tls, upstream_timeout, no_healthy_upstream, ip_denied, ...): the access log's error field.`,
		}, []string{"route", "backend", "class"}),
		policy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_policy_decisions_total",
			Help: `Auth and rate-limit decisions, by route, policy (apiKey, basic, jwt, forward, or rateLimit:<name>), decision (allow, deny, error: a rate-limit store that did not answer) and reason (missing_credentials, invalid_credentials, expired, insufficient_claims, over_limit, store_unavailable, ...).`,
		}, []string{"route", "policy", "decision", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_gateway_config_reloads_total",
			Help: "Configuration loads by result: success or failure (the last good config keeps serving).",
		}, []string{"result"}),
		reloadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flotilla_gateway_config_reload_duration_seconds",
			Help:    "Time to read, validate, compile and swap in a configuration.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1},
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flotilla_gateway_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flotilla_gateway_config_last_reload_successful",
			Help: "1 when the last configuration load succeeded, 0 when it failed.",
		}),
	}
	streams := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flotilla_gateway_streams",
		Help: "Long-lived streams in flight: upgraded connections (WebSocket) and response bodies without a length (gRPC streams, server-sent events).",
	}, func() float64 {
		if g.proxy == nil {
			return 0
		}
		return float64(g.proxy.Streams())
	})
	evictions := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "flotilla_gateway_ratelimit_local_evictions_total",
		Help: "Keys local rate limits forgot to stay within their memory bound (a client inventing keys); an evicted key starts with a full bucket.",
	}, func() float64 {
		if g.pol.local == nil {
			return 0
		}
		return float64(g.pol.local.Evictions())
	})
	reg.MustRegister(m.requests, m.duration, m.retries, m.ejections, m.mirrors, m.failures, m.policy, m.reloads, m.reloadSeconds, m.lastSuccess, m.lastOK,
		streams, evictions, &backendCollector{g: g})
	return m
}

// routeMetrics caches one route and backend's children so the hot path
// does no label hashing: one map read under a read lock per request.
type routeMetrics struct {
	m        *gwMetrics
	route    string
	backend  string
	duration prometheus.Observer
	mu       sync.RWMutex
	codes    map[int]prometheus.Counter
}

func (m *gwMetrics) forRoute(route, backend string) *routeMetrics {
	return &routeMetrics{m: m, route: route, backend: backend, duration: m.duration.WithLabelValues(route, backend), codes: map[int]prometheus.Counter{}}
}

func (rm *routeMetrics) observe(code int, seconds float64) {
	rm.duration.Observe(seconds)
	rm.mu.RLock()
	c, ok := rm.codes[code]
	rm.mu.RUnlock()
	if !ok {
		c = rm.m.requests.WithLabelValues(rm.route, rm.backend, strconv.Itoa(code))
		rm.mu.Lock()
		rm.codes[code] = c
		rm.mu.Unlock()
	}
	c.Inc()
}

var (
	endpointsDesc = prometheus.NewDesc("flotilla_gateway_backend_endpoints",
		"Endpoints of a backend by state: available (gets traffic), unhealthy (failing active checks), ejected (passive detection) or draining (terminating, per Kubernetes discovery: no new requests while another endpoint is ready).",
		[]string{"backend", "state"}, nil)
	inFlightDesc = prometheus.NewDesc("flotilla_gateway_backend_in_flight_requests",
		"Requests in flight to a backend's endpoints.", []string{"backend"}, nil)
)

// backendCollector reads backend health at scrape time from the current
// state, so it always matches the live configuration.
type backendCollector struct{ g *Gateway }

func (c *backendCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointsDesc
	ch <- inFlightDesc
}

func (c *backendCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.g.state.Load()
	if st == nil {
		return
	}
	for name, p := range st.pools {
		var avail, unhealthy, ejected, draining, inflight float64
		for _, e := range p.Snapshot() {
			inflight += float64(e.InFlight)
			switch {
			case e.Available:
				avail++
			case e.Draining && e.Healthy:
				draining++
			case !e.Healthy:
				unhealthy++
			default:
				ejected++
			}
		}
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, avail, name, "available")
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, unhealthy, name, "unhealthy")
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, ejected, name, "ejected")
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, draining, name, "draining")
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, inflight, name)
	}
}
