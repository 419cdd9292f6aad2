package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-dev/flotilla/internal/gateway/auth"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/proxy"
	"github.com/flotilla-dev/flotilla/internal/gateway/ratelimit"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// MaxLocalRateLimitKeys bounds the keys local rate limits remember, all
// routes together: a client inventing keys (addresses behind a /64,
// header values) cannot grow the gateway's memory past it. A key evicted
// to make room starts again with a full bucket.
const MaxLocalRateLimitKeys = 100_000

// policies are the gateway's auth methods and rate-limit stores, kept
// across config loads: a method whose settings and files did not change
// is reused (its key-set cache and verified-password cache stay warm),
// local limiters keep counting, and the Redis client stays connected.
type policies struct {
	local   *ratelimit.Local
	methods map[string]auth.Method // by methodKey
	redis   *ratelimit.Redis
	redisID string // config and password file digest of redis
}

// policyBuild is one config load's view of the policies: methods reused
// or made, and the Redis client to use. commit installs it after the new
// state is swapped in; abort closes what it made.
type policyBuild struct {
	g       *Gateway
	methods map[string]auth.Method
	made    []auth.Method
	redis   *ratelimit.Redis
	redisID string
	newRed  bool
	// redisTimeout bounds one global decision (redis.timeout).
	redisTimeout time.Duration
}

func (g *Gateway) newPolicyBuild(cfg *config.Config) (*policyBuild, error) {
	b := &policyBuild{g: g, methods: map[string]auth.Method{}, redis: g.pol.redis, redisID: g.pol.redisID}
	if cfg.Redis == nil {
		b.redis, b.redisID = nil, ""
		return b, nil
	}
	b.redisTimeout = cfg.Redis.Timeout
	id, err := settingsID(cfg.Redis, cfg.Redis.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("redis.passwordFile: %w", err)
	}
	if id != g.pol.redisID || g.pol.redis == nil {
		r, err := ratelimit.NewRedis(cfg.Redis, g.log)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		b.redis, b.redisID, b.newRed = r, id, true
	}
	return b, nil
}

func (b *policyBuild) commit() {
	p := &b.g.pol
	for k, m := range p.methods {
		if b.methods[k] != m {
			m.Close()
		}
	}
	p.methods = b.methods
	if b.newRed && p.redis != nil {
		p.redis.Close()
	}
	p.redis, p.redisID = b.redis, b.redisID
}

func (b *policyBuild) abort() {
	for _, m := range b.made {
		m.Close()
	}
	if b.newRed {
		b.redis.Close()
	}
}

// settingsID identifies v's settings and the content of files: equal IDs
// mean an unchanged policy.
func settingsID(v any, files ...string) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(j)
	for _, f := range files {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return "", err
		}
		h.Write(filesSum([]string{f}))
	}
	return reflect.TypeOf(v).String() + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// method returns the method for settings v (reused when unchanged),
// making it with mk.
func (b *policyBuild) method(v any, files []string, mk func() (auth.Method, error)) (auth.Method, error) {
	id, err := settingsID(v, files...)
	if err != nil {
		return nil, err
	}
	if m, ok := b.methods[id]; ok {
		return m, nil
	}
	if m, ok := b.g.pol.methods[id]; ok {
		b.methods[id] = m
		return m, nil
	}
	m, err := mk()
	if err != nil {
		return nil, err
	}
	b.methods[id], b.made = m, append(b.made, m)
	return m, nil
}

// filters compiles rc's rate limits and auth into route filters (see
// route.Options.Policies): limits keyed by the client (address, header,
// route) run first, so a flood is refused before any password or
// signature is checked; then auth; then limits keyed by who auth
// accepted (API key, claim).
func (b *policyBuild) filters(rc *config.Route) ([]route.Filter, error) {
	var pre, post []route.Filter
	for i := range rc.RateLimits {
		l := &rc.RateLimits[i]
		f := b.g.newLimitFilter(rc.Name, l, b.redis, b.redisTimeout)
		if l.Key.Source == config.KeyAPIKey || l.Key.Source == config.KeyClaim {
			post = append(post, f.filter)
		} else {
			pre = append(pre, f.filter)
		}
	}
	if a := rc.Auth; a != nil {
		f, err := b.authFilter(rc.Name, a)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		pre = append(pre, f.filter)
	}
	return append(pre, post...), nil
}

// authFilter runs a route's auth methods in order; all must accept.
type authFilter struct {
	g       *Gateway
	route   string
	methods []auth.Method
	allowed []prometheus.Counter // by method
	// remove are the headers the gateway sets from an identity: a
	// client's own copies never reach the upstream.
	remove []string
	// strip are the credential headers removed unless passCredentials;
	// stripQuery the API key query parameter.
	strip      []string
	stripQuery string
	lastWarn   atomic.Int64 // unix nanos of the last unavailable warning
}

func (b *policyBuild) authFilter(routeName string, a *config.Auth) (*authFilter, error) {
	f := &authFilter{g: b.g, route: routeName}
	log := b.g.log
	add := func(m auth.Method, err error) error {
		if err != nil {
			return err
		}
		f.methods = append(f.methods, m)
		f.allowed = append(f.allowed, b.g.metrics.policy.WithLabelValues(routeName, m.Name(), "allow", ""))
		return nil
	}
	forwardHeader := func(h string) {
		if h != "-" {
			f.remove = append(f.remove, http.CanonicalHeaderKey(h))
		}
	}
	if k := a.APIKey; k != nil {
		if err := add(b.method(k, []string{k.KeysFile}, func() (auth.Method, error) { return auth.NewAPIKey(k, log) })); err != nil {
			return nil, fmt.Errorf("apiKey: %w", err)
		}
		forwardHeader(k.ForwardHeader)
		f.strip = append(f.strip, http.CanonicalHeaderKey(k.Header))
		f.stripQuery = k.Query
	}
	if c := a.Basic; c != nil {
		if err := add(b.method(c, []string{c.HtpasswdFile}, func() (auth.Method, error) { return auth.NewBasic(c, log) })); err != nil {
			return nil, fmt.Errorf("basic: %w", err)
		}
		forwardHeader(c.ForwardHeader)
	}
	if j := a.JWT; j != nil {
		mk := func() (auth.Method, error) { return auth.NewJWT(j, auth.JWTOptions{Logger: log}) }
		if err := add(b.method(j, []string{j.JWKSFile, j.HMACSecretFile}, mk)); err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		for _, h := range j.ForwardClaims {
			forwardHeader(h)
		}
	}
	if c := a.Forward; c != nil {
		mk := func() (auth.Method, error) {
			f, err := auth.NewForward(c, log)
			if err != nil {
				return nil, err
			}
			// The service hears of the client the gateway trusts.
			trusted := b.g.opts.TrustedProxies
			f.ClientIP = func(r *http.Request) string {
				_, ip, _ := clientAddr(r.RemoteAddr, r.Header["X-Forwarded-For"], trusted)
				return ip.String()
			}
			return f, nil
		}
		if err := add(b.method(c, []string{c.CAFile}, mk)); err != nil {
			return nil, fmt.Errorf("forward: %w", err)
		}
		for _, h := range c.ResponseHeaders {
			forwardHeader(h)
		}
	}
	if a.Basic != nil || a.JWT != nil || a.Forward != nil {
		f.strip = append(f.strip, "Authorization")
	}
	if a.PassCredentials {
		f.strip, f.stripQuery = nil, ""
	}
	return f, nil
}

func (f *authFilter) filter(w http.ResponseWriter, r *http.Request, req *route.Request) bool {
	var ids [4]*auth.Identity
	for i, m := range f.methods {
		id, err := m.Authenticate(r)
		if err != nil {
			f.refuse(w, r, req, m.Name(), err)
			return true
		}
		ids[i] = id
		f.allowed[i].Inc()
	}
	h := r.Header
	for _, k := range f.remove {
		delete(h, k)
	}
	for _, k := range f.strip {
		delete(h, k)
	}
	if f.stripQuery != "" && r.URL.RawQuery != "" {
		r.URL.RawQuery = withoutParam(r.URL.RawQuery, f.stripQuery)
	}
	for i, m := range f.methods {
		id := ids[i]
		if id == nil {
			continue
		}
		if req.Principal == "" {
			req.Principal = id.Principal
		}
		switch {
		case m.Name() == "apiKey":
			req.APIKey = id.Principal
		case id.Claims != nil:
			req.Claims = id.Claims
		}
		for k, v := range id.Set {
			h[k] = v
		}
	}
	return false
}

// withoutParam returns query without the parameters named name.
func withoutParam(query, name string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(query, "&") {
		k, _, _ := strings.Cut(part, "=")
		if k == name {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}

// Auth error classes (the access log's error, the metrics' class).
const (
	classUnauthenticated = "unauthenticated"
	classForbidden       = "forbidden"
	classAuthRedirect    = "auth_redirect"
	classAuthUnavailable = "auth_unavailable"
	classRateLimited     = "rate_limited"
	classLimitUnavail    = "rate_limit_unavailable"
)

// relayedAuthHeaders are the external authorization service's answer
// headers a refused client gets.
var relayedAuthHeaders = []string{"Www-Authenticate", "Location", "Set-Cookie", "Content-Type", "Cache-Control"}

func (f *authFilter) refuse(w http.ResponseWriter, r *http.Request, req *route.Request, method string, err error) {
	var ae *auth.Error
	if !errors.As(err, &ae) {
		ae = &auth.Error{Status: http.StatusServiceUnavailable, Reason: auth.ReasonUnavailable, Err: err}
	}
	class := classUnauthenticated
	switch {
	case ae.Status == http.StatusForbidden:
		class = classForbidden
	case ae.Status >= 300 && ae.Status < 400:
		class = classAuthRedirect
	case ae.Status >= 500:
		class = classAuthUnavailable
		if now := time.Now().UnixNano(); now-f.lastWarn.Load() > int64(10*time.Second) {
			f.lastWarn.Store(now)
			f.g.log.Warn("auth unavailable: requests refused", slog.String("route", f.route), slog.String("method", method),
				slog.String("reason", ae.Reason), slog.String("error", ae.Error()))
		}
	}
	f.g.metrics.policy.WithLabelValues(f.route, method, "deny", ae.Reason).Inc()
	policyRefused(w, class, method+":"+ae.Reason)
	hdr := w.Header()
	if ae.Challenge != "" {
		hdr["Www-Authenticate"] = []string{ae.Challenge}
	}
	if (ae.Header != nil || ae.Body != nil) && !proxy.IsGRPC(r) {
		// The external service's own answer (a login redirect, its
		// challenge and page), as nginx's auth_request and Traefik relay.
		for _, k := range relayedAuthHeaders {
			if v := ae.Header.Values(k); len(v) > 0 {
				hdr[k] = v
			}
		}
		hdr["X-Request-Id"] = []string{req.ID}
		hdr["Content-Length"] = []string{strconv.Itoa(len(ae.Body))}
		w.WriteHeader(ae.Status)
		w.Write(ae.Body)
		return
	}
	status := ae.Status
	if status >= 300 && status < 400 {
		status = http.StatusUnauthorized // a gRPC client cannot follow a login redirect
	}
	proxy.WriteRequestError(w, r, status, class, req.ID)
}

// policyRefused records on the gateway's recorder which policy refused
// the request, for the access log and failure metrics.
func policyRefused(w http.ResponseWriter, class, policy string) {
	if rec, ok := w.(*recorder); ok {
		rec.failure, rec.policy = class, policy
	}
}

// limitFilter is one rate limit of a route.
type limitFilter struct {
	g        *Gateway
	route    string
	name     string
	lim      ratelimit.Limit
	source   string
	keyName  string // header (canonical) or claim
	prefix   string // "<route>/<name>/<requests>:<per>:<burst>/"
	redis    *ratelimit.Redis
	timeout  time.Duration
	deny     bool // fail closed
	allowed  prometheus.Counter
	refused  prometheus.Counter
	storeErr prometheus.Counter
	lastWarn atomic.Int64
}

func (g *Gateway) newLimitFilter(routeName string, l *config.RateLimit, redis *ratelimit.Redis, timeout time.Duration) *limitFilter {
	f := &limitFilter{g: g, route: routeName, name: l.Name, lim: ratelimit.LimitOf(l), source: l.Key.Source, keyName: l.Key.Name,
		deny: l.OnError == config.OnErrorDeny}
	// The limit's numbers are part of its keys: a changed limit starts
	// with full buckets instead of draining the old counts at a new rate.
	f.prefix = fmt.Sprintf("%s/%s/%d:%d:%d/", routeName, l.Name, l.Requests, int64(l.Per.Seconds()), l.Burst)
	if f.source == config.KeyHeader {
		f.keyName = http.CanonicalHeaderKey(f.keyName)
	}
	if l.Scope == config.ScopeGlobal {
		f.redis, f.timeout = redis, timeout
	}
	policy := "rateLimit:" + l.Name
	f.allowed = g.metrics.policy.WithLabelValues(routeName, policy, "allow", "")
	f.refused = g.metrics.policy.WithLabelValues(routeName, policy, "deny", "over_limit")
	f.storeErr = g.metrics.policy.WithLabelValues(routeName, policy, "error", "store_unavailable")
	return f
}

// maxKeyValue bounds the part of a key a client chooses (a header
// value): longer ones are replaced by their digest.
const maxKeyValue = 64

// key is the limiter key of r: the prefix and what the limit counts by.
func (f *limitFilter) key(r *http.Request, req *route.Request) string {
	b := make([]byte, 0, len(f.prefix)+48)
	b = append(b, f.prefix...)
	var v string
	switch f.source {
	case config.KeyIP:
		return string(req.ClientIP.AppendTo(b))
	case config.KeyRoute:
		return f.prefix
	case config.KeyHeader:
		if vs := r.Header[f.keyName]; len(vs) > 0 {
			v = vs[0]
		}
	case config.KeyAPIKey:
		v = req.APIKey
	case config.KeyClaim:
		v, _ = auth.ClaimString(req.Claims, f.keyName)
	}
	if len(v) > maxKeyValue {
		s := sha256.Sum256([]byte(v))
		return string(hex.AppendEncode(append(b, "sha256:"...), s[:]))
	}
	return string(append(b, v...))
}

func (f *limitFilter) filter(w http.ResponseWriter, r *http.Request, req *route.Request) bool {
	key := f.key(r, req)
	var d ratelimit.Decision
	if f.redis == nil {
		d = f.g.pol.local.Allow(key, f.lim, time.Now())
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), f.timeout)
		var err error
		d, err = f.redis.Allow(ctx, key, f.lim)
		cancel()
		if err != nil {
			f.storeErr.Inc()
			if now := time.Now().UnixNano(); now-f.lastWarn.Load() > int64(10*time.Second) {
				f.lastWarn.Store(now)
				verdict := "allowed (onError: allow)"
				if f.deny {
					verdict = "refused with 503 (onError: deny)"
				}
				f.g.log.Warn("rate limit store unavailable: requests "+verdict, slog.String("route", f.route),
					slog.String("limit", f.name), slog.String("error", err.Error()))
			}
			if !f.deny {
				return false
			}
			policyRefused(w, classLimitUnavail, "rateLimit:"+f.name)
			proxy.WriteRequestError(w, r, http.StatusServiceUnavailable, classLimitUnavail, req.ID)
			return true
		}
	}
	ratelimit.SetHeaders(w.Header(), f.name, f.lim, d)
	if d.Allowed {
		f.allowed.Inc()
		return false
	}
	f.refused.Inc()
	policyRefused(w, classRateLimited, "rateLimit:"+f.name)
	proxy.WriteRequestError(w, r, http.StatusTooManyRequests, classRateLimited, req.ID)
	return true
}

// CheckPolicyFiles loads what cfg's auth methods and redis section read
// (API keys, htpasswd files, key sets, secrets, CAs, the Redis password)
// as a config load does, and reports every problem, each with its YAML
// path. It starts nothing that outlives it (`flotilla gateway validate`).
func CheckPolicyFiles(cfg *config.Config) error {
	var errs []error
	if cfg.Redis != nil {
		r, err := ratelimit.NewRedis(cfg.Redis, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("redis: %w", err))
		} else {
			r.Close()
		}
	}
	seen := map[*config.Auth]bool{}
	check := func(path string, a *config.Auth) {
		if a == nil || seen[a] {
			return
		}
		seen[a] = true
		try := func(method string, m auth.Method, err error) {
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %w", path, method, err))
				return
			}
			m.Close()
		}
		if a.APIKey != nil {
			m, err := auth.NewAPIKey(a.APIKey, nil)
			try("apiKey", m, err)
		}
		if a.Basic != nil {
			m, err := auth.NewBasic(a.Basic, nil)
			try("basic", m, err)
		}
		if a.JWT != nil {
			m, err := auth.NewJWT(a.JWT, auth.JWTOptions{})
			try("jwt", m, err)
		}
		if a.Forward != nil {
			m, err := auth.NewForward(a.Forward, nil)
			try("forward", m, err)
		}
	}
	check("defaults.auth", cfg.Defaults.Auth)
	for i := range cfg.Routes {
		check(fmt.Sprintf("routes[%d].auth", i), cfg.Routes[i].Auth)
	}
	return errors.Join(errs...)
}
