package proxy

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"sync"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
)

// MaxMirrorBody is the largest request body that is mirrored (64 KiB):
// the primary's body is buffered to copy it, so it must stay small.
const MaxMirrorBody = 64 << 10

// Mirror sends copies of requests to shadow backends in the background.
// It never blocks or fails the primary request: when MaxInFlight copies
// are already in flight the copy is dropped. A copy goes through its own
// ReverseProxy with the primary's Rewrite, so both are shaped the same
// (hop-by-hop headers, X-Forwarded-*, request and trace IDs, path).
type Mirror struct {
	proxy    *Proxy
	rp       *httputil.ReverseProxy
	sem      chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	onResult func(route, result string)
}

// NewMirror returns a Mirror sending through p's transports with at most
// maxInFlight copies at once. onResult (may be nil) gets "sent", "failed",
// "dropped" or "skipped" for every copy asked for.
func NewMirror(p *Proxy, maxInFlight int, onResult func(route, result string)) *Mirror {
	ctx, cancel := context.WithCancel(context.Background())
	if onResult == nil {
		onResult = func(string, string) {}
	}
	m := &Mirror{proxy: p, sem: make(chan struct{}, maxInFlight), ctx: ctx, cancel: cancel, onResult: onResult}
	m.rp = &httputil.ReverseProxy{
		Rewrite:      rewrite,
		Transport:    mirrorTransport{p},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
		BufferPool:   p.rp.BufferPool,
		ErrorLog:     log.New(io.Discard, "", 0), // a shadow's failures are counted, not logged
	}
	return m
}

// Close cancels copies in flight and waits for them.
func (m *Mirror) Close() {
	m.cancel()
	m.wg.Wait()
}

// Send copies r (with body, already read in full, or nil) to an endpoint
// of pool, shaped as the primary exchange ex. It returns at once.
func (m *Mirror) Send(r *http.Request, body []byte, ex *Exchange, pool *backend.Pool) {
	rt := ex.Route
	select {
	case m.sem <- struct{}{}:
	default:
		m.onResult(rt.Name, "dropped")
		return
	}
	ctx, cancel := m.ctx, context.CancelFunc(func() {})
	if d := rt.Config.Timeout; d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	shadow := &Exchange{Route: rt, Pool: pool, RequestID: ex.RequestID, Traceparent: ex.Traceparent}
	in := r.Clone(context.WithValue(ctx, exchangeKey{}, shadow))
	in.Body, in.ContentLength = http.NoBody, 0
	if body != nil {
		in.Body, in.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	m.wg.Go(func() {
		defer func() { <-m.sem }()
		defer cancel()
		w := &statusWriter{header: http.Header{}}
		m.rp.ServeHTTP(w, in)
		result := "sent"
		if w.status >= 500 {
			result = "failed"
		}
		m.onResult(rt.Name, result)
	})
}

// mirrorTransport sends a copy to an endpoint of the shadow pool, once:
// no retries, no passive health (a shadow is not a serving backend).
type mirrorTransport struct{ p *Proxy }

func (t mirrorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pool := exchangeOf(req.Context()).Pool
	ep, _ := pool.Acquire(req, nil)
	if ep == nil {
		return nil, ErrNoHealthy
	}
	req.URL.Host = ep.Addr
	resp, err := t.p.transport(pool).RoundTrip(req)
	if err != nil {
		ep.Done()
		return nil, err
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, ep: ep}
	return resp, nil
}

// statusWriter discards a copy's response, keeping its status.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header { return w.header }

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}
