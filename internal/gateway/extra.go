package gateway

import (
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
	if len(x.Certificates) > 0 {
		var t config.TLS
		if base.TLS != nil {
			t = *base.TLS
		}
		t.Certificates = append(slices.Clone(t.Certificates), x.Certificates...)
		c.TLS = &t
	}
	return &c
}
