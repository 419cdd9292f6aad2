package gatewayapi

import (
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
