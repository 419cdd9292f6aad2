// Package httpserver builds http.Servers with the timeouts every Flotilla
// listener needs and runs them with a graceful drain.
package httpserver

//lint:file-ignore SA1019 see internal/httpserver/h1/h2.go: the gateway's HTTP/2 server is x/net/http2's

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/httpserver/h1"
)

// Options are the server settings shared by every Flotilla service.
// The Edge limits apply to the lean server (NewH1), the gateway's data
// plane; docs/edge.md compares every default with nginx's and Envoy's.
type Options struct {
	// ReadHeaderTimeout bounds reading request headers (default 10s); on
	// NewH1's server it counts from accept for a connection's first
	// request, so a client trickling header bytes gains nothing.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (default 30s); on
	// NewH1's server, a body read that receives nothing for this long.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (default 60s, above the demo's
	// longest /delay); on NewH1's server, a write that sends nothing for
	// this long.
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 75s).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps request headers (default 64 KiB).
	MaxHeaderBytes int
	// DrainDelay is how long readiness fails before the listener closes, so
	// load balancers stop sending first (default 0).
	DrainDelay time.Duration
	// ShutdownTimeout bounds waiting for in-flight requests (default 10s).
	ShutdownTimeout time.Duration

	Edge Edge
}

// Edge are the limits of the lean server (NewH1) against hostile
// clients; zero values take the defaults of h1.Server, negative ones
// (or an empty AllowUpgrades) turn a limit off.
type Edge struct {
	// FirstByteTimeout closes a new connection that sends nothing
	// (default 10s).
	FirstByteTimeout time.Duration
	// MaxHeaderCount caps header fields (default 100; 431 over it).
	MaxHeaderCount int
	// MaxURIBytes caps the request target (default 8 KiB; 414 over it).
	MaxURIBytes int
	// RequestBufferBytes: chunked bodies up to this size are read and
	// checked before the handler runs (default 64 KiB).
	RequestBufferBytes int
	// MinBodyRate and MinResponseRate are the slowest client, in bytes
	// per second over RateWindow (default 240 each, 10s).
	MinBodyRate, MinResponseRate int
	RateWindow                   time.Duration
	// MaxRequestsPerConn closes a connection after this many requests
	// (default 1000).
	MaxRequestsPerConn int
	// MaxConns and MaxConnsPerIP cap open connections, in all and per
	// client IP address (default 4096 and 1024).
	MaxConns, MaxConnsPerIP int
	// AllowUpgrades are the protocols a request may upgrade to (default
	// websocket); other offers are removed.
	AllowUpgrades []string

	// HTTP2 serves HTTP/2 on the same ports: over TLS (ALPN "h2") and
	// clear text with prior knowledge (h2c); default on.
	HTTP2 *bool
	// H2MaxStreams caps concurrent streams per HTTP/2 connection
	// (default 100; nginx 128, Envoy 100); more are refused.
	H2MaxStreams int
	// H2StreamWindow and H2ConnWindow are the request body bytes the
	// gateway buffers per stream and per connection before the client
	// must wait (flow-control windows; default 256 KiB and 1 MiB).
	H2StreamWindow, H2ConnWindow int
}

// h2 returns the HTTP/2 server for e's limits, nil when HTTP/2 is off.
func (e Edge) h2(o Options) *http2.Server {
	if e.HTTP2 != nil && !*e.HTTP2 {
		return nil
	}
	return &http2.Server{
		MaxConcurrentStreams:         uint32(limitOr(e.H2MaxStreams, 100)),
		MaxUploadBufferPerStream:     int32(limitOr(e.H2StreamWindow, 256<<10)),
		MaxUploadBufferPerConnection: int32(limitOr(e.H2ConnWindow, 1<<20)),
		// The protocol's initial frame size: larger frames buy a proxy
		// nothing, and clients assume this one until SETTINGS arrive.
		MaxReadFrameSize: 16 << 10,
		IdleTimeout:      o.IdleTimeout,
		WriteByteTimeout: o.WriteTimeout,
	}
}

func limitOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 10*time.Second)
	def(&o.ReadTimeout, 30*time.Second)
	def(&o.WriteTimeout, 60*time.Second)
	def(&o.IdleTimeout, 75*time.Second)
	def(&o.ShutdownTimeout, 10*time.Second)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	return o
}

// New returns a server for h with o's timeouts.
func New(h http.Handler, o Options, log *slog.Logger) *http.Server {
	o = o.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// NewH1 returns the lean HTTP/1.1 server (package h1) for h with o's
// timeouts: the gateway's data plane, where net/http's per-request
// background read is a fifth of the CPU.
func NewH1(h http.Handler, o Options, log *slog.Logger) *h1.Server {
	o = o.withDefaults()
	return &h1.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		Logger:            log,

		FirstByteTimeout:   o.Edge.FirstByteTimeout,
		MaxHeaderCount:     o.Edge.MaxHeaderCount,
		MaxURIBytes:        o.Edge.MaxURIBytes,
		RequestBufferBytes: o.Edge.RequestBufferBytes,
		MinBodyRate:        o.Edge.MinBodyRate,
		MinResponseRate:    o.Edge.MinResponseRate,
		RateWindow:         o.Edge.RateWindow,
		MaxRequestsPerConn: o.Edge.MaxRequestsPerConn,
		MaxConns:           o.Edge.MaxConns,
		MaxConnsPerIP:      o.Edge.MaxConnsPerIP,
		AllowUpgrades:      o.Edge.AllowUpgrades,
		H2:                 o.Edge.h2(o),
	}
}

// Server is what Serve runs: an *http.Server or an *h1.Server.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Listen opens a TCP listener, wrapping the error so a port in use names
// the address.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves srv on ln until ctx is done, then drains: onDrain is called
// (readiness turns 503), DrainDelay passes, and Shutdown waits up to
// ShutdownTimeout for in-flight requests. It returns nil after a clean stop.
func Serve(ctx context.Context, srv Server, ln net.Listener, o Options, onDrain func()) error {
	o = o.withDefaults()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	if onDrain != nil {
		onDrain()
	}
	if o.DrainDelay > 0 {
		t := time.NewTimer(o.DrainDelay)
		select {
		case <-t.C:
		case err := <-errc: // the server died while draining
			t.Stop()
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}

// Flags registers the timeouts, the header cap and the drain and
// shutdown settings on fs, with the defaults as flag defaults.
func (o *Options) Flags(fs *pflag.FlagSet) {
	*o = o.withDefaults()
	fs.DurationVar(&o.ReadHeaderTimeout, "read-header-timeout", o.ReadHeaderTimeout, "time to read a request's line and headers (on the gateway, from accept for a connection's first request)")
	fs.DurationVar(&o.ReadTimeout, "read-timeout", o.ReadTimeout, "time to read a request body (on the gateway: with no byte received)")
	fs.DurationVar(&o.WriteTimeout, "write-timeout", o.WriteTimeout, "time to write a response (on the gateway: with no byte sent)")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", o.IdleTimeout, "how long a keep-alive connection may wait for its next request")
	fs.IntVar(&o.MaxHeaderBytes, "max-header-bytes", o.MaxHeaderBytes, "largest request line and headers; larger ones get 431")
	fs.DurationVar(&o.DrainDelay, "drain-delay", o.DrainDelay, "on SIGTERM, how long readiness fails before the listener closes")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "on SIGTERM, how long in-flight requests may take to finish")
}

// EdgeFlags registers the lean server's limits (Edge) on fs: the
// gateway's data plane. Defaults: docs/edge.md.
func (o *Options) EdgeFlags(fs *pflag.FlagSet) {
	e := &o.Edge
	if e.AllowUpgrades == nil {
		e.AllowUpgrades = []string{"websocket"}
	}
	intDef := func(v *int, def int) int {
		if *v == 0 {
			*v = def
		}
		return *v
	}
	if e.FirstByteTimeout == 0 {
		e.FirstByteTimeout = 10 * time.Second
	}
	if e.RateWindow == 0 {
		e.RateWindow = 10 * time.Second
	}
	fs.DurationVar(&e.FirstByteTimeout, "first-byte-timeout", e.FirstByteTimeout, "how long a new connection may wait before sending its first byte")
	fs.IntVar(&e.MaxHeaderCount, "max-header-count", intDef(&e.MaxHeaderCount, 100), "most header fields in a request; more get 431")
	fs.IntVar(&e.MaxURIBytes, "max-uri-bytes", intDef(&e.MaxURIBytes, 8<<10), "longest request target; longer ones get 414")
	fs.IntVar(&e.RequestBufferBytes, "request-buffer-bytes", intDef(&e.RequestBufferBytes, 64<<10), "chunked request bodies up to this size are read and checked before they are forwarded (-1: never)")
	fs.IntVar(&e.MinBodyRate, "min-body-rate", intDef(&e.MinBodyRate, 240), "slowest request body accepted, bytes/s over --rate-window (-1: no minimum)")
	fs.IntVar(&e.MinResponseRate, "min-response-rate", intDef(&e.MinResponseRate, 240), "slowest client taking a response, bytes/s over --rate-window (-1: no minimum)")
	fs.DurationVar(&e.RateWindow, "rate-window", e.RateWindow, "period over which --min-body-rate and --min-response-rate are measured")
	fs.IntVar(&e.MaxRequestsPerConn, "max-requests-per-conn", intDef(&e.MaxRequestsPerConn, 1000), "requests on one connection before it closes (-1: no limit)")
	fs.IntVar(&e.MaxConns, "max-conns", intDef(&e.MaxConns, 4096), "open client connections; more are closed at accept (-1: no limit)")
	fs.IntVar(&e.MaxConnsPerIP, "max-conns-per-ip", intDef(&e.MaxConnsPerIP, 1024), "open connections from one client IP address; more are closed at accept (-1: no limit)")
	if e.HTTP2 == nil {
		e.HTTP2 = new(bool)
		*e.HTTP2 = true
	}
	fs.BoolVar(e.HTTP2, "http2", *e.HTTP2, "serve HTTP/2 too: over TLS (ALPN h2) and, on the clear-text port, with prior knowledge (h2c)")
	fs.IntVar(&e.H2MaxStreams, "h2-max-streams", intDef(&e.H2MaxStreams, 100), "concurrent streams per HTTP/2 connection")
	fs.IntVar(&e.H2StreamWindow, "h2-stream-window", intDef(&e.H2StreamWindow, 256<<10), "request body bytes buffered per HTTP/2 stream (flow-control window)")
	fs.IntVar(&e.H2ConnWindow, "h2-conn-window", intDef(&e.H2ConnWindow, 1<<20), "request body bytes buffered per HTTP/2 connection (flow-control window)")
	fs.StringSliceVar(&e.AllowUpgrades, "allow-upgrades", e.AllowUpgrades, "protocols a request may upgrade to (Upgrade header); other offers are removed (never h2c unless listed)")
}

// Validate reports every invalid setting, naming its flag.
func (o Options) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d < 0 {
			errs = append(errs, flagenv.Errorf(name, "must not be negative, got %s", d))
		}
	}
	positive("read-header-timeout", o.ReadHeaderTimeout)
	positive("read-timeout", o.ReadTimeout)
	positive("write-timeout", o.WriteTimeout)
	positive("idle-timeout", o.IdleTimeout)
	positive("first-byte-timeout", o.Edge.FirstByteTimeout)
	positive("rate-window", o.Edge.RateWindow)
	if o.MaxHeaderBytes < 0 {
		errs = append(errs, flagenv.Errorf("max-header-bytes", "must not be negative, got %d", o.MaxHeaderBytes))
	}
	for name, v := range map[string]int{"max-header-count": o.Edge.MaxHeaderCount, "max-uri-bytes": o.Edge.MaxURIBytes,
		"h2-max-streams": o.Edge.H2MaxStreams} {
		if v < 0 {
			errs = append(errs, flagenv.Errorf(name, "must not be negative, got %d", v))
		}
	}
	for _, p := range o.Edge.AllowUpgrades {
		if !validToken(p) {
			errs = append(errs, flagenv.Errorf("allow-upgrades", "%q is not a protocol name", p))
		}
		if strings.EqualFold(p, "h2c") {
			errs = append(errs, flagenv.Errorf("allow-upgrades", "h2c would let clients open a raw HTTP/2 tunnel to an upstream"))
		}
	}
	for name, v := range map[string]int{"h2-stream-window": o.Edge.H2StreamWindow, "h2-conn-window": o.Edge.H2ConnWindow} {
		// RFC 9113 §6.9.1: a window is at most 2^31-1; below 64 KiB a
		// stream crawls.
		if v != 0 && (v < 64<<10 || v > 1<<30) {
			errs = append(errs, flagenv.Errorf(name, "want 65536..1073741824 bytes, got %d", v))
		}
	}
	if o.Edge.H2ConnWindow != 0 && o.Edge.H2StreamWindow > o.Edge.H2ConnWindow {
		errs = append(errs, flagenv.Errorf("h2-conn-window", "must be at least --h2-stream-window (%d), got %d", o.Edge.H2StreamWindow, o.Edge.H2ConnWindow))
	}
	if o.DrainDelay < 0 {
		errs = append(errs, flagenv.Errorf("drain-delay", "must not be negative, got %s", o.DrainDelay))
	}
	if o.ShutdownTimeout <= 0 {
		errs = append(errs, flagenv.Errorf("shutdown-timeout", "must be positive, got %s", o.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

func validToken(s string) bool {
	for _, r := range s {
		if !httpguts.IsTokenRune(r) {
			return false
		}
	}
	return s != ""
}

// Identity sets X-Flotilla-Version and X-Flotilla-Instance on every
// response: the load tool and tests tell versions and replicas apart by
// them.
func Identity(instance, version string, next http.Handler) http.Handler {
	iv, vv := []string{instance}, []string{version}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Flotilla-Instance"] = iv
		h["X-Flotilla-Version"] = vv
		next.ServeHTTP(w, r)
	})
}
