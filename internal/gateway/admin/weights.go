package admin

import (
	"context"
)

// WeightWriter sets some of a route's weights where they are kept: in the
// gateway's own table for routes of the config file, or, on Kubernetes,
// in the HTTPRoute a route was translated from (package
// gatewayapi/weights), so that every replica follows and the weights
// survive a restart. PUT /routes/{name}/weights calls it when the
// Gateway implements it; the admin web page's controls call the same.
//
// Errors wrapping ErrNotFound mean no such route (404), ErrInvalid a
// backend the route does not have or a weight out of range (422).
type WeightWriter interface {
	WriteWeights(ctx context.Context, route string, w map[string]int) (Written, error)
}

// Written says where WriteWeights wrote.
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
