package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// MaxMirrorBody is the largest request body that is mirrored (64 KiB):
// the primary's body is buffered to copy it, so it must stay small.
const MaxMirrorBody = 64 << 10

// Mirror sends copies of requests to shadow backends in the background.
// It never blocks or fails the primary request: when MaxInFlight copies
// are already in flight the copy is dropped.
type Mirror struct {
	proxy    *Proxy
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
	return &Mirror{proxy: p, sem: make(chan struct{}, maxInFlight), ctx: ctx, cancel: cancel, onResult: onResult}
}

// Close cancels copies in flight and waits for them.
func (m *Mirror) Close() {
	m.cancel()
	m.wg.Wait()
}

// Send copies r (with body, already read in full, or nil) to an endpoint
// of pool, shaped as rt shapes the primary. It returns at once.
func (m *Mirror) Send(r *http.Request, body []byte, rt *route.Route, pool *backend.Pool) {
	select {
	case m.sem <- struct{}{}:
	default:
		m.onResult(rt.Name, "dropped")
		return
	}
	out := &http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: "http", Path: rt.RewritePath(r.URL.Path), RawQuery: r.URL.RawQuery},
		Header:        r.Header.Clone(),
		Host:          r.Host,
		ContentLength: int64(len(body)),
	}
	if h := rt.Host(); h != "" {
		out.Host = h
	}
	rt.EditRequestHeaders(out.Header)
	out.Header.Del("Connection")
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
	}
	m.wg.Go(func() {
		defer func() { <-m.sem }()
		m.onResult(rt.Name, m.send(out, rt, pool))
	})
}

func (m *Mirror) send(out *http.Request, rt *route.Route, pool *backend.Pool) string {
	ep, _ := pool.Acquire(out, nil)
	if ep == nil {
		return "failed"
	}
	defer ep.Done()
	ctx, cancel := context.WithTimeout(m.ctx, rt.Config.Timeout)
	defer cancel()
	out = out.WithContext(ctx)
	out.URL.Host = ep.Addr
	resp, err := m.proxy.transport(pool).RoundTrip(out)
	if err != nil {
		return "failed"
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return "failed"
	}
	return "sent"
}
