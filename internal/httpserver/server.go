// Package httpserver builds http.Servers with the timeouts every Flotilla
// listener needs and runs them with a graceful drain.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/httpserver/h1"
)

// Options are the server settings shared by every Flotilla service.
type Options struct {
	// ReadHeaderTimeout bounds reading request headers (default 5s): slow
	// clients cannot hold connections open.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (default 30s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (default 60s, above the demo's
	// longest /delay).
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 120s).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps request headers (default 64 KiB).
	MaxHeaderBytes int
	// DrainDelay is how long readiness fails before the listener closes, so
	// load balancers stop sending first (default 0).
	DrainDelay time.Duration
	// ShutdownTimeout bounds waiting for in-flight requests (default 10s).
	ShutdownTimeout time.Duration
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 5*time.Second)
	def(&o.ReadTimeout, 30*time.Second)
	def(&o.WriteTimeout, 60*time.Second)
	def(&o.IdleTimeout, 120*time.Second)
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

// Flags registers the drain and shutdown settings on fs.
func (o *Options) Flags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.DrainDelay, "drain-delay", o.DrainDelay, "on SIGTERM, how long readiness fails before the listener closes")
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "on SIGTERM, how long in-flight requests may take to finish")
}

// Validate reports every invalid setting, naming its flag.
func (o Options) Validate() error {
	var errs []error
	if o.DrainDelay < 0 {
		errs = append(errs, flagenv.Errorf("drain-delay", "must not be negative, got %s", o.DrainDelay))
	}
	if o.ShutdownTimeout <= 0 {
		errs = append(errs, flagenv.Errorf("shutdown-timeout", "must be positive, got %s", o.ShutdownTimeout))
	}
	return errors.Join(errs...)
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
