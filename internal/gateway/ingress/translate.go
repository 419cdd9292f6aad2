// Package ingress translates Kubernetes Ingress objects (networking.k8s.io/v1)
// and the ingress-nginx annotations people use into a fragment of the
// gateway's routing config: routes, backends found through EndpointSlices
// (backends[].kubernetes) and TLS certificates.
//
// It is pure data in, pure data out: no API client. The controller
// (package ingress/controller) lists the objects, writes the Secret
// material Result.Files names, merges the fragment into the file config
// and reloads the gateway through its validated path.
//
// Level-triggered: Translate recomputes the whole fragment from every
// object on every change. One Ingress never breaks another: an Ingress with
// an invalid annotation value, a missing auth Secret or a path no request
// could match is left out whole, with an error naming it, and the others
// are served. Unsupported annotations are served without, with a warning
// naming them; never silence.
package ingress

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// Defaults of Options.
const (
	DefaultClassName      = "flotilla"
	DefaultControllerName = "flotilla.dev/ingress-controller"
	// NginxClassName is the class ingress-nginx serves; with
	// Options.NginxClass Flotilla serves it too, for a drop-in migration.
	NginxClassName = "nginx"
	// DefaultClassAnnotation marks the cluster's default IngressClass.
	DefaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"
	// LegacyClassAnnotation is the pre-v1 way to name a class, still
	// honoured by ingress-nginx.
	LegacyClassAnnotation = "kubernetes.io/ingress.class"
)

// Options select which Ingresses are ours.
type Options struct {
	// ClassName is the IngressClass served (default "flotilla"). An
	// Ingress naming it is served when an IngressClass of that name has
	// spec.controller ControllerName, or when no such IngressClass exists
	// (a cluster without the object).
	ClassName string
	// ControllerName is this controller's spec.controller value (default
	// "flotilla.dev/ingress-controller").
	ControllerName string
	// WithoutClass serves Ingresses that name no class. They are served
	// anyway when an IngressClass whose controller is ControllerName is
	// the cluster default (ingressclass.kubernetes.io/is-default-class:
	// "true"), as the Ingress API says.
	WithoutClass bool
	// NginxClass also serves class "nginx" (spec.ingressClassName or the
	// kubernetes.io/ingress.class annotation): run with it only once
	// ingress-nginx is gone, or both will serve the same Ingresses.
	NginxClass bool
	// NoHTTPS says the gateway serves no HTTPS listener: ssl-redirect and
	// force-ssl-redirect would send clients nowhere, so they are left out
	// with a warning.
	NoHTTPS bool
}

func (o *Options) setDefaults() {
	if o.ClassName == "" {
		o.ClassName = DefaultClassName
	}
	if o.ControllerName == "" {
		o.ControllerName = DefaultControllerName
	}
}

// Input is everything the translation reads.
type Input struct {
	// Ingresses of every watched namespace.
	Ingresses []*networkingv1.Ingress
	// Classes are the cluster's IngressClasses.
	Classes []*networkingv1.IngressClass
	// Services resolve a backend's port number to the name EndpointSlices
	// list it by; nil when the Service does not exist.
	Services func(namespace, name string) *corev1.Service
	// Secrets gives the Secrets Ingresses refer to (TLS, auth); nil when
	// the Secret does not exist.
	Secrets func(namespace, name string) *corev1.Secret
}

// Severity of a Problem.
type Severity string

// Severities: a Warning leaves the Ingress served without what the
// problem names; an Error leaves the whole Ingress out.
const (
	Warning Severity = "Warning"
	Error   Severity = "Error"
)

// Problem is one thing wrong with one Ingress: it becomes a Kubernetes
// Event on the Ingress and a log line.
type Problem struct {
	// Namespace and Name of the Ingress.
	Namespace, Name string
	Severity        Severity
	// Annotation is the annotation's full key, or "" for a problem of the
	// spec (a field path is then at the start of Message).
	Annotation string
	Message    string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s %s/%s: ", p.Severity, p.Namespace, p.Name)
	if p.Annotation != "" {
		s += p.Annotation + ": "
	}
	return s + p.Message
}

// Result is the translation.
type Result struct {
	// Backends, Routes and Certificates are the config fragment. Routes
	// and backends are named "ing.…", so they never collide with a file
	// config's that avoids the prefix. Certificate file names are
	// relative to the directory the controller writes Files to.
	Backends     []config.Backend
	Routes       []config.Route
	Certificates []config.Certificate
	// Files is the Secret material the fragment reads, by file name
	// relative to the controller's secret directory: TLS certificates
	// and keys, htpasswd files. Contents are secret.
	Files map[string][]byte
	// Problems of every Ingress, errors and warnings.
	Problems []Problem
	// Served are the Ingresses of our class that were translated (not
	// left out by an error), "namespace/name", sorted: the ones whose
	// status carries the gateway's address.
	Served []string
	// Ours are every Ingress of our class, served or not, sorted.
	Ours []string
}

// Translate computes the config fragment for in. It never fails as a
// whole: what is wrong is in Result.Problems.
func Translate(in Input, opts Options) Result {
	opts.setDefaults()
	if in.Services == nil {
		in.Services = func(string, string) *corev1.Service { return nil }
	}
	if in.Secrets == nil {
		in.Secrets = func(string, string) *corev1.Secret { return nil }
	}
	t := &translator{in: in, opts: opts, res: Result{Files: map[string][]byte{}}, backends: map[string]bool{}, seen: map[string]string{}}
	ings := slices.Clone(in.Ingresses)
	// The oldest Ingress wins a conflict (ingress-nginx's rule), then
	// namespace/name: stable whatever order the informer lists them in.
	slices.SortFunc(ings, func(a, b *networkingv1.Ingress) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	var canaries []*networkingv1.Ingress
	for _, ing := range ings {
		if !t.ours(ing) {
			continue
		}
		t.res.Ours = append(t.res.Ours, key(ing))
		if isCanary(ing) {
			canaries = append(canaries, ing) // merged once every main route exists
			continue
		}
		t.ingress(ing)
	}
	for _, ing := range canaries {
		t.canary(ing)
	}
	slices.Sort(t.res.Served)
	slices.Sort(t.res.Ours)
	return t.res
}

func key(ing *networkingv1.Ingress) string { return ing.Namespace + "/" + ing.Name }

type translator struct {
	in       Input
	opts     Options
	res      Result
	backends map[string]bool   // names already in res.Backends
	seen     map[string]string // host+path key → route name (conflicts, canaries)
	mains    []mainRoute       // routes a canary may join
}

// mainRoute is a served route of a non-canary Ingress that a canary
// Ingress for the same host and path merges into.
type mainRoute struct {
	key    string // rawKey
	index  int    // in res.Routes
	canary string // the canary Ingress merged into it, "" none
}

// rawKey is a rule's host and path as written: how ingress-nginx pairs a
// canary Ingress with its main one.
func rawKey(host, p string) string {
	if p == "" {
		p = "/"
	}
	return strings.ToLower(host) + "\x00" + p
}

// ours reports whether ing is of a class this controller serves.
func (t *translator) ours(ing *networkingv1.Ingress) bool {
	class := ""
	if ing.Spec.IngressClassName != nil {
		class = *ing.Spec.IngressClassName
	} else if c := ing.Annotations[LegacyClassAnnotation]; c != "" {
		class = c
	}
	if class == "" {
		if t.opts.WithoutClass {
			return true
		}
		for _, c := range t.in.Classes {
			if c.Spec.Controller == t.opts.ControllerName && c.Annotations[DefaultClassAnnotation] == "true" {
				return true
			}
		}
		return false
	}
	if t.opts.NginxClass && class == NginxClassName {
		return true
	}
	if class != t.opts.ClassName {
		// Another name, but an IngressClass of ours by controller.
		for _, c := range t.in.Classes {
			if c.Name == class {
				return c.Spec.Controller == t.opts.ControllerName
			}
		}
		return false
	}
	for _, c := range t.in.Classes {
		if c.Name == class {
			return c.Spec.Controller == t.opts.ControllerName
		}
	}
	return true // the class is ours by name and no object says otherwise
}

// pending collects one Ingress's output, committed only when the
// Ingress has no error.
type pending struct {
	ing      *networkingv1.Ingress
	problems []Problem
	failed   bool
	backends []config.Backend
	routes   []config.Route
	certs    []config.Certificate
	files    map[string][]byte
	keys     []string // pathKey per route (conflicts)
	raws     []string // host and path as written, per route, for a canary to join; "" none
}

func (p *pending) warnf(annotation, format string, args ...any) {
	p.problems = append(p.problems, Problem{Namespace: p.ing.Namespace, Name: p.ing.Name, Severity: Warning, Annotation: annotation, Message: fmt.Sprintf(format, args...)})
}

func (p *pending) errorf(annotation, format string, args ...any) {
	p.failed = true
	p.problems = append(p.problems, Problem{Namespace: p.ing.Namespace, Name: p.ing.Name, Severity: Error, Annotation: annotation, Message: fmt.Sprintf(format, args...) + "; the Ingress is not served"})
}

// ingress translates one non-canary Ingress.
func (t *translator) ingress(ing *networkingv1.Ingress) {
	p := &pending{ing: ing, files: map[string][]byte{}}
	a := parseAnnotations(ing, p)
	tlsHosts := t.tls(p)
	if t.opts.NoHTTPS && (a.forceSSLRedirect || a.sslRedirect && len(tlsHosts) > 0) {
		p.warnf(annSSLRedirect, "no HTTP to HTTPS redirect: the gateway serves no HTTPS (flotilla gateway --tls-addr)")
	}
	var auth *config.Auth
	if !p.failed {
		auth = t.auth(p, a)
	}
	hosts := map[string]bool{} // rule hosts that have a "/" prefix path
	for i, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for j, hp := range rule.HTTP.Paths {
			field := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
			r, k, ok := t.path(p, a, field, rule.Host, hp)
			if !ok {
				continue
			}
			if k.isRoot() {
				hosts[rule.Host] = true
			}
			r.Name = routeName(ing, fmt.Sprintf("%d.%d", i, j))
			t.policies(&r, a, auth, tlsHosts, rule.Host)
			p.routes = append(p.routes, r)
			p.keys = append(p.keys, k.String())
			p.raws = append(p.raws, rawKey(rule.Host, hp.Path))
		}
	}
	if a.appRoot != "" {
		// ingress-nginx answers "/" of each of the Ingress's hosts with
		// a 302 to the app root.
		var done []string
		for n, rule := range ing.Spec.Rules {
			if slices.Contains(done, rule.Host) {
				continue
			}
			done = append(done, rule.Host)
			r := config.Route{Name: routeName(ing, fmt.Sprintf("app-root.%d", n)), Match: config.Match{Path: &config.PathMatch{Type: config.PathExact, Value: "/"}},
				Redirect: &config.Redirect{Path: a.appRoot, StatusCode: 302}}
			if rule.Host != "" {
				r.Match.Hosts = []string{rule.Host}
			}
			p.routes = append(p.routes, r)
			p.keys = append(p.keys, pathKey{host: rule.Host, kind: config.PathExact, value: "/"}.String())
			p.raws = append(p.raws, "")
		}
	}
	if db := ing.Spec.DefaultBackend; db != nil {
		// The Ingress's default backend serves what its hosts' paths do
		// not (ingress-nginx: the root location of each of its servers),
		// and every host when it has no rules (the catch-all server).
		targets := []string{}
		for _, rule := range ing.Spec.Rules {
			if !hosts[rule.Host] && !slices.Contains(targets, rule.Host) {
				targets = append(targets, rule.Host)
			}
		}
		if len(ing.Spec.Rules) == 0 {
			targets = append(targets, "")
		}
		for n, host := range targets {
			hp := networkingv1.HTTPIngressPath{Path: "/", PathType: new(networkingv1.PathTypePrefix), Backend: *db}
			r, k, ok := t.pathPlain(p, a, "spec.defaultBackend", host, hp)
			if !ok {
				continue
			}
			r.Name = routeName(ing, fmt.Sprintf("default.%d", n))
			t.policies(&r, a, auth, tlsHosts, host)
			p.routes = append(p.routes, r)
			p.keys = append(p.keys, k.String())
			p.raws = append(p.raws, "")
		}
	}
	if !p.failed {
		t.check(p)
	}
	t.commit(p)
}

// commit adds p's output to the result unless it failed, dropping the
// routes that an older Ingress already serves.
func (t *translator) commit(p *pending) {
	t.res.Problems = append(t.res.Problems, p.problems...)
	if p.failed {
		return
	}
	used := map[string]bool{}
	for i, r := range p.routes {
		k := p.keys[i]
		if owner, dup := t.seen[k]; dup {
			p := Problem{Namespace: p.ing.Namespace, Name: p.ing.Name, Severity: Warning,
				Message: fmt.Sprintf("%s is already served by route %s of an older Ingress; this path is not served", describeKey(k), owner)}
			t.res.Problems = append(t.res.Problems, p)
			continue
		}
		t.seen[k] = r.Name
		if p.raws[i] != "" {
			t.mains = append(t.mains, mainRoute{key: p.raws[i], index: len(t.res.Routes)})
		}
		t.res.Routes = append(t.res.Routes, r)
		for _, b := range r.Backends {
			used[b.Name] = true
		}
	}
	for _, b := range p.backends {
		if used[b.Name] && !t.backends[b.Name] {
			t.backends[b.Name] = true
			t.res.Backends = append(t.res.Backends, b)
		}
	}
	for _, c := range p.certs {
		if !slices.Contains(t.res.Certificates, c) {
			t.res.Certificates = append(t.res.Certificates, c)
		}
	}
	for f, data := range p.files {
		t.res.Files[f] = data
	}
	t.res.Served = append(t.res.Served, key(p.ing))
}

// check validates p's routes and backends as the gateway will, alone, so
// that a value no request could match fails this Ingress, not the
// reload of every other one.
func (t *translator) check(p *pending) {
	c := config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Backends: slices.Clone(p.backends)}
	for _, r := range p.routes {
		c.Routes = append(c.Routes, cloneRoute(r))
	}
	// Backends of earlier Ingresses these routes use (a canary's main
	// backend): only those, so that checking stays linear in Ingresses.
	have := map[string]bool{}
	for _, b := range c.Backends {
		have[b.Name] = true
	}
	for _, r := range p.routes {
		for _, ref := range r.Backends {
			if have[ref.Name] {
				continue
			}
			if i := slices.IndexFunc(t.res.Backends, func(x config.Backend) bool { return x.Name == ref.Name }); i >= 0 {
				c.Backends = append(c.Backends, t.res.Backends[i])
				have[ref.Name] = true
			}
		}
	}
	if len(c.Routes) == 0 {
		return
	}
	c.SetDefaults()
	err := c.Validate()
	if err == nil {
		_, err = route.CompileWith(&c, route.Options{Policies: func(*config.Route) ([]route.Filter, error) { return nil, nil }})
	}
	if err != nil {
		p.errorf("", "the translated config is not valid: %v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
}

// cloneRoute copies what SetDefaults writes into, so checking a route
// does not default the one committed.
func cloneRoute(r config.Route) config.Route {
	r.Backends = slices.Clone(r.Backends)
	if r.Match.Path != nil {
		pm := *r.Match.Path
		r.Match.Path = &pm
	}
	r.RateLimits = slices.Clone(r.RateLimits)
	if r.Auth != nil {
		a := *r.Auth
		if a.Basic != nil {
			b := *a.Basic
			a.Basic = &b
		}
		if a.Forward != nil {
			f := *a.Forward
			a.Forward = &f
		}
		r.Auth = &a
	}
	if r.Streams != nil {
		s := *r.Streams
		r.Streams = &s
	}
	if r.HTTPSRedirect != nil {
		h := *r.HTTPSRedirect
		r.HTTPSRedirect = &h
	}
	if r.Redirect != nil {
		rd := *r.Redirect
		r.Redirect = &rd
	}
	return r
}

// tls reads the Ingress's TLS Secrets into certificates and returns the
// hosts TLS covers ("*" entries included as written).
func (t *translator) tls(p *pending) []string {
	var hosts []string
	for i, tl := range p.ing.Spec.TLS {
		hosts = append(hosts, tl.Hosts...)
		field := fmt.Sprintf("spec.tls[%d]", i)
		if tl.SecretName == "" {
			// ingress-nginx serves these hosts with its default
			// certificate: here the first configured one.
			continue
		}
		s := t.in.Secrets(p.ing.Namespace, tl.SecretName)
		if s == nil {
			p.warnf("", "%s.secretName: Secret %q not found; its hosts get the gateway's default certificate", field, tl.SecretName)
			continue
		}
		crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(crt, key); err != nil {
			p.warnf("", "%s.secretName: Secret %q has no valid tls.crt and tls.key (%v); its hosts get the gateway's default certificate", field, tl.SecretName, err)
			continue
		}
		dir := path.Join("tls", p.ing.Namespace, tl.SecretName)
		p.files[dir+"/tls.crt"], p.files[dir+"/tls.key"] = crt, key
		cert := config.Certificate{CertFile: dir + "/tls.crt", KeyFile: dir + "/tls.key"}
		if !slices.Contains(p.certs, cert) {
			p.certs = append(p.certs, cert)
		}
	}
	return hosts
}

// auth builds the route auth of basic or external authentication.
// Authentication that cannot be built fails the Ingress: it is never
// served open.
func (t *translator) auth(p *pending, a *annotations) *config.Auth {
	switch {
	case a.authURL != "":
		f := &config.ForwardAuth{URL: a.authURL, ResponseHeaders: a.authResponseHeaders}
		return &config.Auth{Forward: f, PassCredentials: true}
	case a.authType == "":
		return nil
	}
	ns, name := p.ing.Namespace, a.authSecret
	if before, after, ok := strings.Cut(name, "/"); ok {
		ns, name = before, after
		if ns != p.ing.Namespace {
			p.errorf(annAuthSecret, "Secret %q is in another namespace; only the Ingress's own namespace is read", a.authSecret)
			return nil
		}
	}
	s := t.in.Secrets(ns, name)
	if s == nil {
		p.errorf(annAuthSecret, "Secret %q not found", a.authSecret)
		return nil
	}
	var data []byte
	switch a.authSecretType {
	case "auth-file":
		data = s.Data["auth"]
		if len(data) == 0 {
			p.errorf(annAuthSecret, "Secret %q has no key \"auth\" (an htpasswd file)", a.authSecret)
			return nil
		}
	case "auth-map":
		users := make([]string, 0, len(s.Data))
		for u := range s.Data {
			users = append(users, u)
		}
		slices.Sort(users)
		for _, u := range users {
			data = append(data, u+":"+strings.TrimSpace(string(s.Data[u]))+"\n"...)
		}
		if len(data) == 0 {
			p.errorf(annAuthSecret, "Secret %q is empty", a.authSecret)
			return nil
		}
	}
	file := path.Join("auth", ns, name, "htpasswd")
	p.files[file] = data
	// ingress-nginx passes the Authorization header upstream.
	return &config.Auth{Basic: &config.BasicAuth{HtpasswdFile: file, Realm: a.authRealm}, PassCredentials: true}
}

// pathKey identifies a host and path: two Ingresses serving the same one
// conflict, and a canary Ingress joins the main one's route by it.
type pathKey struct {
	host, kind, value string
}

func (k pathKey) String() string { return k.host + "\x00" + k.kind + "\x00" + k.value }

func (k pathKey) isRoot() bool { return k.kind == config.PathPrefix && k.value == "/" }

func describeKey(s string) string {
	parts := strings.SplitN(s, "\x00", 3)
	host := parts[0]
	if host == "" {
		host = "any host"
	}
	return fmt.Sprintf("host %s path %s %s", host, parts[1], parts[2])
}

// path translates one rule path: the match, the backend, the rewrite.
func (t *translator) path(p *pending, a *annotations, field, host string, hp networkingv1.HTTPIngressPath) (config.Route, pathKey, bool) {
	return t.translatePath(p, a, field, host, hp, true)
}

// pathPlain is path for the default backend: no regex, no rewrite.
func (t *translator) pathPlain(p *pending, a *annotations, field, host string, hp networkingv1.HTTPIngressPath) (config.Route, pathKey, bool) {
	return t.translatePath(p, a, field, host, hp, false)
}

func (t *translator) translatePath(p *pending, a *annotations, field, host string, hp networkingv1.HTTPIngressPath, rules bool) (config.Route, pathKey, bool) {
	var r config.Route
	if host != "" {
		r.Match.Hosts = []string{host}
	}
	value := hp.Path
	if value == "" {
		value = "/"
	}
	if !strings.HasPrefix(value, "/") {
		p.errorf("", "%s.path: must start with '/', got %q", field, hp.Path)
		return r, pathKey{}, false
	}
	pt := networkingv1.PathTypeImplementationSpecific
	if hp.PathType != nil {
		pt = *hp.PathType
	}
	regex := rules && (a.useRegex || a.rewrite.needsRegex)
	switch {
	case pt == networkingv1.PathTypeExact:
		r.Match.Path = &config.PathMatch{Type: config.PathExact, Value: value}
	case pt == networkingv1.PathTypePrefix && !regex, pt == networkingv1.PathTypeImplementationSpecific && !regex:
		// ImplementationSpecific without regex is a prefix in
		// ingress-nginx; here it matches whole path elements, as Prefix
		// does (/foo matches /foo and /foo/bar, not /foobar).
		r.Match.Path = &config.PathMatch{Type: config.PathPrefix, Value: value}
	case pt == networkingv1.PathTypePrefix, pt == networkingv1.PathTypeImplementationSpecific:
		// ingress-nginx: location ~* "^<path>", case-insensitive and
		// anchored at the start only.
		if _, err := regexp.Compile(value); err != nil {
			p.errorf(annUseRegex, "%s.path %q is not a regular expression Go's RE2 accepts: %v", field, value, err)
			return r, pathKey{}, false
		}
		r.Match.Path = &config.PathMatch{Type: config.PathRegex, Value: "(?i:" + value + ").*"}
	default:
		p.errorf("", "%s.pathType: want Exact, Prefix or ImplementationSpecific, got %q", field, pt)
		return r, pathKey{}, false
	}
	k := pathKey{host: host, kind: r.Match.Path.Type, value: r.Match.Path.Value}
	if rules {
		switch {
		case a.rewrite.target == "":
		case a.rewrite.needsRegex && r.Match.Path.Type != config.PathExact:
			if re, err := regexp.Compile(value); err == nil && re.NumSubexp() < maxGroup(a.rewrite.target) {
				p.errorf(annRewriteTarget, "%s: refers to group $%d but path %q has %d", field, maxGroup(a.rewrite.target), value, re.NumSubexp())
				return r, pathKey{}, false
			}
			r.Rewrite = &config.Rewrite{Path: &config.PathRewrite{Type: config.RewriteRegex, Pattern: "^(?i:" + value + ").*$", Value: a.rewrite.target}}
		case a.rewrite.needsRegex:
			r.Rewrite = &config.Rewrite{Path: &config.PathRewrite{Type: config.RewriteRegex, Pattern: "^(?i:" + regexp.QuoteMeta(value) + ")$", Value: a.rewrite.target}}
		default:
			// nginx's rewrite replaces the whole URI with the target.
			r.Rewrite = &config.Rewrite{Path: &config.PathRewrite{Type: config.RewriteReplaceFull, Value: a.rewrite.target}}
		}
	}
	if a.upstreamVhost != "" {
		if r.Rewrite == nil {
			r.Rewrite = &config.Rewrite{}
		}
		r.Rewrite.Host = a.upstreamVhost
	}
	b, ok := t.backend(p, a, field+".backend", hp.Backend)
	if !ok {
		return r, k, false
	}
	if b.direct != nil {
		r.DirectResponse = b.direct
		r.Rewrite = nil
	} else {
		r.Backends = []config.BackendRef{{Name: b.name}}
	}
	return r, k, true
}

// maxGroup is the highest group ${n} a translated rewrite target uses.
func maxGroup(target string) int {
	n := 0
	for _, m := range regexp.MustCompile(`\$\{([0-9])\}`).FindAllStringSubmatch(target, -1) {
		n = max(n, int(m[1][0]-'0'))
	}
	return n
}

type backendResult struct {
	name   string
	direct *config.DirectResponse // the Service does not exist
}

// backend resolves an Ingress backend to a config backend with
// Kubernetes discovery, added to p.
func (t *translator) backend(p *pending, a *annotations, field string, ib networkingv1.IngressBackend) (backendResult, bool) {
	if ib.Resource != nil {
		p.errorf("", "%s.resource: resource backends are not supported (only Services)", field)
		return backendResult{}, false
	}
	if ib.Service == nil {
		p.errorf("", "%s.service: required", field)
		return backendResult{}, false
	}
	ns, svc := p.ing.Namespace, ib.Service.Name
	port := ib.Service.Port.Name
	if port == "" {
		n := ib.Service.Port.Number
		s := t.in.Services(ns, svc)
		if s == nil {
			// ingress-nginx answers 503 for a Service it cannot find; so
			// does the gateway, and the Ingress stays served.
			p.warnf("", "%s.service: Service %s/%s not found; its paths answer 503", field, ns, svc)
			return backendResult{direct: &config.DirectResponse{Status: 503, Body: "service unavailable\n"}}, true
		}
		port = servicePortKey(s, n)
		if port == "" {
			p.errorf("", "%s.service.port.number: Service %s/%s has no port %d usable by number (give the port a name, or name it in the Ingress)", field, ns, svc, n)
			return backendResult{}, false
		}
	}
	proto := a.protocol
	name := backendName(ns, svc, port, proto, a.balance)
	b := config.Backend{Name: name, Kubernetes: &config.KubernetesService{Service: svc, Namespace: ns, Port: port}, Protocol: proto, Balance: a.balance}
	if !slices.ContainsFunc(p.backends, func(x config.Backend) bool { return x.Name == name }) {
		p.backends = append(p.backends, b)
	}
	return backendResult{name: name}, true
}

// servicePortKey: see kubeshared.ServicePortKey.
func servicePortKey(s *corev1.Service, n int32) string { return kubeshared.ServicePortKey(s, n) }

// policies sets what the annotations ask of every route of the Ingress.
func (t *translator) policies(r *config.Route, a *annotations, auth *config.Auth, tlsHosts []string, host string) {
	if r.DirectResponse != nil {
		return
	}
	if (a.forceSSLRedirect || a.sslRedirect && coveredByTLS(host, tlsHosts)) && !t.opts.NoHTTPS {
		r.HTTPSRedirect = &config.HTTPSRedirect{StatusCode: 308}
	}
	if a.ipRules != nil {
		ip := *a.ipRules
		r.IPRules = &ip
	}
	if a.cors != nil {
		c := *a.cors
		r.CORS = &c
	}
	if auth != nil {
		r.Auth = auth
	}
	r.RateLimits = slices.Clone(a.rateLimits)
	r.MaxBodyBytes = a.maxBody
	r.Timeout = a.timeout
	if a.idle > 0 {
		r.Streams = &config.Streams{IdleTimeout: a.idle}
	}
	if a.forwardedPrefix != "" {
		r.RequestHeaders = &config.HeaderOps{Set: map[string]string{"X-Forwarded-Prefix": a.forwardedPrefix}}
	}
	if a.redirect != nil {
		rd := *a.redirect
		r.Redirect = &rd
		r.Backends, r.Rewrite = nil, nil
	}
}

// coveredByTLS reports whether host is one of spec.tls's hosts, a
// wildcard entry covering one label included.
func coveredByTLS(host string, tlsHosts []string) bool {
	for _, h := range tlsHosts {
		if strings.EqualFold(h, host) {
			return true
		}
		if suffix, ok := strings.CutPrefix(h, "*"); ok && strings.HasSuffix(host, suffix) && !strings.Contains(strings.TrimSuffix(host, suffix), ".") {
			return true
		}
	}
	return false
}

// shortName: see kubeshared.ShortName.
func shortName(parts ...string) string { return kubeshared.ShortName(parts...) }

func routeName(ing *networkingv1.Ingress, suffix string) string {
	return shortName("ing", ing.Namespace, ing.Name, suffix)
}

func backendName(ns, svc, port, proto string, b config.Balance) string {
	parts := []string{"ing", ns, svc, port}
	if proto != "" && proto != config.ProtocolHTTP1 {
		parts = append(parts, proto)
	}
	if b.Policy != "" {
		parts = append(parts, strings.ReplaceAll(b.Policy, "_", "-"))
		if h := b.HashOn; h != nil {
			switch {
			case h.ClientIP:
				parts = append(parts, "ip")
			case h.Header != "":
				parts = append(parts, "h-"+strings.ToLower(h.Header))
			case h.Cookie != "":
				parts = append(parts, "c-"+strings.ToLower(h.Cookie))
			}
		}
	}
	return shortName(parts...)
}

// canary merges a canary Ingress (nginx.ingress.kubernetes.io/canary:
// "true") into the routes of the main Ingress serving the same host and
// path: a weighted backend of the main route, and routes matching the
// canary header or cookie. The main route's filters (auth, limits,
// rewrite) apply to canary traffic too; the canary Ingress's own
// non-canary annotations are not read, as in ingress-nginx, except
// backend-protocol and the balancing of its Service.
func (t *translator) canary(ing *networkingv1.Ingress) {
	p := &pending{ing: ing, files: map[string][]byte{}}
	a := parseAnnotations(ing, p)
	type merge struct {
		main   int
		weight []config.BackendRef
		extra  []config.Route
	}
	var merges []merge
	for i, rule := range ing.Spec.Rules {
		if rule.HTTP == nil || p.failed {
			continue
		}
		for j, hp := range rule.HTTP.Paths {
			field := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
			mi := slices.IndexFunc(t.mains, func(m mainRoute) bool { return m.key == rawKey(rule.Host, hp.Path) })
			if mi < 0 {
				p.warnf(annCanary, "%s: no served Ingress has host %q path %q; this canary path is not served", field, rule.Host, hp.Path)
				continue
			}
			m := &t.mains[mi]
			main := t.res.Routes[m.index]
			if m.canary != "" {
				p.warnf(annCanary, "%s: Ingress %s is already the canary of host %q path %q; only one canary per path", field, m.canary, rule.Host, hp.Path)
				continue
			}
			if len(main.Backends) != 1 {
				p.warnf(annCanary, "%s: the main route %s has no single backend (a redirect or a missing Service); this canary path is not served", field, main.Name)
				continue
			}
			b, ok := t.backend(p, a, field+".backend", hp.Backend)
			if !ok {
				continue
			}
			if b.direct != nil {
				continue // warned: the Service does not exist
			}
			mainRef, canRef := main.Backends[0].Name, b.name
			wc := a.canaryWeight * 100 / a.canaryTotal
			if r := a.canaryWeight * 100 % a.canaryTotal; r*2 >= a.canaryTotal && wc < 100 {
				wc++
			}
			wm := 100 - wc
			mg := merge{main: mi, weight: []config.BackendRef{{Name: mainRef, Weight: &wm}, {Name: canRef, Weight: &wc}}}
			extra := func(suffix string, hdr, cookie *config.ValueMatch, to string) {
				r := cloneRoute(main)
				r.Name = shortName(main.Name, suffix)
				if hdr != nil {
					r.Match.Headers = append(slices.Clone(r.Match.Headers), *hdr)
				}
				if cookie != nil {
					r.Match.Cookies = append(slices.Clone(r.Match.Cookies), *cookie)
				}
				r.Backends = []config.BackendRef{{Name: to}}
				mg.extra = append(mg.extra, r)
			}
			switch h := a.canaryHeader; {
			case h == "":
			case a.canaryHeaderVal != "":
				extra("canary-header", &config.ValueMatch{Name: h, Type: config.MatchExact, Value: a.canaryHeaderVal}, nil, canRef)
			case a.canaryHeaderPattern != "":
				extra("canary-header", &config.ValueMatch{Name: h, Type: config.MatchRegex, Value: a.canaryHeaderPattern}, nil, canRef)
			default:
				extra("canary-header", &config.ValueMatch{Name: h, Type: config.MatchExact, Value: "always"}, nil, canRef)
				extra("main-header", &config.ValueMatch{Name: h, Type: config.MatchExact, Value: "never"}, nil, mainRef)
			}
			if c := a.canaryCookie; c != "" {
				extra("canary-cookie", nil, &config.ValueMatch{Name: c, Type: config.MatchExact, Value: "always"}, canRef)
				extra("main-cookie", nil, &config.ValueMatch{Name: c, Type: config.MatchExact, Value: "never"}, mainRef)
			}
			merges = append(merges, mg)
		}
	}
	if !p.failed && len(merges) > 0 {
		// Check the merged routes alone, as check does for an Ingress.
		q := &pending{ing: ing, backends: p.backends}
		for _, mg := range merges {
			r := cloneRoute(t.res.Routes[t.mains[mg.main].index])
			r.Backends = mg.weight
			q.routes = append(q.routes, r)
			q.routes = append(q.routes, mg.extra...)
		}
		t.check(q)
		p.problems = append(p.problems, q.problems...)
		p.failed = q.failed
	}
	t.res.Problems = append(t.res.Problems, p.problems...)
	if p.failed || len(merges) == 0 {
		return
	}
	for _, mg := range merges {
		m := &t.mains[mg.main]
		m.canary = key(ing)
		t.res.Routes[m.index].Backends = mg.weight
		t.res.Routes = append(t.res.Routes, mg.extra...)
	}
	for _, b := range p.backends {
		if !t.backends[b.Name] {
			t.backends[b.Name] = true
			t.res.Backends = append(t.res.Backends, b)
		}
	}
	t.res.Served = append(t.res.Served, key(ing))
}
