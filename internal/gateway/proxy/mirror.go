package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
)

// MaxMirrorBody is the largest request body that is mirrored (64 KiB):
// the primary's body is buffered to copy it, so it must stay small.
const MaxMirrorBody = 64 << 10

// Mirror sends copies of requests to shadow backends in the background.
// It never blocks or fails the primary request: when its in-flight cap is
// reached the copy is dropped. A copy is shaped by the same rewrite as
// the primary (hop-by-hop headers, X-Forwarded-*, request and trace IDs,
// path) and sent once: no retries, no passive health (a shadow is not a
// serving backend).
type Mirror struct {
	p        *Proxy
	sem      chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	onResult func(route, result string)
}

func newMirror(p *Proxy, maxInFlight int, onResult func(route, result string)) *Mirror {
	ctx, cancel := context.WithCancel(context.Background())
	if onResult == nil {
		onResult = func(string, string) {}
	}
	return &Mirror{p: p, sem: make(chan struct{}, maxInFlight), ctx: ctx, cancel: cancel, onResult: onResult}
}

// Close cancels copies in flight and waits for them.
func (m *Mirror) Close() {
	m.cancel()
	m.wg.Wait()
}

// sample reports true with probability percent/100.
func (p *Proxy) sample(percent float64) bool {
	if percent >= 100 {
		return true
	}
	const scale = 1_000_000
	return float64(p.opts.Rand(scale)) < percent/100*scale
}

// sendMirrors copies r to each of c.Mirrors its percentage samples. A
// body is mirrored only when its length is known and at most
// MaxMirrorBody; it is read here, once, and replayed to the primary.
func (p *Proxy) sendMirrors(r *http.Request, c *Call) {
	var buf [2]*backend.Pool
	to := buf[:0]
	for _, s := range c.Mirrors {
		if p.sample(s.Percent) {
			to = append(to, s.Pool)
		}
	}
	if len(to) == 0 {
		return
	}
	m := p.mirror
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength < 0 || r.ContentLength > MaxMirrorBody {
			for range to {
				m.onResult(c.Route.Name, "skipped")
			}
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
	for _, pool := range to {
		m.send(r, body, c, pool)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// send copies r (with body, already read in full, or nil) to an endpoint
// of the shadow pool. It returns at once.
func (m *Mirror) send(r *http.Request, body []byte, c *Call, pool *backend.Pool) {
	rt := c.Route
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
	x := m.p.newExchange(&Call{Route: rt, Request: c.Request, Pool: pool, Backend: -1}, true)
	in := r.Clone(ctx)
	in.Body, in.ContentLength = http.NoBody, 0
	if body != nil {
		in.Body, in.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	m.wg.Go(func() {
		defer func() { <-m.sem }()
		defer cancel()
		w := &statusWriter{header: http.Header{}}
		x.rp.ServeHTTP(w, in)
		result := "sent"
		if w.status >= 500 {
			result = "failed"
		}
		m.onResult(rt.Name, result)
	})
}

// roundTripShadow sends a copy to an endpoint of the shadow pool, once.
func (x *exchange) roundTripShadow(req *http.Request) (*http.Response, error) {
	pool := x.c.Pool
	ep, _ := pool.Acquire(req, nil)
	if ep == nil {
		return nil, ErrNoHealthy
	}
	req.URL.Host = ep.Addr
	resp, err := x.p.transport(pool).RoundTrip(req)
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
