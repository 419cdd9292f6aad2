package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Key set limits: a key set is input from a file or a URL, so its size and
// the work it can cause are bounded.
const (
	// maxJWKSBytes caps a key set document (file or HTTP body).
	maxJWKSBytes = 1 << 20
	// maxJWKSKeys caps the keys kept from one set; more are ignored with
	// a warning.
	maxJWKSKeys = 100
	// minRSABits refuses weak RSA keys (RFC 7518 section 3.3 requires
	// 2048 bits).
	minRSABits = 2048
	// maxRSABits bounds the work of one verification.
	maxRSABits = 8192
	// unknownKidInterval is the least time between two fetches caused by
	// tokens naming an unknown "kid" (config.JWTAuth.JWKSURL).
	unknownKidInterval = 10 * time.Second
	// maxFetchBackoff caps the retry delay after failed fetches (when
	// JWKSRefresh is longer).
	maxFetchBackoff = time.Minute
)

// verifyKey is one public key of a set, parsed once.
type verifyKey struct {
	kid string
	alg string // the key's "alg", "" for any compatible algorithm
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// fits reports whether k may verify a token signed with alg: the key
// type and curve must match the algorithm, and the key's own "alg", when
// set, must be alg.
func (k *verifyKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// keySet is an immutable parsed key set.
type keySet struct {
	gen   uint64            // changes with every new set (verification cache entries name it)
	sum   [sha256.Size]byte // of the document: a refetch of the same set keeps gen
	byKid map[string][]*verifyKey
	noKid []*verifyKey
	n     int
}

// candidates are the keys that may verify a token with alg and kid: those
// with that kid, then those without a kid. known reports whether some key
// has that kid (for a token without a kid: whether any key fits).
func (s *keySet) candidates(alg, kid string) (keys []*verifyKey, known bool) {
	if s == nil {
		return nil, false
	}
	add := func(ks []*verifyKey) {
		for _, k := range ks {
			if k.fits(alg) {
				keys = append(keys, k)
			}
		}
	}
	if kid != "" {
		add(s.byKid[kid])
		known = len(keys) > 0
		add(s.noKid)
		return keys, known
	}
	for _, ks := range s.byKid {
		add(ks)
	}
	add(s.noKid)
	return keys, len(keys) > 0
}

// parseJWKS parses a JSON Web Key Set (RFC 7517 section 5). Keys this
// gateway cannot or must not use are skipped with a warning, as the RFC
// asks: unknown types, symmetric ("oct") keys (an HMAC secret comes only
// from hmacSecretFile, so a published key can never act as one), keys
// whose "use" is not "sig", RSA keys under 2048 or over 8192 bits, keys
// with private key material. A set with no usable key is an error.
func parseJWKS(data []byte, log *slog.Logger, where string) (*keySet, error) {
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`not a JSON Web Key Set: no "keys" array`)
	}
	set := &keySet{byKid: map[string][]*verifyKey{}, sum: sha256.Sum256(data)}
	for i, raw := range doc.Keys {
		if set.n == maxJWKSKeys {
			log.Warn("jwt: key set has too many keys, ignoring the rest", slog.String("jwks", where), slog.Int("max", maxJWKSKeys), slog.Int("keys", len(doc.Keys)))
			break
		}
		k, err := parseJWK(raw)
		if err != nil {
			log.Warn("jwt: skipping a key of the key set", slog.String("jwks", where), slog.Int("index", i), slog.String("error", err.Error()))
			continue
		}
		if k.kid == "" {
			set.noKid = append(set.noKid, k)
		} else {
			set.byKid[k.kid] = append(set.byKid[k.kid], k)
		}
		set.n++
	}
	if set.n == 0 {
		return nil, fmt.Errorf("no usable signature key among %d keys", len(doc.Keys))
	}
	return set, nil
}

func parseJWK(raw json.RawMessage) (*verifyKey, error) {
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(raw, &meta); err != nil || meta == nil {
		return nil, errors.New("not a JSON object")
	}
	str := func(name string) string {
		var s string
		_ = json.Unmarshal(meta[name], &s)
		return s
	}
	kty, use := str("kty"), str("use")
	// Private key material in a published set is a leak to fix at the
	// source; go-jose parses only public keys as untrusted input.
	for _, p := range []string{"d", "p", "q", "dp", "dq", "qi", "priv"} {
		if _, ok := meta[p]; ok && kty != "oct" {
			return nil, fmt.Errorf("key holds private key material (%q); publish only public keys", p)
		}
	}
	if kty == "oct" {
		return nil, errors.New(`symmetric ("oct") keys are not accepted in a key set; use hmacSecretFile`)
	}
	if use != "" && use != "sig" {
		return nil, fmt.Errorf(`"use" is %q, not "sig"`, use)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	if !jwk.IsPublic() { // cannot happen: checked above
		return nil, errors.New("not a public key")
	}
	k := &verifyKey{kid: jwk.KeyID, alg: jwk.Algorithm}
	switch pub := jwk.Key.(type) {
	case *rsa.PublicKey:
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("RSA key of %d bits, want %d to %d", bits, minRSABits, maxRSABits)
		}
		k.key = pub
	case *ecdsa.PublicKey:
		k.key = pub
	case ed25519.PublicKey:
		k.key = pub
	default:
		return nil, fmt.Errorf("unsupported key type %q", kty)
	}
	return k, nil
}

// keySource holds the current key set: fixed (a file) or fetched from a
// URL by a refresher goroutine, with request-triggered refetches shared
// by all waiting requests (one fetch in flight at a time).
type keySource struct {
	url       string
	logURL    string // url without a password, for logs
	client    *http.Client
	ownClient bool // close its idle connections on close
	timeout   time.Duration
	refresh   time.Duration
	now       func() time.Time
	log       *slog.Logger

	keys   atomic.Pointer[keySet]
	loaded chan struct{} // closed once keys are set

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	inflight  *fetchCall // the fetch in progress, nil if none
	lastFetch time.Time  // start of the last fetch (now clock)
	gen       uint64
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// newStaticSource serves a fixed key set (a file).
func newStaticSource(set *keySet) *keySource {
	s := &keySource{loaded: make(chan struct{})}
	s.gen = 1
	set.gen = 1
	s.keys.Store(set)
	close(s.loaded)
	return s
}

// newURLSource starts fetching url: at once, then every refresh (sooner
// after failures).
func newURLSource(url string, client *http.Client, timeout, refresh time.Duration, now func() time.Time, log *slog.Logger) *keySource {
	ctx, cancel := context.WithCancel(context.Background())
	s := &keySource{
		url: url, logURL: url, client: client, timeout: timeout, refresh: refresh, now: now, log: log,
		loaded: make(chan struct{}), ctx: ctx, cancel: cancel,
	}
	if u, err := neturl.Parse(url); err == nil {
		s.logURL = u.Redacted()
	}
	s.mu.Lock()
	first := s.startFetchLocked()
	s.mu.Unlock()
	s.wg.Add(1)
	go s.refresher(first)
	return s
}

func (s *keySource) current() *keySet { return s.keys.Load() }

func (s *keySource) close() {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		if s.ownClient {
			s.client.CloseIdleConnections()
		}
	}
}

// refresher refetches the set every refresh; after a failure it retries
// sooner (1s doubling, at most the refresh interval and a minute).
func (s *keySource) refresher(first *fetchCall) {
	defer s.wg.Done()
	backoff := time.Second
	call := first
	for {
		select {
		case <-call.done:
		case <-s.ctx.Done():
			return
		}
		next := s.refresh
		if call.err != nil {
			next = min(backoff, s.refresh)
			backoff = min(2*backoff, maxFetchBackoff)
		} else {
			backoff = time.Second
		}
		t := time.NewTimer(next)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		s.mu.Lock()
		call = s.inflight
		if call == nil {
			call = s.startFetchLocked()
		}
		s.mu.Unlock()
	}
}

// startFetchLocked starts a fetch; s.mu is held.
func (s *keySource) startFetchLocked() *fetchCall {
	c := &fetchCall{done: make(chan struct{})}
	s.inflight = c
	s.lastFetch = s.now()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		set, err := s.fetch()
		// Publish the keys and end the call together, before anyone can
		// see them: a request that finds the new keys finds no fetch in
		// flight either.
		s.mu.Lock()
		first := false
		// The same document again keeps its generation, so that the
		// verified-token cache stays warm across refreshes.
		if prev := s.keys.Load(); err == nil && (prev == nil || prev.sum != set.sum) {
			s.gen++
			set.gen = s.gen
			s.keys.Store(set)
			first = s.gen == 1
		}
		s.inflight = nil
		s.mu.Unlock()
		c.err = err
		if first {
			close(s.loaded)
		}
		close(c.done)
	}()
	return c
}

// refetch asks for a fresh set because a token named an unknown key (or
// no keys were fetched yet), and waits for it at most the fetch timeout
// or until ctx is done. Fetches are shared: a request joins the one in
// flight; a new one starts only if the last started at least
// unknownKidInterval ago. It reports whether the set may have changed.
func (s *keySource) refetch(ctx context.Context) bool {
	if s.url == "" {
		return false
	}
	s.mu.Lock()
	call := s.inflight
	if call == nil {
		if !s.lastFetch.IsZero() && s.now().Sub(s.lastFetch) < unknownKidInterval {
			s.mu.Unlock()
			return false
		}
		call = s.startFetchLocked()
	}
	s.mu.Unlock()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case <-call.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return false
}

// waitLoaded waits until a first set is there, at most the fetch timeout
// (joining or starting a fetch as refetch does).
func (s *keySource) waitLoaded(ctx context.Context) bool {
	select {
	case <-s.loaded:
		return true
	default:
	}
	s.refetch(ctx)
	select {
	case <-s.loaded:
		return true
	default:
		return false
	}
}

// fetch gets the URL once, bounded by the timeout and maxJWKSBytes. Only
// a 200 answer with a usable set replaces the keys; otherwise the
// previous keys stay and a warning is logged.
func (s *keySource) fetch() (*keySet, error) {
	set, err := s.fetchOnce()
	if err != nil {
		lvl := slog.LevelWarn
		if s.current() == nil {
			lvl = slog.LevelError
		}
		s.log.Log(s.ctx, lvl, "jwt: key set fetch failed, keeping the previous keys", slog.String("url", s.logURL), slog.Bool("have_keys", s.current() != nil), slog.String("error", err.Error()))
		return nil, err
	}
	s.log.Debug("jwt: key set fetched", slog.String("url", s.logURL), slog.Int("keys", set.n))
	return set, nil
}

func (s *keySource) fetchOnce() (*keySet, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("status %s, want 200 OK", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	return parseJWKS(data, s.log, s.logURL)
}

// defaultJWKSClient fetches key sets: bounded dial, TLS and header waits
// (the whole fetch is bounded by JWKSTimeout too), at most 3 redirects and
// never from https to http.
func defaultJWKSClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = timeout
	tr.MaxIdleConnsPerHost = 2
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return errors.New("redirect from https to http refused")
			}
			return nil
		},
	}
}
