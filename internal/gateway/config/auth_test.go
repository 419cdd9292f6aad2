package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// withRoute returns minimal with extra YAML lines on its route.
func withRoute(lines string) string {
	return strings.Replace(minimal, "    backends: [{name: web}]", lines+"\n    backends: [{name: web}]", 1)
}

func TestAuthAndRateLimitValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty auth", withRoute("    auth: {}"), []string{"routes[0].auth: want at least one of apiKey, basic, jwt, forward"}},
		{"api key without file", withRoute("    auth: {apiKey: {header: X-Key}}"), []string{"routes[0].auth.apiKey.keysFile: required"}},
		{"api key bad header", withRoute("    auth: {apiKey: {keysFile: k, header: 'X Key'}}"), []string{`auth.apiKey.header: want a header name, got "X Key"`}},
		{"api key bad query", withRoute("    auth: {apiKey: {keysFile: k, query: 'a=b'}}"), []string{`auth.apiKey.query: want a query parameter name`}},
		{"basic realm quote", withRoute(`    auth: {basic: {htpasswdFile: h, realm: 'a"b'}}`), []string{"auth.basic.realm: must not contain quotes"}},
		{"jwt without keys", withRoute("    auth: {jwt: {issuer: x}}"), []string{"auth.jwt: want one of jwksFile or jwksURL"}},
		{"jwt both key sources", withRoute("    auth: {jwt: {jwksFile: a, jwksURL: 'https://idp/keys'}}"), []string{"jwksFile and jwksURL are exclusive"}},
		{"jwt bad url", withRoute("    auth: {jwt: {jwksURL: 'ftp://idp/keys'}}"), []string{`auth.jwt.jwksURL: want an https:// (or http://) URL, got "ftp://idp/keys"`}},
		{"jwt none", withRoute("    auth: {jwt: {jwksFile: a, algorithms: [none]}}"), []string{`auth.jwt.algorithms[0]: want one of RS256`}},
		{"jwt HS without secret", withRoute("    auth: {jwt: {jwksFile: a, algorithms: [HS256]}}"), []string{"auth.jwt.algorithms[0]: HS256 needs hmacSecretFile"}},
		{"jwt RS with only a secret", withRoute("    auth: {jwt: {hmacSecretFile: s, algorithms: [RS256]}}"), []string{"auth.jwt.algorithms[0]: RS256 needs jwksFile or jwksURL"}},
		{"jwt HMAC only is valid", withRoute("    auth: {jwt: {hmacSecretFile: s}}"), nil},
		{"jwt leeway", withRoute("    auth: {jwt: {jwksFile: a, leeway: 1h}}"), []string{"auth.jwt.leeway: want 0 up to 5m"}},
		{"jwt claim name", withRoute("    auth: {jwt: {jwksFile: a, claims: [{name: 'a..b'}]}}"), []string{"auth.jwt.claims[0].name"}},
		{"jwt forward header", withRoute("    auth: {jwt: {jwksFile: a, forwardClaims: {sub: 'X User'}}}"), []string{"auth.jwt.forwardClaims[sub]: want a header name"}},
		{"forward url", withRoute("    auth: {forward: {url: '/auth'}}"), []string{`auth.forward.url: want an http:// or https:// URL, got "/auth"`}},
		{"forward timeout", withRoute("    auth: {forward: {url: 'http://a/', timeout: 1m}}"), []string{"auth.forward.timeout: want 0 (default 2s) up to 30s"}},
		{"public with auth", withRoute("    public: true\n    auth: {apiKey: {keysFile: k}}"), []string{"routes[0].public: a public route has no auth"}},
		{"limit without requests", withRoute("    rateLimits: [{per: 1s}]"), []string{"routes[0].rateLimits[0].requests: want 1 or more, got 0"}},
		{"limit per fraction", withRoute("    rateLimits: [{requests: 1, per: 1500ms}]"), []string{"rateLimits[0].per: want whole seconds from 1s up to 24h"}},
		{"limit per too long", withRoute("    rateLimits: [{requests: 1, per: 48h}]"), []string{"rateLimits[0].per"}},
		{"limit bad source", withRoute("    rateLimits: [{requests: 1, key: {source: cookie}}]"), []string{`rateLimits[0].key.source: want "ip", "header", "apiKey", "claim" or "route", got "cookie"`}},
		{"limit header without name", withRoute("    rateLimits: [{requests: 1, key: {source: header}}]"), []string{"rateLimits[0].key.name: want the header name"}},
		{"limit api key without auth", withRoute("    rateLimits: [{requests: 1, key: {source: apiKey}}]"), []string{"rateLimits[0].key.source: apiKey needs the route's auth.apiKey"}},
		{"limit claim without jwt", withRoute("    rateLimits: [{requests: 1, key: {source: claim, name: sub}}]"), []string{"claim needs the route's auth.jwt"}},
		{"global without redis", withRoute("    rateLimits: [{requests: 1, scope: global}]"), []string{"rateLimits[0].scope: global needs the config's redis section"}},
		{"global too fine", "redis: {address: 'r:6379'}\n" + withRoute("    rateLimits: [{requests: 2000000, scope: global}]"), []string{"rateLimits[0].requests: a global limit counts in whole microseconds: at most 1000000 per 1s"}},
		{"bad scope", withRoute("    rateLimits: [{requests: 1, scope: cluster}]"), []string{`rateLimits[0].scope: want "local" or "global"`}},
		{"bad onError", withRoute("    rateLimits: [{requests: 1, onError: open}]"), []string{`rateLimits[0].onError: want "allow" or "deny", got "open"`}},
		{"duplicate limit names", withRoute("    rateLimits: [{name: a, requests: 1}, {name: a, requests: 2}]"), []string{`rateLimits[1].name: duplicate rate limit "a"`}},
		{"redis address", "redis: {address: redis}\n" + minimal, []string{`redis.address: want host:port, got "redis"`}},
		{"redis timeout", "redis: {address: 'r:6379', timeout: 1m}\n" + minimal, []string{"redis.timeout: want more than 0 up to 5s"}},
	} {
		t.Run(tc.name, func(t *testing.T) { parseWant(t, tc.yaml, tc.want) })
	}
}

func TestAuthDefaults(t *testing.T) {
	c := parseWant(t, `
apiVersion: flotilla.dev/v1alpha1
kind: Gateway
redis: {address: "127.0.0.1:6379"}
defaults:
  auth: {jwt: {jwksURL: "https://idp.example.com/keys"}}
  rateLimits: [{requests: 10}]
backends: [{name: web, addresses: ["127.0.0.1:8081"]}]
routes:
  - {name: api, backends: [{name: web}]}
  - {name: health, public: true, rateLimits: [], backends: [{name: web}]}
  - name: keys
    auth: {apiKey: {keysFile: keys.txt}}
    rateLimits: [{requests: 5, per: 1m, key: {source: apiKey}, scope: global}, {requests: 1}]
    backends: [{name: web}]
`, nil)
	api, health, keys := &c.Routes[0], &c.Routes[1], &c.Routes[2]
	if api.Auth != c.Defaults.Auth || api.Auth.JWT.Leeway != DefaultJWTLeeway || api.Auth.JWT.JWKSRefresh != DefaultJWKSRefresh ||
		!slices.Equal(api.Auth.JWT.Algorithms, AsymmetricJWTAlgorithms) {
		t.Errorf("api auth = %+v, want the defaults' with default leeway, refresh and asymmetric algorithms", api.Auth)
	}
	if l := api.RateLimits; len(l) != 1 || l[0].Name != "api" || l[0].Per != time.Second || l[0].Burst != 10 || l[0].Key.Source != KeyIP ||
		l[0].Scope != ScopeLocal || l[0].OnError != OnErrorAllow {
		t.Errorf("api rate limits = %+v, want the default one named after the route", l)
	}
	if health.Auth != nil || len(health.RateLimits) != 0 {
		t.Errorf("public route: auth %v, limits %v; want none", health.Auth, health.RateLimits)
	}
	if k := keys.Auth.APIKey; k.Header != DefaultAPIKeyHeader || k.ForwardHeader != DefaultAPIKeyForwardHeader {
		t.Errorf("apiKey defaults = %+v", k)
	}
	if l := keys.RateLimits; l[0].Name != "keys" || l[1].Name != "keys-1" || l[0].Burst != 5 {
		t.Errorf("names/burst = %q %q %d, want keys, keys-1, 5", l[0].Name, l[1].Name, l[0].Burst)
	}
	if c.Redis.Timeout != DefaultRedisTimeout || c.Redis.KeyPrefix != DefaultRedisKeyPrefix {
		t.Errorf("redis defaults = %+v", c.Redis)
	}
}

// TestAuthFilesRelative: secret files are relative to the config file
// and listed for the watcher.
func TestAuthFilesRelative(t *testing.T) {
	c, err := Load("../../../examples/gateway/auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := c.SecretFiles()
	if len(files) != 2 || !strings.HasSuffix(files[0], "examples/gateway/auth/api-keys.txt") || !strings.HasSuffix(files[1], "examples/gateway/auth/htpasswd") {
		t.Errorf("SecretFiles() = %q, want the example's key and htpasswd files, resolved", files)
	}
}
