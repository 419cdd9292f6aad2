package ingress

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Prefix is the ingress-nginx annotation prefix. Annotations with other
// prefixes are not read (kubectl's, Argo CD's, other controllers').
const Prefix = "nginx.ingress.kubernetes.io/"

// Annotation keys read.
const (
	annRewriteTarget        = Prefix + "rewrite-target"
	annUseRegex             = Prefix + "use-regex"
	annSSLRedirect          = Prefix + "ssl-redirect"
	annForceSSLRedirect     = Prefix + "force-ssl-redirect"
	annWhitelist            = Prefix + "whitelist-source-range"
	annAllowlist            = Prefix + "allowlist-source-range"
	annDenylist             = Prefix + "denylist-source-range"
	annLimitRPS             = Prefix + "limit-rps"
	annLimitRPM             = Prefix + "limit-rpm"
	annLimitBurst           = Prefix + "limit-burst-multiplier"
	annAuthType             = Prefix + "auth-type"
	annAuthSecret           = Prefix + "auth-secret"
	annAuthSecretType       = Prefix + "auth-secret-type"
	annAuthRealm            = Prefix + "auth-realm"
	annAuthURL              = Prefix + "auth-url"
	annAuthResponseHeaders  = Prefix + "auth-response-headers"
	annProxyBodySize        = Prefix + "proxy-body-size"
	annProxyReadTimeout     = Prefix + "proxy-read-timeout"
	annProxyConnectTimeout  = Prefix + "proxy-connect-timeout"
	annEnableCORS           = Prefix + "enable-cors"
	annCORSOrigin           = Prefix + "cors-allow-origin"
	annCORSMethods          = Prefix + "cors-allow-methods"
	annCORSHeaders          = Prefix + "cors-allow-headers"
	annCORSExpose           = Prefix + "cors-expose-headers"
	annCORSCredentials      = Prefix + "cors-allow-credentials"
	annCORSMaxAge           = Prefix + "cors-max-age"
	annBackendProtocol      = Prefix + "backend-protocol"
	annUpstreamHashBy       = Prefix + "upstream-hash-by"
	annLoadBalance          = Prefix + "load-balance"
	annUpstreamVhost        = Prefix + "upstream-vhost"
	annAppRoot              = Prefix + "app-root"
	annPermanentRedirect    = Prefix + "permanent-redirect"
	annPermanentRedirectCod = Prefix + "permanent-redirect-code"
	annTemporalRedirect     = Prefix + "temporal-redirect"
	annXForwardedPrefix     = Prefix + "x-forwarded-prefix"
	annCanary               = Prefix + "canary"
	annCanaryWeight         = Prefix + "canary-weight"
	annCanaryWeightTotal    = Prefix + "canary-weight-total"
	annCanaryByHeader       = Prefix + "canary-by-header"
	annCanaryByHeaderValue  = Prefix + "canary-by-header-value"
	annCanaryByHeaderPat    = Prefix + "canary-by-header-pattern"
	annCanaryByCookie       = Prefix + "canary-by-cookie"
)

// Unsupported explains, for the annotations people ask about most, why the
// gateway does not honour them; each still gets a warning. Any other
// unknown annotation of the prefix gets a generic one.
var Unsupported = map[string]string{
	"configuration-snippet":    "nginx configuration snippets never run here (they are nginx code, and were a way into the controller); express the intent with supported annotations",
	"server-snippet":           "nginx configuration snippets never run here (they are nginx code, and were a way into the controller); express the intent with supported annotations",
	"auth-snippet":             "nginx configuration snippets never run here",
	"stream-snippet":           "nginx configuration snippets never run here",
	"modsecurity-snippet":      "nginx configuration snippets never run here",
	"affinity":                 "the gateway has no per-endpoint cookie affinity; requests are balanced (upstream-hash-by: $cookie_<name> hashes on a cookie the app sets)",
	"affinity-mode":            "the gateway has no per-endpoint cookie affinity",
	"affinity-canary-behavior": "the gateway has no per-endpoint cookie affinity",
	"session-cookie-name":      "the gateway has no per-endpoint cookie affinity",
	"limit-connections":        "the gateway limits requests per client (limit-rps, limit-rpm), not concurrent connections per client",
	"limit-whitelist":          "rate limits apply to every client; there is no exemption list",
	"limit-allowlist":          "rate limits apply to every client; there is no exemption list",
	"proxy-send-timeout":       "the gateway has no per-route timeout for sending the request body; the route timeout (proxy-read-timeout) bounds the exchange",
	"ssl-passthrough":          "the gateway terminates TLS; it does not route raw TLS by SNI",
	"service-upstream":         "the gateway always balances over the Service's ready endpoints (EndpointSlices), never through the ClusterIP",
	"proxy-ssl-verify":         "upstream certificates are always verified (HTTPS and GRPCS backends): against the system roots and the name <service>.<namespace>.svc",
	"proxy-ssl-secret":         "a CA for upstream certificates cannot be taken from a Secret yet; use a file-config backend with tls.caFile",
	"auth-signin":              "external auth answers 401/403 to the client as the auth service sent them; no sign-in redirect is added",
	"enable-opentelemetry":     "tracing is not built into the gateway",
	"enable-modsecurity":       "no web application firewall is built into the gateway",
	"mirror-target":            "request mirroring is configured in the file config (routes[].mirror) or with Gateway API HTTPRoute",
}

// annotations is what an Ingress's annotations ask for, parsed and
// checked.
type annotations struct {
	useRegex bool
	rewrite  struct {
		target     string
		needsRegex bool
	}
	sslRedirect, forceSSLRedirect bool
	ipRules                       *config.IPRules
	rateLimits                    []config.RateLimit
	authType, authSecret          string
	authSecretType, authRealm     string
	authURL                       string
	authResponseHeaders           []string
	maxBody                       int64
	timeout, idle                 time.Duration
	cors                          *config.CORS
	protocol                      string
	balance                       config.Balance
	upstreamVhost, appRoot        string
	redirect                      *config.Redirect
	forwardedPrefix               string
	canary                        bool
	canaryWeight, canaryTotal     int
	canaryHeader, canaryHeaderVal string
	canaryHeaderPattern           string
	canaryCookie                  string
	canaryWeightSet               bool
}

func isCanary(ing *networkingv1.Ingress) bool {
	return strings.EqualFold(strings.TrimSpace(ing.Annotations[annCanary]), "true")
}

var (
	bodySizeRE = regexp.MustCompile(`^([0-9]{1,12})([kKmMgG]?)$`)
	nginxVarRE = regexp.MustCompile(`\$([0-9]+|\{[0-9]+\}|[A-Za-z_{])`)
	digitRefRE = regexp.MustCompile(`\$([0-9])`)
)

// parseAnnotations reads ing's annotations; problems go to p.
func parseAnnotations(ing *networkingv1.Ingress, p *pending) *annotations {
	a := &annotations{sslRedirect: true, authSecretType: "auth-file", authRealm: "Authentication Required", canaryTotal: 100}
	get := func(k string) (string, bool) {
		v, ok := ing.Annotations[k]
		return strings.TrimSpace(v), ok
	}
	boolean := func(k string, dst *bool) {
		v, ok := get(k)
		if !ok {
			return
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.errorf(k, "want true or false, got %q", v)
			return
		}
		*dst = b
	}
	integer := func(k string, lo, hi int) (int, bool) {
		v, ok := get(k)
		if !ok {
			return 0, false
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			p.errorf(k, "want a whole number %d..%d, got %q", lo, hi, v)
			return 0, false
		}
		return n, true
	}
	seconds := func(k string) (time.Duration, bool) {
		v, ok := get(k)
		if !ok {
			return 0, false
		}
		d, err := time.ParseDuration(v)
		if n, aerr := strconv.Atoi(v); aerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil || d < time.Second || d > 24*time.Hour {
			p.errorf(k, "want whole seconds 1..86400 (or a duration like 90s), got %q", v)
			return 0, false
		}
		return d.Round(time.Second), true
	}
	list := func(v string) []string {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}

	keys := make([]string, 0, len(ing.Annotations))
	for k := range ing.Annotations {
		if strings.HasPrefix(k, Prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	known := map[string]bool{}
	for _, k := range []string{annRewriteTarget, annUseRegex, annSSLRedirect, annForceSSLRedirect, annWhitelist, annAllowlist, annDenylist,
		annLimitRPS, annLimitRPM, annLimitBurst, annAuthType, annAuthSecret, annAuthSecretType, annAuthRealm, annAuthURL, annAuthResponseHeaders,
		annProxyBodySize, annProxyReadTimeout, annProxyConnectTimeout, annEnableCORS, annCORSOrigin, annCORSMethods, annCORSHeaders, annCORSExpose,
		annCORSCredentials, annCORSMaxAge, annBackendProtocol, annUpstreamHashBy, annLoadBalance, annUpstreamVhost, annAppRoot,
		annPermanentRedirect, annPermanentRedirectCod, annTemporalRedirect, annXForwardedPrefix, annCanary, annCanaryWeight, annCanaryWeightTotal,
		annCanaryByHeader, annCanaryByHeaderValue, annCanaryByHeaderPat, annCanaryByCookie} {
		known[k] = true
	}
	for _, k := range keys {
		if known[k] {
			continue
		}
		name := strings.TrimPrefix(k, Prefix)
		if why, ok := Unsupported[name]; ok {
			p.warnf(k, "not supported, ignored: %s", why)
		} else {
			p.warnf(k, "not supported, ignored (see docs/ingress.md for the supported annotations)")
		}
	}

	boolean(annUseRegex, &a.useRegex)
	if v, ok := get(annRewriteTarget); ok {
		switch {
		case !strings.HasPrefix(v, "/"):
			p.errorf(annRewriteTarget, "want a path starting with '/', got %q", v)
		case strings.ContainsAny(v, "?# \t"):
			p.errorf(annRewriteTarget, "a query, fragment or space in the target is not supported, got %q", v)
		default:
			for _, m := range nginxVarRE.FindAllStringSubmatch(v, -1) {
				if c := m[1][0]; c < '0' || c > '9' {
					p.errorf(annRewriteTarget, "only capture groups ($1 … $9) are supported, not nginx variables, got %q", v)
					break
				}
			}
			if strings.Contains(v, "${") || regexp.MustCompile(`\$[0-9][0-9]`).MatchString(v) {
				// nginx's $12 is group 1 then "2"; say what is meant.
				p.errorf(annRewriteTarget, "write groups as $1 … $9, got %q", v)
			}
			// nginx's $1 is one digit; Go's template reads $1x as a
			// group named "1x": braces keep nginx's meaning.
			a.rewrite.target = digitRefRE.ReplaceAllString(v, "$${$1}")
			a.rewrite.needsRegex = strings.Contains(v, "$") || a.useRegex
		}
	}
	boolean(annSSLRedirect, &a.sslRedirect)
	boolean(annForceSSLRedirect, &a.forceSSLRedirect)
	var allow, deny []string
	for _, k := range []string{annWhitelist, annAllowlist, annDenylist} {
		v, ok := get(k)
		if !ok {
			continue
		}
		entries := list(v)
		if len(entries) == 0 {
			p.errorf(k, "want a comma-separated list of CIDRs, got %q", v)
			continue
		}
		for _, e := range entries {
			if _, err := config.ParseIPEntry(e); err != nil {
				p.errorf(k, "%v", err)
			}
		}
		if k == annDenylist {
			deny = append(deny, entries...)
		} else {
			allow = append(allow, entries...)
		}
	}
	if allow != nil || deny != nil {
		a.ipRules = &config.IPRules{Allow: allow, Deny: deny}
	}
	mult := 5
	if n, ok := integer(annLimitBurst, 1, 1000); ok {
		mult = n
	}
	if n, ok := integer(annLimitRPS, 1, 1_000_000); ok {
		a.rateLimits = append(a.rateLimits, config.RateLimit{Requests: n, Per: time.Second, Burst: n * mult})
	}
	if n, ok := integer(annLimitRPM, 1, 1_000_000); ok {
		a.rateLimits = append(a.rateLimits, config.RateLimit{Requests: n, Per: time.Minute, Burst: n * mult})
	}
	if len(a.rateLimits) == 2 {
		a.rateLimits[0].Name, a.rateLimits[1].Name = "rps", "rpm"
	}

	if v, ok := get(annAuthURL); ok {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Contains(v, "$") {
			p.errorf(annAuthURL, "want an http:// or https:// URL without nginx variables, got %q", v)
		} else {
			a.authURL = v
		}
		if hs, ok := get(annAuthResponseHeaders); ok {
			a.authResponseHeaders = list(hs)
		}
	}
	if v, ok := get(annAuthType); ok {
		switch v {
		case "basic":
			a.authType = v
			s, ok := get(annAuthSecret)
			if !ok || s == "" {
				p.errorf(annAuthSecret, "required with auth-type basic")
			}
			a.authSecret = s
			if t, ok := get(annAuthSecretType); ok {
				if t != "auth-file" && t != "auth-map" {
					p.errorf(annAuthSecretType, `want "auth-file" or "auth-map", got %q`, t)
				}
				a.authSecretType = t
			}
			if r, ok := get(annAuthRealm); ok {
				if strings.ContainsAny(r, "\"\\\r\n") {
					p.errorf(annAuthRealm, "must not contain quotes, backslashes or line breaks, got %q", r)
				}
				a.authRealm = r
			}
		default:
			// Serving the Ingress without the authentication it asks for
			// would open it: never.
			p.errorf(annAuthType, `only "basic" is supported, got %q`, v)
		}
	} else if _, ok := get(annAuthSecret); ok && a.authURL == "" {
		p.warnf(annAuthSecret, "ignored without auth-type: basic")
	}
	if v, ok := get(annProxyBodySize); ok {
		m := bodySizeRE.FindStringSubmatch(v)
		if m == nil {
			p.errorf(annProxyBodySize, "want a size like 8m, 512k or 1g (0: the gateway's limit), got %q", v)
		} else {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30}[strings.ToLower(m[2])]
			if n > (1<<62)>>shift {
				p.errorf(annProxyBodySize, "too large: %q", v)
			} else {
				a.maxBody = n << shift
			}
		}
	}
	read, readSet := seconds(annProxyReadTimeout)
	conn, connSet := seconds(annProxyConnectTimeout)
	if readSet {
		// nginx's proxy_read_timeout bounds the wait for the response and
		// every quiet spell after it: the route timeout (until the
		// response headers) and the streams' idle timeout.
		a.idle = read
		a.timeout = read
	}
	if connSet {
		if !readSet {
			a.timeout = 60 * time.Second // nginx's proxy_read_timeout default
		}
		a.timeout += conn
		p.warnf(annProxyConnectTimeout, "approximated: added to the route's timeout; the gateway's dial timeout is a fixed 5s")
	}

	if b, ok := get(annEnableCORS); ok && strings.EqualFold(b, "true") {
		c := &config.CORS{AllowOrigins: []string{"*"}, AllowCredentials: true, MaxAge: 1728000 * time.Second,
			AllowMethods: []string{"GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"},
			AllowHeaders: []string{"DNT", "Keep-Alive", "User-Agent", "X-Requested-With", "If-Modified-Since", "Cache-Control", "Content-Type", "Range", "Authorization"}}
		if v, ok := get(annCORSOrigin); ok {
			c.AllowOrigins = list(v)
			for _, o := range c.AllowOrigins {
				if _, err := config.ParseOrigin(o); err != nil {
					p.errorf(annCORSOrigin, "%v", err)
				}
			}
			if len(c.AllowOrigins) == 0 {
				p.errorf(annCORSOrigin, "want origins, got %q", v)
			}
		}
		if v, ok := get(annCORSMethods); ok {
			c.AllowMethods = nil
			for _, m := range list(v) {
				c.AllowMethods = append(c.AllowMethods, strings.ToUpper(m))
			}
		}
		if v, ok := get(annCORSHeaders); ok {
			c.AllowHeaders = list(v)
		}
		if v, ok := get(annCORSExpose); ok {
			c.ExposeHeaders = list(v)
		}
		credSet := false
		if _, ok := get(annCORSCredentials); ok {
			credSet = true
			boolean(annCORSCredentials, &c.AllowCredentials)
		}
		if n, ok := integer(annCORSMaxAge, 0, 1<<31-1); ok {
			c.MaxAge = time.Duration(n) * time.Second
		}
		if c.AllowCredentials && (slices.Contains(c.AllowOrigins, "*") || slices.Contains(c.AllowHeaders, "*")) {
			// Browsers refuse credentials with "*" (the Fetch standard);
			// nginx sends both and the browser drops the response.
			if credSet {
				p.warnf(annCORSCredentials, `ignored: credentials are never allowed with "*" (the Fetch standard); list the origins and headers`)
			}
			c.AllowCredentials = false
		}
		for _, m := range c.AllowMethods {
			if !regexp.MustCompile(`^[A-Z]+$`).MatchString(m) {
				p.errorf(annCORSMethods, "want methods like GET, got %q", m)
			}
		}
		a.cors = c
	}

	if v, ok := get(annBackendProtocol); ok {
		switch strings.ToUpper(v) {
		case "HTTP":
			a.protocol = config.ProtocolHTTP1
		case "AUTO_HTTP":
			a.protocol = config.ProtocolHTTP1
			p.warnf(annBackendProtocol, "AUTO_HTTP is served as HTTP (HTTP/1.1)")
		case "HTTPS":
			a.protocol = config.ProtocolHTTPS
		case "GRPC", "H2C":
			a.protocol = config.ProtocolH2C
		case "GRPCS":
			a.protocol = config.ProtocolH2
		default:
			p.errorf(annBackendProtocol, "want HTTP, HTTPS, GRPC, GRPCS, H2C or AUTO_HTTP, got %q (FCGI is not supported)", v)
		}
	}
	if v, ok := get(annUpstreamHashBy); ok {
		h := &config.HashOn{}
		switch {
		case v == "$remote_addr" || v == "$binary_remote_addr":
			h.ClientIP = true
		case strings.HasPrefix(v, "$http_") && len(v) > 6 && validName(v[6:]):
			h.Header = strings.ReplaceAll(v[6:], "_", "-")
		case strings.HasPrefix(v, "$cookie_") && len(v) > 8 && validName(v[8:]):
			h.Cookie = v[8:]
		default:
			h = nil
			p.warnf(annUpstreamHashBy, "only $remote_addr, $http_<header> and $cookie_<name> are supported, got %q; balanced round robin", v)
		}
		if h != nil {
			a.balance = config.Balance{Policy: config.ConsistentHash, HashOn: h}
		}
	}
	if v, ok := get(annLoadBalance); ok && a.balance.Policy == "" {
		switch v {
		case "round_robin":
		case "ewma":
			a.balance.Policy = config.LeastRequest
			p.warnf(annLoadBalance, "ewma is approximated by least_request (power of two choices)")
		default:
			p.warnf(annLoadBalance, "want round_robin or ewma, got %q; balanced round robin", v)
		}
	}
	if v, ok := get(annUpstreamVhost); ok {
		if v == "" || strings.ContainsAny(v, "$/ ") {
			p.errorf(annUpstreamVhost, "want a host name, got %q", v)
		} else {
			a.upstreamVhost = v
		}
	}
	if v, ok := get(annAppRoot); ok {
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?# $") || v == "/" {
			p.errorf(annAppRoot, "want a path like /app1, got %q", v)
		} else {
			a.appRoot = v
		}
	}
	for _, rk := range []struct {
		key, codeKey string
		code         int
	}{{annPermanentRedirect, annPermanentRedirectCod, 301}, {annTemporalRedirect, "", 302}} {
		v, ok := get(rk.key)
		if !ok || a.redirect != nil {
			continue
		}
		rd, err := parseRedirect(v)
		if err != nil {
			p.errorf(rk.key, "%v", err)
			continue
		}
		rd.StatusCode = rk.code
		if rk.codeKey != "" {
			if n, ok := integer(rk.codeKey, 300, 308); ok {
				rd.StatusCode = n
			}
		}
		a.redirect = rd
	}
	if v, ok := get(annXForwardedPrefix); ok {
		if strings.ContainsAny(v, "\r\n\x00$") {
			p.errorf(annXForwardedPrefix, "want a path prefix, got %q", v)
		} else {
			a.forwardedPrefix = v
		}
	}

	a.canary = isCanary(ing)
	if a.canary {
		if n, ok := integer(annCanaryWeightTotal, 1, 1_000_000); ok {
			a.canaryTotal = n
		}
		if n, ok := integer(annCanaryWeight, 0, 1_000_000); ok {
			if n > a.canaryTotal {
				p.errorf(annCanaryWeight, "want 0..%d (canary-weight-total), got %d", a.canaryTotal, n)
			}
			a.canaryWeight, a.canaryWeightSet = n, true
		}
		if v, ok := get(annCanaryByHeader); ok {
			if !validName(v) {
				p.errorf(annCanaryByHeader, "want a header name, got %q", v)
			}
			a.canaryHeader = v
		}
		if v, ok := get(annCanaryByHeaderValue); ok {
			a.canaryHeaderVal = v
		}
		if v, ok := get(annCanaryByHeaderPat); ok {
			if _, err := regexp.Compile(v); err != nil {
				p.errorf(annCanaryByHeaderPat, "not a regular expression Go's RE2 accepts: %v", err)
			}
			a.canaryHeaderPattern = v
		}
		if v, ok := get(annCanaryByCookie); ok {
			if !validName(v) {
				p.errorf(annCanaryByCookie, "want a cookie name, got %q", v)
			}
			a.canaryCookie = v
		}
	}
	return a
}

// validName accepts header and cookie names: letters, digits, '-', '_'.
func validName(s string) bool {
	return s != "" && len(s) <= 128 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

// parseRedirect reads a permanent-redirect or temporal-redirect URL.
func parseRedirect(v string) (*config.Redirect, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(v, "$") {
		return nil, fmt.Errorf("want an http:// or https:// URL without query or nginx variables, got %q", v)
	}
	rd := &config.Redirect{Scheme: u.Scheme, Host: u.Hostname(), Path: u.EscapedPath()}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("bad port in %q", v)
		}
		rd.Port = n
	}
	if rd.Path == "" {
		rd.Path = "/" // nginx sends the URL as given, not the request's path
	}
	return rd, nil
}
