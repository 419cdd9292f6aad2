package gatewayapi

import (
	"fmt"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// corsPolicy maps an HTTPRoute CORS filter onto the gateway's per-route
// CORS policy (config.CORS, docs/gateway.md "IP rules and CORS"). The
// filter's "*" in allowOrigins, allowMethods and allowHeaders with
// allowCredentials must be answered with the request's own values, never
// "*": that is config.CORS.ReflectWildcards, set only then (without
// credentials "*" answers "*", which the spec allows and caches better).
// nil when no origin is allowed: no cross-origin request can succeed, so
// there is nothing to answer.
func corsPolicy(f *gwv1.HTTPCORSFilter) *config.CORS {
	if len(f.AllowOrigins) == 0 {
		return nil
	}
	c := &config.CORS{}
	for _, o := range f.AllowOrigins {
		c.AllowOrigins = append(c.AllowOrigins, string(o))
	}
	for _, m := range f.AllowMethods {
		c.AllowMethods = append(c.AllowMethods, string(m))
	}
	for _, h := range f.AllowHeaders {
		c.AllowHeaders = append(c.AllowHeaders, string(h))
	}
	for _, h := range f.ExposeHeaders {
		c.ExposeHeaders = append(c.ExposeHeaders, string(h))
	}
	c.AllowCredentials = f.AllowCredentials != nil && *f.AllowCredentials
	c.ReflectWildcards = c.AllowCredentials
	if f.MaxAge > 0 {
		c.MaxAge = time.Duration(f.MaxAge) * time.Second
	}
	return c
}

// retryPolicy sets the route's retry policy from the rule's retry and
// its per-try timeout from timeouts.backendRequest; a non-empty result
// says which value is invalid (the route is then not Accepted).
//
// retry.attempts are retries after the first try, as the gateway's
// (default 2 when unset, the gateway's own default; at most 10, else the
// translated config is invalid); codes are retried for idempotent
// requests without a body (500..599); a failed connect is retried for
// any request. backoff is the least wait before a retry (MinBackoff) and
// the base of the gateway's jittered exponential backoff on top of it.
// The retry budget is 1, every request may retry: Gateway API has no
// budget, and the attempts asked for are what the spec requires.
// Without retry the gateway's default retry policy applies.
func retryPolicy(rc *config.Route, rule gwv1.HTTPRouteRule, field string) string {
	if to := rule.Timeouts; to != nil && to.BackendRequest != nil {
		d, err := parseDuration(string(*to.BackendRequest))
		if err != nil {
			return fmt.Sprintf("%s.timeouts.backendRequest: %v", field, err)
		}
		rc.TryTimeout = d // 0s: none, as the spec asks
	}
	rr := rule.Retry
	if rr == nil {
		return ""
	}
	all := 1.0
	p := &config.Retries{Attempts: 2, Budget: &all}
	if rr.Attempts != nil {
		p.Attempts = *rr.Attempts
	}
	for _, c := range rr.Codes {
		p.RetryOn = append(p.RetryOn, int(c))
	}
	if rr.Backoff != nil {
		d, err := parseDuration(string(*rr.Backoff))
		if err != nil {
			return fmt.Sprintf("%s.retry.backoff: %v", field, err)
		}
		p.Backoff, p.MinBackoff = d, d
	}
	rc.Retries = p
	return ""
}

// backendFilters maps a backendRef's filters onto that backend's own
// request header edits (config.BackendRef.RequestHeaders, applied after
// the rule's once the split chose the backend). Only
// RequestHeaderModifier is supported there; any other filter is why the
// rule must answer 500 (non-empty result), as the spec asks of a filter
// that cannot be honoured.
func backendFilters(fs []gwv1.HTTPRouteFilter, field string) (*config.HeaderOps, string) {
	var ops *config.HeaderOps
	for j, f := range fs {
		ff := fmt.Sprintf("%s.filters[%d]", field, j)
		switch {
		case f.Type != gwv1.HTTPRouteFilterRequestHeaderModifier:
			return nil, fmt.Sprintf("%s: filter type %s is not supported on a backendRef (RequestHeaderModifier is)", ff, f.Type)
		case f.RequestHeaderModifier == nil:
			return nil, ff + ": requestHeaderModifier is required"
		case ops != nil:
			return nil, ff + ": one RequestHeaderModifier per backendRef"
		}
		ops = headerOps(f.RequestHeaderModifier)
	}
	return ops, ""
}

// parametersRef says why g's spec.infrastructure.parametersRef cannot be
// honoured: the gateway takes no implementation-specific parameters, so
// any reference is one it cannot resolve (the spec: Accepted False,
// InvalidParameters). spec.infrastructure labels and annotations are the
// controller's to put on the Gateway's Service (controller/services.go).
func parametersRef(g *gwv1.Gateway) string {
	inf := g.Spec.Infrastructure
	if inf == nil || inf.ParametersRef == nil {
		return ""
	}
	p := inf.ParametersRef
	return fmt.Sprintf("spec.infrastructure.parametersRef: %s %q in group %q is not supported: the gateway takes no parameters", p.Kind, p.Name, p.Group)
}
