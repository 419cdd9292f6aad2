package route

import (
	"cmp"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// ErrIPDenied refuses a request whose client address the route's ipRules
// do not admit (403, error ip_denied; a gRPC call gets
// PERMISSION_DENIED).
var ErrIPDenied = errors.New("client address denied")

// Refuser is implemented by the gateway's response writer: Refuse answers
// a request a filter refuses with the gateway's error (JSON, or a gRPC
// status for a gRPC call), classified with every other failure, and
// records the error class for the access log and metrics. The route
// package cannot import the proxy, which imports it.
type Refuser interface {
	Refuse(r *http.Request, err error, requestID string)
}

// refuse answers r with err through w's Refuser; a writer without one
// (an embedder's) gets a bare 403.
func refuse(w http.ResponseWriter, r *http.Request, err error, requestID string) {
	if rf, ok := w.(Refuser); ok {
		rf.Refuse(r, err, requestID)
		return
	}
	http.Error(w, "forbidden", http.StatusForbidden)
}

// prefixSet is a set of address prefixes, answering contains in
// O(log n) without allocating: prefixes covered by another are dropped at
// compile time, so the rest are disjoint and only the one with the
// greatest start at or below an address can contain it. IPv4 prefixes are
// kept as integer ranges, the common case compared in one instruction.
type prefixSet struct {
	v4 []v4Range      // sorted by lo, disjoint
	v6 []netip.Prefix // sorted by address, disjoint
}

type v4Range struct{ lo, hi uint32 }

func v4Int(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func newPrefixSet(entries []string) prefixSet {
	var s prefixSet
	var all []netip.Prefix
	for _, e := range entries {
		p, err := config.ParseIPEntry(e)
		if err != nil { // cannot happen: validated
			continue
		}
		all = append(all, p)
	}
	// Shorter prefixes first among equal starts, so a covering prefix is
	// kept and what it covers follows it.
	slices.SortFunc(all, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	var v4 []netip.Prefix
	for _, p := range all {
		dst := &s.v6
		if p.Addr().Is4() {
			dst = &v4
		}
		// Sorted: a previous prefix that overlaps p starts first, so it
		// covers p.
		if n := len(*dst); n > 0 && (*dst)[n-1].Overlaps(p) {
			continue
		}
		*dst = append(*dst, p)
	}
	for _, p := range v4 {
		lo := v4Int(p.Addr())
		s.v4 = append(s.v4, v4Range{lo, lo | uint32(1<<(32-p.Bits())-1)})
	}
	return s
}

func (s *prefixSet) contains(a netip.Addr) bool {
	if a.Is4() {
		x := v4Int(a)
		// The first range starting after x; the one before it is the only
		// candidate.
		i, _ := slices.BinarySearchFunc(s.v4, x, func(r v4Range, x uint32) int {
			if r.lo > x {
				return 1
			}
			return -1
		})
		return i > 0 && x <= s.v4[i-1].hi
	}
	if len(s.v6) <= 8 { // a short list: a scan is as fast as a search
		for _, p := range s.v6 {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	i, _ := slices.BinarySearchFunc(s.v6, a, func(p netip.Prefix, a netip.Addr) int {
		if p.Addr().Compare(a) > 0 {
			return 1
		}
		return -1
	})
	return i > 0 && s.v6[i-1].Contains(a)
}

// ipPolicy is a route's compiled ipRules.
type ipPolicy struct {
	allow, deny prefixSet
	allowList   bool
}

func compileIPRules(r *config.IPRules) *ipPolicy {
	return &ipPolicy{allow: newPrefixSet(r.Allow), deny: newPrefixSet(r.Deny), allowList: len(r.Allow) > 0}
}

// admits reports whether the client address a passes: not denied, and in
// the allow list when there is one. An unknown address (invalid) matches
// no entry.
func (p *ipPolicy) admits(a netip.Addr) bool {
	a = a.Unmap()
	if p.deny.contains(a) {
		return false
	}
	return !p.allowList || p.allow.contains(a)
}

// filter refuses a client the rules do not admit with 403.
func (p *ipPolicy) filter(w http.ResponseWriter, r *http.Request, req *Request) bool {
	if p.admits(req.ClientIP) {
		return false
	}
	refuse(w, r, ErrIPDenied, req.ID)
	return true
}

// corsPolicy is a route's compiled CORS policy; header values are built
// once, at compile time, and shared read-only (capacity = length, so an
// Add on a response copies instead of writing into them).
type corsPolicy struct {
	anyOrigin   bool
	exact       map[string]bool // "https://app.example.com", lower case
	wild        []config.OriginPattern
	credentials bool
	// varyOrigin: the answer depends on the Origin (not "*" alone).
	varyOrigin bool
	// reflectOrigin, reflectMethods, reflectHeaders: "*" answered with
	// the request's own value (config.CORS.ReflectWildcards).
	reflectOrigin, reflectMethods, reflectHeaders bool

	methods, headers, expose, maxAge, allowAny []string
}

func compileCORS(c *config.CORS, routeMethods []string) *corsPolicy {
	p := &corsPolicy{exact: map[string]bool{}, credentials: c.AllowCredentials}
	for _, s := range c.AllowOrigins {
		o, err := config.ParseOrigin(s)
		switch {
		case err != nil: // cannot happen: validated
		case o.Any:
			p.anyOrigin = true
		case o.Wildcard:
			p.wild = append(p.wild, o)
		default:
			k := o.Scheme + "://" + o.Host
			if o.Port != "" {
				k += ":" + o.Port
			}
			p.exact[k] = true
		}
	}
	if c.ReflectWildcards {
		p.reflectOrigin = p.anyOrigin
		p.reflectMethods = slices.Contains(c.AllowMethods, "*")
		p.reflectHeaders = slices.Contains(c.AllowHeaders, "*")
	}
	p.varyOrigin = !p.anyOrigin || p.credentials || p.reflectOrigin
	one := func(vs []string) []string {
		if len(vs) == 0 {
			return nil
		}
		v := strings.Join(vs, ", ")
		return []string{v}[:1:1]
	}
	methods := c.AllowMethods
	if len(methods) == 0 {
		methods = slices.DeleteFunc(slices.Clone(routeMethods), func(m string) bool { return m == http.MethodOptions })
	}
	if len(methods) == 0 {
		methods = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	}
	p.methods, p.headers, p.expose = one(methods), one(c.AllowHeaders), one(c.ExposeHeaders)
	if c.MaxAge > 0 {
		p.maxAge = one([]string{strconv.FormatInt(int64(c.MaxAge.Seconds()), 10)})
	}
	p.allowAny = one([]string{"*"})
	return p
}

// allows reports whether the request origin o (as the browser sent it)
// is allowed.
func (p *corsPolicy) allows(o string) bool {
	if p.anyOrigin {
		return true
	}
	if hasUpper(o) {
		o = strings.ToLower(o)
	}
	if p.exact[o] {
		return true
	}
	if len(p.wild) == 0 {
		return false
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok {
		return false
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
	}
	for _, w := range p.wild {
		// One or more labels before the suffix: "a.example.com" and
		// "a.b.example.com", never ".example.com" or "example.com".
		if w.Scheme == scheme && w.Port == port && len(host) > len(w.Host) && strings.HasSuffix(host, w.Host) &&
			dnsLabels(host[:len(host)-len(w.Host)]) {
			return true
		}
	}
	return false
}

// dnsLabels reports whether s is one or more non-empty labels of
// letters, digits and '-', separated by dots.
func dnsLabels(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

var varyOrigin = []string{"Origin"}[:1:1]
var credentialsTrue = []string{"true"}[:1:1]

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && len(r.Header["Origin"]) > 0 && len(r.Header["Access-Control-Request-Method"]) > 0
}

// filter answers a preflight itself (204, never proxied): with the
// Access-Control-Allow-* headers when the origin is allowed, without them
// otherwise, which makes the browser fail the preflight (as Traefik and
// rs/cors answer). An actual request from an allowed origin goes on with
// Access-Control-Allow-Origin (the origin itself unless the policy allows
// "*" without credentials or reflectWildcards), -Allow-Credentials and
// -Expose-Headers set
// here; the proxy drops the upstream's Access-Control-* headers
// (stripCORS). CORS is the browser's check, not access control: a
// disallowed origin's actual request is proxied, without the headers.
func (p *corsPolicy) filter(w http.ResponseWriter, r *http.Request, req *Request) bool {
	h := w.Header()
	if p.varyOrigin {
		h["Vary"] = varyOrigin
	}
	origin := r.Header["Origin"]
	allowed := len(origin) == 1 && p.allows(origin[0])
	if allowed {
		if p.anyOrigin && !p.credentials && !p.reflectOrigin {
			h["Access-Control-Allow-Origin"] = p.allowAny
		} else {
			h["Access-Control-Allow-Origin"] = origin[:1:1]
		}
		if p.credentials {
			h["Access-Control-Allow-Credentials"] = credentialsTrue
		}
		// Also on a preflight, where browsers ignore it: Gateway API
		// asks for it there too, as Envoy sends it.
		if p.expose != nil {
			h["Access-Control-Expose-Headers"] = p.expose
		}
	}
	if !isPreflight(r) {
		return false
	}
	if allowed {
		h["Access-Control-Allow-Methods"] = p.methods
		if p.reflectMethods {
			h["Access-Control-Allow-Methods"] = r.Header["Access-Control-Request-Method"][:1:1]
		}
		switch reqHeaders := r.Header["Access-Control-Request-Headers"]; {
		case !p.reflectHeaders:
			if p.headers != nil {
				h["Access-Control-Allow-Headers"] = p.headers
			}
		case len(reqHeaders) == 1:
			h["Access-Control-Allow-Headers"] = reqHeaders[:1:1]
		case len(reqHeaders) > 1:
			h["Access-Control-Allow-Headers"] = []string{strings.Join(reqHeaders, ", ")}
		}
		if p.maxAge != nil {
			h["Access-Control-Max-Age"] = p.maxAge
		}
	}
	h["X-Request-Id"] = []string{req.ID}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// corsHeaders are the response headers a cors route's gateway sets and
// an upstream's are dropped for.
var corsHeaders = []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age"}

// stripCORS drops the upstream's CORS headers: on a cors route the
// gateway's replace them.
func stripCORS(h http.Header) {
	for _, k := range corsHeaders {
		delete(h, k)
	}
}
