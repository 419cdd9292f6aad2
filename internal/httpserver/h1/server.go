// Package h1 is a lean HTTP/1.1 server for the gateway's data plane.
//
// net/http's server starts, for every request, a goroutine that reads the
// connection in the background (to notice a client that went away), then
// stops it with a deadline in the past and waits for it, and sets
// deadlines three to five times per request. On the gateway's proxy path
// that is a fifth of its CPU per request (bench/proxy/README.md). This
// server keeps net/http's request parser (http.ReadRequest) and the
// checks net/http's server adds to it (Host, Expect), and serves any
// http.Handler. What differs:
//
//   - it is stricter than net/http, as the public edge must be: the raw
//     request head is checked against RFC 9112 first (strict.go) and
//     chunked bodies are read by a strict reader, buffered up to
//     RequestBufferBytes before the handler runs (chunked.go); an
//     ambiguous or malformed request is answered and the connection
//     closed; Upgrade offers outside AllowUpgrades are removed
//     (docs/edge.md lists every rule);
//   - limits against hostile clients: connection caps at accept (in all
//     and per client IP), a first-byte timeout, a header deadline from
//     accept, minimum body and response rates (pacer.go), requests per
//     connection;
//   - the connection is watched for a client that went away only once a
//     request has run for WatchAfter (default 50 ms), and its context is
//     then cancelled with ErrClientGone;
//   - ReadTimeout and WriteTimeout bound progress, not the whole request:
//     a body read or a response write that moves no byte for that long
//     fails, however long a proxied stream lasts;
//   - the response writer does not implement SetReadDeadline and
//     SetWriteDeadline (http.ResponseController reports
//     ErrNotSupported): the timeouts above stay;
//   - no Content-Type sniffing: a response without one gets none (a proxy
//     should not invent one);
//   - HTTP/2 is Go's own server (golang.org/x/net/http2), handed the
//     connection when TLS negotiates "h2" (ALPN) or a clear-text
//     connection starts with the HTTP/2 preface (prior knowledge h2c;
//     an h2c Upgrade is refused, see AllowUpgrades), behind a filter
//     that makes it answer malformed requests as RFC 9113 says
//     (h2filter.go); the connection caps apply to it alike.
package h1

//lint:file-ignore SA1019 see h2.go

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// ErrClientGone is the cause of a request's context when the client
// closed its connection before the response was complete.
var ErrClientGone = errors.New("client closed the connection")

// Server serves HTTP/1.1. Set its fields before Serve; zero values take
// the documented defaults.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's line and headers from
	// its first byte (default 5s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout: a request body read that receives nothing for this
	// long fails (default 30s).
	ReadTimeout time.Duration
	// WriteTimeout: a response write that sends nothing for this long
	// fails and the connection closes (default 60s).
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for this
	// long (default 120s).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's line and headers (default 64 KiB).
	// Over it the answer is 431.
	MaxHeaderBytes int
	// WatchAfter is how long a request runs before its connection is
	// watched for the client going away (default 50ms).
	WatchAfter time.Duration
	// Logger receives handler panics and, at most every 10 seconds, a
	// count of refused connections (default slog.Default()).
	Logger *slog.Logger

	// FirstByteTimeout closes a new connection that sends nothing for
	// this long (default 10s).
	FirstByteTimeout time.Duration
	// MaxHeaderCount caps a request's header fields (default 100); over
	// it the answer is 431.
	MaxHeaderCount int
	// MaxURIBytes caps the request target (default 8 KiB); over it the
	// answer is 414.
	MaxURIBytes int
	// RequestBufferBytes: a chunked request body up to this size is read
	// whole before the handler runs, so a malformed one is answered 400
	// without the handler seeing the request; a larger one streams, and
	// if malformed, the handler's reads fail and the connection closes
	// (default 64 KiB; negative: never buffer).
	RequestBufferBytes int
	// MinBodyRate and MinResponseRate, in bytes per second, are the
	// slowest a client may send a request body or take a response,
	// averaged over RateWindow while a read or write waits on the client
	// (default 240 each; negative: no minimum).
	MinBodyRate, MinResponseRate int
	// RateWindow is the period over which the minimum rates are measured
	// (default 10s).
	RateWindow time.Duration
	// MaxRequestsPerConn closes a connection after this many requests
	// (default 1000; negative: no limit).
	MaxRequestsPerConn int
	// MaxConns caps open connections; more are closed at accept
	// (default 4096; negative: no limit). It caps HTTP/2 requests in
	// flight too (503 over it): one HTTP/2 connection carries many, and
	// each may hold an upstream connection, so streams get the budget
	// HTTP/1.1 connections have.
	MaxConns int
	// MaxConnsPerIP caps open connections from one client IP address;
	// more are closed at accept (default 1024; negative: no limit). It
	// caps the client's HTTP/2 requests in flight too.
	MaxConnsPerIP int
	// AllowUpgrades lists the protocols a request may ask to upgrade to
	// (compared case-insensitively, version ignored); any other offer is
	// removed before the handler sees the request (nil: websocket; empty:
	// none).
	AllowUpgrades []string
	// H2, when set, serves HTTP/2: on TLS connections that negotiate
	// "h2", and on clear-text ones that start with the HTTP/2 preface.
	// Its limits are the HTTP/2 edge limits; a zero WriteByteTimeout
	// takes WriteTimeout. Set it before Serve and leave it alone after.
	H2 *http2.Server

	h2Once      sync.Once
	h2base      *http.Server
	tlsFailures atomic.Uint64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perIP     map[netip.Addr]int
	streams   int // HTTP/2 requests in flight, in all and per IP
	streamsIP map[netip.Addr]int
	closing   atomic.Bool

	refusedTotal, refusedPerIP atomic.Uint64
	refusedLogged              atomic.Int64 // unix seconds of the last refusal log line
}

// Refused reports the connections closed at accept, and the HTTP/2
// requests refused, so far: over MaxConns, and over MaxConnsPerIP.
func (s *Server) Refused() (total, perIP uint64) {
	return s.refusedTotal.Load(), s.refusedPerIP.Load()
}

func (s *Server) readHeaderTimeout() time.Duration {
	return orDefault(s.ReadHeaderTimeout, 5*time.Second)
}
func (s *Server) readTimeout() time.Duration  { return orDefault(s.ReadTimeout, 30*time.Second) }
func (s *Server) writeTimeout() time.Duration { return orDefault(s.WriteTimeout, 60*time.Second) }
func (s *Server) idleTimeout() time.Duration  { return orDefault(s.IdleTimeout, 120*time.Second) }
func (s *Server) watchAfter() time.Duration   { return orDefault(s.WatchAfter, 50*time.Millisecond) }
func (s *Server) firstByteTimeout() time.Duration {
	return orDefault(s.FirstByteTimeout, 10*time.Second)
}
func (s *Server) rateWindow() time.Duration { return orDefault(s.RateWindow, 10*time.Second) }

func (s *Server) maxHeaderCount() int     { return limit(s.MaxHeaderCount, 100) }
func (s *Server) maxURIBytes() int        { return limit(s.MaxURIBytes, 8<<10) }
func (s *Server) requestBufferBytes() int { return limit(s.RequestBufferBytes, 64<<10) }
func (s *Server) minBodyRate() int        { return limit(s.MinBodyRate, 240) }
func (s *Server) minResponseRate() int    { return limit(s.MinResponseRate, 240) }
func (s *Server) maxRequestsPerConn() int { return limit(s.MaxRequestsPerConn, 1000) }
func (s *Server) maxConns() int           { return limit(s.MaxConns, 4096) }
func (s *Server) maxConnsPerIP() int      { return limit(s.MaxConnsPerIP, 1024) }

// limit: 0 is the default, negative is none (-1 here: callers test > 0
// or compare with counts that never reach maxInt).
func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return -1
	}
	return v
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return 64 << 10
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// TLSFailures reports the TLS handshakes that failed so far.
func (s *Server) TLSFailures() uint64 { return s.tlsFailures.Load() }

// Serve accepts connections on ln until Shutdown or Close, then returns
// http.ErrServerClosed; any other accept error is returned as is.
//
// HTTPS is a listener from tls.NewListener: the handshake of each
// *tls.Conn it accepts runs on the connection's goroutine, bounded by
// ReadHeaderTimeout from accept; its config should offer "h2" in
// NextProtos only when H2 is set.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than stop serving.
			if isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		ip, refused := s.admit(nc)
		if refused {
			continue
		}
		c := s.newConn(nc, ip)
		if c == nil {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// isTemporary reports accept errors worth retrying (EMFILE, ECONNABORTED).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, closes idle connections, lets in-flight
// requests finish (their responses say Connection: close) and waits for
// every connection to close or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	if s.H2 != nil {
		// GOAWAY on every HTTP/2 connection: streams in flight finish,
		// then the connections close.
		s.h2Base().Shutdown(ctx)
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close stops accepting and closes every connection now.
func (s *Server) Close() error {
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
}

// closeIdle closes connections waiting for a request and reports whether
// none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		// A connection that has not sent its first request yet may be
		// about to: as net/http, it gets 5 seconds.
		if !c.h2.Load() && c.idle.Load() && (c.served.Load() || time.Since(c.accepted) > 5*time.Second) {
			c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// admit applies the connection caps before anything is allocated for a
// connection: an excess one is reset at once (no FIN handshake, no
// TIME_WAIT here) and counted; it reports the client's IP address.
func (s *Server) admit(nc net.Conn) (ip netip.Addr, refused bool) {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
		ip = ip.Unmap()
	}
	maxConns, perIP := s.maxConns(), s.maxConnsPerIP()
	s.mu.Lock()
	switch {
	case maxConns > 0 && len(s.conns) >= maxConns:
		s.refusedTotal.Add(1)
		refused = true
	case perIP > 0 && ip.IsValid() && s.perIP[ip] >= perIP:
		s.refusedPerIP.Add(1)
		refused = true
	}
	s.mu.Unlock()
	if !refused {
		return ip, false
	}
	raw := nc
	if tc, ok := nc.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	nc.Close()
	now := time.Now().Unix()
	if last := s.refusedLogged.Load(); now-last >= 10 && s.refusedLogged.CompareAndSwap(last, now) {
		total, perIP := s.Refused()
		s.logger().Warn("connections refused at accept", slog.Uint64("over_max_conns_total", total),
			slog.Uint64("over_max_conns_per_ip_total", perIP), slog.String("last_client", ip.String()))
	}
	return ip, true
}

func (s *Server) newConn(nc net.Conn, ip netip.Addr) *conn {
	c := &conn{srv: s, nc: nc, ip: ip, remoteAddr: nc.RemoteAddr().String(), accepted: time.Now()}
	c.cond.L = &c.mu
	c.cr.c = c
	c.cr.remain = -1
	c.cw.c = c
	c.cw.pace.start(c.accepted, s.writeTimeout(), s.minResponseRate(), s.rateWindow())
	c.br = bufio.NewReaderSize(&c.cr, 4<<10)
	c.bw = bufio.NewWriterSize(&c.cw, 4<<10)
	// httputil.ReverseProxy aborts a response whose upstream body broke
	// off (panic(http.ErrAbortHandler), so the client sees it truncated)
	// only when it finds a server here; code that reads it gets an empty
	// http.Server.
	c.ctx = context.WithValue(context.WithValue(context.Background(), http.LocalAddrContextKey, nc.LocalAddr()),
		http.ServerContextKey, &http.Server{})
	c.watchTimer = time.AfterFunc(time.Hour, c.watch)
	c.watchTimer.Stop()
	c.idle.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	s.conns[c] = struct{}{}
	if ip.IsValid() {
		if s.perIP == nil {
			s.perIP = map[netip.Addr]int{}
		}
		s.perIP[ip]++
	}
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.ip.IsValid() {
		if n := s.perIP[c.ip] - 1; n > 0 {
			s.perIP[c.ip] = n
		} else {
			delete(s.perIP, c.ip)
		}
	}
	s.mu.Unlock()
}

// conn is one client connection, served by one goroutine.
type conn struct {
	srv        *Server
	nc         net.Conn
	ip         netip.Addr
	remoteAddr string
	tls        *tls.ConnectionState // after the handshake
	h2         atomic.Bool          // served by the HTTP/2 server
	ctx        context.Context
	cr         connReader
	cw         connWriter
	br         *bufio.Reader
	bw         *bufio.Writer
	accepted   time.Time
	idle       atomic.Bool
	served     atomic.Bool // a request was answered
	hijacked   bool
	linger     bool // close after reading what the client still sends, briefly

	// The watch: after WatchAfter, a goroutine reads one byte from the
	// connection; an error means the client is gone.
	mu         sync.Mutex
	cond       sync.Cond
	watchTimer *time.Timer
	gen        uint64 // request number
	armedGen   uint64 // request the timer was armed for
	reqDone    bool
	watching   bool
	aborting   bool
	cancel     context.CancelCauseFunc
}

var aLongTimeAgo = time.Unix(1, 0)

func (c *conn) serve() {
	defer func() {
		defer c.srv.forget(c)
		c.watchTimer.Stop()
		if c.hijacked {
			return
		}
		if c.linger {
			// Closing with unread request bytes would send a reset that
			// can destroy the response in flight: close our side, and
			// read what the client still sends, for a moment.
			if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				io.Copy(io.Discard, c.nc)
			}
		}
		c.nc.Close()
	}()
	s := c.srv
	if tc, ok := c.nc.(*tls.Conn); ok {
		if !c.handshake(tc) {
			return
		}
		if c.tls.NegotiatedProtocol == http2.NextProtoTLS && s.H2 != nil {
			c.serveH2()
			return
		}
	} else if s.H2 != nil {
		c.nc.SetReadDeadline(c.accepted.Add(min(s.readHeaderTimeout(), s.firstByteTimeout())))
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if c.prefaceAhead() {
			c.serveH2()
			return
		}
	}
	for first := true; ; first = false {
		// The header limit counts from the first byte read for this
		// request (bytes of it already buffered are not counted).
		c.cr.remain = s.maxHeaderBytes() + 4096 // as net/http: room for the request line
		// ReadHeaderTimeout bounds the whole request line and header
		// section, from accept for a connection's first request (a client
		// trickling bytes gains nothing), else from the end of the idle
		// wait.
		start := c.accepted
		if c.br.Buffered() == 0 && !c.cr.hasStash {
			c.idle.Store(true)
			if s.closing.Load() {
				return
			}
			if first {
				c.nc.SetReadDeadline(c.accepted.Add(s.firstByteTimeout()))
			} else {
				c.nc.SetReadDeadline(time.Now().Add(s.idleTimeout()))
			}
			if _, err := c.br.Peek(1); err != nil {
				return
			}
			if !first {
				start = time.Now()
			}
		} else if !first {
			start = time.Now()
		}
		c.idle.Store(false)
		c.nc.SetReadDeadline(start.Add(s.readHeaderTimeout()))
		req, err := c.readRequest()
		if err != nil {
			c.reject(err)
			return
		}
		if !c.serveRequest(req) {
			return
		}
	}
}

// statusError is a request the server answers itself, then closes.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.code, http.StatusText(e.code), e.text)
}

// maxEmptyLines is how many empty lines before a request-line are skipped.
const maxEmptyLines = 4

func (c *conn) readRequest() (*http.Request, error) {
	// RFC 9112 §2.2: a server SHOULD ignore at least one empty line
	// before a request-line (some clients send CRLF after a body). A few
	// are skipped; more are left to the parser, which refuses them.
	for range maxEmptyLines {
		if b, err := c.br.Peek(2); err != nil || b[0] != '\r' || b[1] != '\n' {
			break
		}
		c.br.Discard(2)
	}
	// The header block, when it is already buffered (nearly always), is
	// scanned before net/http's parser reads it; else the bytes the
	// parser reads are captured and scanned after it.
	var h head
	scanned := false
	if buf, _ := c.br.Peek(c.br.Buffered()); len(buf) > 0 {
		if end := headerEnd(buf); end > 0 {
			var err error
			if h, err = c.srv.scanHead(buf[:end]); err != nil {
				return nil, err
			}
			scanned = true
		}
	}
	if !scanned {
		c.cr.capture = c.cr.capture[:0]
		if buf, _ := c.br.Peek(c.br.Buffered()); len(buf) > 0 {
			c.cr.capture = append(c.cr.capture, buf...)
		}
		c.cr.capturing = true
	}
	req, err := http.ReadRequest(c.br)
	c.cr.capturing = false
	hitLimit := c.cr.remain == 0
	c.cr.remain = -1
	if err != nil {
		if hitLimit {
			return nil, statusError{http.StatusRequestHeaderFieldsTooLarge, "request headers over the limit"}
		}
		if !scanned {
			// The strict scan names the problem better when it finds one.
			if end := headerEnd(c.cr.capture); end > 0 {
				if _, serr := c.srv.scanHead(c.cr.capture[:end]); serr != nil {
					return nil, serr
				}
			}
		}
		return nil, err
	}
	if !scanned {
		end := headerEnd(c.cr.capture)
		if end < 0 {
			end = len(c.cr.capture)
		}
		h, err = c.srv.scanHead(c.cr.capture[:end])
		if cap(c.cr.capture) > 8<<10 {
			c.cr.capture = nil
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case req.ProtoMajor != 1:
		return nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	case h.hosts == 0 && req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect:
		return nil, statusError{http.StatusBadRequest, "missing required Host header"}
	case h.hosts > 1:
		return nil, statusError{http.StatusBadRequest, "too many Host headers"}
	case h.hosts == 1 && (!httpguts.ValidHostHeader(h.host) || !validHost(h.host)),
		// An absolute-form target's authority replaces Host (RFC 9112
		// §3.2.2): it must be as valid as a Host line.
		req.Host != h.host && (!httpguts.ValidHostHeader(req.Host) || !validHost(req.Host)):
		return nil, statusError{http.StatusBadRequest, "malformed Host header"}
	}
	// Header names and values were checked by the scan.
	if conn, ok := req.Header["Connection"]; ok {
		if err := checkConnection(conn); err != nil {
			return nil, err
		}
	}
	if _, ok := req.Header["Upgrade"]; ok {
		c.srv.filterUpgrade(req)
	}
	if h.chunked {
		// net/http's body reader is replaced, unread, by the strict one.
		req.Body = &chunkedReader{br: c.br, maxCount: c.srv.maxHeaderCount()}
	}
	return req, nil
}

// headerEnd returns the length of the header block at the start of buf,
// through the first empty line after the request line (CRLF or LF, as
// textproto reads it), or -1 when buf does not hold all of it.
func headerEnd(buf []byte) int {
	start := 0
	for {
		i := bytes.IndexByte(buf[start:], '\n')
		if i < 0 {
			return -1
		}
		line := buf[start : start+i]
		if start > 0 && (len(line) == 0 || len(line) == 1 && line[0] == '\r') {
			return start + i + 1
		}
		start += i + 1
	}
}

// reject answers a request that could not be read, as net/http does,
// unless the connection just broke.
func (c *conn) reject(err error) {
	var se statusError
	switch {
	case errors.As(err, &se):
	case isUnsupportedTE(err):
		se = statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
	case isCommonNetReadError(err), errors.Is(err, errNotHTTP1):
		return
	default:
		se = statusError{http.StatusBadRequest, badRequestText(err)}
	}
	body := fmt.Sprintf("%d %s: %s", se.code, http.StatusText(se.code), se.text)
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.nc, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		se.code, http.StatusText(se.code), len(body), body)
}

// isCommonNetReadError: the connection broke or timed out; there is no
// one to answer (as net/http decides it: a *url.Error is a net.Error too,
// and is answered).
func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	oe, ok := err.(*net.OpError)
	return ok && oe.Op == "read"
}

func isUnsupportedTE(err error) bool {
	return err != nil && strings.Contains(err.Error(), "unsupported transfer encoding")
}

// badRequestText is the parser's reason, which names what is wrong
// ("malformed HTTP request", "missing ']' in host"), without the
// quoted input.
func badRequestText(err error) string {
	msg := err.Error()
	if i, j := strings.IndexByte(msg, '"'), strings.LastIndexByte(msg, '"'); i >= 0 && j > i {
		msg = strings.TrimSpace(msg[:i]) + msg[j+1:]
	}
	return strings.TrimSpace(msg)
}

// serveRequest runs the handler and finishes the response; it reports
// whether the connection can serve another request.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	s := c.srv
	ctx, cancel := context.WithCancelCause(c.ctx)
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remoteAddr
	req.TLS = c.tls
	w := &response{c: c, req: req, header: make(http.Header, 8)}
	c.mu.Lock()
	c.gen++
	c.reqDone = false
	c.cancel = cancel
	c.mu.Unlock()
	if m := s.maxRequestsPerConn(); m > 0 && c.gen >= uint64(m) {
		w.closeAfter = true
	}

	// Expect as net/http: 100-continue is honoured for HTTP/1.1 with a
	// body and ignored otherwise; any other expectation fails.
	expect := req.Header["Expect"]
	continues := hasToken(expect, "100-continue")
	if len(expect) > 0 && !continues {
		return c.expectationFailed(w, cancel)
	}
	if req.Body != nil && req.Body != http.NoBody {
		b := &body{rc: req.Body, w: w, sendContinue: continues && req.ProtoAtLeast(1, 1)}
		req.Body, w.reqBody = b, b
		c.cr.pace.start(time.Now(), s.readTimeout(), s.minBodyRate(), s.rateWindow())
		c.cr.pacing = true
		if cr, ok := b.rc.(*chunkedReader); ok {
			cr.req = req
			if err := b.buffer(s.requestBufferBytes()); err != nil {
				return c.badBody(w, cancel, err)
			}
		}
	} else {
		c.armWatch()
	}

	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				s.logger().Error("handler panicked", slog.String("remote", c.remoteAddr),
					slog.String("method", req.Method), slog.String("path", req.URL.Path),
					slog.Any("panic", p), slog.String("stack", string(buf)))
			}
			cancel(nil)
			c.stopWatch()
			c.hijacked = w.hijacked // a hijacked connection is the handler's to close
			keep = false
		}
	}()
	s.Handler.ServeHTTP(w, req)
	cancel(nil)
	c.stopWatch()
	if w.hijacked {
		c.hijacked = true
		return false
	}
	keep = w.finish() && !s.closing.Load()
	c.cr.pacing = false // after finish: draining the body is bounded too
	c.served.Store(true)
	return keep
}

// badBody answers a chunked body that was malformed (400) or could not
// be read (the error's own answer, if any) before the handler ran, and
// closes the connection after.
func (c *conn) badBody(w *response, cancel context.CancelCauseFunc, err error) bool {
	cancel(nil)
	c.cr.pacing = false
	w.closeAfter = true
	c.linger = true
	var ce chunkError
	if errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) {
		text := "400 Bad Request: " + err.Error()
		w.header["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.header["Content-Length"] = []string{strconv.Itoa(len(text))}
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, text)
		w.finish()
	}
	return false
}

func (c *conn) expectationFailed(w *response, cancel context.CancelCauseFunc) bool {
	cancel(nil)
	w.closeAfter = true
	w.WriteHeader(http.StatusExpectationFailed)
	w.finish()
	return false
}

func hasToken(vv []string, token string) bool { return httpguts.HeaderValuesContainsToken(vv, token) }

// armWatch starts the timer after which the connection is watched. It is
// called when nothing more of the request is to be read from the
// connection: at once for a request without a body, else when the body
// hits EOF.
func (c *conn) armWatch() {
	c.mu.Lock()
	c.armedGen = c.gen
	c.mu.Unlock()
	c.watchTimer.Reset(c.srv.watchAfter())
}

// watch runs on the timer's goroutine: it reads one byte, which either is
// the start of a pipelined request (kept for the next read) or an error:
// the client is gone and the request's context is cancelled.
func (c *conn) watch() {
	c.mu.Lock()
	if c.armedGen != c.gen || c.reqDone || c.watching {
		c.mu.Unlock()
		return
	}
	// The header or body deadline may still be on the socket: the watch
	// waits as long as the request runs. Under mu, so stopWatch's past
	// deadline comes after this.
	c.nc.SetReadDeadline(time.Time{})
	c.watching = true
	c.mu.Unlock()
	var b [1]byte
	n, err := c.nc.Read(b[:])
	c.mu.Lock()
	if n == 1 {
		c.cr.stash, c.cr.hasStash = b[0], true
	}
	if err != nil && !c.aborting {
		c.cr.watchErr = err
		c.cancel(ErrClientGone)
	}
	c.watching = false
	c.cond.Broadcast()
	c.mu.Unlock()
}

// stopWatch ends the watch of the current request and waits for a read
// in progress to return, so that the connection has one reader again.
func (c *conn) stopWatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqDone = true
	c.watchTimer.Stop()
	if !c.watching {
		return
	}
	c.aborting = true
	c.nc.SetReadDeadline(aLongTimeAgo)
	for c.watching {
		c.cond.Wait()
	}
	c.aborting = false
	c.nc.SetReadDeadline(time.Time{})
}

// connReader is what the bufio.Reader reads: the connection, with the
// byte a watch read first, the header size limit and the body's pacing.
type connReader struct {
	c         *conn
	stash     byte
	hasStash  bool
	watchErr  error
	remain    int64 // bytes left before the header limit; -1: no limit
	capturing bool
	capture   []byte
	pacing    bool // a request body is being read
	pace      pacer
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.hasStash {
		p[0], r.hasStash = r.stash, false
		r.take(p[:1])
		return 1, nil
	}
	if r.watchErr != nil {
		return 0, r.watchErr
	}
	if r.remain == 0 {
		return 0, io.EOF
	}
	if r.remain > 0 && int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	if r.pacing {
		return r.pacedRead(p)
	}
	n, err := r.c.nc.Read(p)
	r.take(p[:n])
	return n, err
}

func (r *connReader) pacedRead(p []byte) (int, error) {
	now := time.Now()
	d, err := r.pace.before(now)
	for {
		if err != nil {
			return 0, err
		}
		if r.pace.needSet(now, d) {
			r.c.nc.SetReadDeadline(d)
		}
		n, rerr := r.c.nc.Read(p)
		now = time.Now()
		r.pace.after(now, n)
		if n > 0 || !isTimeout(rerr) {
			return n, rerr
		}
		d, err = r.pace.deadline(now) // an early deadline, or the end of a window
	}
}

func (r *connReader) take(p []byte) {
	if r.remain > 0 {
		r.remain -= int64(len(p))
	}
	if r.capturing {
		r.capture = append(r.capture, p...)
	}
}

// connWriter is what the bufio.Writer writes to: the connection, paced
// (WriteTimeout and MinResponseRate).
type connWriter struct {
	c    *conn
	pace pacer
}

func (w *connWriter) Write(p []byte) (int, error) {
	now := time.Now()
	d, err := w.pace.before(now)
	written := 0
	for {
		if err != nil {
			return written, err
		}
		if w.pace.needSet(now, d) {
			w.c.nc.SetWriteDeadline(d)
		}
		n, werr := w.c.nc.Write(p[written:])
		written += n
		now = time.Now()
		w.pace.after(now, n)
		if werr == nil || !isTimeout(werr) {
			return written, werr
		}
		d, err = w.pace.deadline(now)
	}
}
