package admin

import (
	"context"
)

// WeightWriter changes a route's weights where they are kept: in the
// gateway's own table for routes of the config file, or, on Kubernetes,
// in the HTTPRoute a route was translated from (package
// gatewayapi/weights), so that every replica follows and the weights
// survive a restart. PUT /routes/{name}/weights calls it when the
// Gateway implements it; the live view's controls call the same.
//
// UpdateWeights reads the route's weights where they are kept, calls next
// with them and writes what next returns: some of the route's backends,
// the others keep theirs. A change relative to the current weights (a
// canary's step, a flip) is computed on what is written, not on a copy
// that may lag it: on Kubernetes next runs again on the fresh weights
// after a conflict, so two writers at once both count.
//
// Errors wrapping ErrNotFound mean no such route (404), ErrInvalid a
// backend the route does not have or a weight out of range (422); an
// error of next is returned as it is.
type WeightWriter interface {
	UpdateWeights(ctx context.Context, route string, next NextWeights) (Written, error)
}

// NextWeights computes the weights to write from a route's current ones
// (backend name → weight, on the gateway's 0..100 scale).
type NextWeights func(cur map[string]int) (map[string]int, error)

// Set is the NextWeights that writes w whatever the current weights.
func Set(w map[string]int) NextWeights {
	return func(map[string]int) (map[string]int, error) { return w, nil }
}

// Written says where UpdateWeights wrote.
type Written struct {
	// Where names the place: "local" (this replica's table, until the
	// next reload), or "HTTPRoute <namespace>/<name> spec.rules[<i>]
	// resourceVersion <rv>". The admin API sends it as the header
	// WrittenToHeader.
	Where string `json:"where"`
	// Weights are the route's weights by backend name after the write:
	// the live ones for a local write; as written to the HTTPRoute rule
	// (every replica applies them when its watch sees the change, and
	// scales them into 0..100 keeping their ratio) for an API write.
	Weights map[string]int `json:"weights"`
}

// WrittenToHeader is the response header of PUT /routes/{name}/weights
// that carries Written.Where.
const WrittenToHeader = "Flotilla-Written-To"
