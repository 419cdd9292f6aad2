package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveui"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

// ErrPaused is what SetWeights returns for a paused route; the admin API
// answers it with 409.
var ErrPaused = fmt.Errorf("route paused (%w)", admin.ErrConflict)

// LiveView is the live view's collector: add timeline events with Event
// (discovery, Kubernetes), set what is known of an endpoint with
// SetInstance (its pod and version label).
func (g *Gateway) LiveView() *liveview.Collector { return g.live }

// LiveUI returns the live view page for the admin listener (pass it as
// admin.Options.UI): this gateway's snapshots, with controls that go
// through UpdateWeights and SetPaused unless readOnly. token is the admin
// API's (nil: the page answers on loopback only). Close it when the
// admin server starts draining: Shutdown waits for its event streams.
func (g *Gateway) LiveUI(token []byte, readOnly bool) *liveui.UI {
	return g.LiveUIWith(g, token, readOnly)
}

// LiveUIWith is LiveUI showing src's snapshots: on Kubernetes a
// livepeers.Merger, this gateway's merged with its peer replicas'.
func (g *Gateway) LiveUIWith(src liveui.Source, token []byte, readOnly bool) *liveui.UI {
	o := liveui.Options{Source: src, Token: token, Logger: g.log.With("component", "liveview")}
	if !readOnly {
		o.Controls = pageControls{g}
	}
	return liveui.New(o)
}

// pageControls are the page's buttons: weights go where the admin API's
// PUT puts them (UpdateWeights: through the HTTPRoute on Kubernetes, so
// every replica follows); pause holds this process's weights, so it is
// refused where weights live in the Kubernetes API.
type pageControls struct{ *Gateway }

func (c pageControls) SetPaused(route string, paused bool) error {
	if c.weightWriter.Load() != nil {
		return fmt.Errorf("%w: weights are kept in the Kubernetes API, where every replica reads them; pause is for the file config", admin.ErrConflict)
	}
	return c.Gateway.SetPaused(route, paused)
}

var (
	_ liveui.Source   = (*Gateway)(nil)
	_ liveui.Controls = pageControls{}
)

// LiveSnapshot is this gateway's live view now: routes with a traffic
// split, their versions and instances, as of the last one-second tick.
func (g *Gateway) LiveSnapshot() *liveview.Snapshot {
	return g.live.Snapshot(g.replica(), g.routeInputs())
}

func (g *Gateway) replica() string {
	if g.opts.Replica != "" {
		return g.opts.Replica
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "gateway"
}

// startLive starts the one-second tick that samples the statistics into
// their history and records endpoint changes in the timeline; Close
// stops it.
func (g *Gateway) startLive() {
	ctx, cancel := context.WithCancel(context.Background())
	g.liveStop, g.liveDone = cancel, make(chan struct{})
	go func() {
		defer close(g.liveDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				g.live.Tick(now, g.routeInputs())
			}
		}
	}()
}

func (g *Gateway) stopLive() {
	if g.liveStop != nil {
		g.liveStop()
		<-g.liveDone
	}
}

// routeInputs describes the routes with a traffic split for the live
// view, in match order.
func (g *Gateway) routeInputs() []liveview.RouteInput {
	st := g.state.Load()
	if st == nil {
		return nil
	}
	paused := *g.paused.Load() // no g.mu: Close holds it while it stops the tick
	now := time.Now()
	var out []liveview.RouteInput
	for _, rs := range st.routes {
		split := rs.rt.Split
		if len(split.Names) == 0 {
			continue
		}
		ri := liveview.RouteInput{Name: rs.rt.Name, Paused: paused[rs.rt.Name]}
		for i, name := range split.Names {
			bi := liveview.BackendInput{Name: name, Weight: split.Weights[i], Recorder: rs.live[i]}
			for _, e := range rs.pools[i].Snapshot() {
				ei := liveview.EndpointInput{Address: e.Addr, Healthy: e.Healthy, Ejected: e.EjectedUntil.After(now), Draining: e.Draining, InFlight: e.InFlight}
				if !e.Healthy { // a passing check keeps the last failure's error: not news
					ei.LastError = e.LastError
				}
				bi.Endpoints = append(bi.Endpoints, ei)
			}
			ri.Backends = append(ri.Backends, bi)
		}
		out = append(out, ri)
	}
	return out
}

// SetPaused pauses or resumes a route. While paused its live weights are
// held: SetWeights (the admin API, the live view's controls) refuses to
// change them with ErrPaused, and a config reload keeps them in place of
// the file's (the rest of the file applies). Resuming does not reload:
// the held weights stay until the next weight change or reload.
func (g *Gateway) SetPaused(routeName string, paused bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway closed")
	}
	if g.state.Load().table.Route(routeName) == nil {
		return fmt.Errorf("%w: %q", ErrNoRoute, routeName)
	}
	cur := *g.paused.Load()
	if cur[routeName] == paused {
		return nil
	}
	next := maps.Clone(cur)
	kind, verb := liveview.KindResumed, "resumed"
	if paused {
		next[routeName] = true
		kind, verb = liveview.KindPaused, "paused: weights held at "+describeWeights(g.state.Load(), routeName)
	} else {
		delete(next, routeName)
	}
	g.paused.Store(&next)
	g.log.Info("route "+verb, "route", routeName)
	g.live.Event(liveview.Event{Kind: kind, Service: routeName, Message: routeName + " " + verb})
	return nil
}

// Paused reports whether a route's weights are held (SetPaused).
func (g *Gateway) Paused(routeName string) bool { return (*g.paused.Load())[routeName] }

// holdPaused returns cfg with the live weights of paused routes in place
// of its own, for the backends both still have; cfg is not changed.
// g.mu is held.
func (g *Gateway) holdPaused(cfg *config.Config) *config.Config {
	st, paused := g.state.Load(), *g.paused.Load()
	if len(paused) == 0 || st == nil {
		return cfg
	}
	next := *cfg
	next.Routes = slices.Clone(cfg.Routes)
	for i := range next.Routes {
		rc := &next.Routes[i]
		if !paused[rc.Name] {
			continue
		}
		rt := st.table.Route(rc.Name)
		if rt == nil {
			continue
		}
		rc.Backends = slices.Clone(rc.Backends)
		for j := range rc.Backends {
			if k := slices.Index(rt.Split.Names, rc.Backends[j].Name); k >= 0 {
				w := rt.Split.Weights[k]
				rc.Backends[j].Weight = &w
			}
		}
	}
	return &next
}

// forgetPaused drops the pause of routes cfg no longer has. g.mu is held.
func (g *Gateway) forgetPaused(cfg *config.Config) {
	next := maps.Clone(*g.paused.Load())
	maps.DeleteFunc(next, func(name string, _ bool) bool {
		return !slices.ContainsFunc(cfg.Routes, func(r config.Route) bool { return r.Name == name })
	})
	g.paused.Store(&next)
}

// describeWeights writes a route's live weights as "blue 0, green 100".
func describeWeights(st *state, routeName string) string {
	rt := st.table.Route(routeName)
	if rt == nil {
		return ""
	}
	var parts []string
	for i, n := range rt.Split.Names {
		parts = append(parts, fmt.Sprintf("%s %d", n, rt.Split.Weights[i]))
	}
	return strings.Join(parts, ", ")
}
