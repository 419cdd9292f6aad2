package gateway

import (
	"net/http"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// AdminHandler is the admin API (see package admin). Serve it on its own
// listener, loopback by default: it can change live weights.
func (g *Gateway) AdminHandler() http.Handler {
	return admin.Handler(adminView{g}, &g.probes, g.opts.Registry)
}

// adminView adapts Gateway to admin.Gateway.
type adminView struct{ *Gateway }

var (
	_ admin.Gateway    = adminView{}
	_ admin.LiveSource = adminView{}
)

// RouteInfo is one route as the admin API shows it.
type RouteInfo struct {
	Name      string           `json:"name"`
	Match     config.Match     `json:"match"`
	Rewrite   *config.Rewrite  `json:"rewrite,omitempty"`
	Redirect  *config.Redirect `json:"redirect,omitempty"`
	Weights   map[string]int   `json:"weights,omitempty"`
	Mirror    *config.Mirror   `json:"mirror,omitempty"`
	Mirrors   []config.Mirror  `json:"mirrors,omitempty"`
	Sticky    *config.Sticky   `json:"sticky,omitempty"`
	TimeoutMS int64            `json:"timeoutMs"`
	Retries   *config.Retries  `json:"retries,omitempty"`
}

func (v adminView) Routes() any {
	st := v.state.Load()
	out := []RouteInfo{}
	for _, rs := range st.routes {
		c := rs.rt.Config
		ri := RouteInfo{Name: c.Name, Match: c.Match, Rewrite: c.Rewrite, Redirect: c.Redirect, Mirror: c.Mirror, Mirrors: c.Mirrors, Sticky: c.Sticky,
			TimeoutMS: c.Timeout.Milliseconds(), Retries: c.Retries}
		if split := rs.rt.Split; len(split.Names) > 0 {
			ri.Weights = map[string]int{}
			for i, n := range split.Names {
				ri.Weights[n] = split.Weights[i]
			}
		}
		out = append(out, ri)
	}
	return out
}

// BackendInfo is one backend as the admin API shows it.
type BackendInfo struct {
	Name      string   `json:"name"`
	Policy    string   `json:"policy"`
	Protocol  string   `json:"protocol"`
	Addresses []string `json:"addresses"`
	// Kubernetes is the Service the endpoints come from, for backends
	// with kubernetes discovery.
	Kubernetes *config.KubernetesService `json:"kubernetes,omitempty"`
	Endpoints  []backend.EndpointState   `json:"endpoints"`
}

func (v adminView) Backends() any {
	st := v.state.Load()
	out := []BackendInfo{}
	for _, b := range st.cfg.Backends {
		p := st.pools[b.Name]
		out = append(out, BackendInfo{Name: b.Name, Policy: b.Balance.Policy, Protocol: b.Protocol, Addresses: b.Addresses, Kubernetes: b.Kubernetes, Endpoints: p.Snapshot()})
	}
	return out
}

func (v adminView) ConfigStatus() any { return v.Status() }

func (v adminView) Table() string { return v.state.Load().table.Describe() }
