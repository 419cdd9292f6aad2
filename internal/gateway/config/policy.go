package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// IPRules admit or refuse requests by the client's address (the TCP peer,
// or behind a trusted proxy the client it names in X-Forwarded-For; see
// `flotilla gateway --trusted-proxies`). Entries are CIDRs
// ("10.0.0.0/8", "2001:db8::/32") or single addresses ("192.0.2.7" is
// 192.0.2.7/32). IPv4-mapped IPv6 addresses are compared as IPv4.
//
// Deny wins over allow. With an Allow list, an address not in it is
// refused; without one, every address not denied passes. A refused
// request gets 403 (error ip_denied; a gRPC call PERMISSION_DENIED).
type IPRules struct {
	// Allow lists the only addresses admitted (default: all).
	Allow []string `yaml:"allow" json:"allow,omitempty"`
	// Deny lists addresses refused even when allowed (default: none).
	Deny []string `yaml:"deny" json:"deny,omitempty"`
}

// ParseIPEntry parses one IPRules entry: a CIDR or a single address, its
// address unmapped from IPv4-mapped IPv6 and its host bits cleared.
func ParseIPEntry(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or address", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or address", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix needs at least 96 bits", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func (r *IPRules) validate(p *problems, path string) {
	if len(r.Allow) == 0 && len(r.Deny) == 0 {
		p.addf(path, "want allow or deny entries")
	}
	for _, g := range []struct {
		field string
		list  []string
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		for i, s := range g.list {
			if _, err := ParseIPEntry(s); err != nil {
				p.addf(fmt.Sprintf("%s.%s[%d]", path, g.field, i), "%v", err)
			}
		}
	}
}

// CORS is a route's cross-origin resource sharing policy (the Fetch
// standard), answered by the gateway as Envoy's and Traefik's CORS
// filters do: a preflight (OPTIONS with Origin and
// Access-Control-Request-Method) never reaches a backend, even when the
// route's match.methods leave OPTIONS out; an actual request from an
// allowed origin gets the Access-Control-* response headers, replacing
// any the upstream sent.
type CORS struct {
	// AllowOrigins are exact origins ("https://app.example.com"),
	// patterns whose host starts with one wildcard label
	// ("https://*.example.com": one or more labels, not example.com
	// itself), or "*" (any origin). Required.
	AllowOrigins []string `yaml:"allowOrigins" json:"allowOrigins"`
	// AllowMethods answer a preflight's Access-Control-Request-Method
	// (default: the route's match.methods, else GET, HEAD, POST).
	AllowMethods []string `yaml:"allowMethods" json:"allowMethods,omitempty"`
	// AllowHeaders answer Access-Control-Request-Headers (default none:
	// only the CORS-safelisted request headers).
	AllowHeaders []string `yaml:"allowHeaders" json:"allowHeaders,omitempty"`
	// ExposeHeaders are response headers scripts may read (default none
	// beyond the safelisted ones).
	ExposeHeaders []string `yaml:"exposeHeaders" json:"exposeHeaders,omitempty"`
	// AllowCredentials lets requests with cookies or HTTP authentication
	// read the response (default false). Not with the origin "*", which
	// the Fetch standard forbids.
	AllowCredentials bool `yaml:"allowCredentials" json:"allowCredentials,omitempty"`
	// MaxAge is how long a browser may cache a preflight answer, whole
	// seconds (default 0: no Access-Control-Max-Age, the browser's 5s).
	MaxAge time.Duration `yaml:"maxAge" json:"maxAge,omitempty"`
	// ReflectWildcards answers "*" in AllowOrigins, AllowMethods and
	// AllowHeaders with the request's own Origin, Access-Control-Request-
	// Method and -Headers instead of "*", which browsers read literally on
	// credentialed requests; it is what makes "*" usable with
	// AllowCredentials (Gateway API's HTTPCORSFilter semantics). Default
	// false: "*" with AllowCredentials is a validation error, since it
	// lets every site read credentialed responses; set it only when that
	// is meant.
	ReflectWildcards bool `yaml:"reflectWildcards" json:"reflectWildcards,omitempty"`
}

// OriginPattern is one parsed CORS AllowOrigins entry.
type OriginPattern struct {
	// Any is "*".
	Any bool
	// Scheme is the lower-case scheme ("https").
	Scheme string
	// Host is the lower-case host, or with Wildcard the suffix after
	// "*" (".example.com").
	Host string
	// Wildcard: Host is a suffix of one or more labels.
	Wildcard bool
	// Port is the explicit port, "" for the scheme's default.
	Port string
}

// ParseOrigin parses an AllowOrigins entry: "*", or
// scheme://host[:port] with an optional leading "*." label, without path,
// query, user information or a trailing slash.
func ParseOrigin(s string) (OriginPattern, error) {
	if s == "*" {
		return OriginPattern{Any: true}, nil
	}
	bad := func(why string) (OriginPattern, error) {
		return OriginPattern{}, fmt.Errorf("%q is not an origin (%s)", s, why)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return bad(`want scheme://host[:port], "https://*.domain" or "*"`)
	}
	scheme = strings.ToLower(scheme)
	for i := 0; i < len(scheme); i++ {
		c := scheme[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return bad("malformed scheme")
		}
	}
	if strings.ContainsAny(rest, "/?#@ \t\\") {
		return bad("an origin has no path, query, fragment or user information")
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return bad("malformed port")
		}
		if scheme == "https" && n == 443 || scheme == "http" && n == 80 {
			port = "" // browsers leave a default port out
		}
	}
	host = strings.ToLower(host)
	o := OriginPattern{Scheme: scheme, Host: host, Port: port}
	if suffix, ok := strings.CutPrefix(host, "*"); ok {
		if !strings.HasPrefix(suffix, ".") || !validHost(suffix[1:]) || strings.Contains(suffix[1:], "*") {
			return bad(`a wildcard is one leading "*." label`)
		}
		o.Host, o.Wildcard = suffix, true
		return o, nil
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		if a, err := netip.ParseAddr(host[1 : len(host)-1]); err != nil || !a.Is6() || a.Zone() != "" {
			return bad("malformed IPv6 literal")
		}
		return o, nil
	}
	if host == "" || !validHost(host) || strings.ContainsAny(host, "*:") {
		return bad("malformed host")
	}
	return o, nil
}

func (c *CORS) validate(p *problems, path string) {
	if len(c.AllowOrigins) == 0 {
		p.addf(path+".allowOrigins", `want at least one origin ("https://app.example.com", "https://*.example.com" or "*")`)
	}
	for i, s := range c.AllowOrigins {
		o, err := ParseOrigin(s)
		switch {
		case err != nil:
			p.addf(fmt.Sprintf("%s.allowOrigins[%d]", path, i), "%v", err)
		case o.Any && c.AllowCredentials && !c.ReflectWildcards:
			p.addf(fmt.Sprintf("%s.allowOrigins[%d]", path, i), `"*" with allowCredentials: true is forbidden by the Fetch standard; list the origins (or set reflectWildcards to answer with the request's origin)`)
		}
	}
	for i, m := range c.AllowMethods {
		if m == "" || strings.ToUpper(m) != m || !validToken(m) {
			p.addf(fmt.Sprintf("%s.allowMethods[%d]", path, i), "want an upper-case method like GET, got %q", m)
		}
		if m == "*" && c.AllowCredentials && !c.ReflectWildcards {
			p.addf(fmt.Sprintf("%s.allowMethods[%d]", path, i), `"*" with allowCredentials: true means a method named "*" to browsers; list the methods (or set reflectWildcards)`)
		}
	}
	for _, g := range []struct {
		field string
		list  []string
	}{{"allowHeaders", c.AllowHeaders}, {"exposeHeaders", c.ExposeHeaders}} {
		for i, h := range g.list {
			if h != "*" && !validToken(h) {
				p.addf(fmt.Sprintf("%s.%s[%d]", path, g.field, i), "want a header name, got %q", h)
			}
			if h == "*" && c.AllowCredentials && !(c.ReflectWildcards && g.field == "allowHeaders") {
				p.addf(fmt.Sprintf("%s.%s[%d]", path, g.field, i), `"*" with allowCredentials: true means a header named "*" to browsers; list the headers`)
			}
		}
	}
	if c.MaxAge < 0 || c.MaxAge%time.Second != 0 {
		p.addf(path+".maxAge", "want whole seconds, 0 or more, got %s", c.MaxAge)
	}
}
