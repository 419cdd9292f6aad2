package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/net/http/httpguts"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// JWT limits.
const (
	// maxTokenBytes caps a bearer token; longer ones are refused unparsed.
	maxTokenBytes = 16 << 10
	// minHMACSecret is the shortest accepted HMAC secret (HS256 needs 32
	// bytes, RFC 7518 section 3.2).
	minHMACSecret = 32
	// defaultVerifyCacheSize bounds the verified-token cache.
	defaultVerifyCacheSize = 10_000
	// verifyCacheTTL is the longest a verified token skips the signature
	// check (less when it expires sooner; a new key set empties it).
	verifyCacheTTL = time.Minute
)

// JWTOptions are a JWT's collaborators.
type JWTOptions struct {
	// Logger receives key set fetch failures and skipped claim headers
	// (default: discarded).
	Logger *slog.Logger
	// Client fetches JWKSURL (default: one with JWKSTimeout bounds, at
	// most 3 redirects, none from https to http).
	Client *http.Client
	// Now is the clock for exp, nbf, iat and the refetch interval
	// (default time.Now).
	Now func() time.Time
}

// JWT accepts requests bearing a JSON Web Token signed by a trusted key
// (config.JWTAuth). Verified tokens are cached briefly by their SHA-256
// digest, so a repeated token skips the signature check; its times are
// checked against the clock on every request. The Identity.Claims map of
// an accepted token is shared by the requests bearing it: read it, never
// change it (Identity.Set is each request's own).
type JWT struct {
	cfg    config.JWTAuth
	log    *slog.Logger
	now    func() time.Time
	allow  []jose.SignatureAlgorithm
	secret []byte     // HMAC secret, nil without hmacSecretFile
	keys   *keySource // nil with only an HMAC secret
	expect jwt.Expected

	cacheSize int // 0 disables the cache (benchmarks)
	mu        sync.RWMutex
	cache     map[[sha256.Size]byte]*verified
}

var _ Method = (*JWT)(nil)

// verified is a token whose signature, issuer and audience were checked.
type verified struct {
	std      jwt.Claims // for the time checks on every use
	identity *Identity
	denied   *Error // a claims requirement failed (403)
	gen      uint64 // key set generation that verified it (0: HMAC)
	until    time.Time
}

// NewJWT builds the method from c (defaults applied and validated): it
// reads JWKSFile and HMACSecretFile, and starts fetching JWKSURL in the
// background (Close stops it). Requests wait at most JWKSTimeout for the
// first keys.
func NewJWT(c *config.JWTAuth, opts JWTOptions) (*JWT, error) {
	j := &JWT{cfg: *c, log: opts.Logger, now: opts.Now, cacheSize: defaultVerifyCacheSize}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.cfg.JWKSTimeout <= 0 {
		j.cfg.JWKSTimeout = config.DefaultJWKSTimeout
	}
	if j.cfg.JWKSRefresh <= 0 {
		j.cfg.JWKSRefresh = config.DefaultJWKSRefresh
	}
	if j.cfg.Leeway < 0 {
		j.cfg.Leeway = 0
	}
	algs := j.cfg.Algorithms
	if len(algs) == 0 {
		algs = slices.Clone(config.AsymmetricJWTAlgorithms)
		if j.cfg.HMACSecretFile != "" {
			algs = append(algs, config.HMACJWTAlgorithms...)
		}
	}
	if f := j.cfg.HMACSecretFile; f != "" {
		secret, err := readSecret(f)
		if err != nil {
			return nil, err
		}
		j.secret = secret
	}
	for _, a := range algs {
		switch {
		case slices.Contains(config.HMACJWTAlgorithms, a):
			if j.secret == nil {
				return nil, fmt.Errorf("jwt: algorithm %s needs hmacSecretFile", a)
			}
			// RFC 7518: the secret must be at least the hash size.
			if need := map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}[a]; len(j.secret) < need {
				j.log.Warn("jwt: HMAC secret too short for an algorithm, refusing its tokens", slog.String("algorithm", a), slog.Int("need_bytes", need), slog.String("file", j.cfg.HMACSecretFile))
				continue
			}
		case slices.Contains(config.AsymmetricJWTAlgorithms, a):
			if j.cfg.JWKSFile == "" && j.cfg.JWKSURL == "" {
				return nil, fmt.Errorf("jwt: algorithm %s needs jwksFile or jwksURL", a)
			}
		default:
			return nil, fmt.Errorf("jwt: algorithm %q not supported", a)
		}
		j.allow = append(j.allow, jose.SignatureAlgorithm(a))
	}
	if len(j.allow) == 0 {
		return nil, errors.New("jwt: no usable algorithm")
	}
	j.expect = jwt.Expected{Issuer: j.cfg.Issuer, AnyAudience: jwt.Audience(j.cfg.Audiences)}

	switch {
	case j.cfg.JWKSFile != "":
		data, err := readCapped(j.cfg.JWKSFile, maxJWKSBytes)
		if err != nil {
			return nil, fmt.Errorf("jwt: jwksFile: %w", err)
		}
		set, err := parseJWKS(data, j.log, j.cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwt: jwksFile %s: %w", j.cfg.JWKSFile, err)
		}
		j.keys = newStaticSource(set)
	case j.cfg.JWKSURL != "":
		client, own := opts.Client, false
		if client == nil {
			client, own = defaultJWKSClient(j.cfg.JWKSTimeout), true
		}
		j.keys = newURLSource(j.cfg.JWKSURL, client, j.cfg.JWKSTimeout, j.cfg.JWKSRefresh, j.now, j.log)
		j.keys.ownClient = own
	}
	j.cache = map[[sha256.Size]byte]*verified{}
	return j, nil
}

// readSecret reads an HMAC secret file; trailing line breaks (as left by
// editors and "echo") are not part of the secret.
func readSecret(path string) ([]byte, error) {
	data, err := readCapped(path, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("jwt: hmacSecretFile: %w", err)
	}
	data = bytes.TrimRight(data, "\r\n")
	if len(data) < minHMACSecret {
		return nil, fmt.Errorf("jwt: hmacSecretFile %s: secret of %d bytes, want at least %d", path, len(data), minHMACSecret)
	}
	return data, nil
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// Name is "jwt".
func (j *JWT) Name() string { return "jwt" }

// Close stops fetching the key set.
func (j *JWT) Close() {
	if j.keys != nil {
		j.keys.close()
	}
}

const challenge = `Bearer realm="flotilla"`

// refuse is a 401 invalid_token refusal; desc is a fixed short text (it
// never echoes the token).
func refuse(reason, desc string, err error) *Error {
	return &Error{
		Status:    http.StatusUnauthorized,
		Reason:    reason,
		Challenge: challenge + `, error="invalid_token", error_description="` + desc + `"`,
		Err:       err,
	}
}

// Authenticate accepts a request whose "Authorization: Bearer" token is
// signed by a trusted key with an allowed algorithm, within its validity
// times (plus leeway), from the configured issuer for a configured
// audience; then the token must meet the claims requirements (else 403).
func (j *JWT) Authenticate(r *http.Request) (*Identity, error) {
	token, aerr := bearer(r)
	if aerr != nil {
		return nil, aerr
	}
	now := j.now()
	var sum [sha256.Size]byte
	if j.cacheSize > 0 {
		// Read-only view of the token: no copy on the hot path.
		sum = sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
		j.mu.RLock()
		v := j.cache[sum]
		j.mu.RUnlock()
		if v != nil && now.Before(v.until) && (v.gen == 0 || j.keys.current().gen == v.gen) {
			return j.use(v, now)
		}
	}
	v, aerr := j.verify(r.Context(), token)
	if aerr != nil {
		return nil, aerr
	}
	if j.cacheSize > 0 {
		v.until = now.Add(verifyCacheTTL)
		if v.std.Expiry != nil && v.std.Expiry.Time().Add(j.cfg.Leeway).Before(v.until) {
			v.until = v.std.Expiry.Time().Add(j.cfg.Leeway)
		}
		j.store(sum, v, now)
	}
	return j.use(v, now)
}

// use finishes a verified token's check: times against now, then the
// claims requirements.
func (j *JWT) use(v *verified, now time.Time) (*Identity, error) {
	if err := v.std.ValidateWithLeeway(j.expect.WithTime(now), j.cfg.Leeway); err != nil {
		return nil, claimsError(err)
	}
	if v.denied != nil {
		e := *v.denied
		return nil, &e
	}
	id := *v.identity
	id.Set = v.identity.Set.Clone()
	return &id, nil
}

func (j *JWT) store(sum [sha256.Size]byte, v *verified, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.cache) >= j.cacheSize {
		for k, e := range j.cache {
			if !now.Before(e.until) || (e.gen != 0 && e.gen != j.keys.current().gen) {
				delete(j.cache, k)
			}
		}
		// Still full: drop an arbitrary eighth (map order is random),
		// so that the next inserts need no sweep.
		if len(j.cache) >= j.cacheSize {
			drop := len(j.cache) - j.cacheSize + j.cacheSize/8 + 1
			for k := range j.cache {
				if drop <= 0 {
					break
				}
				delete(j.cache, k)
				drop--
			}
		}
	}
	j.cache[sum] = v
}

// bearer returns the token of the request's "Authorization: Bearer"
// header (RFC 6750 section 2.1; the scheme is case-insensitive).
func bearer(r *http.Request) (string, *Error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", &Error{Status: http.StatusUnauthorized, Reason: ReasonMissing, Challenge: challenge, Err: errors.New("no Authorization header")}
	}
	if len(vals) > 1 {
		return "", refuse(ReasonInvalid, "more than one Authorization header", errors.New("more than one Authorization header"))
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &Error{Status: http.StatusUnauthorized, Reason: ReasonMissing, Challenge: challenge, Err: errors.New("no bearer token in the Authorization header")}
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return "", refuse(ReasonInvalid, "empty token", errors.New("empty bearer token"))
	case len(token) > maxTokenBytes:
		return "", refuse(ReasonInvalid, "token too long", fmt.Errorf("bearer token of %d bytes, more than %d", len(token), maxTokenBytes))
	case !isB64Token(token):
		return "", refuse(ReasonInvalid, "malformed token", errors.New("bearer token has characters outside the b64token syntax"))
	}
	return token, nil
}

// b64TokenChars are the characters of RFC 6750's b64token (before the
// trailing "=").
var b64TokenChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", byte(c)) >= 0
	}
	return t
}()

// isB64Token reports whether s has RFC 6750's b64token syntax.
func isB64Token(s string) bool {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !b64TokenChars[s[i]] {
			return false
		}
	}
	return true
}

// verify checks the token's algorithm, signature, issuer and audience
// and evaluates the claims requirements. Times are left to use.
func (j *JWT) verify(ctx context.Context, token string) (*verified, *Error) {
	// Classify the algorithm before anything is verified. go-jose then
	// enforces the same allow-list and its parsed header is the one used.
	alg, err := headerAlg(token)
	if err != nil {
		return nil, refuse(ReasonInvalid, "malformed token", fmt.Errorf("token header: %w", err))
	}
	if !slices.Contains(j.allow, jose.SignatureAlgorithm(alg)) {
		return nil, refuse(ReasonAlgorithm, "algorithm not allowed", fmt.Errorf("token algorithm %q is not allowed", alg))
	}
	sig, err := jose.ParseSignedCompact(token, j.allow)
	if err != nil {
		return nil, refuse(ReasonInvalid, "malformed token", err)
	}
	if len(sig.Signatures) != 1 {
		return nil, refuse(ReasonInvalid, "malformed token", errors.New("want exactly one signature"))
	}
	h := sig.Signatures[0].Header
	alg = h.Algorithm
	if !slices.Contains(j.allow, jose.SignatureAlgorithm(alg)) { // cannot happen: go-jose checked
		return nil, refuse(ReasonAlgorithm, "algorithm not allowed", fmt.Errorf("token algorithm %q is not allowed", alg))
	}

	var payload []byte
	var gen uint64
	if slices.Contains(config.HMACJWTAlgorithms, alg) {
		// Only the configured secret: never a key from a key set.
		if j.secret == nil {
			return nil, refuse(ReasonAlgorithm, "algorithm not allowed", fmt.Errorf("token algorithm %s without hmacSecretFile", alg))
		}
		if payload, err = sig.Verify(j.secret); err != nil {
			return nil, refuse(ReasonInvalid, "signature does not verify", fmt.Errorf("HMAC signature: %w", err))
		}
	} else {
		if j.keys == nil {
			return nil, refuse(ReasonAlgorithm, "algorithm not allowed", fmt.Errorf("token algorithm %s without a key set", alg))
		}
		if !j.keys.waitLoaded(ctx) {
			return nil, &Error{Status: http.StatusServiceUnavailable, Reason: ReasonUnavailable,
				Err: fmt.Errorf("no key set fetched from %s yet", j.keys.logURL)}
		}
		var aerr *Error
		payload, gen, aerr = j.verifyWithKeys(ctx, sig, alg, h.KeyID)
		if aerr != nil {
			return nil, aerr
		}
	}

	claims, std, err := decodeClaims(payload)
	if err != nil {
		return nil, refuse(ReasonInvalid, "malformed claims", err)
	}
	// Issuer and audience now, so that only tokens meant for this route
	// are cached; times on every use.
	noTime := std
	noTime.Expiry, noTime.NotBefore, noTime.IssuedAt = nil, nil, nil
	if err := noTime.ValidateWithLeeway(j.expect, 0); err != nil {
		return nil, claimsError(err)
	}
	v := &verified{std: std, gen: gen}
	if name, why := j.checkRequirements(claims); why != "" {
		v.denied = &Error{
			Status:    http.StatusForbidden,
			Reason:    ReasonClaims,
			Challenge: challenge + `, error="insufficient_scope", error_description="token lacks a required claim value"`,
			Err:       fmt.Errorf("claim %q %s", name, why),
		}
		return v, nil
	}
	id := &Identity{Claims: claims, Set: http.Header{}}
	if sub, ok := claims["sub"].(string); ok {
		id.Principal = sub
	}
	for claim, header := range j.cfg.ForwardClaims {
		val, ok := ClaimString(claims, claim)
		if !ok {
			continue
		}
		if !httpguts.ValidHeaderFieldValue(val) {
			j.log.Warn("jwt: claim not forwarded: not a valid header value", slog.String("claim", claim), slog.String("header", header))
			continue
		}
		id.Set.Set(header, val)
	}
	v.identity = id
	return v, nil
}

// verifyWithKeys verifies sig with the key set's candidate keys, refetching
// a URL's set once (rate-limited, shared) when the kid is unknown.
func (j *JWT) verifyWithKeys(ctx context.Context, sig *jose.JSONWebSignature, alg, kid string) ([]byte, uint64, *Error) {
	set := j.keys.current()
	for attempt := 0; ; attempt++ {
		keys, known := set.candidates(alg, kid)
		for _, k := range keys {
			if payload, err := sig.Verify(k.key); err == nil {
				return payload, set.gen, nil
			}
		}
		if known || attempt > 0 || !j.keys.refetch(ctx) {
			if !known {
				return nil, 0, refuse(ReasonUnknownKey, "unknown signing key", fmt.Errorf("no %s key with kid %q in the key set", alg, kid))
			}
			return nil, 0, refuse(ReasonInvalid, "signature does not verify", fmt.Errorf("%s signature (kid %q) does not verify", alg, kid))
		}
		next := j.keys.current()
		if next == set {
			return nil, 0, refuse(ReasonUnknownKey, "unknown signing key", fmt.Errorf("no %s key with kid %q in the key set", alg, kid))
		}
		set = next
	}
}

// headerAlg decodes the token's protected header just to read "alg".
func headerAlg(token string) (string, error) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 {
		return "", errors.New("want three dot-separated parts")
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", fmt.Errorf("not base64url: %w", err)
	}
	var h struct {
		Alg any `json:"alg"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", fmt.Errorf("not a JSON object: %w", err)
	}
	alg, ok := h.Alg.(string)
	if !ok {
		return "", errors.New(`no "alg" string`)
	}
	return alg, nil
}

// decodeClaims decodes a payload that must be one JSON object; numbers
// stay json.Number (exact). The registered claims are taken from the same
// map, so no two parsers can disagree about them.
func decodeClaims(payload []byte) (map[string]any, jwt.Claims, error) {
	var std jwt.Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, std, fmt.Errorf("claims: %w", err)
	}
	if claims == nil {
		return nil, std, errors.New("claims: not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, std, errors.New("claims: data after the JSON object")
	}
	str := func(name string) (string, error) {
		v, ok := claims[name]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("claim %q is not a string", name)
		}
		return s, nil
	}
	var err error
	if std.Issuer, err = str("iss"); err != nil {
		return nil, std, err
	}
	if std.Subject, err = str("sub"); err != nil {
		return nil, std, err
	}
	if aud, ok := claims["aud"]; ok {
		b, _ := json.Marshal(aud)
		if err := std.Audience.UnmarshalJSON(b); err != nil {
			return nil, std, errors.New(`claim "aud" is not a string or an array of strings`)
		}
	}
	date := func(name string) (*jwt.NumericDate, error) {
		v, ok := claims[name]
		if !ok {
			return nil, nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("claim %q is not a number", name)
		}
		d := new(jwt.NumericDate)
		if err := d.UnmarshalJSON([]byte(n)); err != nil {
			return nil, fmt.Errorf("claim %q is not a valid date", name)
		}
		return d, nil
	}
	if std.Expiry, err = date("exp"); err != nil {
		return nil, std, err
	}
	if std.NotBefore, err = date("nbf"); err != nil {
		return nil, std, err
	}
	if std.IssuedAt, err = date("iat"); err != nil {
		return nil, std, err
	}
	return claims, std, nil
}

// claimsError maps a go-jose claims validation error to a refusal.
func claimsError(err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return refuse(ReasonExpired, "token expired", err)
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return refuse(ReasonNotYetValid, "token not yet valid", err)
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return refuse(ReasonIssuer, "wrong issuer", err)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return refuse(ReasonAudience, "wrong audience", err)
	}
	return refuse(ReasonInvalid, "invalid claims", err)
}

// checkRequirements returns the first unmet claims requirement's claim and
// why ("" when all are met).
func (j *JWT) checkRequirements(claims map[string]any) (string, string) {
	for _, req := range j.cfg.Claims {
		v, ok := lookupClaim(claims, req.Name)
		if !ok || v == nil {
			return req.Name, "is missing"
		}
		for _, want := range req.Values {
			if !claimHas(v, want) {
				return req.Name, fmt.Sprintf("lacks %q", want)
			}
		}
	}
	return "", ""
}

// claimHas reports whether claim value v holds want: equal to a string or
// one of its space-separated words, a member of an array, or a number or
// boolean that formats as want.
func claimHas(v any, want string) bool {
	switch v := v.(type) {
	case string:
		if v == want {
			return true
		}
		for w := range strings.FieldsSeq(v) {
			if w == want {
				return true
			}
		}
		return false
	case []any:
		for _, m := range v {
			if s, ok := scalarString(m); ok && s == want {
				return true
			}
		}
		return false
	}
	s, ok := scalarString(v)
	return ok && s == want
}

// lookupClaim finds a claim by name; dots reach into objects. A top-level
// claim named with dots (a URL-like namespaced claim) is found as well.
func lookupClaim(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if obj, ok := claims[name[:i]].(map[string]any); ok {
			if v, ok := lookupClaim(obj, name[i+1:]); ok {
				return v, true
			}
		}
	}
	return nil, false
}

// ClaimString returns a verified claim (dots reach into objects) as one
// header-ready string: strings as they are, numbers without exponent,
// booleans as true/false, arrays comma-separated, objects as JSON. A
// missing or null claim gives false. The gateway may use it for
// rate-limit keys, so they read as the forwarded headers do.
func ClaimString(claims map[string]any, name string) (string, bool) {
	v, ok := lookupClaim(claims, name)
	if !ok || v == nil {
		return "", false
	}
	if s, ok := scalarString(v); ok {
		return s, true
	}
	if arr, ok := v.([]any); ok {
		parts := make([]string, 0, len(arr))
		for _, m := range arr {
			if s, ok := scalarString(m); ok {
				parts = append(parts, s)
			} else if m != nil {
				b, _ := json.Marshal(m)
				parts = append(parts, string(b))
			}
		}
		return strings.Join(parts, ","), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// scalarString formats a string, number or boolean claim value.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		s := string(v)
		if strings.ContainsAny(s, "eE") {
			if f, err := v.Float64(); err == nil {
				return strconv.FormatFloat(f, 'f', -1, 64), true
			}
		}
		return s, true
	case float64: // claims not decoded by this package
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}
