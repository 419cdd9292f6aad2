package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/proxy"
)

// ServeHTTP routes and proxies one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := g.state.Load()
	rec := &recorder{ResponseWriter: w}
	rid := proxy.RequestID(r.Header.Get("X-Request-Id"))
	var rs *routeState
	var ex *proxy.Exchange
	backendIdx := -1
	defer func() {
		g.observe(rec, r, start, rid, rs, backendIdx, ex)
	}()

	if r.ContentLength > g.opts.MaxRequestBody {
		proxy.WriteError(rec, http.StatusRequestEntityTooLarge, "request_too_large", rid)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(rec, r.Body, g.opts.MaxRequestBody)
	}
	rt := st.table.Match(r)
	if rt == nil {
		proxy.WriteError(rec, http.StatusNotFound, "no_route", rid)
		return
	}
	rs = st.routes[rt.Index]
	if target, code := rt.Redirect(r); code != 0 {
		rec.Header()["X-Request-Id"] = []string{rid}
		http.Redirect(rec, r, target, code)
		return
	}
	if d := rt.Config.DirectResponse; d != nil {
		writeDirect(rec, d, rid)
		return
	}
	backendIdx, cookie := rs.pick(r)
	ex = &proxy.Exchange{Route: rt, Pool: rs.pools[backendIdx], RequestID: rid,
		Traceparent: proxy.Traceparent(r.Header.Get("Traceparent")), SetCookie: cookie}
	clearDeadlines(w, r)
	if rs.mirror != nil && g.sample(*rt.Config.Mirror.Percent) {
		g.sendMirror(r, rs, ex)
	}
	g.proxy.Serve(rec, r, ex)
}

// writeDirect serves a route's fixed answer; the request never reaches a
// backend.
func writeDirect(w http.ResponseWriter, d *config.DirectResponse, rid string) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Cache-Control"] = []string{"no-store"}
	h["X-Request-Id"] = []string{rid}
	if d.Status != http.StatusNoContent && d.Status != http.StatusNotModified {
		h["Content-Length"] = []string{strconv.Itoa(len(d.Body))}
	}
	w.WriteHeader(d.Status)
	io.WriteString(w, d.Body)
}

// clearDeadlines lifts the server's ReadTimeout and WriteTimeout for a
// proxied request: they are sized for the server as a whole and would cut
// a route whose timeout is longer (the client saw EOF while the access
// log said 200). The route timeout bounds the exchange instead: its
// cancellation stops reading the request body and waiting for the
// response headers; a streamed response body may take as long as it
// takes. A read deadline is not the tool: when it passes, the server
// cancels the request's context, which would turn a 504 into a 499.
// It also lets an upstream answer headers before it has read the whole
// body (full duplex), which Go's HTTP/1 server refuses by default.
//
// This matters when the gateway is served by net/http (embedders,
// tests). The h1 server `flotilla gateway` runs bounds progress instead
// of whole requests and has no deadlines to lift: its timeouts stay.
func clearDeadlines(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(interface{ SetReadDeadline(time.Time) error }); !ok {
		return
	}
	// Errors mean the writer cannot (ErrNotSupported): the server's own
	// timeouts then stay.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	if r.Body != nil && r.Body != http.NoBody {
		rc.EnableFullDuplex()
	}
}

// pick chooses the backend: the sticky cookie's when it names a backend
// with weight and available endpoints, else the weighted split among
// backends with available endpoints. When none has any, the first
// weighted backend is returned and the proxy answers 503.
func (rs *routeState) pick(r *http.Request) (int, *http.Cookie) {
	sticky := rs.rt.Config.Sticky
	if sticky != nil {
		if c, err := r.Cookie(sticky.Cookie); err == nil {
			for i, n := range rs.names {
				if n == c.Value && rs.weights[i] > 0 && rs.pools[i].Available() {
					return i, nil
				}
			}
		}
	}
	i := rs.split.Next(rs.allowed)
	if i < 0 {
		for j, w := range rs.weights {
			if w > 0 {
				return j, nil
			}
		}
	}
	if sticky != nil {
		return i, &http.Cookie{Name: sticky.Cookie, Value: rs.names[i], Path: "/", MaxAge: int(sticky.TTL.Seconds()),
			HttpOnly: true, SameSite: http.SameSiteLaxMode}
	}
	return i, nil
}

// sample reports true with probability percent/100.
func (g *Gateway) sample(percent float64) bool {
	if percent >= 100 {
		return true
	}
	const scale = 1_000_000
	n := g.opts.Rand(scale)
	return float64(n) < percent/100*scale
}

// sendMirror copies r to the route's shadow backend. A body is mirrored
// only when its length is known and at most proxy.MaxMirrorBody; it is
// read here and replayed to the primary.
func (g *Gateway) sendMirror(r *http.Request, rs *routeState, ex *proxy.Exchange) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength < 0 || r.ContentLength > proxy.MaxMirrorBody {
			g.metrics.mirrors.WithLabelValues(rs.rt.Name, "skipped").Inc()
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			// The primary sees what arrived, then the same error, and
			// fails on it as it would have without the mirror.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	g.mirror.Send(r, body, ex, rs.mirror)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func (g *Gateway) observe(rec *recorder, r *http.Request, start time.Time, rid string, rs *routeState, backendIdx int, ex *proxy.Exchange) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	d := time.Since(start)
	routeName, backendName := "none", "none"
	switch {
	case rs != nil && backendIdx >= 0:
		routeName, backendName = rs.rt.Name, rs.names[backendIdx]
		rs.metrics[backendIdx].observe(status, d.Seconds())
	case rs != nil && rs.rt.Config.DirectResponse != nil:
		routeName, backendName = rs.rt.Name, "direct"
		g.metrics.requests.WithLabelValues(routeName, backendName, strconv.Itoa(status)).Inc()
	case rs != nil:
		routeName, backendName = rs.rt.Name, "redirect"
		g.metrics.requests.WithLabelValues(routeName, backendName, strconv.Itoa(status)).Inc()
	default:
		g.metrics.requests.WithLabelValues(routeName, backendName, strconv.Itoa(status)).Inc()
	}
	if g.access == nil {
		return
	}
	e := entry{time: start, requestID: rid, route: routeName, backend: backendName, method: r.Method, host: r.Host,
		path: r.URL.Path, status: status, bytes: rec.bytes, duration: d, clientIP: clientIP(r.RemoteAddr), userAgent: r.UserAgent()}
	if ex != nil {
		e.proxied, e.endpoint, e.attempts, e.traceparent, e.failure = true, ex.Endpoint, ex.Attempts, ex.Traceparent, ex.Failure
	}
	g.access.write(&e)
}

func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// recorder captures the status and size of a response for metrics and
// the access log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flushes for
// streaming responses, deadlines).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
