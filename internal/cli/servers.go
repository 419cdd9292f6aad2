package cli

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// server is one HTTP server to run on its listener.
type server struct {
	srv   httpserver.Server
	ln    net.Listener
	opts  httpserver.Options
	drain func() // called when shutdown starts (readiness 503); may be nil
}

// streamDraining is a server whose Shutdown also ends the gateway's
// long-lived streams (WebSocket close frames, gRPC UNAVAILABLE), which
// the server's own Shutdown does not see or would wait for in vain, with
// the same deadline.
type streamDraining struct {
	httpserver.Server
	drain func(context.Context) error
}

func (s streamDraining) Shutdown(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.drain(ctx) }()
	err := s.Server.Shutdown(ctx)
	return errors.Join(err, <-errc)
}

// serveAll is how `flotilla gateway` and `flotilla up` start and stop
// their servers: entry (the public port) runs until ctx is done and
// drains; the others (admin API, the services behind the gateway) start
// first and outlive that drain, so requests in flight through the entry
// can finish and probes and metrics stay readable; they stop once the
// entry server has. It returns every server's error, joined.
func serveAll(ctx context.Context, entry server, others ...server) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(others))
	otherCtx, stopOthers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOthers()
	for _, s := range others {
		wg.Go(func() { errc <- httpserver.Serve(otherCtx, s.srv, s.ln, s.opts, s.drain) })
	}
	err := httpserver.Serve(ctx, entry.srv, entry.ln, entry.opts, entry.drain)
	stopOthers()
	wg.Wait()
	close(errc)
	errs := []error{err}
	for e := range errc {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}
