package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Auth is who may pass a route: every configured method must accept the
// request (API key, then basic, then JWT, then the external service),
// else the gateway answers 401 (no or bad credential, with
// WWW-Authenticate) or 403 (a valid credential that may not do this), and
// nothing reaches a backend. The credentials a method read are removed
// from the request sent upstream unless PassCredentials is set; the
// principal (key name, user, token subject) is logged and can be
// forwarded.
type Auth struct {
	// APIKey accepts requests carrying one of a set of keys.
	APIKey *APIKeyAuth `yaml:"apiKey" json:"apiKey,omitempty"`
	// Basic accepts HTTP basic authentication against an htpasswd file.
	Basic *BasicAuth `yaml:"basic" json:"basic,omitempty"`
	// JWT accepts bearer JSON Web Tokens signed by a trusted key.
	JWT *JWTAuth `yaml:"jwt" json:"jwt,omitempty"`
	// Forward asks an external authorization service about each request
	// (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz over HTTP).
	Forward *ForwardAuth `yaml:"forward" json:"forward,omitempty"`
	// PassCredentials sends the credentials upstream as the client sent
	// them (default false: the API key header or parameter and the
	// Authorization header are removed).
	PassCredentials bool `yaml:"passCredentials" json:"passCredentials,omitempty"`
}

// APIKeyAuth accepts requests with a known API key. Keys are kept only as
// SHA-256 digests and compared in constant time.
type APIKeyAuth struct {
	// KeysFile holds the keys: either a file of "name:key" lines (blank
	// lines and "#" comments ignored; "name:sha256:<64 hex>" gives a key by
	// its digest), or a directory, one file per key named after it, as a
	// mounted Kubernetes Secret is. Required. Reloaded when it changes.
	KeysFile string `yaml:"keysFile" json:"keysFile"`
	// Header carries the key (default "X-API-Key").
	Header string `yaml:"header" json:"header,omitempty"`
	// Query, when set, is a query parameter that may carry the key
	// instead (keys in URLs end up in logs and histories: prefer the
	// header).
	Query string `yaml:"query" json:"query,omitempty"`
	// ForwardHeader is the request header that tells the upstream the
	// key's name (default "X-Api-Key-Name"; "-" sends none).
	ForwardHeader string `yaml:"forwardHeader" json:"forwardHeader,omitempty"`
}

// BasicAuth accepts HTTP basic authentication (RFC 7617) against an
// htpasswd file.
type BasicAuth struct {
	// HtpasswdFile holds "user:hash" lines: bcrypt ($2y$, $2a$, $2b$),
	// and, with a warning in the log, the apr1 MD5 ($apr1$) and SHA-1
	// ({SHA}) forms that ingress-nginx auth-secret files hold. Required.
	// Reloaded when it changes.
	HtpasswdFile string `yaml:"htpasswdFile" json:"htpasswdFile"`
	// Realm is the WWW-Authenticate realm (default "flotilla").
	Realm string `yaml:"realm" json:"realm,omitempty"`
	// ForwardHeader is the request header that tells the upstream the
	// user's name (default "X-Auth-User"; "-" sends none).
	ForwardHeader string `yaml:"forwardHeader" json:"forwardHeader,omitempty"`
}

// JWTAuth accepts requests with a valid JSON Web Token (RFC 7519) in
// "Authorization: Bearer" (RFC 6750).
type JWTAuth struct {
	// Issuer is the required "iss" claim (default: not checked).
	Issuer string `yaml:"issuer" json:"issuer,omitempty"`
	// Audiences: the "aud" claim must hold one of them (default: not
	// checked).
	Audiences []string `yaml:"audiences" json:"audiences,omitempty"`
	// JWKSFile is a local JSON Web Key Set file; reloaded when it changes.
	JWKSFile string `yaml:"jwksFile" json:"jwksFile,omitempty"`
	// JWKSURL is an https (or, for tests and in-cluster services, http)
	// URL of a key set, fetched with caching: refreshed every
	// JWKSRefresh, and at most every 10s when a token names an unknown
	// "kid"; the last fetched keys stay in use while the URL is down.
	JWKSURL string `yaml:"jwksURL" json:"jwksURL,omitempty"`
	// JWKSRefresh is how often the URL is fetched again (default 5m).
	JWKSRefresh time.Duration `yaml:"jwksRefresh" json:"jwksRefresh,omitempty"`
	// JWKSTimeout bounds one fetch of the URL, and how long a request
	// waits for the first keys (default 5s).
	JWKSTimeout time.Duration `yaml:"jwksTimeout" json:"jwksTimeout,omitempty"`
	// HMACSecretFile enables HS256/384/512 with the secret in this file
	// (at least 32 bytes). Without it HMAC tokens are refused, so that a
	// public key can never be used as an HMAC secret.
	HMACSecretFile string `yaml:"hmacSecretFile" json:"hmacSecretFile,omitempty"`
	// Algorithms allowed (default: RS256, RS384, RS512, PS256, PS384,
	// PS512, ES256, ES384, ES512, EdDSA with a key set, HS256/384/512
	// with an HMACSecretFile). "none" is never accepted.
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat"
	// (default 30s, at most 5m).
	Leeway time.Duration `yaml:"leeway" json:"leeway,omitempty"`
	// Claims are required claim values (authorization): a request whose
	// token lacks one gets 403 insufficient_scope.
	Claims []ClaimRequirement `yaml:"claims" json:"claims,omitempty"`
	// ForwardClaims sends claims upstream as request headers: claim name
	// (dots reach into objects: "realm_access.roles") → header name.
	// Arrays are sent comma-separated; the client's own copies of these
	// headers are always removed.
	ForwardClaims map[string]string `yaml:"forwardClaims" json:"forwardClaims,omitempty"`
}

// ClaimRequirement requires a claim to hold values.
type ClaimRequirement struct {
	// Name is the claim; dots reach into objects ("realm_access.roles").
	Name string `yaml:"name" json:"name"`
	// Values must all be present: equal to a string claim, members of an
	// array claim, or words of a space-separated string claim ("scope":
	// "counter:read counter:write"). Empty: the claim must exist.
	Values []string `yaml:"values" json:"values,omitempty"`
}

// ForwardAuth asks an HTTP service whether a request may pass: the
// gateway sends it a GET with the client's headers
// (no body) and X-Forwarded-Method, -Proto, -Host, -Uri and -For. A 2xx
// answer admits the request, with ResponseHeaders copied onto it; 401,
// 403 and redirects are returned to the client as the service sent them
// (status, WWW-Authenticate, Location, body up to 64 KiB); anything else,
// a timeout or an unreachable service refuses the request with 503
// (fails closed).
type ForwardAuth struct {
	// URL of the authorization service, http or https. Required.
	URL string `yaml:"url" json:"url"`
	// Timeout bounds one check (default 2s, at most 30s).
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// RequestHeaders, when set, are the only client headers sent to the
	// service (default: all but hop-by-hop ones).
	RequestHeaders []string `yaml:"requestHeaders" json:"requestHeaders,omitempty"`
	// ResponseHeaders are copied from the service's 2xx answer onto the
	// request sent upstream (replacing the client's copies, which are
	// always removed), e.g. X-Auth-User.
	ResponseHeaders []string `yaml:"responseHeaders" json:"responseHeaders,omitempty"`
	// CAFile verifies an https service (default: the system roots).
	CAFile string `yaml:"caFile" json:"caFile,omitempty"`
}

// JWT algorithms.
var (
	AsymmetricJWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	HMACJWTAlgorithms       = []string{"HS256", "HS384", "HS512"}
)

// Auth defaults.
const (
	DefaultAPIKeyHeader        = "X-API-Key"
	DefaultAPIKeyForwardHeader = "X-Api-Key-Name"
	DefaultBasicForwardHeader  = "X-Auth-User"
	DefaultJWTLeeway           = 30 * time.Second
	DefaultJWKSRefresh         = 5 * time.Minute
	DefaultJWKSTimeout         = 5 * time.Second
	DefaultForwardAuthTimeout  = 2 * time.Second
)

func (a *Auth) setDefaults() {
	if k := a.APIKey; k != nil {
		if k.Header == "" {
			k.Header = DefaultAPIKeyHeader
		}
		if k.ForwardHeader == "" {
			k.ForwardHeader = DefaultAPIKeyForwardHeader
		}
	}
	if b := a.Basic; b != nil {
		if b.Realm == "" {
			b.Realm = "flotilla"
		}
		if b.ForwardHeader == "" {
			b.ForwardHeader = DefaultBasicForwardHeader
		}
	}
	if j := a.JWT; j != nil {
		if j.Leeway == 0 {
			j.Leeway = DefaultJWTLeeway
		}
		if j.JWKSRefresh == 0 {
			j.JWKSRefresh = DefaultJWKSRefresh
		}
		if j.JWKSTimeout == 0 {
			j.JWKSTimeout = DefaultJWKSTimeout
		}
		if len(j.Algorithms) == 0 {
			if j.JWKSFile != "" || j.JWKSURL != "" {
				j.Algorithms = slices.Clone(AsymmetricJWTAlgorithms)
			}
			if j.HMACSecretFile != "" {
				j.Algorithms = append(j.Algorithms, HMACJWTAlgorithms...)
			}
		}
	}
	if f := a.Forward; f != nil && f.Timeout == 0 {
		f.Timeout = DefaultForwardAuthTimeout
	}
}

// files returns pointers to a's file names, for resolveFiles.
func (a *Auth) files() []*string {
	var fs []*string
	if a.APIKey != nil {
		fs = append(fs, &a.APIKey.KeysFile)
	}
	if a.Basic != nil {
		fs = append(fs, &a.Basic.HtpasswdFile)
	}
	if a.JWT != nil {
		fs = append(fs, &a.JWT.JWKSFile, &a.JWT.HMACSecretFile)
	}
	if a.Forward != nil {
		fs = append(fs, &a.Forward.CAFile)
	}
	return fs
}

// Files lists the files a's methods read (keys, htpasswd, JWKS, secret,
// CA), for the gateway to watch.
func (a *Auth) Files() []string {
	var out []string
	for _, f := range a.files() {
		if *f != "" {
			out = append(out, *f)
		}
	}
	return out
}

// SecretFiles lists the files c's policies read: API keys, htpasswd
// files, key sets, secrets, CAs and the Redis password, for a watcher to
// reload the config when one changes.
func (c *Config) SecretFiles() []string {
	var out []string
	if c.Redis != nil && c.Redis.PasswordFile != "" {
		out = append(out, c.Redis.PasswordFile)
	}
	seen := map[*Auth]bool{}
	for _, a := range append([]*Auth{c.Defaults.Auth}, routeAuths(c)...) {
		if a != nil && !seen[a] {
			seen[a] = true
			out = append(out, a.Files()...)
		}
	}
	return out
}

func routeAuths(c *Config) []*Auth {
	var out []*Auth
	for i := range c.Routes {
		out = append(out, c.Routes[i].Auth)
	}
	return out
}

func (a *Auth) validate(p *problems, path string) {
	if a.APIKey == nil && a.Basic == nil && a.JWT == nil && a.Forward == nil {
		p.addf(path, "want at least one of apiKey, basic, jwt, forward")
	}
	headerField := func(field, v string, dashOK bool) {
		if v != "" && !validToken(v) && !(dashOK && v == "-") {
			p.addf(path+"."+field, "want a header name, got %q", v)
		}
	}
	if k := a.APIKey; k != nil {
		if k.KeysFile == "" {
			p.addf(path+".apiKey.keysFile", "required: a file of name:key lines or a directory of one file per key")
		}
		headerField("apiKey.header", k.Header, false)
		headerField("apiKey.forwardHeader", k.ForwardHeader, true)
		if k.Query != "" && strings.ContainsAny(k.Query, "&=#? ") {
			p.addf(path+".apiKey.query", "want a query parameter name, got %q", k.Query)
		}
	}
	if b := a.Basic; b != nil {
		if b.HtpasswdFile == "" {
			p.addf(path+".basic.htpasswdFile", "required")
		}
		if strings.ContainsAny(b.Realm, "\"\\\r\n") {
			p.addf(path+".basic.realm", "must not contain quotes, backslashes or line breaks, got %q", b.Realm)
		}
		headerField("basic.forwardHeader", b.ForwardHeader, true)
	}
	if j := a.JWT; j != nil {
		j.validate(p, path+".jwt")
	}
	if f := a.Forward; f != nil {
		u, err := url.Parse(f.URL)
		if f.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.addf(path+".forward.url", "want an http:// or https:// URL, got %q", f.URL)
		}
		if f.Timeout < 0 || f.Timeout > 30*time.Second {
			p.addf(path+".forward.timeout", "want 0 (default 2s) up to 30s, got %s", f.Timeout)
		}
		for i, h := range f.RequestHeaders {
			headerField(fmt.Sprintf("forward.requestHeaders[%d]", i), h, false)
		}
		for i, h := range f.ResponseHeaders {
			headerField(fmt.Sprintf("forward.responseHeaders[%d]", i), h, false)
		}
	}
}

func (j *JWTAuth) validate(p *problems, path string) {
	if (j.JWKSFile == "") == (j.JWKSURL == "") && j.HMACSecretFile == "" {
		p.addf(path, "want one of jwksFile or jwksURL (or hmacSecretFile)")
	}
	if j.JWKSFile != "" && j.JWKSURL != "" {
		p.addf(path, "jwksFile and jwksURL are exclusive")
	}
	if j.JWKSURL != "" {
		u, err := url.Parse(j.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.addf(path+".jwksURL", "want an https:// (or http://) URL, got %q", j.JWKSURL)
		}
	}
	if j.JWKSRefresh < time.Second {
		p.addf(path+".jwksRefresh", "must be at least 1s, got %s", j.JWKSRefresh)
	}
	if j.JWKSTimeout <= 0 || j.JWKSTimeout > time.Minute {
		p.addf(path+".jwksTimeout", "want more than 0 up to 1m, got %s", j.JWKSTimeout)
	}
	if j.Leeway < 0 || j.Leeway > 5*time.Minute {
		p.addf(path+".leeway", "want 0 up to 5m, got %s", j.Leeway)
	}
	for i, alg := range j.Algorithms {
		ap := fmt.Sprintf("%s.algorithms[%d]", path, i)
		switch {
		case slices.Contains(AsymmetricJWTAlgorithms, alg):
			if j.JWKSFile == "" && j.JWKSURL == "" {
				p.addf(ap, "%s needs jwksFile or jwksURL", alg)
			}
		case slices.Contains(HMACJWTAlgorithms, alg):
			if j.HMACSecretFile == "" {
				p.addf(ap, "%s needs hmacSecretFile (HMAC is off without an explicit secret)", alg)
			}
		default:
			p.addf(ap, "want one of %s, got %q", strings.Join(append(slices.Clone(AsymmetricJWTAlgorithms), HMACJWTAlgorithms...), ", "), alg)
		}
	}
	for i, c := range j.Claims {
		if c.Name == "" || strings.HasPrefix(c.Name, ".") || strings.HasSuffix(c.Name, ".") || strings.Contains(c.Name, "..") {
			p.addf(fmt.Sprintf("%s.claims[%d].name", path, i), "want a claim name (dots reach into objects), got %q", c.Name)
		}
	}
	for claim, h := range j.ForwardClaims {
		if claim == "" || strings.Contains(claim, "..") {
			p.addf(path+".forwardClaims", "want a claim name, got %q", claim)
		}
		if !validToken(h) {
			p.addf(fmt.Sprintf("%s.forwardClaims[%s]", path, claim), "want a header name, got %q", h)
		}
	}
}
