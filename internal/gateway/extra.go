package gateway

import (
	"maps"
	"slices"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Extra is routing config computed outside the config file, such as the
// Ingress controller's translation of Ingress objects. It is merged into
// every load after the file's own: the file's backends and routes first
// (a route of the file wins an exact precedence tie), then Extra's; its
// certificates after the file's (the file's first certificate stays the
// default one). Names must not collide with the file's: a collision fails
// the load like any invalid config. An Extra must not be changed once
// passed to SetExtra.
type Extra struct {
	Backends     []config.Backend
	Routes       []config.Route
	Certificates []config.Certificate
	// TLSPorts are appended to tls.ports (client certificates and
	// listener host names by local port).
	TLSPorts []config.TLSPort
}

// SetExtra replaces the extra config and reloads through the validated
// path: the config file is read again (Options.ConfigPath), or the last
// config given to Reload or New is used. On error nothing changes, the
// last good config keeps serving, and the error is returned and recorded
// (metric, Status). A nil x removes the extra config.
func (g *Gateway) SetExtra(x *Extra) error {
	g.extra.Store(x)
	if g.opts.ConfigPath != "" {
		return g.reloadFile(nil)
	}
	return g.load("memory", func() (*config.Config, error) { return g.base, nil })
}

// SetExtraPart sets one named part of the extra config and applies the
// concatenation of every part (by part name) through SetExtra: the Ingress
// controller and the Gateway API controller each own a part, so neither
// replaces the other's routes. A nil x removes the part. On error the
// part keeps its last good value, so one part's bad config never blocks
// the other's updates.
func (g *Gateway) SetExtraPart(part string, x *Extra) error {
	g.partsMu.Lock()
	defer g.partsMu.Unlock()
	if g.parts == nil {
		g.parts = map[string]*Extra{}
	}
	old, had := g.parts[part]
	if err := g.applyParts(part, x); err != nil {
		if had {
			g.parts[part] = old
		} else {
			delete(g.parts, part)
		}
		return err
	}
	return nil
}

func (g *Gateway) applyParts(part string, x *Extra) error {
	if x == nil {
		delete(g.parts, part)
	} else {
		g.parts[part] = x
	}
	if len(g.parts) == 0 {
		return g.SetExtra(nil)
	}
	all := &Extra{}
	for _, name := range slices.Sorted(maps.Keys(g.parts)) {
		p := g.parts[name]
		all.Backends = append(all.Backends, p.Backends...)
		all.Routes = append(all.Routes, p.Routes...)
		all.Certificates = append(all.Certificates, p.Certificates...)
		all.TLSPorts = append(all.TLSPorts, p.TLSPorts...)
	}
	return g.SetExtra(all)
}

// withExtra returns base merged with the extra config, or base itself when
// there is none. base is not changed.
func (g *Gateway) withExtra(base *config.Config) *config.Config {
	x := g.extra.Load()
	if x == nil || base == nil {
		return base
	}
	c := *base
	c.Backends = append(slices.Clone(base.Backends), x.Backends...)
	c.Routes = append(slices.Clone(base.Routes), x.Routes...)
	if len(x.Certificates) > 0 || len(x.TLSPorts) > 0 {
		var t config.TLS
		if base.TLS != nil {
			t = *base.TLS
		}
		t.Certificates = append(slices.Clone(t.Certificates), x.Certificates...)
		t.Ports = append(slices.Clone(t.Ports), x.TLSPorts...)
		c.TLS = &t
	}
	return &c
}
