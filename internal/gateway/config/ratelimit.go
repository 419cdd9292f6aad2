package config

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// RateLimit caps how often one client (by Key) may use a route:
// Requests per Per, evenly spaced, with up to Burst at once (the
// generic cell rate algorithm: a token bucket of Burst tokens refilled at
// Requests/Per). A refused request gets 429 with Retry-After and the
// RateLimit / RateLimit-Policy fields of the IETF httpapi draft; every
// admitted one gets them too.
type RateLimit struct {
	// Name identifies the limit in RateLimit-Policy, metrics and logs
	// (default: the route's name, with "-<index>" after the first).
	Name string `yaml:"name" json:"name,omitempty"`
	// Requests is how many requests a key may make per Per. Required.
	Requests int `yaml:"requests" json:"requests"`
	// Per is the period: 1s, 1m, 1h, … (default 1s; 1s up to 24h).
	Per time.Duration `yaml:"per" json:"per,omitempty"`
	// Burst is how many requests may arrive at once before the spacing
	// applies (default: Requests).
	Burst int `yaml:"burst" json:"burst,omitempty"`
	// Key is what is limited (default: the client address).
	Key RateLimitKey `yaml:"key" json:"key"`
	// Scope is "local" (each gateway replica counts alone; no shared
	// state) or "global" (every replica shares one count in the Redis of
	// the config's redis section: exact for the fleet). Default local.
	Scope string `yaml:"scope" json:"scope,omitempty"`
	// OnError is what a global limit does when Redis cannot answer in
	// redis.timeout: "allow" (fail open, the default: an outage of the
	// limiter is not an outage of the API) or "deny" (fail closed, 503).
	// Either way a metric counts it and a log line says it.
	OnError string `yaml:"onError" json:"onError,omitempty"`
}

// RateLimitKey is what a rate limit counts by.
type RateLimitKey struct {
	// Source is "ip" (the client address, default), "header" (the value
	// of header Name; requests without it share one count), "apiKey" (the
	// API key's name: the route needs auth.apiKey), "claim" (JWT claim
	// Name: the route needs auth.jwt) or "route" (one count for everyone).
	Source string `yaml:"source" json:"source,omitempty"`
	// Name is the header or claim, for those sources.
	Name string `yaml:"name" json:"name,omitempty"`
}

// Rate limit scopes, key sources and error modes.
const (
	ScopeLocal  = "local"
	ScopeGlobal = "global"

	KeyIP     = "ip"
	KeyHeader = "header"
	KeyAPIKey = "apiKey"
	KeyClaim  = "claim"
	KeyRoute  = "route"

	OnErrorAllow = "allow"
	OnErrorDeny  = "deny"
)

// Redis is the store global rate limits share.
type Redis struct {
	// Address is host:port. Required.
	Address string `yaml:"address" json:"address"`
	// Username for Redis ACLs (default: none, the default user).
	Username string `yaml:"username" json:"username,omitempty"`
	// PasswordFile holds the password (default: none).
	PasswordFile string `yaml:"passwordFile" json:"passwordFile,omitempty"`
	// DB is the database number (default 0).
	DB int `yaml:"db" json:"db,omitempty"`
	// Timeout bounds one decision, after which the limit's OnError applies
	// (default 50ms).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// KeyPrefix starts every key the gateway writes (default
	// "flotilla:ratelimit:").
	KeyPrefix string `yaml:"keyPrefix" json:"keyPrefix,omitempty"`
}

// Redis defaults.
const (
	DefaultRedisTimeout   = 50 * time.Millisecond
	DefaultRedisKeyPrefix = "flotilla:ratelimit:"
)

func (r *Redis) setDefaults() {
	if r.Timeout == 0 {
		r.Timeout = DefaultRedisTimeout
	}
	if r.KeyPrefix == "" {
		r.KeyPrefix = DefaultRedisKeyPrefix
	}
}

func (r *Redis) validate(p *problems, path string) {
	host, port, err := net.SplitHostPort(r.Address)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		p.addf(path+".address", "want host:port, got %q", r.Address)
	}
	if r.DB < 0 || r.DB > 15 {
		p.addf(path+".db", "want 0..15, got %d", r.DB)
	}
	if r.Timeout <= 0 || r.Timeout > 5*time.Second {
		p.addf(path+".timeout", "want more than 0 up to 5s, got %s", r.Timeout)
	}
}

// setDefaults fills l's defaults; i is its index on route.
func (l *RateLimit) setDefaults(route string, i int) {
	if l.Name == "" {
		l.Name = route
		if i > 0 {
			l.Name = fmt.Sprintf("%s-%d", route, i)
		}
	}
	if l.Per == 0 {
		l.Per = time.Second
	}
	if l.Burst == 0 {
		l.Burst = l.Requests
	}
	if l.Key.Source == "" {
		l.Key.Source = KeyIP
	}
	if l.Scope == "" {
		l.Scope = ScopeLocal
	}
	if l.OnError == "" {
		l.OnError = OnErrorAllow
	}
}

func (l *RateLimit) validate(p *problems, path string, r *Route, c *Config) {
	if !validToken(l.Name) {
		p.addf(path+".name", "want a token (letters, digits, -, _, .), got %q", l.Name)
	}
	if l.Requests < 1 || l.Requests > 1_000_000_000 {
		p.addf(path+".requests", "want 1 or more, got %d", l.Requests)
	}
	if l.Per < time.Second || l.Per > 24*time.Hour || l.Per%time.Second != 0 {
		p.addf(path+".per", "want whole seconds from 1s up to 24h, got %s", l.Per)
	}
	if l.Burst < 1 || l.Burst > 1_000_000_000 {
		p.addf(path+".burst", "want 1 or more, got %d", l.Burst)
	}
	switch l.Key.Source {
	case KeyIP, KeyRoute:
		if l.Key.Name != "" {
			p.addf(path+".key.name", "not used with source %q", l.Key.Source)
		}
	case KeyHeader:
		if !validToken(l.Key.Name) {
			p.addf(path+".key.name", "want the header name, got %q", l.Key.Name)
		}
	case KeyAPIKey:
		if r.Auth == nil || r.Auth.APIKey == nil {
			p.addf(path+".key.source", "apiKey needs the route's auth.apiKey")
		}
	case KeyClaim:
		if l.Key.Name == "" {
			p.addf(path+".key.name", "want the claim name")
		}
		if r.Auth == nil || r.Auth.JWT == nil {
			p.addf(path+".key.source", "claim needs the route's auth.jwt")
		}
	default:
		p.addf(path+".key.source", `want "ip", "header", "apiKey", "claim" or "route", got %q`, l.Key.Source)
	}
	switch l.Scope {
	case ScopeLocal:
	case ScopeGlobal:
		if c.Redis == nil {
			p.addf(path+".scope", "global needs the config's redis section")
		}
		if l.Per >= time.Second && int64(l.Requests) > int64(l.Per/time.Microsecond) {
			p.addf(path+".requests", "a global limit counts in whole microseconds: at most %d per %s", int64(l.Per/time.Microsecond), l.Per)
		}
	default:
		p.addf(path+".scope", `want "local" or "global", got %q`, l.Scope)
	}
	if l.OnError != OnErrorAllow && l.OnError != OnErrorDeny {
		p.addf(path+".onError", `want "allow" or "deny", got %q`, l.OnError)
	}
}
