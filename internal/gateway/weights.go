package gateway

import (
	"context"
	"slices"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

var _ admin.WeightWriter = (*Gateway)(nil)

// SetWeightWriter installs where WriteWeights writes: on Kubernetes the
// Gateway API write-through (package gatewayapi/weights), which falls back
// to SetWeights for routes of the config file. nil restores the default,
// SetWeights for every route.
func (g *Gateway) SetWeightWriter(w admin.WeightWriter) {
	if w == nil {
		g.weightWriter.Store(nil)
		return
	}
	g.weightWriter.Store(&w)
}

// WriteWeights sets some of a route's weights where they are kept (see
// admin.WeightWriter): through the writer SetWeightWriter installed, else
// in this gateway's table (WriteWeightsLocal). It is what the admin API's
// PUT /routes/{name}/weights and the admin page's controls call.
func (g *Gateway) WriteWeights(ctx context.Context, route string, w map[string]int) (admin.Written, error) {
	if p := g.weightWriter.Load(); p != nil {
		return (*p).WriteWeights(ctx, route, w)
	}
	return g.WriteWeightsLocal(route, w)
}

// WriteWeightsLocal is SetWeights answered as a WriteWeights: the route's
// live weights after the swap, written "local".
func (g *Gateway) WriteWeightsLocal(route string, w map[string]int) (admin.Written, error) {
	if err := g.SetWeights(route, w); err != nil {
		return admin.Written{}, err
	}
	ws, err := g.Weights(route)
	if err != nil {
		return admin.Written{}, err
	}
	return admin.Written{Where: "local", Weights: ws}, nil
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
