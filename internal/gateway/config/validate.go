package config

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62})$`)

// problems collects validation errors, each prefixed with its YAML path.
type problems []error

func (p *problems) addf(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Validate reports every problem at once, each naming its YAML path:
// "routes[2].backends[0].weight: must be 0..100, got 120". Call it after
// SetDefaults.
// checkName reports a malformed or duplicate name at path and records it
// in seen.
func (p *problems) checkName(path, kind, name string, seen map[string]bool) {
	switch {
	case !nameRE.MatchString(name):
		p.addf(path+".name", "want 1..63 of a-z, 0-9, '.', '_', '-' starting with a letter or digit, got %q", name)
	case seen[name]:
		p.addf(path+".name", "duplicate %s %q", kind, name)
	}
	seen[name] = true
}

func (c *Config) Validate() error { return c.ValidateWith(ValidateOptions{}) }

// ValidateOptions relax Validate for callers that add to a config.
type ValidateOptions struct {
	// AllowNoRoutes accepts a config without routes. For an Ingress
	// controller (flotilla gateway --ingress-class), whose routes come from
	// Ingress objects: until one is served every request gets 404. Default
	// false: a config file alone with no routes is a mistake.
	AllowNoRoutes bool
}

// ValidateWith is Validate with o.
func (c *Config) ValidateWith(o ValidateOptions) error {
	var p problems
	if c.APIVersion != APIVersion {
		p.addf("apiVersion", "want %q, got %q", APIVersion, c.APIVersion)
	}
	if c.Kind != Kind {
		p.addf("kind", "want %q, got %q", Kind, c.Kind)
	}
	if c.Defaults.Timeout < 0 {
		p.addf("defaults.timeout", "must not be negative, got %s", c.Defaults.Timeout)
	}
	if c.Defaults.Retries != nil {
		c.Defaults.Retries.validate(&p, "defaults.retries")
	}
	c.Defaults.Paths.validate(&p, "defaults.paths")
	if c.TLS != nil {
		c.TLS.validate(&p, "tls")
	}
	if c.Defaults.IPRules != nil {
		c.Defaults.IPRules.validate(&p, "defaults.ipRules")
	}
	if c.Defaults.CORS != nil {
		c.Defaults.CORS.validate(&p, "defaults.cors")
	}
	if c.Redis != nil {
		c.Redis.validate(&p, "redis")
	}
	if c.Defaults.Auth != nil {
		c.Defaults.Auth.validate(&p, "defaults.auth")
	}
	backends := map[string]bool{}
	if c.Defaults.Streams != nil {
		c.Defaults.Streams.validate(&p, "defaults.streams")
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		path := fmt.Sprintf("backends[%d]", i)
		p.checkName(path, "backend", b.Name, backends)
		b.validate(&p, path)
	}
	if len(c.Routes) == 0 && !o.AllowNoRoutes {
		p.addf("routes", "want at least one route")
	}
	routes := map[string]bool{}
	for i, r := range c.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		p.checkName(path, "route", r.Name, routes)
		r.validate(&p, path, backends)
		// A route's policies that are the defaults' were reported there.
		if r.IPRules != nil && r.IPRules != c.Defaults.IPRules {
			r.IPRules.validate(&p, path+".ipRules")
		}
		if r.CORS != nil && r.CORS != c.Defaults.CORS {
			r.CORS.validate(&p, path+".cors")
		}
		if r.Auth != nil && r.Auth != c.Defaults.Auth {
			r.Auth.validate(&p, path+".auth")
		}
		if r.Public && r.Auth != nil {
			p.addf(path+".public", "a public route has no auth; remove one of them")
		}
		names := map[string]bool{}
		for j := range r.RateLimits {
			l := &r.RateLimits[j]
			lp := fmt.Sprintf("%s.rateLimits[%d]", path, j)
			l.validate(&p, lp, &r, c)
			if names[l.Name] {
				p.addf(lp+".name", "duplicate rate limit %q on this route", l.Name)
			}
			names[l.Name] = true
		}
	}
	return errors.Join(p...)
}

func (b *Backend) validate(p *problems, path string) {
	switch {
	case b.Kubernetes != nil && len(b.Addresses) > 0:
		p.addf(path, "want either addresses or kubernetes, not both")
	case b.Kubernetes != nil:
		b.Kubernetes.validate(p, path+".kubernetes")
	case len(b.Addresses) == 0:
		p.addf(path+".addresses", "want at least one host:port (or kubernetes: {service, port})")
	}
	for j, a := range b.Addresses {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			p.addf(fmt.Sprintf("%s.addresses[%d]", path, j), "want host:port with port 1..65535, got %q", a)
		}
	}
	if b.ResolveInterval < 100*time.Millisecond {
		p.addf(path+".resolveInterval", "must be at least 100ms, got %s", b.ResolveInterval)
	}
	switch b.Protocol {
	case ProtocolHTTP1, ProtocolH2C, ProtocolHTTPS, ProtocolH2:
	default:
		p.addf(path+".protocol", `want "http1", "h2c", "https" or "h2", got %q`, b.Protocol)
	}
	b.TLS.validate(p, path, b)
	switch b.Balance.Policy {
	case RoundRobin, LeastRequest, Random:
		if b.Balance.HashOn != nil {
			p.addf(path+".balance.hashOn", "only used with policy %s", ConsistentHash)
		}
	case ConsistentHash:
		h := b.Balance.HashOn
		n := 0
		if h != nil {
			for _, set := range []bool{h.Header != "", h.Cookie != "", h.ClientIP} {
				if set {
					n++
				}
			}
		}
		if n != 1 {
			p.addf(path+".balance.hashOn", "want exactly one of header, cookie or clientIP")
		}
	default:
		p.addf(path+".balance.policy", "want %s, %s, %s or %s, got %q", RoundRobin, LeastRequest, Random, ConsistentHash, b.Balance.Policy)
	}
	if h := b.HealthCheck; h != nil {
		hp := path + ".healthCheck"
		if !strings.HasPrefix(h.Path, "/") {
			p.addf(hp+".path", "must start with '/', got %q", h.Path)
		}
		if h.Interval < 10*time.Millisecond {
			p.addf(hp+".interval", "must be at least 10ms, got %s", h.Interval)
		}
		if h.Timeout <= 0 || h.Timeout > h.Interval {
			p.addf(hp+".timeout", "must be positive and at most interval (%s), got %s", h.Interval, h.Timeout)
		}
		if h.HealthyThreshold < 1 || h.HealthyThreshold > 100 {
			p.addf(hp+".healthyThreshold", "must be 1..100, got %d", h.HealthyThreshold)
		}
		if h.UnhealthyThreshold < 1 || h.UnhealthyThreshold > 100 {
			p.addf(hp+".unhealthyThreshold", "must be 1..100, got %d", h.UnhealthyThreshold)
		}
		for j, s := range h.ExpectedStatuses {
			if s < 100 || s > 599 {
				p.addf(fmt.Sprintf("%s.expectedStatuses[%d]", hp, j), "must be 100..599, got %d", s)
			}
		}
	}
	if o := b.Outlier; o != nil {
		if o.ConsecutiveFailures < 1 {
			p.addf(path+".outlier.consecutiveFailures", "must be at least 1, got %d", o.ConsecutiveFailures)
		}
		if o.BaseEjection <= 0 {
			p.addf(path+".outlier.baseEjection", "must be positive, got %s", o.BaseEjection)
		}
		if o.MaxEjection < o.BaseEjection {
			p.addf(path+".outlier.maxEjection", "must be at least baseEjection (%s), got %s", o.BaseEjection, o.MaxEjection)
		}
		for j, s := range o.CountStatuses {
			if s < 400 || s > 599 {
				p.addf(fmt.Sprintf("%s.outlier.countStatuses[%d]", path, j), "must be 400..599, got %d", s)
			}
		}
		if v := o.MaxEjectionPercent; v != nil && (*v < 0 || *v > 100) {
			p.addf(path+".outlier.maxEjectionPercent", "must be 0..100, got %d", *v)
		}
		if v := o.PanicThreshold; v != nil && (*v < 0 || *v > 100) {
			p.addf(path+".outlier.panicThreshold", "must be 0..100, got %d", *v)
		}
	}
	if b.MaxInFlight < 0 {
		p.addf(path+".maxInFlight", "must not be negative, got %d", b.MaxInFlight)
	}
}

func (r *Route) validate(p *problems, path string, backends map[string]bool) {
	m := r.Match
	for j, h := range m.Hosts {
		if !validHost(h) {
			p.addf(fmt.Sprintf("%s.match.hosts[%d]", path, j), `want a host name or "*.domain", without port, got %q`, h)
		}
	}
	var pathRE *regexp.Regexp
	if pm := m.Path; pm != nil {
		pp := path + ".match.path"
		switch pm.Type {
		case PathExact, PathPrefix:
			if !strings.HasPrefix(pm.Value, "/") {
				p.addf(pp+".value", "must start with '/', got %q", pm.Value)
			}
		case PathRegex:
			re, err := regexp.Compile(pm.Value)
			if err != nil {
				p.addf(pp+".value", "invalid regular expression: %v", err)
			}
			pathRE = re
		default:
			p.addf(pp+".type", "want %s, %s or %s, got %q", PathExact, PathPrefix, PathRegex, pm.Type)
		}
	}
	if m.Scheme != "" && m.Scheme != "http" && m.Scheme != "https" {
		p.addf(path+".match.scheme", `want "http", "https" or nothing, got %q`, m.Scheme)
	}
	for j, port := range m.Ports {
		if port < 1 || port > 65535 {
			p.addf(fmt.Sprintf("%s.match.ports[%d]", path, j), "want a port 1..65535, got %d", port)
		}
	}
	for j, meth := range m.Methods {
		if meth == "" || strings.ToUpper(meth) != meth || strings.ContainsAny(meth, " \t/") {
			p.addf(fmt.Sprintf("%s.match.methods[%d]", path, j), "want an upper-case method like GET, got %q", meth)
		}
	}
	for _, g := range []struct {
		field string
		vs    []ValueMatch
	}{{"headers", m.Headers}, {"query", m.Query}, {"cookies", m.Cookies}} {
		for j, v := range g.vs {
			vp := fmt.Sprintf("%s.match.%s[%d]", path, g.field, j)
			if v.Name == "" {
				p.addf(vp+".name", "must not be empty")
			}
			switch v.Type {
			case MatchExact:
			case MatchRegex:
				if _, err := regexp.Compile(v.Value); err != nil {
					p.addf(vp+".value", "invalid regular expression: %v", err)
				}
			case MatchPresent:
				if v.Value != "" {
					p.addf(vp+".value", "must be empty for type %s", MatchPresent)
				}
			default:
				p.addf(vp+".type", "want %s, %s or %s, got %q", MatchExact, MatchRegex, MatchPresent, v.Type)
			}
		}
	}
	if rw := r.Rewrite; rw != nil {
		if rw.Host != "" && !validHostPort(rw.Host) {
			p.addf(path+".rewrite.host", "want a host name with an optional port, got %q", rw.Host)
		}
		if pr := rw.Path; pr != nil {
			rp := path + ".rewrite.path"
			switch pr.Type {
			case RewriteReplacePrefix:
				if m.Path == nil || m.Path.Type != PathPrefix {
					p.addf(rp+".type", "%s needs a %s path match", RewriteReplacePrefix, PathPrefix)
				}
				if !strings.HasPrefix(pr.Value, "/") {
					p.addf(rp+".value", "must start with '/', got %q", pr.Value)
				}
			case RewriteReplaceFull:
				if !strings.HasPrefix(pr.Value, "/") {
					p.addf(rp+".value", "must start with '/', got %q", pr.Value)
				}
			case RewriteRegex:
				re := pathRE
				if pr.Pattern != "" {
					var err error
					if re, err = regexp.Compile(pr.Pattern); err != nil {
						p.addf(rp+".pattern", "invalid regular expression: %v", err)
					}
				} else if re == nil {
					p.addf(rp+".pattern", "required unless the path match is %s", PathRegex)
				}
				if re != nil && re.NumSubexp() < maxGroupRef(pr.Value) {
					p.addf(rp+".value", "refers to group $%d but the pattern has %d", maxGroupRef(pr.Value), re.NumSubexp())
				}
			default:
				p.addf(rp+".type", "want %s, %s or %s, got %q", RewriteReplacePrefix, RewriteReplaceFull, RewriteRegex, pr.Type)
			}
		}
		if r.Redirect != nil && rw.Path != nil {
			p.addf(path+".rewrite", "not used with redirect: set redirect.path")
		}
	}
	if hr := r.HTTPSRedirect; hr != nil {
		hp := path + ".httpsRedirect"
		if hr.Port < 0 || hr.Port > 65535 {
			p.addf(hp+".port", "must be 0..65535, got %d", hr.Port)
		}
		switch hr.StatusCode {
		case 301, 302, 307, 308:
		default:
			p.addf(hp+".statusCode", "want 301, 302, 307 or 308, got %d", hr.StatusCode)
		}
	}
	if rd := r.Redirect; rd != nil {
		dp := path + ".redirect"
		if len(r.Backends) > 0 {
			p.addf(dp, "a route has either redirect or backends, not both")
		}
		if rd.Scheme != "" && rd.Scheme != "http" && rd.Scheme != "https" {
			p.addf(dp+".scheme", `want "http" or "https", got %q`, rd.Scheme)
		}
		if rd.Host != "" && !validHost(rd.Host) {
			p.addf(dp+".host", "want a host name, got %q", rd.Host)
		}
		if rd.Port < 0 || rd.Port > 65535 {
			p.addf(dp+".port", "must be 0..65535, got %d", rd.Port)
		}
		if rd.ListenerPort < 0 || rd.ListenerPort > 65535 {
			p.addf(dp+".listenerPort", "must be 0..65535, got %d", rd.ListenerPort)
		}
		if rd.Path != "" && !strings.HasPrefix(rd.Path, "/") {
			p.addf(dp+".path", "must start with '/', got %q", rd.Path)
		}
		if rd.ReplacePrefix != "" {
			switch {
			case rd.Path != "":
				p.addf(dp+".replacePrefix", "not used with redirect.path")
			case !strings.HasPrefix(rd.ReplacePrefix, "/"):
				p.addf(dp+".replacePrefix", "must start with '/', got %q", rd.ReplacePrefix)
			case r.Match.Path == nil || r.Match.Path.Type != PathPrefix:
				p.addf(dp+".replacePrefix", "needs a %s path match", PathPrefix)
			}
		}
		switch rd.StatusCode {
		case 301, 302, 303, 307, 308:
		default:
			p.addf(dp+".statusCode", "want 301, 302, 303, 307 or 308, got %d", rd.StatusCode)
		}
	} else if len(r.Backends) == 0 && r.DirectResponse == nil {
		p.addf(path+".backends", "want at least one backend (or a redirect or directResponse)")
	}
	r.DirectResponse.validate(p, r, path+".directResponse")
	total := 0
	for j, b := range r.Backends {
		bp := fmt.Sprintf("%s.backends[%d]", path, j)
		if !backends[b.Name] {
			p.addf(bp+".name", "no backend named %q", b.Name)
		}
		if b.Weight != nil {
			if *b.Weight < 0 || *b.Weight > 100 {
				p.addf(bp+".weight", "must be 0..100, got %d", *b.Weight)
			}
			total += max(*b.Weight, 0)
		}
		b.RequestHeaders.validate(p, bp+".requestHeaders")
	}
	if len(r.Backends) > 0 && total == 0 {
		p.addf(path+".backends", "weights add up to 0: nothing would be served")
	}
	r.RequestHeaders.validate(p, path+".requestHeaders")
	r.ResponseHeaders.validate(p, path+".responseHeaders")
	if s := r.Sticky; s != nil {
		if !validToken(s.Cookie) {
			p.addf(path+".sticky.cookie", "want a cookie name, got %q", s.Cookie)
		}
		if s.TTL < time.Second {
			p.addf(path+".sticky.ttl", "must be at least 1s, got %s", s.TTL)
		}
	}
	if mr := r.Mirror; mr != nil {
		mr.validate(p, backends, path+".mirror")
		if len(r.Mirrors) > 0 {
			p.addf(path+".mirrors", "a route has mirror or mirrors, not both")
		}
	}
	for j := range r.Mirrors {
		r.Mirrors[j].validate(p, backends, fmt.Sprintf("%s.mirrors[%d]", path, j))
	}
	if r.TryTimeout < 0 {
		p.addf(path+".tryTimeout", "must not be negative, got %s", r.TryTimeout)
	}
	if r.Timeout < 0 {
		p.addf(path+".timeout", "must not be negative, got %s", r.Timeout)
	}
	if r.MaxBodyBytes < 0 {
		p.addf(path+".maxBodyBytes", "must not be negative, got %d", r.MaxBodyBytes)
	}
	if r.Retries != nil {
		r.Retries.validate(p, path+".retries")
	}
	if r.Streams != nil {
		r.Streams.validate(p, path+".streams")
	}
}

func (s *Streams) validate(p *problems, path string) {
	if s.IdleTimeout < 0 || s.IdleTimeout > 0 && s.IdleTimeout < time.Second {
		p.addf(path+".idleTimeout", "must be at least 1s, got %s", s.IdleTimeout)
	}
	if s.MaxLifetime < 0 || s.MaxLifetime > 0 && s.MaxLifetime < time.Second {
		p.addf(path+".maxLifetime", "must be at least 1s, got %s", s.MaxLifetime)
	}
}

func (r *Retries) validate(p *problems, path string) {
	if r.Attempts < 0 || r.Attempts > 10 {
		p.addf(path+".attempts", "must be 0..10, got %d", r.Attempts)
	}
	if r.Backoff < 0 {
		p.addf(path+".backoff", "must not be negative, got %s", r.Backoff)
	}
	if r.MinBackoff < 0 || r.MinBackoff > time.Minute {
		p.addf(path+".minBackoff", "must be 0..1m, got %s", r.MinBackoff)
	}
	if r.Budget != nil && (*r.Budget < 0 || *r.Budget > 1) {
		p.addf(path+".budget", "must be 0..1, got %g", *r.Budget)
	}
	for j, s := range r.RetryOn {
		if s < 500 || s > 599 {
			p.addf(fmt.Sprintf("%s.retryOn[%d]", path, j), "must be 500..599, got %d", s)
		}
	}
}

func (h *HeaderOps) validate(p *problems, path string) {
	if h == nil {
		return
	}
	for _, g := range []struct {
		field string
		m     map[string]string
	}{{"add", h.Add}, {"set", h.Set}} {
		for k, v := range g.m {
			if !validToken(k) {
				p.addf(fmt.Sprintf("%s.%s.%s", path, g.field, k), "invalid header name")
			}
			if strings.ContainsAny(v, "\r\n\x00") {
				p.addf(fmt.Sprintf("%s.%s.%s", path, g.field, k), "value must not contain CR, LF or NUL")
			}
		}
	}
	for j, k := range h.Remove {
		if !validToken(k) {
			p.addf(fmt.Sprintf("%s.remove[%d]", path, j), "invalid header name %q", k)
		}
	}
}

// validHost accepts a lower- or upper-case DNS name, optionally starting
// with "*.", or an IP literal.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func validHostPort(h string) bool {
	if host, port, err := net.SplitHostPort(h); err == nil {
		n, err := strconv.Atoi(port)
		return err == nil && n > 0 && n < 65536 && validHost(host) && !strings.HasPrefix(host, "*")
	}
	return validHost(h) && !strings.HasPrefix(h, "*")
}

// validToken reports whether s is an RFC 9110 token: a header or cookie
// name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c >= 0x7f || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return http.CanonicalHeaderKey(s) != ""
}

var groupRef = regexp.MustCompile(`\$(\d+)|\$\{(\d+)\}`)

// maxGroupRef is the highest numbered group $n or ${n} in a replacement.
func maxGroupRef(s string) int {
	n := 0
	for _, m := range groupRef.FindAllStringSubmatch(s, -1) {
		d := m[1] + m[2]
		if v, err := strconv.Atoi(d); err == nil && v > n {
			n = v
		}
	}
	return n
}

func (d *DirectResponse) validate(p *problems, r *Route, path string) {
	if d == nil {
		return
	}
	for _, other := range []struct {
		name string
		set  bool
	}{{"backends", len(r.Backends) > 0}, {"redirect", r.Redirect != nil}, {"rewrite", r.Rewrite != nil}, {"mirror", r.Mirror != nil}, {"mirrors", len(r.Mirrors) > 0}, {"sticky", r.Sticky != nil}} {
		if other.set {
			p.addf(path, "not used with %s: a direct response never reaches a backend", other.name)
		}
	}
	if d.Status < 200 || d.Status > 599 {
		p.addf(path+".status", "must be 200..599, got %d", d.Status)
	}
	if len(d.Body) > MaxDirectBody {
		p.addf(path+".body", "must be at most %d bytes, got %d", MaxDirectBody, len(d.Body))
	}
	if d.Body != "" && (d.Status == 204 || d.Status == 304) {
		p.addf(path+".body", "must be empty for status %d", d.Status)
	}
}

// dnsLabelRE is an RFC 1123 label: Kubernetes' rule for namespace and
// Service port names.
var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// serviceNameRE is an RFC 1035 label: Kubernetes' rule for Service names.
var serviceNameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

func (k *KubernetesService) validate(p *problems, path string) {
	if len(k.Service) > 63 || !serviceNameRE.MatchString(k.Service) {
		p.addf(path+".service", "want a Service name (1..63 of a-z, 0-9, '-', starting with a letter), got %q", k.Service)
	}
	if k.Namespace != "" && (len(k.Namespace) > 63 || !dnsLabelRE.MatchString(k.Namespace)) {
		p.addf(path+".namespace", "want a namespace name (1..63 of a-z, 0-9, '-'), or none for the gateway's own, got %q", k.Namespace)
	}
	switch n, err := strconv.Atoi(k.Port); {
	case k.Port == "":
		p.addf(path+".port", "want the Service port's name or number")
	case err == nil:
		if n < 1 || n > 65535 || strconv.Itoa(n) != k.Port {
			p.addf(path+".port", "want a port number 1..65535 or a port name, got %q", k.Port)
		}
	case len(k.Port) > 63 || !dnsLabelRE.MatchString(k.Port):
		p.addf(path+".port", "want a port name (1..63 of a-z, 0-9, '-') or number 1..65535, got %q", k.Port)
	}
}

func (mr *Mirror) validate(p *problems, backends map[string]bool, path string) {
	if !backends[mr.Backend] {
		p.addf(path+".backend", "no backend named %q", mr.Backend)
	}
	if mr.Percent != nil && (*mr.Percent < 0 || *mr.Percent > 100) {
		p.addf(path+".percent", "must be 0..100, got %g", *mr.Percent)
	}
}
