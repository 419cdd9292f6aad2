package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// H1 is a lean HTTP/1.1 transport for the proxy's common case, a request
// without a body: it writes the request and reads the response on the
// calling goroutine over pooled keep-alive connections. http.Transport
// hands every request to two goroutines per connection (a writer and a
// reader) and back, which costs more than the proxying itself on a busy
// core; profiling showed that hand-off and its allocations as the largest
// gateway-side cost. Requests with a body or an Upgrade go to Fallback,
// which handles streaming both ways, 100-continue and protocol switches.
//
// H1 never sends a request twice once a byte of it may have reached the
// upstream: a reused connection is checked for a close before it is
// written to, and a request is sent again (on a fresh connection) only
// when not a byte of it was written. A failure after that is returned, so
// the proxy answers 502 rather than run a visit twice. net/http's
// Transport would resend a written GET after reading EOF on a reused
// connection; requests with a body go to Fallback, which cannot resend
// them (their body has no GetBody), and bodiless Upgrade requests go to
// Upgrade, which must not reuse connections.
type H1 struct {
	// Dial opens connections (default net.Dialer with a 5s timeout).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Fallback sends requests with a body (required).
	Fallback http.RoundTripper
	// Upgrade sends bodiless requests with an Upgrade header (default
	// Fallback). Give it a transport without keep-alives: net/http
	// resends such a request after a failure on a reused connection.
	Upgrade http.RoundTripper
	// MaxIdlePerHost caps idle connections kept per endpoint (default 1024).
	MaxIdlePerHost int
	// IdleTimeout drops connections idle longer (default 90s).
	IdleTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]*h1Conn
	puts int // sweep expired idle connections every sweepEvery puts
}

// sweepEvery bounds how long connections to endpoints that are never
// asked for again (a pod gone from DNS) stay open without a reaper
// goroutine.
const sweepEvery = 1024

type h1Conn struct {
	net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	idleAt  time.Time
	written int64   // bytes of the current request the kernel accepted
	peek    *peeker // nil where the platform cannot peek
}

// Write counts what reached the connection, so that a failed exchange
// can tell whether any of the request left.
func (pc *h1Conn) Write(b []byte) (int, error) {
	n, err := pc.Conn.Write(b)
	pc.written += int64(n)
	return n, err
}

// ErrNotSent marks a transport failure before any byte of the request was
// written: the upstream cannot have seen it, so any method may be retried.
var ErrNotSent = errors.New("request not sent")

type notSentError struct{ err error }

func (e *notSentError) Error() string   { return e.err.Error() + " (nothing was sent)" }
func (e *notSentError) Unwrap() []error { return []error{e.err, ErrNotSent} }

// aLongTimeAgo makes blocked reads and writes fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip implements http.RoundTripper.
func (t *H1) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody || req.URL.Scheme != "http" {
		return t.Fallback.RoundTrip(req)
	}
	if req.Header["Upgrade"] != nil {
		if t.Upgrade != nil {
			return t.Upgrade.RoundTrip(req)
		}
		return t.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	addr := req.URL.Host
	fresh := false
	for {
		pc, reused, err := t.get(ctx, addr, fresh)
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, err
		}
		stop := context.AfterFunc(ctx, func() { pc.SetDeadline(aLongTimeAgo) })
		resp, err := pc.exchange(req)
		if err != nil {
			stop()
			pc.Close()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			if pc.written > 0 {
				// The upstream may have the request, in part or whole, and
				// may have acted on it: never send it again.
				return nil, err
			}
			// Not a byte left: a reused connection the upstream had
			// closed. The other idle connections to addr are as old or
			// older: drop them and dial, so one stale pool costs one
			// retry.
			if reused {
				t.dropIdle(addr)
				fresh = true
				continue
			}
			return nil, &notSentError{err}
		}
		b := &h1Body{ReadCloser: resp.Body, t: t, pc: pc, addr: addr, stop: stop, reuse: !resp.Close && !req.Close}
		if resp.Body == http.NoBody {
			b.eof = true
		}
		resp.Body = b
		return resp, nil
	}
}

func (pc *h1Conn) exchange(req *http.Request) (*http.Response, error) {
	pc.written = 0
	if err := req.Write(pc.bw); err != nil {
		return nil, err
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, err
		}
		// Skip informational answers (103 Early Hints); 101 is handled by
		// Fallback since requests with Upgrade go there.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			continue
		}
		return resp, nil
	}
}

// get returns an idle connection to addr (reused) or, when there is none
// or fresh is set, a new one.
func (t *H1) get(ctx context.Context, addr string, fresh bool) (*h1Conn, bool, error) {
	idleTimeout := t.idleTimeout()
	now := time.Now()
	t.mu.Lock()
	for conns := t.idle[addr]; !fresh && len(conns) > 0; conns = t.idle[addr] {
		pc := conns[len(conns)-1]
		t.idle[addr] = conns[:len(conns)-1]
		if now.Sub(pc.idleAt) < idleTimeout {
			t.mu.Unlock()
			// The upstream may have closed it while idle (its keep-alive
			// timeout, a drain): find out before writing, since a
			// request written to it could not be sent again.
			if !pc.peek.peerClosed() {
				return pc, true, nil
			}
			pc.Close()
			t.mu.Lock()
			continue
		}
		pc.Close()
	}
	t.mu.Unlock()
	dial := t.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	pc := &h1Conn{Conn: c, br: bufio.NewReaderSize(c, 16<<10), peek: newPeeker(c)}
	pc.bw = bufio.NewWriterSize(pc, 4<<10) // through pc.Write, which counts
	return pc, false, nil
}

func (t *H1) put(addr string, pc *h1Conn) {
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = 1024
	}
	pc.idleAt = time.Now()
	var drop []*h1Conn
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*h1Conn{}
	}
	if len(t.idle[addr]) < max {
		t.idle[addr] = append(t.idle[addr], pc)
	} else {
		drop = append(drop, pc)
	}
	if t.puts++; t.puts%sweepEvery == 0 {
		drop = append(drop, t.sweepLocked(pc.idleAt)...)
	}
	t.mu.Unlock()
	for _, c := range drop {
		c.Close()
	}
}

func (t *H1) idleTimeout() time.Duration {
	if t.IdleTimeout <= 0 {
		return 90 * time.Second
	}
	return t.IdleTimeout
}

// dropIdle closes the idle connections to addr.
func (t *H1) dropIdle(addr string) {
	t.mu.Lock()
	conns := t.idle[addr]
	delete(t.idle, addr)
	t.mu.Unlock()
	for _, pc := range conns {
		pc.Close()
	}
}

// sweepLocked removes the connections idle longer than IdleTimeout.
func (t *H1) sweepLocked(now time.Time) []*h1Conn {
	idleTimeout := t.idleTimeout()
	var drop []*h1Conn
	for addr, conns := range t.idle {
		kept := conns[:0]
		for _, c := range conns {
			if now.Sub(c.idleAt) < idleTimeout {
				kept = append(kept, c)
			} else {
				drop = append(drop, c)
			}
		}
		if len(kept) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = kept
		}
	}
	return drop
}

// CloseIdleConnections closes every pooled connection.
func (t *H1) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, conns := range idle {
		for _, pc := range conns {
			pc.Close()
		}
	}
	for _, rt := range []http.RoundTripper{t.Fallback, t.Upgrade} {
		if f, ok := rt.(interface{ CloseIdleConnections() }); ok {
			f.CloseIdleConnections()
		}
	}
}

// h1Body returns the connection to the pool once the body was read to its
// end; a body closed early closes the connection first: what is left of
// it cannot be skipped cheaply, and may never end (a stream).
type h1Body struct {
	io.ReadCloser
	t     *H1
	pc    *h1Conn
	addr  string
	stop  func() bool
	reuse bool
	eof   bool
	done  bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// stop reports false when the context already fired and poisoned the
	// connection's deadline.
	if b.stop() && b.eof && b.reuse && b.pc.br.Buffered() == 0 {
		err := b.ReadCloser.Close()
		b.t.put(b.addr, b.pc)
		return err
	}
	// Closing http.ReadResponse's body reads the rest of it: close the
	// connection first so that it cannot block, and ignore the error that
	// causes.
	b.pc.Close()
	b.ReadCloser.Close()
	return nil
}
