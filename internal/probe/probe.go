// Package probe serves the liveness and readiness endpoints every Flotilla
// service exposes, and holds the state behind them.
package probe

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// Check reports whether a dependency is usable. It must honour ctx.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Probes is the liveness and readiness state of one service. The zero value
// is live and ready. It is safe for concurrent use.
type Probes struct {
	// Timeout bounds each readiness check (default 1s).
	Timeout time.Duration

	checks   []Check
	draining atomic.Bool
	disabled atomic.Bool
	notLive  atomic.Bool
	notReady atomic.Bool
}

// AddCheck adds a readiness check. Call before serving.
func (p *Probes) AddCheck(name string, fn func(ctx context.Context) error) {
	p.checks = append(p.checks, Check{Name: name, Fn: fn})
}

// Drain makes readiness fail for good: the process is shutting down.
func (p *Probes) Drain() { p.draining.Store(true) }

// SetEnabled switches readiness on or off at run time (the demo's
// /readyz/enable and /readyz/disable).
func (p *Probes) SetEnabled(on bool) { p.disabled.Store(!on) }

// SetStarting marks the process as not yet live and/or not yet ready; the
// demo uses it to delay its probes.
func (p *Probes) SetStarting(live, ready bool) {
	p.notLive.Store(!live)
	p.notReady.Store(!ready)
}

// Ready returns nil when the service should receive traffic, else why not.
func (p *Probes) Ready(ctx context.Context) error {
	switch {
	case p.draining.Load():
		return fmt.Errorf("shutting down")
	case p.disabled.Load():
		return fmt.Errorf("readiness disabled by request")
	case p.notReady.Load():
		return fmt.Errorf("starting")
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, c := range p.checks {
		if err := c.Fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	return nil
}

// Healthz answers 200 while the process is live.
func (p *Probes) Healthz(w http.ResponseWriter, _ *http.Request) {
	noStore(w)
	if p.notLive.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// Readyz answers 200 when Ready is nil, else 503 with the reason.
func (p *Probes) Readyz(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if err := p.Ready(r.Context()); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func noStore(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }
