// Package proxy forwards a routed request to a backend: an
// httputil.ReverseProxy with Rewrite (never Director) for what is sent,
// a RoundTripper that picks endpoints, retries within budget and feeds
// passive health, and one ErrorHandler that classifies every failure.
package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// Errors the RoundTripper returns; ErrorHandler maps them to statuses.
var (
	// ErrNoHealthy: the backend has no available endpoint (503).
	ErrNoHealthy = errors.New("no healthy upstream")
	// ErrOverloaded: every available endpoint is at MaxInFlight (503).
	ErrOverloaded = errors.New("every upstream at its in-flight limit")
	// ErrTimeout is the cause of a request's context when the route
	// timeout passed before the response headers arrived (504).
	ErrTimeout = errors.New("route timeout")
	// ErrNoRoute: no route matches the request (404).
	ErrNoRoute = errors.New("no route")
	// ErrMethodNotAllowed: a route matches all but the method (405; the
	// caller sets Allow).
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrBadMaxForwards: an OPTIONS or TRACE request whose Max-Forwards
	// is not a number (400).
	ErrBadMaxForwards = errors.New("malformed Max-Forwards")
	// ErrUpstreamTLS marks a TLS failure with the upstream that crypto/tls
	// has no error type for (an h2 backend whose ALPN chose another
	// protocol); certificate verification errors are classified by their
	// own types (502 upstream_tls).
	ErrUpstreamTLS = errors.New("upstream TLS")
)

// Call is what the gateway decided for one request, passed to Serve
// explicitly: the proxy reads it and never modifies it.
type Call struct {
	// Route is the matched route; its timeout, retry policy, rewrites and
	// header edits apply.
	Route *route.Route
	// Request is what the gateway learned about the request (IDs, client
	// address, scheme, normalized path).
	Request *route.Request
	// Pool is the backend the split chose.
	Pool *backend.Pool
	// Backend is Pool's index in the route's Split: whose own request
	// header edits apply (-1: none, a mirrored copy).
	Backend int
	// SetCookie, when not nil, is added to the response (sticky backend).
	SetCookie *http.Cookie
	// Mirrors are the route's shadow backends: the proxy samples each
	// one's percentage and sends it a copy.
	Mirrors []Shadow
}

// Shadow is one of a route's mirrors.
type Shadow struct {
	// Pool is the shadow backend.
	Pool *backend.Pool
	// Percent of requests copied to it, 0..100.
	Percent float64
}

// Result is what the proxy observed, for the access log and metrics.
type Result struct {
	// Endpoint is the address of the last endpoint tried ("" when none).
	Endpoint string
	// Attempts is how many endpoints were tried.
	Attempts int
	// Failure is the class of a failed exchange ("" when it succeeded):
	// client_closed_request, upstream_failure, upstream_tls,
	// no_healthy_upstream, upstream_overloaded, upstream_timeout or
	// request_too_large.
	Failure string
}

// Options configure a Proxy.
type Options struct {
	// HTTP1 and H2C send requests upstream for backends of that protocol.
	HTTP1, H2C http.RoundTripper
	// Logger receives one warning per failed exchange.
	Logger *slog.Logger
	// OnRetry is called for every retry (for metrics).
	OnRetry func(route, backend string)
	// Jitter returns a uniform duration in [0, d) (default rand.N).
	Jitter func(d time.Duration) time.Duration
	// Rand samples mirrored requests (default rand.IntN).
	Rand func(n int) int
	// MaxMirrorInFlight caps mirrored copies in flight; more are dropped
	// (default 64).
	MaxMirrorInFlight int
	// OnMirror is called with "sent", "failed", "dropped" or "skipped"
	// for every copy asked for (for metrics).
	OnMirror func(route, result string)
}

// Proxy forwards requests. It is safe for concurrent use.
type Proxy struct {
	opts      Options
	exchanges sync.Pool // of *exchange
	buf       httputil.BufferPool
	errLog    *log.Logger
	mirror    *Mirror
	streams   streamSet
}

// New returns a Proxy. Close stops its mirrored copies.
func New(opts Options) *Proxy {
	if opts.Jitter == nil {
		opts.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d)
		}
	}
	if opts.Rand == nil {
		opts.Rand = rand.IntN
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMirrorInFlight <= 0 {
		opts.MaxMirrorInFlight = 64
	}
	p := &Proxy{opts: opts,
		buf:    &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}},
		errLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)}
	p.mirror = newMirror(p, opts.MaxMirrorInFlight, opts.OnMirror)
	return p
}

// Close cancels mirrored copies in flight and waits for them.
func (p *Proxy) Close() { p.mirror.Close() }

// exchange is one call's own state, private to Serve: it is the
// ReverseProxy's Rewrite, Transport, ModifyResponse and ErrorHandler for
// this call, so nothing travels in the request's context.
type exchange struct {
	p     *Proxy
	c     *Call
	res   Result
	timer *time.Timer
	// deadline is when the route timeout (or grpc-timeout) ends; zero
	// without one.
	deadline time.Time
	cancel   context.CancelCauseFunc // ends the exchange, a stream too
	shadow   bool                    // a mirrored copy: one try, no passive health
	rp       httputil.ReverseProxy
}

func (p *Proxy) newExchange(c *Call, shadow bool) *exchange {
	x := &exchange{p: p, c: c, shadow: shadow}
	x.rp = httputil.ReverseProxy{Rewrite: x.rewrite, Transport: x, ModifyResponse: x.modifyResponse,
		ErrorHandler: x.errorHandler, BufferPool: p.buf, ErrorLog: p.errLog}
	return x
}

// getExchange returns a primary exchange for c from the pool: its
// ReverseProxy and the hooks bound to it are built once per pooled value,
// not per request. putExchange returns it once Serve is done with it
// (ReverseProxy keeps no reference after ServeHTTP returns).
func (p *Proxy) getExchange(c *Call) *exchange {
	if x, ok := p.exchanges.Get().(*exchange); ok {
		x.c = c
		return x
	}
	return p.newExchange(c, false)
}

func (p *Proxy) putExchange(x *exchange) {
	x.c, x.res, x.timer, x.cancel, x.deadline = nil, Result{}, nil, nil, time.Time{}
	p.exchanges.Put(x)
}

// Serve proxies r as c describes and reports what happened. The route
// timeout runs until the response headers arrive, across retries.
//
// A gRPC call's grpc-timeout is its deadline: the shorter of it and the
// route timeout applies, and the upstream is told the shorter one.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, c *Call) Result {
	d := c.Route.Config.Timeout
	if v := r.Header["Grpc-Timeout"]; v != nil && IsGRPC(r) {
		gd, err := parseGRPCTimeout(v[0])
		if err != nil || len(v) > 1 {
			writeGRPCError(w, http.StatusBadRequest, "bad_grpc_timeout", c.Request.ID)
			return Result{Failure: "bad_grpc_timeout"}
		}
		if d <= 0 || gd < d {
			d = gd
		} else {
			r.Header["Grpc-Timeout"] = []string{formatGRPCTimeout(d)}
		}
	}
	if len(c.Mirrors) > 0 {
		p.sendMirrors(r, c)
	}
	x := p.getExchange(c)
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	var timer *time.Timer
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
		timer = time.AfterFunc(d, func() { cancel(ErrTimeout) })
		defer timer.Stop()
	}
	x.timer, x.cancel, x.deadline = timer, cancel, deadline
	if up := r.Header["Upgrade"]; up != nil {
		// An upgraded connection is a stream: bounded by the route's
		// stream limits and ended by Drain.
		w = &upgradeWriter{ResponseWriter: w, x: x, ws: strings.EqualFold(up[0], "websocket")}
	}
	// A panic (http.ErrAbortHandler) skips the put: the exchange is
	// dropped, not reused.
	x.rp.ServeHTTP(w, r.WithContext(ctx))
	res := x.res
	p.putExchange(x)
	return res
}

// rewrite shapes the outbound request. Its URL host is a placeholder
// until RoundTrip picks the endpoint.
func (x *exchange) rewrite(pr *httputil.ProxyRequest) {
	c, req := x.c, x.c.Request
	in, out := pr.In, pr.Out
	out.URL.Scheme = "http"
	if c.Pool.Config.Protocol == config.ProtocolH2 {
		out.URL.Scheme = "https" // :scheme; the pool's transport dials TLS either way
	}
	out.URL.Host = c.Pool.Config.Name
	// Exactly the path that was matched, or its rewrite, in escaped form:
	// never a decoded form that means something else upstream.
	c.Route.UpstreamPath(req.Path).SetURL(out.URL)
	out.Host = in.Host // the client's Host goes upstream, as ingress-nginx does
	if h := c.Route.Host(); h != "" {
		out.Host = h
	}
	setForwarded(out.Header, in, req)
	// RFC 9110 §7.6.3: a proxy MUST add itself to Via.
	out.Header["Via"] = addVia(out.Header["Via"], in.ProtoMajor, in.ProtoMinor)
	// The client's 100-continue was answered by the gateway's own server
	// when the body was first read; an upstream's would be a second one.
	delete(out.Header, "Expect")
	out.Header["X-Request-Id"] = []string{req.ID}
	out.Header["Traceparent"] = []string{req.Traceparent}
	c.Route.EditRequestHeaders(out.Header, c.Backend)
	if req.ClientIP != req.Peer {
		// The consistent-hash key (backend's clientIP) reads RemoteAddr.
		out.RemoteAddr = req.ClientIP.String()
	}
}

func (x *exchange) modifyResponse(resp *http.Response) error {
	resp.Header["X-Request-Id"] = []string{x.c.Request.ID}
	resp.Header["Via"] = addVia(resp.Header["Via"], resp.ProtoMajor, resp.ProtoMinor)
	if x.c.SetCookie != nil {
		resp.Header.Add("Set-Cookie", x.c.SetCookie.String())
	}
	x.c.Route.EditResponseHeaders(resp.Header)
	return nil
}

// addVia appends this hop's Via element for a message received as
// HTTP/major.minor (RFC 9110 §7.6.3: received-protocol and a pseudonym) to
// the earlier hops' vv. Without earlier hops it returns a shared one-value
// slice: no allocation per request. Its capacity is 1, so Header.Add
// copies it, and header edits replace values, never write into them.
func addVia(vv []string, major, minor int) []string {
	i := 1 // HTTP/1.1
	switch {
	case major == 2:
		i = 2
	case major == 1 && minor == 0:
		i = 0
	}
	if len(vv) == 0 {
		return vias[i : i+1 : i+1]
	}
	return append(vv, vias[i])
}

var vias = []string{"1.0 flotilla", "1.1 flotilla", "2 flotilla"}

func (p *Proxy) transport(pool *backend.Pool) http.RoundTripper {
	if own := pool.Transport(); own != nil {
		return own // a TLS backend's (https, h2)
	}
	if pool.Config.Protocol == config.ProtocolH2C {
		return p.opts.H2C
	}
	return p.opts.HTTP1
}

// RoundTrip sends req to an endpoint of the call's backend, trying
// others as the retry policy allows. It implements http.RoundTripper for
// the ReverseProxy; it is not a general-purpose transport.
func (x *exchange) RoundTrip(req *http.Request) (*http.Response, error) {
	if x.shadow {
		return x.roundTripShadow(req)
	}
	p := x.p
	ctx := req.Context()
	pool, policy := x.c.Pool, x.c.Route.Config.Retries
	tr := p.transport(pool)
	idempotent := isIdempotent(req.Method)
	var body *replayBody
	if req.Body != nil && req.Body != http.NoBody {
		// Not closed here: the upstream may answer headers before it
		// reads the body; ReverseProxy closes the body when it is done.
		body = &replayBody{ReadCloser: req.Body}
		req.Body = body
	}
	pool.RequestStarted()
	defer pool.RequestDone()
	var triedBuf [4]*backend.Endpoint
	tried := triedBuf[:0]
	// A retrying request holds one unit of the backend's retry budget
	// from its first retry until it is done: its own earlier tries have
	// ended, so they are not "in flight" against the budget.
	retries := 0
	defer func() {
		if retries > 0 {
			pool.RetryDone()
		}
	}()
	for attempt := 0; ; attempt++ {
		// Acquire fails only when no endpoint is available (or all are
		// full), also on a retry: an endpoint may just have been ejected.
		ep, full := pool.Acquire(req, tried)
		if ep == nil {
			if full {
				return nil, ErrOverloaded
			}
			return nil, ErrNoHealthy
		}
		tried = append(tried, ep)
		req.URL.Host = ep.Addr
		x.res.Endpoint, x.res.Attempts = ep.Addr, x.res.Attempts+1
		var resp *http.Response
		var err error
		if tt := x.c.Route.Config.TryTimeout; tt > 0 {
			resp, err = roundTripTry(tr, req, tt)
		} else {
			resp, err = tr.RoundTrip(req)
		}
		if ctx.Err() != nil { // client gone or route timeout: not the endpoint's fault
			if resp != nil {
				resp.Body.Close()
			}
			ep.Done()
			if err == nil {
				err = context.Cause(ctx)
			}
			return nil, err
		}
		if err != nil && body != nil && body.failed() != nil {
			// The client's body broke (gone, too slow, over the cap): not
			// the endpoint's failure, and nothing to retry.
			ep.Done()
			return nil, &clientBodyError{body.failed()}
		}
		var status int
		if err == nil {
			status = resp.StatusCode
		}
		pool.ReportResult(ep, status, err) // the backend's outlier config decides what counts
		// A failed request is retried only when it provably never reached
		// the upstream (the connect failed, or not a byte was written):
		// a GET may count a visit, so "idempotent" is not enough once the
		// upstream may have seen it. A route opts into retrying statuses
		// (RetryOn) for idempotent methods without a body: a status
		// answer may come while the transport still sends a body.
		retry := attempt < policy.Attempts && !errors.Is(err, errTryTimeout) &&
			(err != nil && notSent(err) && (body == nil || !body.read.Load()) ||
				err == nil && idempotent && body == nil && slices.Contains(policy.RetryOn, resp.StatusCode))
		if retry && (retries > 0 || pool.RetryStart(*policy.Budget)) {
			retries++
			if resp != nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
			}
			ep.Done()
			if p.opts.OnRetry != nil {
				p.opts.OnRetry(x.c.Route.Name, pool.Config.Name)
			}
			if !sleep(ctx, policy.MinBackoff+p.opts.Jitter(policy.Backoff<<min(attempt, 3))) {
				return nil, context.Cause(ctx)
			}
			continue
		}
		if err != nil {
			ep.Done()
			return nil, err
		}
		if x.timer != nil {
			x.timer.Stop() // headers arrived: the body may stream as long as it takes
		}
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
			// An upgraded connection (WebSocket): ReverseProxy needs the
			// writable body; the endpoint counts it until it closes.
			resp.Body = &doneConn{ReadWriteCloser: rwc, ep: ep}
		} else if resp.ContentLength < 0 && resp.Body != http.NoBody {
			// No length: a stream (gRPC, server-sent events) or a long
			// chunked body, bounded by the route's stream limits.
			sb := x.newStreamBody(resp, ep, IsGRPC(req))
			if body != nil {
				body.stream.Store(sb.s) // the client's messages keep a bidirectional stream alive too
			}
			resp.Body = sb
		} else {
			resp.Body = &doneBody{ReadCloser: resp.Body, ep: ep}
		}
		return resp, nil
	}
}

// errTryTimeout is the cause of a try's context when the route's
// TryTimeout passed before its response headers arrived (504, no retry).
var errTryTimeout = errors.New("try timeout")

// tryTimeoutError is what RoundTrip returns for a try that ran out: a
// net.Error whose Timeout is true, so classify answers 504.
type tryTimeoutError struct{}

func (tryTimeoutError) Error() string   { return errTryTimeout.Error() }
func (tryTimeoutError) Timeout() bool   { return true }
func (tryTimeoutError) Temporary() bool { return false }
func (tryTimeoutError) Unwrap() error   { return errTryTimeout }

// roundTripTry sends one try bounded by d until its response headers
// arrive; the body then streams as long as the route allows. The try's
// context is a child of the exchange's, which Serve cancels when it is
// done, so it is released either way.
func roundTripTry(tr http.RoundTripper, req *http.Request, d time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(d, func() { cancel(errTryTimeout) })
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if timer.Stop() {
		if err != nil {
			cancel(nil)
		}
		return resp, err
	}
	// The timer fired: whatever came back came too late.
	if resp != nil {
		resp.Body.Close()
	}
	if req.Context().Err() != nil {
		return nil, context.Cause(req.Context()) // the exchange ended first
	}
	return nil, tryTimeoutError{}
}

// sleep waits d or until ctx is done, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// notSent reports whether err proves the request never reached the
// upstream, so any method may be retried: the connect failed, or the
// transport failed before writing a byte (ErrNotSent).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, ErrNotSent)
}

// replayBody lets a request body be sent again after a failed connect:
// the transport closes a request body on error, so Close does nothing
// (ReverseProxy closes the body it passed in), and read tells whether
// any byte left. It also remembers the client's own read error, so that a
// broken upload is not blamed on the endpoint. The transport reads it on
// its own goroutine, hence the atomics.
type replayBody struct {
	io.ReadCloser
	read   atomic.Bool
	err    atomic.Pointer[error]
	stream atomic.Pointer[stream] // once the response is a stream
}

func (b *replayBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.read.Store(true)
		if s := b.stream.Load(); s != nil {
			s.touch()
		}
	}
	if err != nil && err != io.EOF {
		b.err.Store(&err)
	}
	return n, err
}

func (b *replayBody) Close() error { return nil }

// failed returns the error reading the client's body, nil when none.
func (b *replayBody) failed() error {
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}

// clientBodyError is a failure to read the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// doneBody ends the endpoint's in-flight count when the response body is
// closed, so least_request and MaxInFlight see streaming responses.
type doneBody struct {
	io.ReadCloser
	ep   *backend.Endpoint
	once sync.Once
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.ep.Done)
	return err
}

// doneConn is doneBody for an upgraded connection.
type doneConn struct {
	io.ReadWriteCloser
	ep   *backend.Endpoint
	once sync.Once
}

func (c *doneConn) Close() error {
	err := c.ReadWriteCloser.Close()
	c.once.Do(c.ep.Done)
	return err
}

// classify maps a refused request or a failed exchange to its status and
// error code, in one place: 400 bad path, 403 client address denied,
// 404 no route, 405 method not allowed, 499 client gone, 502 upstream failure, 503 no healthy or
// overloaded upstream, 504 upstream timeout, 413 body over the cap. A
// client whose request body broke off is gone too (499).
func classify(ctx context.Context, err error) (int, string) {
	var ne net.Error
	var tooLarge *http.MaxBytesError
	var bodyErr *clientBodyError
	switch {
	case errors.Is(err, ErrNoRoute):
		return http.StatusNotFound, "no_route"
	case errors.Is(err, ErrBadMaxForwards):
		return http.StatusBadRequest, "bad_max_forwards"
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, route.ErrBadPath):
		return http.StatusBadRequest, "bad_path"
	case errors.Is(err, route.ErrIPDenied):
		return http.StatusForbidden, "ip_denied"
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "request_too_large"
	case errors.Is(context.Cause(ctx), ErrTimeout):
		return http.StatusGatewayTimeout, "upstream_timeout"
	case ctx.Err() != nil, errors.As(err, &bodyErr):
		return 499, "client_closed_request"
	case errors.Is(err, ErrNoHealthy):
		return http.StatusServiceUnavailable, "no_healthy_upstream"
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable, "upstream_overloaded"
	case isTLSError(err):
		return http.StatusBadGateway, "upstream_tls"
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout, "upstream_timeout"
	}
	return http.StatusBadGateway, "upstream_failure"
}

// isTLSError reports whether err is a failed TLS handshake with the
// upstream: its certificate did not verify (expired, another host's,
// signed by an unknown CA), it refused ours, or it does not speak TLS.
func isTLSError(err error) bool {
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	var record tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var op *net.OpError // crypto/tls reports the peer's alerts as Op "remote error"
	return errors.Is(err, ErrUpstreamTLS) || errors.As(err, &op) && op.Op == "remote error" || errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &record) ||
		errors.As(err, &unknownCA) || errors.As(err, &host) || errors.As(err, &invalid)
}

func (x *exchange) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if x.shadow {
		w.WriteHeader(http.StatusBadGateway) // counted, not logged
		return
	}
	c := x.c
	if !x.deadline.IsZero() && !time.Now().Before(x.deadline) {
		// The deadline passed before the timer's goroutine ran: an
		// upstream told it (grpc-timeout) may have reset the stream first.
		// The call timed out either way.
		x.cancel(ErrTimeout)
	}
	status, code := classify(r.Context(), err)
	x.res.Failure = code
	if status != 499 && status != http.StatusRequestEntityTooLarge {
		x.p.opts.Logger.Warn("proxy failed", slog.String("request_id", c.Request.ID), slog.String("route", c.Route.Name),
			slog.String("backend", c.Pool.Config.Name), slog.String("endpoint", x.res.Endpoint), slog.Int("attempts", x.res.Attempts),
			slog.String("class", code), slog.String("error", err.Error()))
	}
	WriteRequestError(w, r, status, code, c.Request.ID)
}

// Reject answers a request the gateway refuses before proxying it
// (ErrNoRoute, ErrMethodNotAllowed, route.ErrBadPath, an
// *http.MaxBytesError), classified here with every proxy failure, and
// returns its error code for the access log.
//
// Prefer RejectRequest, which answers a gRPC call in gRPC.
func Reject(w http.ResponseWriter, err error, requestID string) string {
	return RejectRequest(w, nil, err, requestID)
}

// RejectRequest is Reject for the request r: a gRPC call (IsGRPC) gets a
// gRPC status (see WriteRequestError), anything else the JSON error. r
// may be nil (JSON).
func RejectRequest(w http.ResponseWriter, r *http.Request, err error, requestID string) string {
	status, code := classify(context.Background(), err)
	WriteRequestError(w, r, status, code, requestID)
	return code
}

// WriteRequestError is WriteError for the request r: a gRPC call gets
// HTTP 200 with a trailers-only gRPC status mapped from status and code
// (404 UNIMPLEMENTED, 502 and 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED,
// 413 RESOURCE_EXHAUSTED, 499 CANCELLED; docs/request-path.md) and the
// code in grpc-message; anything else the JSON body. r may be nil (JSON).
func WriteRequestError(w http.ResponseWriter, r *http.Request, status int, code, requestID string) {
	if r != nil && IsGRPC(r) {
		writeGRPCError(w, status, code, requestID)
		return
	}
	if r != nil && r.Method == http.MethodHead {
		// No body, so no Content-Type for one (RFC 9110 9.3.2 lets a
		// HEAD answer leave out what only the content determines): a
		// client must not try to parse JSON that is not there.
		h := w.Header()
		h["Cache-Control"] = []string{"no-store"}
		if requestID != "" {
			h["X-Request-Id"] = []string{requestID}
		}
		w.WriteHeader(status)
		return
	}
	WriteError(w, status, code, requestID)
}

// WriteError writes the gateway's JSON error body: a stable code and the
// request ID, never internal detail such as addresses or Go errors.
func WriteError(w http.ResponseWriter, status int, code, requestID string) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	if requestID != "" {
		h["X-Request-Id"] = []string{requestID}
	}
	w.WriteHeader(status)
	b := make([]byte, 0, 96)
	b = append(b, `{"error":"`...)
	b = append(b, code...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"request_id":"`...)
	b = append(b, requestID...) // validated: [A-Za-z0-9._-] only
	b = append(b, "\"}\n"...)
	w.Write(b)
}

// bufferPool reuses the 32 KiB copy buffers ReverseProxy would otherwise
// allocate for every response.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte  { return *p.pool.Get().(*[]byte) }
func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }
