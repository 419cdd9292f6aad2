package gateway

import (
	"context"
	"slices"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

var _ admin.WeightWriter = (*Gateway)(nil)

// SetWeightWriter installs where UpdateWeights writes: on Kubernetes the
// Gateway API write-through (package gatewayapi/weights), which falls back
// to UpdateWeightsLocal for routes of the config file. nil restores the
// default, this gateway's table for every route.
func (g *Gateway) SetWeightWriter(w admin.WeightWriter) {
	if w == nil {
		g.weightWriter.Store(nil)
		return
	}
	g.weightWriter.Store(&w)
}

// UpdateWeights changes a route's weights where they are kept (see
// admin.WeightWriter): through the writer SetWeightWriter installed, else
// in this gateway's table (UpdateWeightsLocal). It is what the admin API's
// PUT /routes/{name}/weights and the live view's controls call.
func (g *Gateway) UpdateWeights(ctx context.Context, route string, next admin.NextWeights) (admin.Written, error) {
	if p := g.weightWriter.Load(); p != nil {
		return (*p).UpdateWeights(ctx, route, next)
	}
	return g.UpdateWeightsLocal(route, next)
}

// UpdateWeightsLocal is UpdateWeights on this gateway's table (SetWeights),
// one update at a time so that none computes on weights another is about
// to replace; answered with the route's live weights, written "local".
func (g *Gateway) UpdateWeightsLocal(route string, next admin.NextWeights) (admin.Written, error) {
	g.updateMu.Lock()
	defer g.updateMu.Unlock()
	cur, err := g.Weights(route)
	if err != nil {
		return admin.Written{}, err
	}
	w, err := next(cur)
	if err != nil {
		return admin.Written{}, err
	}
	if err := g.SetWeights(route, w); err != nil {
		return admin.Written{}, err
	}
	if cur, err = g.Weights(route); err != nil {
		return admin.Written{}, err
	}
	return admin.Written{Where: "local", Weights: cur}, nil
}

// RouteOfPart reports whether the route named route came from the extra
// config part (SetExtraPart) named part, as applied last: where a route
// came from, whatever its name.
func (g *Gateway) RouteOfPart(part, route string) bool {
	g.partsMu.Lock()
	defer g.partsMu.Unlock()
	x := g.parts[part]
	return x != nil && slices.ContainsFunc(x.Routes, func(r config.Route) bool { return r.Name == route })
}
