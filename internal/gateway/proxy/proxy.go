// Package proxy forwards a routed request to a backend: an
// httputil.ReverseProxy with Rewrite (never Director) for what is sent,
// a RoundTripper that picks endpoints, retries within budget and feeds
// passive health, and one ErrorHandler that classifies every failure.
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
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
)

// Exchange is one proxied request's state: what the gateway decided
// (route, backend, IDs) and what the proxy observed (endpoint, attempts,
// failure class), for the access log and metrics.
type Exchange struct {
	Route       *route.Route
	Pool        *backend.Pool
	RequestID   string
	Traceparent string
	// SetCookie, when not nil, is added to the response (sticky backend).
	SetCookie *http.Cookie

	// Endpoint is the address of the last endpoint tried.
	Endpoint string
	// Attempts is how many endpoints were tried.
	Attempts int
	// Failure is the class of a failed exchange ("" when it succeeded):
	// client_closed_request, upstream_failure, no_healthy_upstream,
	// upstream_overloaded or upstream_timeout.
	Failure string

	timer *time.Timer
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *Exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*Exchange)
	return ex
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
}

// Proxy forwards requests. It is safe for concurrent use.
type Proxy struct {
	opts Options
	rp   *httputil.ReverseProxy
}

// New returns a Proxy.
func New(opts Options) *Proxy {
	if opts.Jitter == nil {
		opts.Jitter = func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Proxy{opts: opts}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      p,
		ModifyResponse: modifyResponse,
		ErrorHandler:   p.errorHandler,
		BufferPool:     &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}},
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return p
}

// Serve proxies r as ex describes. The route timeout runs until the
// response headers arrive, across retries.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, ex *Exchange) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	if d := ex.Route.Config.Timeout; d > 0 {
		ex.timer = time.AfterFunc(d, func() { cancel(ErrTimeout) })
		defer ex.timer.Stop()
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, exchangeKey{}, ex)))
}

// rewrite shapes the outbound request. Its URL host is a placeholder
// until RoundTrip picks the endpoint.
func rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeOf(pr.In.Context())
	in, out := pr.In, pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = ex.Pool.Config.Name
	if rt := ex.Route; rt.RewritesPath() {
		out.URL.Path = rt.RewritePath(in.URL.Path)
		out.URL.RawPath = ""
	}
	out.Host = in.Host // the client's Host goes upstream, as ingress-nginx does
	if h := ex.Route.Host(); h != "" {
		out.Host = h
	}
	// Append to the X-Forwarded-For the client sent, as Envoy and nginx's
	// proxy_add_x_forwarded_for do; Rewrite starts without it.
	if xff, ok := in.Header["X-Forwarded-For"]; ok {
		out.Header["X-Forwarded-For"] = xff
	}
	pr.SetXForwarded()
	out.Header["X-Request-Id"] = []string{ex.RequestID}
	out.Header["Traceparent"] = []string{ex.Traceparent}
	ex.Route.EditRequestHeaders(out.Header)
}

func modifyResponse(resp *http.Response) error {
	ex := exchangeOf(resp.Request.Context())
	resp.Header["X-Request-Id"] = []string{ex.RequestID}
	if ex.SetCookie != nil {
		resp.Header.Add("Set-Cookie", ex.SetCookie.String())
	}
	ex.Route.EditResponseHeaders(resp.Header)
	return nil
}

func (p *Proxy) transport(pool *backend.Pool) http.RoundTripper {
	if pool.Config.Protocol == "h2c" {
		return p.opts.H2C
	}
	return p.opts.HTTP1
}

// RoundTrip sends req to an endpoint of the exchange's backend, trying
// others as the retry policy allows. It implements http.RoundTripper for
// the ReverseProxy; it is not a general-purpose transport.
func (p *Proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	ex := exchangeOf(ctx)
	pool, policy := ex.Pool, ex.Route.Config.Retries
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
	retries := 0
	defer func() {
		for range retries {
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
		ex.Endpoint, ex.Attempts = ep.Addr, ex.Attempts+1
		resp, err := tr.RoundTrip(req)
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
		// A body is replayed only after a failure before any of it was
		// read. A status answer may come while the transport still sends
		// the body, so status retries are for bodiless requests only.
		retry := attempt < policy.Attempts &&
			(err != nil && (idempotent || isConnectError(err)) && (body == nil || !body.read.Load()) ||
				err == nil && idempotent && body == nil && slices.Contains(policy.RetryOn, resp.StatusCode))
		if retry && pool.RetryStart(*policy.Budget) {
			retries++
			if resp != nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
			}
			ep.Done()
			if p.opts.OnRetry != nil {
				p.opts.OnRetry(ex.Route.Name, pool.Config.Name)
			}
			if !sleep(ctx, p.opts.Jitter(policy.Backoff<<min(attempt, 3))) {
				return nil, context.Cause(ctx)
			}
			continue
		}
		if err != nil {
			ep.Done()
			return nil, err
		}
		if ex.timer != nil {
			ex.timer.Stop() // headers arrived: the body may stream as long as it takes
		}
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
			// An upgraded connection (WebSocket): ReverseProxy needs the
			// writable body; the endpoint counts it until it closes.
			resp.Body = &doneConn{ReadWriteCloser: rwc, ep: ep}
		} else {
			resp.Body = &doneBody{ReadCloser: resp.Body, ep: ep}
		}
		return resp, nil
	}
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

// isConnectError reports whether err happened before the request was
// sent, so any method may be retried.
func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// replayBody lets a request body be sent again after a failed connect:
// the transport closes a request body on error, so Close does nothing
// (ReverseProxy closes the body it passed in), and read tells whether
// any byte left. It also remembers the client's own read error, so that a
// broken upload is not blamed on the endpoint. The transport reads it on
// its own goroutine, hence the atomics.
type replayBody struct {
	io.ReadCloser
	read atomic.Bool
	err  atomic.Pointer[error]
}

func (b *replayBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.read.Store(true)
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

// classify maps a failed exchange to its status and error code, in one
// place: 499 client gone, 502 upstream failure, 503 no healthy or
// overloaded upstream, 504 upstream timeout, 413 body over the cap. A
// client whose request body broke off is gone too (499).
func classify(ctx context.Context, err error) (int, string) {
	var ne net.Error
	var tooLarge *http.MaxBytesError
	var bodyErr *clientBodyError
	switch {
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
	case errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout, "upstream_timeout"
	}
	return http.StatusBadGateway, "upstream_failure"
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeOf(r.Context())
	status, code := classify(r.Context(), err)
	ex.Failure = code
	if status != 499 {
		p.opts.Logger.Warn("proxy failed", slog.String("request_id", ex.RequestID), slog.String("route", ex.Route.Name),
			slog.String("backend", ex.Pool.Config.Name), slog.String("endpoint", ex.Endpoint), slog.Int("attempts", ex.Attempts),
			slog.String("class", code), slog.String("error", err.Error()))
	}
	WriteError(w, status, code, ex.RequestID)
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
