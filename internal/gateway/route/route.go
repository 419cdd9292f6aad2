// Package route compiles a validated config.Config into an immutable
// routing table and matches requests against it. A Table is never
// modified after Compile; the gateway swaps whole tables atomically.
//
// Precedence, as Gateway API orders it (Envoy Gateway's choice for
// regular expressions, which Gateway API leaves to implementations):
//  1. host: an exact host beats the longest matching wildcard, which beats
//     routes without hosts; a request that no route of a more specific
//     host matches falls through to the less specific ones;
//  2. path: Exact, then Regex (longer expression first), then Prefix
//     (longer prefix first);
//  3. a route with methods beats one without;
//  4. more header matches, then more query matches, then more cookie
//     matches;
//  5. the order in the file.
package route

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Table is a compiled, immutable routing table.
type Table struct {
	exact  map[string][]*Route // lower-case host → routes by precedence
	wild   []wildBucket        // longest suffix first
	any    []*Route            // routes without hosts
	routes []*Route            // in config order
}

type wildBucket struct {
	suffix string // ".example.com"
	routes []*Route
}

// Route is one compiled route. Its fields are read-only.
type Route struct {
	// Name is the route's config name.
	Name string
	// Index is the route's position in config.Routes.
	Index int
	// Config is the route's validated, defaulted configuration.
	Config *config.Route
	// Filters run in order after the match and before the split (see
	// Filter); compiled with the table.
	Filters []Filter
	// Split is the route's traffic split over its backends, with the live
	// weights (empty for a redirect).
	Split Split

	path    pathMatcher
	tls     int   // match.scheme: 1 https only, -1 http only, 0 both
	ports   []int // match.ports: the local ports it is served on; nil: all
	methods []string
	headers []valueMatcher
	query   []valueMatcher
	cookies []valueMatcher
	rewrite func(string) string
	reqOps  headerOps
	respOps headerOps
	// backendOps are the backends' own request header edits, by Split
	// index; nil when none has any.
	backendOps []headerOps
	hostRW     string
	redirect   *config.Redirect
	// redirectPrefix rewrites the path of a redirect.replacePrefix.
	redirectPrefix func(string) string
	ip             *ipPolicy   // nil: no ipRules
	cors           *corsPolicy // nil: no cors
}

// Options are what Compile needs beyond the config.
type Options struct {
	// Policies returns the filters of a route's auth and rateLimits,
	// which need the gateway's state (key sets, limiters, Redis); they run
	// after the route's cors filter and before its redirect or direct
	// response. Without it a route with auth or rate limits fails to
	// compile: a policy is never silently skipped.
	Policies func(rc *config.Route) ([]Filter, error)
}

// Compile builds the table for c, which must have been defaulted and
// validated. It fails only on what Validate cannot see.
func Compile(c *config.Config) (*Table, error) { return CompileWith(c, Options{}) }

// CompileWith is Compile with opts.
func CompileWith(c *config.Config, opts Options) (*Table, error) {
	t := &Table{exact: map[string][]*Route{}}
	wild := map[string][]*Route{}
	for i := range c.Routes {
		rc := &c.Routes[i]
		r, err := compileRoute(rc, i, opts)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		t.routes = append(t.routes, r)
		if len(rc.Match.Hosts) == 0 {
			t.any = append(t.any, r)
		}
		for _, h := range rc.Match.Hosts {
			h = strings.ToLower(h)
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				wild[suffix] = append(wild[suffix], r)
			} else {
				t.exact[h] = append(t.exact[h], r)
			}
		}
	}
	for s, rs := range wild {
		t.wild = append(t.wild, wildBucket{suffix: s, routes: rs})
	}
	slices.SortFunc(t.wild, func(a, b wildBucket) int {
		return cmp.Or(cmp.Compare(len(b.suffix), len(a.suffix)), strings.Compare(a.suffix, b.suffix))
	})
	sortRoutes(t.any)
	for _, rs := range t.exact {
		sortRoutes(rs)
	}
	for _, b := range t.wild {
		sortRoutes(b.routes)
	}
	return t, nil
}

// sortRoutes orders routes of one host bucket by precedence.
func sortRoutes(rs []*Route) {
	slices.SortStableFunc(rs, func(a, b *Route) int {
		return cmp.Or(
			cmp.Compare(a.path.kind, b.path.kind),
			cmp.Compare(len(b.path.value), len(a.path.value)),
			cmp.Compare(boolRank(len(b.methods) > 0), boolRank(len(a.methods) > 0)),
			cmp.Compare(len(b.headers), len(a.headers)),
			cmp.Compare(len(b.query), len(a.query)),
			cmp.Compare(len(b.cookies), len(a.cookies)),
			cmp.Compare(a.Index, b.Index),
		)
	})
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Routes returns the routes in config order.
func (t *Table) Routes() []*Route { return t.routes }

// Route returns the route named name, or nil.
func (t *Table) Route(name string) *Route {
	for _, r := range t.routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Match returns the route for r, whose normalized path is path (see
// NormalizePath), by precedence, or nil. CONNECT and TRACE match only
// routes that list them in match.methods.
func (t *Table) Match(r *http.Request, path string) *Route {
	return t.match(r, path, false)
}

// Allow returns the methods (comma-separated, for an Allow header) that
// would match r if it had another method: non-empty when Match found
// nothing only because of the method, so the answer is 405, not 404.
func (t *Table) Allow(r *http.Request, path string) string {
	var methods []string
	t.each(r, func(rt *Route) bool {
		if !rt.Config.Match.MethodsAs404 && rt.matches(r, path, nil, true) {
			ms := rt.methods
			if len(ms) == 0 {
				ms = defaultMethods
			}
			methods = append(methods, ms...)
		}
		return false
	})
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}

// defaultMethods are what a route without match.methods accepts: every
// method but CONNECT (a tunnel) and TRACE (echoes credentials back).
var defaultMethods = []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPatch, http.MethodPost, http.MethodPut}

func (t *Table) match(r *http.Request, path string, anyMethod bool) *Route {
	host := hostOnly(r.Host)
	var q url.Values // parsed once, on first need
	m := func(rs []*Route) *Route {
		for _, rt := range rs {
			if rt.matches(r, path, &q, anyMethod) {
				return rt
			}
		}
		return nil
	}
	if rs, ok := t.exact[host]; ok {
		if rt := m(rs); rt != nil {
			return rt
		}
	}
	for _, b := range t.wild {
		if len(host) > len(b.suffix) && strings.HasSuffix(host, b.suffix) {
			if rt := m(b.routes); rt != nil {
				return rt
			}
		}
	}
	return m(t.any)
}

// each calls f on the candidate routes for r's host by precedence until
// f returns true.
func (t *Table) each(r *http.Request, f func(*Route) bool) {
	host := hostOnly(r.Host)
	if rs, ok := t.exact[host]; ok {
		for _, rt := range rs {
			if f(rt) {
				return
			}
		}
	}
	for _, b := range t.wild {
		if len(host) > len(b.suffix) && strings.HasSuffix(host, b.suffix) {
			for _, rt := range b.routes {
				if f(rt) {
					return
				}
			}
		}
	}
	for _, rt := range t.any {
		if f(rt) {
			return
		}
	}
}

// hostOnly lower-cases the host and drops the port and a trailing dot,
// allocating only when the host has upper-case letters.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// matches reports whether r matches the route; anyMethod ignores the
// method (for Allow). q caches the parsed query (nil: parse each time).
func (rt *Route) matches(r *http.Request, path string, q *url.Values, anyMethod bool) bool {
	if !rt.path.match(path) {
		return false
	}
	if rt.tls != 0 && (r.TLS != nil) != (rt.tls > 0) {
		return false
	}
	if rt.ports != nil && !slices.Contains(rt.ports, localPort(r)) {
		return false
	}
	// A CORS preflight is the cors filter's to answer whatever methods
	// the route lists: browsers send OPTIONS before a cross-origin
	// PUT or a POST with a JSON body.
	if !anyMethod && !rt.allows(r.Method) && (rt.cors == nil || !isPreflight(r)) {
		return false
	}
	for _, h := range rt.headers {
		if !h.matchAny(r.Header[h.name]) {
			return false
		}
	}
	if len(rt.query) > 0 {
		if q == nil {
			q = new(url.Values)
		}
		if *q == nil {
			*q = r.URL.Query()
		}
		for _, m := range rt.query {
			if !m.matchAny((*q)[m.name]) {
				return false
			}
		}
	}
	for _, m := range rt.cookies {
		var vs []string
		for _, c := range r.CookiesNamed(m.name) {
			vs = append(vs, c.Value)
		}
		if !m.matchAny(vs) {
			return false
		}
	}
	return true
}

// localPort is the gateway's port the request arrived on (0 if unknown).
func localPort(r *http.Request) int {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// allows reports whether the route takes requests with method.
func (rt *Route) allows(method string) bool {
	if len(rt.methods) > 0 {
		return slices.Contains(rt.methods, method)
	}
	return method != http.MethodConnect && method != http.MethodTrace
}

func compileRoute(rc *config.Route, index int, opts Options) (*Route, error) {
	r := &Route{Name: rc.Name, Index: index, Config: rc, methods: rc.Match.Methods, ports: rc.Match.Ports, redirect: rc.Redirect, Split: compileSplit(rc.Backends)}
	switch rc.Match.Scheme {
	case "https":
		r.tls = 1
	case "http":
		r.tls = -1
	}
	var err error
	if r.path, err = compilePath(rc.Match.Path); err != nil {
		return nil, err
	}
	for _, g := range []struct {
		dst       *[]valueMatcher
		src       []config.ValueMatch
		canonical bool
	}{{&r.headers, rc.Match.Headers, true}, {&r.query, rc.Match.Query, false}, {&r.cookies, rc.Match.Cookies, false}} {
		for _, vm := range g.src {
			m, err := compileValue(vm, g.canonical)
			if err != nil {
				return nil, err
			}
			*g.dst = append(*g.dst, m)
		}
	}
	if rw := rc.Rewrite; rw != nil {
		r.hostRW = rw.Host
		if rw.Path != nil {
			if r.rewrite, err = compileRewrite(rw.Path, r.path); err != nil {
				return nil, err
			}
		}
	}
	r.reqOps = compileHeaderOps(rc.RequestHeaders)
	for i, b := range rc.Backends {
		if b.RequestHeaders == nil {
			continue
		}
		if r.backendOps == nil {
			r.backendOps = make([]headerOps, len(rc.Backends))
		}
		r.backendOps[i] = compileHeaderOps(b.RequestHeaders)
	}
	r.respOps = compileHeaderOps(rc.ResponseHeaders)
	// Refusals first: a denied client learns nothing else.
	if rc.IPRules != nil {
		r.ip = compileIPRules(rc.IPRules)
		r.Filters = append(r.Filters, r.ip.filter)
	}
	if rc.HTTPSRedirect != nil {
		r.Filters = append(r.Filters, r.httpsRedirectFilter)
	}
	if rc.CORS != nil {
		r.cors = compileCORS(rc.CORS, rc.Match.Methods)
		r.Filters = append(r.Filters, r.cors.filter)
	}
	if rc.Auth != nil || len(rc.RateLimits) > 0 {
		if opts.Policies == nil {
			return nil, fmt.Errorf("auth and rateLimits need the gateway (route.Options.Policies)")
		}
		fs, err := opts.Policies(rc)
		if err != nil {
			return nil, err
		}
		r.Filters = append(r.Filters, fs...)
	}
	if r.redirect != nil {
		if v := r.redirect.ReplacePrefix; v != "" {
			r.redirectPrefix, _ = compileRewrite(&config.PathRewrite{Type: config.RewriteReplacePrefix, Value: v}, r.path)
		}
		r.Filters = append(r.Filters, r.redirectFilter)
	}
	if rc.DirectResponse != nil {
		r.Filters = append(r.Filters, r.directFilter)
	}
	return r, nil
}

// Path match kinds, in precedence order.
const (
	kindExact = iota
	kindRegex
	kindPrefix
)

type pathMatcher struct {
	kind  int
	value string // exact path, prefix without trailing slash, or regex source
	re    *regexp.Regexp
	lit   string // literal prefix every regex match starts with
}

func compilePath(pm *config.PathMatch) (pathMatcher, error) {
	if pm.Type == config.PathExact || pm.Type == config.PathPrefix {
		// Requests are matched after normalization: a value that is not
		// in normalized form would never match.
		np, err := NormalizePath(escapeMatch(pm.Value), PathOptions{MergeSlashes: true, EncodedSlash: config.EncodedSlashKeep})
		if err != nil || np.Match != pm.Value {
			want := np.Match
			if err != nil {
				want = err.Error()
			}
			return pathMatcher{}, fmt.Errorf("match.path.value: %q is not a normalized path (%s): no request could match it", pm.Value, want)
		}
	}
	switch pm.Type {
	case config.PathExact:
		return pathMatcher{kind: kindExact, value: pm.Value}, nil
	case config.PathRegex:
		re, err := regexp.Compile(`^(?:` + pm.Value + `)$`)
		if err != nil {
			return pathMatcher{}, fmt.Errorf("match.path.value: %w", err)
		}
		// Any match of the anchored expression starts with the literal
		// prefix of the user's: checking it first skips the regexp engine
		// for most paths of other routes.
		lit, _ := regexp.MustCompile(pm.Value).LiteralPrefix()
		return pathMatcher{kind: kindRegex, value: pm.Value, re: re, lit: lit}, nil
	default:
		v := strings.TrimRight(pm.Value, "/")
		return pathMatcher{kind: kindPrefix, value: v}, nil
	}
}

func (m *pathMatcher) match(p string) bool {
	switch m.kind {
	case kindExact:
		return p == m.value
	case kindRegex:
		return strings.HasPrefix(p, m.lit) && m.re.MatchString(p)
	}
	// Prefix matches whole segments: "/flask" matches "/flask" and
	// "/flask/x" but not "/flasky". The "/" prefix is stored as "".
	return strings.HasPrefix(p, m.value) && (len(p) == len(m.value) || p[len(m.value)] == '/')
}

type valueMatcher struct {
	name  string
	kind  string
	value string
	re    *regexp.Regexp
}

func compileValue(vm config.ValueMatch, canonical bool) (valueMatcher, error) {
	m := valueMatcher{name: vm.Name, kind: vm.Type, value: vm.Value}
	if canonical {
		m.name = http.CanonicalHeaderKey(vm.Name)
	}
	if vm.Type == config.MatchRegex {
		re, err := regexp.Compile(`^(?:` + vm.Value + `)$`)
		if err != nil {
			return m, fmt.Errorf("match %s: %w", vm.Name, err)
		}
		m.re = re
	}
	return m, nil
}

func (m *valueMatcher) matchAny(vs []string) bool {
	if m.kind == config.MatchPresent {
		return len(vs) > 0
	}
	for _, v := range vs {
		if m.re != nil && m.re.MatchString(v) || m.re == nil && v == m.value {
			return true
		}
	}
	return false
}

func compileRewrite(pr *config.PathRewrite, pm pathMatcher) (func(string) string, error) {
	switch pr.Type {
	case config.RewriteReplaceFull:
		return func(string) string { return pr.Value }, nil
	case config.RewriteReplacePrefix:
		prefix, value := pm.value, strings.TrimRight(pr.Value, "/")
		return func(p string) string {
			rest := strings.TrimPrefix(p, prefix)
			if out := value + rest; out != "" {
				if out[0] != '/' {
					return "/" + out
				}
				return out
			}
			return "/"
		}, nil
	default: // Regex
		re := pm.re
		if pr.Pattern != "" {
			var err error
			if re, err = regexp.Compile(pr.Pattern); err != nil {
				return nil, fmt.Errorf("rewrite.path.pattern: %w", err)
			}
		}
		tmpl := pr.Value
		return func(p string) string {
			m := re.FindStringSubmatchIndex(p)
			if m == nil {
				return p
			}
			out := p[:m[0]] + string(re.ExpandString(nil, tmpl, p, m)) + p[m[1]:]
			if out == "" || out[0] != '/' {
				out = "/" + out
			}
			return out
		}, nil
	}
}

// RewritePath returns p rewritten by the route (p itself without a path
// rewrite), on the match form of paths; UpstreamPath is what the proxy
// sends.
func (rt *Route) RewritePath(p string) string {
	if rt.rewrite == nil {
		return p
	}
	return rt.rewrite(p)
}

// Host is the Host to send upstream, or "" to keep the client's.
func (rt *Route) Host() string { return rt.hostRW }

// Redirect returns the redirect target and status for r, whose
// normalized path is req.Path, when the route is a redirect, else "", 0.
func (rt *Route) Redirect(r *http.Request, req *Request) (string, int) {
	rd := rt.redirect
	if rd == nil {
		return "", 0
	}
	scheme := req.Scheme
	reqHost, reqPort, err := net.SplitHostPort(r.Host)
	if err != nil {
		reqHost, reqPort = r.Host, ""
	}
	host, port := reqHost, reqPort
	if rd.Scheme != "" || rd.Host != "" {
		port = "" // the scheme's default port unless one is given
	}
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	if rd.Host != "" {
		host = rd.Host
	}
	if rd.Port != 0 {
		port = strconv.Itoa(rd.Port)
	} else if rd.Scheme == "" && rd.ListenerPort != 0 {
		port = strconv.Itoa(rd.ListenerPort)
		if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
			port = ""
		}
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	}
	u := url.URL{Scheme: scheme, Host: host, Path: req.Path.Decoded(), RawPath: req.Path.Escaped, RawQuery: r.URL.RawQuery}
	if rd.Path != "" {
		u.Path, u.RawPath = rd.Path, ""
	}
	if rt.redirectPrefix != nil {
		u.Path, u.RawPath = rt.redirectPrefix(req.Path.Match), ""
	}
	return u.String(), rd.StatusCode
}

// redirectFilter answers a redirect route's requests.
func (rt *Route) redirectFilter(w http.ResponseWriter, r *http.Request, req *Request) bool {
	target, code := rt.Redirect(r, req)
	w.Header()["X-Request-Id"] = []string{req.ID}
	http.Redirect(w, r, target, code)
	return true
}

// httpsRedirectFilter sends a request that came over clear text to the
// same URL over HTTPS; an HTTPS request goes on.
func (rt *Route) httpsRedirectFilter(w http.ResponseWriter, r *http.Request, req *Request) bool {
	if req.Scheme == "https" {
		return false
	}
	hr := rt.Config.HTTPSRedirect
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil { // no port
		host = strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]")
	}
	if hr.Port != 0 && hr.Port != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(hr.Port))
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	u := url.URL{Scheme: "https", Host: host, Path: req.Path.Decoded(), RawPath: req.Path.Escaped, RawQuery: r.URL.RawQuery}
	w.Header()["X-Request-Id"] = []string{req.ID}
	http.Redirect(w, r, u.String(), hr.StatusCode)
	return true
}

// directFilter serves a directResponse route's fixed answer; the request
// never reaches a backend.
func (rt *Route) directFilter(w http.ResponseWriter, _ *http.Request, req *Request) bool {
	d := rt.Config.DirectResponse
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["Cache-Control"] = []string{"no-store"}
	h["X-Request-Id"] = []string{req.ID}
	if d.Status != http.StatusNoContent && d.Status != http.StatusNotModified {
		h["Content-Length"] = []string{strconv.Itoa(len(d.Body))}
	}
	w.WriteHeader(d.Status)
	io.WriteString(w, d.Body)
	return true
}

type headerOps struct {
	remove []string
	set    [][2]string
	add    [][2]string
}

func compileHeaderOps(h *config.HeaderOps) headerOps {
	var o headerOps
	if h == nil {
		return o
	}
	for _, k := range h.Remove {
		o.remove = append(o.remove, http.CanonicalHeaderKey(k))
	}
	for _, k := range slices.Sorted(maps.Keys(h.Set)) {
		o.set = append(o.set, [2]string{http.CanonicalHeaderKey(k), h.Set[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(h.Add)) {
		o.add = append(o.add, [2]string{http.CanonicalHeaderKey(k), h.Add[k]})
	}
	return o
}

func (o *headerOps) apply(h http.Header) {
	for _, k := range o.remove {
		delete(h, k)
	}
	for _, kv := range o.set {
		h[kv[0]] = []string{kv[1]}
	}
	for _, kv := range o.add {
		h[kv[0]] = append(h[kv[0]], kv[1])
	}
}

// EditRequestHeaders applies the route's request header operations, then
// those of the backend the split chose (its index in Split; -1: none).
func (rt *Route) EditRequestHeaders(h http.Header, backend int) {
	rt.reqOps.apply(h)
	if rt.backendOps != nil && backend >= 0 {
		rt.backendOps[backend].apply(h)
	}
}

// EditResponseHeaders applies the route's response header operations to
// an upstream's response; on a cors route it first drops the upstream's
// Access-Control-* headers, which the gateway's replace.
func (rt *Route) EditResponseHeaders(h http.Header) {
	if rt.cors != nil {
		stripCORS(h)
	}
	rt.respOps.apply(h)
}

// Describe lists the table in the order requests are matched: host
// buckets from most to least specific, routes by precedence within each.
// Golden tests and debugging read it.
func (t *Table) Describe() string {
	var b strings.Builder
	write := func(host string, rs []*Route) {
		fmt.Fprintf(&b, "host %s\n", host)
		for _, r := range rs {
			fmt.Fprintf(&b, "  %-20s %s\n", r.Name, r.describeMatch())
		}
	}
	for _, h := range slices.Sorted(maps.Keys(t.exact)) {
		write(h, t.exact[h])
	}
	for _, w := range t.wild {
		write("*"+w.suffix, w.routes)
	}
	if len(t.any) > 0 {
		write("(any)", t.any)
	}
	return b.String()
}

func (rt *Route) describeMatch() string {
	kinds := [...]string{kindExact: config.PathExact, kindRegex: config.PathRegex, kindPrefix: config.PathPrefix}
	v := rt.path.value
	if rt.path.kind == kindPrefix && v == "" {
		v = "/"
	}
	s := kinds[rt.path.kind] + " " + v
	if len(rt.methods) > 0 {
		s += " methods=" + strings.Join(rt.methods, ",")
	}
	for _, g := range []struct {
		name string
		ms   []valueMatcher
	}{{"header", rt.headers}, {"query", rt.query}, {"cookie", rt.cookies}} {
		for _, m := range g.ms {
			s += fmt.Sprintf(" %s:%s %s", g.name, m.kind, m.name)
			if m.kind != config.MatchPresent {
				s += "=" + m.value
			}
		}
	}
	if rt.rewrite != nil {
		s += " rewrite=" + rt.Config.Rewrite.Path.Type + ":" + rt.Config.Rewrite.Path.Value
	}
	if rt.redirect != nil {
		s += " redirect"
	}
	if rt.ip != nil {
		s += " ipRules"
	}
	if rt.cors != nil {
		s += " cors"
	}
	if a := rt.Config.Auth; a != nil {
		s += " auth="
		for _, m := range []struct {
			name string
			on   bool
		}{{"apiKey", a.APIKey != nil}, {"basic", a.Basic != nil}, {"jwt", a.JWT != nil}, {"forward", a.Forward != nil}} {
			if m.on {
				s += m.name + ","
			}
		}
		s = strings.TrimSuffix(s, ",")
	}
	for _, l := range rt.Config.RateLimits {
		s += fmt.Sprintf(" rateLimit=%s:%d/%s", l.Name, l.Requests, l.Per)
	}
	return s
}
