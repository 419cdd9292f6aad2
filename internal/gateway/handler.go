package gateway

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/proxy"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// ServeHTTP runs the request path (docs/request-path.md): normalize the
// path → match → the route's filters → split → proxy. Each step gets
// what the previous ones decided as arguments: req (read-only once
// matched) and the proxy.Call; the proxy returns what it observed.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := g.state.Load()
	rec := &recorder{ResponseWriter: w}
	f := &flight{}
	req := &f.req
	g.identify(req, r)
	var rs *routeState
	backendIdx := -1
	defer func() {
		g.observe(rec, r, start, req, rs, backendIdx, &f.res)
	}()

	if g.misdirected(r) {
		f.res.Failure = writeMisdirected(rec, r, req.ID)
		return
	}
	if r.ContentLength > g.opts.MaxRequestBody {
		f.res.Failure = proxy.RejectRequest(rec, r, &http.MaxBytesError{Limit: g.opts.MaxRequestBody}, req.ID)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(rec, r.Body, g.opts.MaxRequestBody)
	}
	path, err := route.NormalizePath(escapedPath(r), st.paths)
	if err != nil {
		f.res.Failure = proxy.RejectRequest(rec, r, err, req.ID)
		return
	}
	req.Path = path
	rt := st.table.Match(r, path.Match)
	if rt == nil {
		err := proxy.ErrNoRoute
		if allow := st.table.Allow(r, path.Match); allow != "" {
			rec.Header()["Allow"] = []string{allow}
			err = proxy.ErrMethodNotAllowed
		}
		f.res.Failure = proxy.RejectRequest(rec, r, err, req.ID)
		return
	}
	rs = st.routes[rt.Index]
	if limit := rt.Config.MaxBodyBytes; limit > 0 && limit < g.opts.MaxRequestBody {
		if r.ContentLength > limit {
			f.res.Failure = proxy.RejectRequest(rec, r, &http.MaxBytesError{Limit: limit}, req.ID)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(rec, r.Body, limit)
		}
	}
	if (r.Method == http.MethodOptions || r.Method == http.MethodTrace) && r.Header["Max-Forwards"] != nil {
		if err := maxForwards(rec, r, st.table.Allow(r, path.Match)); err != nil {
			f.res.Failure = proxy.RejectRequest(rec, r, err, req.ID)
		}
		if rec.status != 0 {
			return
		}
	}
	for _, filter := range rt.Filters {
		if filter(rec, r, req) {
			f.res.Failure = rec.failure
			return
		}
	}
	backendIdx, f.call.SetCookie = rs.pick(r)
	f.call.Route, f.call.Request, f.call.Pool, f.call.Backend, f.call.Mirrors = rt, req, rs.pools[backendIdx], backendIdx, rs.mirrors
	clearDeadlines(w, r)
	f.res = g.proxy.Serve(rec, r, &f.call)
}

// escapedPath is r's path as the client sent it. url.URL.EscapedPath
// re-escapes the decoded path when the sent one has a byte Go's URL parser
// does not keep escaped ('{', '"', '|', …), which would turn "%2F" into a
// real '/' past the encodedSlash setting; RawPath, when set, is exactly
// what was sent (NormalizePath canonicalizes it).
func escapedPath(r *http.Request) string {
	if rp := r.URL.RawPath; rp != "" {
		return rp
	}
	return r.URL.EscapedPath()
}

// maxForwards applies RFC 9110 §7.6.2 to an OPTIONS or TRACE request that
// has Max-Forwards: at 0 the gateway answers as the final recipient (an
// OPTIONS with the route's Allow; a TRACE, which only a route listing it
// gets here, echoes the request without credentials, §9.3.8); above 0 the
// value is decremented before the request goes on.
func maxForwards(w http.ResponseWriter, r *http.Request, allow string) error {
	v := r.Header["Max-Forwards"]
	n, err := strconv.ParseUint(strings.TrimSpace(v[len(v)-1]), 10, 31)
	if err != nil || len(v) > 1 || strings.ContainsAny(v[0], "+-") {
		return proxy.ErrBadMaxForwards
	}
	if n > 0 {
		r.Header["Max-Forwards"] = []string{strconv.FormatUint(n-1, 10)}
		return nil
	}
	h := w.Header()
	h["Cache-Control"] = []string{"no-store"}
	if r.Method == http.MethodOptions {
		h["Allow"] = []string{allow}
		h["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\nHost: %s\r\n", r.Method, r.RequestURI, r.Proto, r.Host)
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		if k == "Authorization" || k == "Proxy-Authorization" || k == "Cookie" {
			continue
		}
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	h["Content-Type"] = []string{"message/http"}
	h["Content-Length"] = []string{strconv.Itoa(b.Len())}
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, b.String())
	return nil
}

// flight holds one request's values in one allocation: what the gateway
// learned (req), what it asks the proxy (call) and what the proxy
// observed (res).
type flight struct {
	req  route.Request
	call proxy.Call
	res  proxy.Result
}

// identify fills what is known of r before routing: IDs, scheme and the
// client's address.
func (g *Gateway) identify(req *route.Request, r *http.Request) {
	req.ID = proxy.RequestID(r.Header.Get("X-Request-Id"))
	req.Traceparent = proxy.Traceparent(r.Header.Get("Traceparent"))
	req.Scheme = "http"
	if r.TLS != nil {
		req.Scheme = "https"
	}
	req.Peer, req.ClientIP, req.PeerTrusted = clientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], g.opts.TrustedProxies)
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
	split := &rs.rt.Split
	sticky := rs.rt.Config.Sticky
	if sticky != nil {
		if c, err := r.Cookie(sticky.Cookie); err == nil {
			for i, n := range split.Names {
				if n == c.Value && split.Weights[i] > 0 && rs.pools[i].Available() {
					return i, nil
				}
			}
		}
	}
	i := split.Next(rs.allowed)
	if i < 0 {
		for j, w := range split.Weights {
			if w > 0 {
				return j, nil
			}
		}
	}
	if sticky != nil {
		return i, &http.Cookie{Name: sticky.Cookie, Value: split.Names[i], Path: "/", MaxAge: int(sticky.TTL.Seconds()),
			HttpOnly: true, SameSite: http.SameSiteLaxMode}
	}
	return i, nil
}

func (g *Gateway) observe(rec *recorder, r *http.Request, start time.Time, req *route.Request, rs *routeState, backendIdx int, res *proxy.Result) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	d := time.Since(start)
	routeName, backendName := "none", "none"
	switch {
	case rs != nil && backendIdx >= 0:
		routeName, backendName = rs.rt.Name, rs.rt.Split.Names[backendIdx]
		rs.metrics[backendIdx].observe(status, d.Seconds())
		if lr := rs.live[backendIdx]; lr != nil {
			// The header map's own string: no allocation. A missing
			// version is resolved when a snapshot is built.
			var version string
			if v := rec.Header()["X-Flotilla-Version"]; len(v) > 0 {
				version = v[0]
			}
			lr.Observe(version, res.Endpoint, status >= 500, d)
		}
		if res.Failure != "" {
			g.metrics.failures.WithLabelValues(routeName, backendName, res.Failure).Inc()
		}
	case rs != nil && rs.rt.Config.DirectResponse != nil:
		routeName, backendName = rs.rt.Name, "direct"
		g.metrics.requests.WithLabelValues(routeName, backendName, strconv.Itoa(status)).Inc()
	case rs != nil:
		routeName = rs.rt.Name
		if rs.rt.Config.Redirect != nil {
			backendName = "redirect"
		}
		g.metrics.requests.WithLabelValues(routeName, backendName, strconv.Itoa(status)).Inc()
	default:
		g.metrics.requests.WithLabelValues(routeName, backendName, strconv.Itoa(status)).Inc()
	}
	if rs != nil && backendIdx < 0 && res.Failure != "" {
		// Refused by the route before a backend was picked: ip_denied,
		// request_too_large (the route's maxBodyBytes).
		g.metrics.failures.WithLabelValues(routeName, backendName, res.Failure).Inc()
	}
	if g.access == nil {
		return
	}
	e := entry{time: start, requestID: req.ID, route: routeName, backend: backendName, method: r.Method, host: r.Host,
		path: r.URL.Path, proto: r.Proto, status: status, bytes: rec.bytes, duration: d, clientIP: addrString(req.ClientIP, r.RemoteAddr), userAgent: r.UserAgent(),
		failure: res.Failure, principal: req.Principal, policy: rec.policy}
	if backendIdx >= 0 {
		e.proxied, e.endpoint, e.attempts, e.traceparent = true, res.Endpoint, res.Attempts, req.Traceparent
	}
	g.access.write(&e)
}

// recorder captures the status and size of a response for metrics and
// the access log.
type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	failure string // the error class a filter refused with (Refuse)
	policy  string // the auth method or rate limit that refused ("jwt:expired")
}

var _ route.Refuser = (*recorder)(nil)

// Refuse answers a request a route filter refuses (route.ErrIPDenied…)
// with the gateway's error, classified with every other failure, and
// keeps the class for the access log and metrics.
func (w *recorder) Refuse(r *http.Request, err error, requestID string) {
	w.failure = proxy.RejectRequest(w, r, err, requestID)
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
