package h1

//lint:file-ignore SA1019 x/net/http2.Server is deprecated in favour of net/http's, which cannot serve a connection accepted elsewhere; ServeConn stays (from Go 1.27 it wraps net/http's server)

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// clientPreface starts every HTTP/2 connection (RFC 9113 §3.4).
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2Base is the http.Server the HTTP/2 server takes its settings from
// and that carries its graceful shutdown: http2.ConfigureServer hooks
// GOAWAY for every connection onto h2Base.Shutdown.
func (s *Server) h2Base() *http.Server {
	s.h2Once.Do(func() {
		s.h2base = &http.Server{
			MaxHeaderBytes: int(s.maxHeaderBytes()),
			IdleTimeout:    s.idleTimeout(),
			// Per-stream read and write deadlines would end long gRPC
			// and SSE streams: progress is bounded by WriteByteTimeout
			// and the proxy's stream limits instead.
			ErrorLog: slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
		}
		if s.H2.WriteByteTimeout == 0 {
			s.H2.WriteByteTimeout = s.writeTimeout()
		}
		if err := http2.ConfigureServer(s.h2base, s.H2); err != nil {
			panic("h1: configuring HTTP/2: " + err.Error()) // only with a TLSConfig, which h2base has none of
		}
	})
	return s.h2base
}

// prefaceAhead reports whether the connection starts with the HTTP/2
// client preface (prior knowledge h2c), reading no further than needed
// to tell: an HTTP/1 request differs from it within its first bytes.
func (c *conn) prefaceAhead() bool {
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		m := min(len(buf), len(clientPreface))
		if string(buf[:m]) != clientPreface[:m] {
			return false
		}
		if m == len(clientPreface) {
			return true
		}
		if _, err := c.br.Peek(m + 1); err != nil {
			return false
		}
	}
}

// serveH2 hands the connection to the HTTP/2 server. What c.br has
// buffered is read first; the inbound frames pass the compliance filter
// (h2filter.go).
func (c *conn) serveH2() {
	s := c.srv
	c.h2.Store(true)
	c.idle.Store(false)
	c.nc.SetDeadline(time.Time{})
	base := s.h2Base()
	f := newFrameFilter(c.br, int(s.H2.MaxDecoderHeaderTableSize), s.maxHeaderBytes())
	h := h2Conn{Conn: c.nc, f: f}
	var nc net.Conn = &h
	if c.tls != nil {
		nc = &h2TLSConn{h, c.tls}
	}
	ip := c.ip
	s.H2.ServeConn(nc, &http2.ServeConnOpts{Context: c.ctx, BaseConfig: base,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveH2Request(w, r, ip) })})
}

// admitStream counts an HTTP/2 request in flight against MaxConns and
// MaxConnsPerIP, and reports whether it may run.
func (s *Server) admitStream(ip netip.Addr) bool {
	total, perIP := s.maxConns(), s.maxConnsPerIP()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case total > 0 && s.streams >= total:
		s.refusedTotal.Add(1)
		return false
	case perIP > 0 && ip.IsValid() && s.streamsIP[ip] >= perIP:
		s.refusedPerIP.Add(1)
		return false
	}
	s.streams++
	if ip.IsValid() {
		if s.streamsIP == nil {
			s.streamsIP = map[netip.Addr]int{}
		}
		s.streamsIP[ip]++
	}
	return true
}

func (s *Server) releaseStream(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams--
	if ip.IsValid() {
		if n := s.streamsIP[ip] - 1; n > 0 {
			s.streamsIP[ip] = n
		} else {
			delete(s.streamsIP, ip)
		}
	}
}

// h2Conn is the connection as the HTTP/2 server sees it: reads come
// through the frame filter.
type h2Conn struct {
	net.Conn
	f *frameFilter
}

func (c *h2Conn) Read(p []byte) (int, error) { return c.f.Read(p) }

// h2TLSConn also reports the TLS state, which the HTTP/2 server checks
// (cipher suite) and sets as Request.TLS.
type h2TLSConn struct {
	h2Conn
	state *tls.ConnectionState
}

func (c *h2TLSConn) ConnectionState() tls.ConnectionState { return *c.state }

// handshake runs the TLS handshake, bounded by ReadHeaderTimeout from
// accept; it reports whether the connection is ready to serve.
func (c *conn) handshake(tc *tls.Conn) bool {
	tc.SetDeadline(c.accepted.Add(min(c.srv.readHeaderTimeout(), c.srv.firstByteTimeout())))
	if err := tc.Handshake(); err != nil {
		c.srv.tlsFailed(c, err)
		return false
	}
	tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tls = &st
	return true
}

// tlsFailed counts a failed handshake and logs it at debug level: any
// client can fail one, so an info line per failure would let it flood
// the log.
func (s *Server) tlsFailed(c *conn, err error) {
	s.tlsFailures.Add(1)
	s.logger().Debug("TLS handshake failed", slog.String("remote", c.remoteAddr), slog.String("error", err.Error()))
}

// serveH2Request counts the request against the connection budgets,
// applies the edge rules of the HTTP/1.1 path that HTTP/2 framing leaves
// open (Go's server checks field syntax, pseudo-headers and
// Content-Length itself) and runs the handler.
func (s *Server) serveH2Request(w http.ResponseWriter, r *http.Request, ip netip.Addr) {
	if !s.admitStream(ip) {
		w.Header()["Retry-After"] = []string{"1"}
		http.Error(w, "503 Service Unavailable: too many requests in flight", http.StatusServiceUnavailable)
		return
	}
	defer s.releaseStream(ip)
	if err := s.checkH2(r); err != nil {
		se := err.(statusError)
		body := se.Error()
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(se.code)
		io.WriteString(w, body)
		return
	}
	if n := r.ContentLength; n > 0 && n <= int64(s.requestBufferBytes()) {
		// As chunked bodies on HTTP/1.1: a small body is read whole, within
		// ReadTimeout, before the handler runs. One that does not match its
		// Content-Length is malformed (RFC 9113 §8.1.1): the server resets
		// the stream, and no answer goes out before that reset.
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(s.readTimeout()))
		buf := make([]byte, n+1)
		if m, err := io.ReadFull(r.Body, buf); m != int(n) || err != io.ErrUnexpectedEOF {
			panic(http.ErrAbortHandler) // RST_STREAM, if the server has not sent one
		}
		rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(buf[:n]))
	}
	s.Handler.ServeHTTP(w, r)
}

func (s *Server) checkH2(r *http.Request) error {
	if m := s.maxURIBytes(); m > 0 && len(r.RequestURI) > m {
		return statusError{http.StatusRequestURITooLong, "request target over the limit"}
	}
	count := 0
	for name, vv := range r.Header {
		count += len(vv)
		if strings.IndexByte(name, '_') >= 0 && forwardingSpelling([]byte(name)) {
			return bad("underscore spelling of a forwarding header: " + name)
		}
	}
	if m := s.maxHeaderCount(); m > 0 && count > m {
		return statusError{http.StatusRequestHeaderFieldsTooLarge, "too many header fields"}
	}
	if r.Host == "" && r.Method != http.MethodConnect {
		return bad("missing :authority and Host")
	}
	if r.Host != "" && !validHost(r.Host) {
		return bad("malformed :authority or Host")
	}
	return nil
}
