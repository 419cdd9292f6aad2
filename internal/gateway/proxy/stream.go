package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Long-lived streams: an upgraded connection (WebSocket) or a response
// body without a declared length (gRPC streams, server-sent events, large
// chunked downloads). The route timeout ends when the response headers
// arrive; from then on a stream is bounded by its route's
// streams.idleTimeout (no byte moved either way) and streams.maxLifetime,
// and Proxy.Drain ends every stream when the gateway stops. How a stream
// ends depends on what it carries:
//
//   - WebSocket: the client gets a close frame 1001 (going away) whose
//     reason says why, unless the upstream's own close frame went by; the
//     upstream connection is closed. Also when the upstream closed
//     without a close frame.
//   - gRPC: the response ends with trailers grpc-status UNAVAILABLE (idle,
//     drain) or DEADLINE_EXCEEDED (lifetime) and a grpc-message that says
//     why; the upstream stream is reset.
//   - server-sent events: the response ends; EventSource reconnects.
//   - anything else: the response is aborted, so that the client can tell
//     a truncated body from a complete one. On drain, such a body (a large
//     chunked download) first gets the drain period to finish: only
//     streams with no end of their own are ended at once.

// errStreamEnded is the cause of an exchange's context when the gateway
// ended its stream.
var errStreamEnded = errors.New("stream ended by the gateway")

// streamEnd is why the gateway ended a stream.
type streamEnd int32

const (
	endNone streamEnd = iota
	endIdle
	endLifetime
	endDrain
)

func (e streamEnd) String() string {
	switch e {
	case endIdle:
		return "idle timeout"
	case endLifetime:
		return "max lifetime"
	case endDrain:
		return "gateway shutting down"
	}
	return ""
}

// stream is one long-lived exchange's limits and liveness.
type stream struct {
	set      *streamSet
	cancel   context.CancelCauseFunc // the exchange's
	start    time.Time
	last     atomic.Int64 // when a byte last moved, as time since start
	idle     time.Duration
	life     time.Duration
	mu       sync.Mutex // guards timer (set after AfterFunc returns, read by its callback) and finished
	timer    *time.Timer
	finished bool
	ended    atomic.Int32 // a streamEnd
	once     sync.Once
	endless  bool // WebSocket, gRPC, SSE: ended at once on drain
}

func (p *Proxy) newStream(cancel context.CancelCauseFunc, limits *config.Streams, endless bool) *stream {
	s := &stream{set: &p.streams, cancel: cancel, start: time.Now(), idle: config.DefaultStreamIdle, life: config.DefaultStreamLifetime, endless: endless}
	if limits != nil {
		if limits.IdleTimeout > 0 {
			s.idle = limits.IdleTimeout
		}
		if limits.MaxLifetime > 0 {
			s.life = limits.MaxLifetime
		}
	}
	s.mu.Lock()
	s.timer = time.AfterFunc(min(s.idle, s.life), s.check)
	s.mu.Unlock()
	s.set.add(s)
	return s
}

// touch records that a byte moved.
func (s *stream) touch() { s.last.Store(int64(time.Since(s.start))) }

// check ends the stream when it was idle too long or lived too long, and
// otherwise sleeps until it might be.
func (s *stream) check() {
	now := time.Since(s.start)
	switch {
	case now >= s.life:
		s.end(endLifetime)
	case now-time.Duration(s.last.Load()) >= s.idle:
		s.end(endIdle)
	default:
		s.mu.Lock()
		if !s.finished { // done stopped the timer: leave it stopped
			s.timer.Reset(min(time.Duration(s.last.Load())+s.idle, s.life) - now)
		}
		s.mu.Unlock()
	}
}

// end ends the stream for why: the exchange's context is cancelled, which
// stops the upstream body or closes the upstream connection; the
// wrappers below finish the client's side.
func (s *stream) end(why streamEnd) {
	if s.ended.CompareAndSwap(int32(endNone), int32(why)) {
		s.cancel(errStreamEnded)
	}
}

func (s *stream) why() streamEnd { return streamEnd(s.ended.Load()) }

// done unregisters the stream once its exchange is over.
func (s *stream) done() {
	s.once.Do(func() {
		s.mu.Lock()
		s.timer.Stop()
		s.finished = true
		s.mu.Unlock()
		s.set.remove(s)
	})
}

// streamSet is every stream in flight, for Drain.
type streamSet struct {
	mu       sync.Mutex
	m        map[*stream]struct{}
	draining bool
	empty    chan struct{} // closed when draining and the last stream is gone
}

func (ss *streamSet) add(s *stream) {
	ss.mu.Lock()
	if ss.m == nil {
		ss.m = map[*stream]struct{}{}
	}
	ss.m[s] = struct{}{}
	draining := ss.draining
	ss.mu.Unlock()
	if draining && s.endless {
		s.end(endDrain)
	}
}

func (ss *streamSet) remove(s *stream) {
	ss.mu.Lock()
	delete(ss.m, s)
	if ss.draining && len(ss.m) == 0 && ss.empty != nil {
		close(ss.empty)
		ss.empty = nil
	}
	ss.mu.Unlock()
}

// Streams reports how many long-lived streams (upgraded connections,
// response bodies without a length) are in flight.
func (p *Proxy) Streams() int {
	p.streams.mu.Lock()
	defer p.streams.mu.Unlock()
	return len(p.streams.m)
}

// Drain ends every long-lived stream in flight, and any that starts
// later, as the stream kind asks (a WebSocket gets close frame 1001, a
// gRPC stream grpc-status UNAVAILABLE; see the package's stream notes),
// and waits until they are gone or ctx is done. Call it on shutdown when
// the server stops accepting requests, alongside http.Server.Shutdown:
// Shutdown waits for streaming handlers and does not see hijacked
// (upgraded) connections at all.
func (p *Proxy) Drain(ctx context.Context) error {
	ss := &p.streams
	ss.mu.Lock()
	ss.draining = true
	if len(ss.m) == 0 {
		ss.mu.Unlock()
		return nil
	}
	if ss.empty == nil {
		ss.empty = make(chan struct{})
	}
	empty := ss.empty
	all := make([]*stream, 0, len(ss.m))
	for s := range ss.m {
		all = append(all, s)
	}
	ss.mu.Unlock()
	for _, s := range all {
		if s.endless {
			s.end(endDrain)
		}
	}
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		left := p.Streams()
		ss.mu.Lock()
		for s := range ss.m {
			s.end(endDrain)
		}
		ss.mu.Unlock()
		return fmt.Errorf("draining streams: %d left: %w", left, ctx.Err())
	}
}

// streamBody is doneBody for a response body without a length: it keeps
// the stream alive while bytes move and ends the response the way its
// kind needs when the gateway ends the stream.
type streamBody struct {
	doneBody
	s    *stream
	resp *http.Response
	grpc bool
	sse  bool
}

func (x *exchange) newStreamBody(resp *http.Response, ep *backend.Endpoint, grpc bool) *streamBody {
	b := &streamBody{doneBody: doneBody{ReadCloser: resp.Body, ep: ep}, resp: resp, grpc: grpc,
		sse: strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")}
	b.s = x.p.newStream(x.cancel, x.c.Route.Config.Streams, grpc || b.sse)
	return b
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.s.touch()
	}
	if err != nil && err != io.EOF {
		if why := b.s.why(); why != endNone {
			return n, b.ended(why, err)
		}
	}
	return n, err
}

// ended turns the read error of a stream the gateway ended into the end
// its kind needs.
func (b *streamBody) ended(why streamEnd, err error) error {
	switch {
	case b.grpc:
		code := grpcUnavailable
		if why == endLifetime {
			code = grpcDeadlineExceeded
		}
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		b.resp.Trailer["Grpc-Status"] = []string{fmt.Sprint(code)}
		b.resp.Trailer["Grpc-Message"] = []string{"flotilla gateway: stream ended: " + why.String()}
		return io.EOF
	case b.sse:
		return io.EOF
	}
	return fmt.Errorf("%s: %w", why, err)
}

func (b *streamBody) Close() error {
	err := b.doneBody.Close()
	b.s.done()
	return err
}

// upgradeWriter hands ReverseProxy the client's connection wrapped in a
// streamConn when it switches protocols.
type upgradeWriter struct {
	http.ResponseWriter
	x  *exchange
	ws bool
}

func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	sc := &streamConn{Conn: c, ws: w.ws}
	sc.s = w.x.p.newStream(w.x.cancel, w.x.c.Route.Config.Streams, true)
	return sc, brw, nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// streamConn is the client's side of an upgraded connection. Every byte
// either way passes through it, so it keeps the stream alive; for a
// WebSocket it follows the frames sent to the client, so that on Close it
// can send a close frame when none went by, and only between frames.
type streamConn struct {
	net.Conn
	s      *stream
	ws     bool
	mu     sync.Mutex // serialises writes: the copy from the upstream and the close frame
	frames wsFrames
	closed bool
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.touch()
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.s.touch()
		if c.ws {
			c.frames.feed(p[:n])
		}
	}
	return n, err
}

// Close ends the client's side: ReverseProxy calls it once either
// direction stopped (the upstream closed, the client left, or the gateway
// ended the stream and closed the upstream).
func (c *streamConn) Close() error {
	c.mu.Lock()
	if !c.closed && c.ws && !c.frames.closeSeen && c.frames.atBoundary() {
		reason := c.s.why().String()
		if reason == "" {
			reason = "upstream closed"
		}
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.Conn.Write(wsCloseFrame(1001, reason)) // the client may be gone already
	}
	c.closed = true
	c.mu.Unlock()
	err := c.Conn.Close()
	c.s.done()
	return err
}

// wsCloseFrame is an unmasked (server to client) WebSocket close frame,
// RFC 6455 §5.5.1.
func wsCloseFrame(code uint16, reason string) []byte {
	reason = reason[:min(len(reason), 123)]
	b := make([]byte, 0, 4+len(reason))
	b = append(b, 0x88, byte(2+len(reason)), byte(code>>8), byte(code))
	return append(b, reason...)
}

// wsFrames follows the frame boundaries of a WebSocket byte stream
// (RFC 6455 §5.2) without buffering payloads.
type wsFrames struct {
	hdr       [14]byte
	n         int    // header bytes collected
	need      int    // header length, once its second byte is known
	left      uint64 // payload bytes left in the current frame
	closeSeen bool   // a close frame went by
}

func (f *wsFrames) feed(b []byte) {
	for len(b) > 0 {
		if f.left > 0 {
			k := min(uint64(len(b)), f.left)
			f.left -= k
			b = b[k:]
			continue
		}
		f.hdr[f.n] = b[0]
		f.n++
		b = b[1:]
		if f.n == 2 {
			f.need = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.hdr[1]&0x80 != 0 {
				f.need += 4 // masking key
			}
		}
		if f.n < 2 || f.n < f.need {
			continue
		}
		var length uint64
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			length = uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
		case 127:
			for _, c := range f.hdr[2:10] {
				length = length<<8 | uint64(c)
			}
		default:
			length = uint64(l)
		}
		if f.hdr[0]&0x0f == 0x8 {
			f.closeSeen = true
		}
		f.left, f.n, f.need = length, 0, 0
	}
}

// atBoundary reports whether the stream is between frames.
func (f *wsFrames) atBoundary() bool { return f.n == 0 && f.left == 0 }
