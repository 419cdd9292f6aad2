package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Password-check protection defaults (see Basic).
const (
	// BasicCacheSize bounds the cache of verified user/password pairs.
	BasicCacheSize = 10000
	// BasicCacheTTL is how long a verified pair is trusted without
	// running its hash again.
	BasicCacheTTL = time.Minute
	// BasicBusyWait is how long a request waits for a free password
	// check before it is refused with 503 busy.
	BasicBusyWait = time.Second
)

// Basic accepts HTTP basic authentication (RFC 7617) against an htpasswd
// file (config.BasicAuth).
//
// bcrypt is slow on purpose, so an anonymous client could keep the CPUs
// busy by sending passwords. Three things bound that: successful checks
// are cached (keyed by a per-process salted SHA-256 of user and password,
// BasicCacheSize entries, BasicCacheTTL), so legitimate clients cost one
// hash a minute; at most GOMAXPROCS hashes run at once and a request that
// cannot get a slot within BasicBusyWait is refused with 503 busy; only
// successes are cached, so inventing users or passwords cannot grow
// memory. An unknown user is checked against a dummy hash of the same
// kind and cost through the same path, so response times do not tell
// which users exist. A reloaded file builds a new Basic, and with it a
// fresh cache: a changed password stops working at once.
type Basic struct {
	users         map[string]*basicHash
	dummy         *basicHash
	forwardHeader string // "" for none
	challenge     string

	sem  chan struct{} // slots for password checks
	wait time.Duration // how long to wait for a slot

	salt  [32]byte
	mu    sync.Mutex
	cache map[[sha256.Size]byte]basicCacheEntry
	size  int
	ttl   time.Duration
	now   func() time.Time
}

type basicCacheEntry struct {
	user    string
	expires time.Time
}

var _ Method = (*Basic)(nil)

// NewBasic loads c.HtpasswdFile. Every problem with the file is returned,
// each naming file:line; weak (apr1, SHA-1) hashes load with one warning
// naming their users.
func NewBasic(c *config.BasicAuth, log *slog.Logger) (*Basic, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.HtpasswdFile == "" {
		return nil, errors.New("basic auth: no htpasswd file")
	}
	users, weak, err := basicParseHtpasswd(c.HtpasswdFile)
	if err != nil {
		return nil, err
	}
	if len(weak) > 0 {
		slices.Sort(weak)
		log.Warn("htpasswd file holds weak password hashes (apr1 MD5 or SHA-1); rehash them with bcrypt: htpasswd -B",
			slog.String("file", c.HtpasswdFile), slog.Any("users", weak))
	}
	realm := c.Realm
	if realm == "" {
		realm = "flotilla"
	}
	b := &Basic{
		users:         users,
		forwardHeader: c.ForwardHeader,
		challenge:     fmt.Sprintf(`Basic realm=%q, charset="UTF-8"`, realm),
		sem:           make(chan struct{}, runtime.GOMAXPROCS(0)),
		wait:          BasicBusyWait,
		cache:         map[[sha256.Size]byte]basicCacheEntry{},
		size:          BasicCacheSize,
		ttl:           BasicCacheTTL,
		now:           time.Now,
	}
	switch b.forwardHeader {
	case "":
		b.forwardHeader = config.DefaultBasicForwardHeader
	case "-":
		b.forwardHeader = ""
	default:
		b.forwardHeader = http.CanonicalHeaderKey(b.forwardHeader)
	}
	if _, err := rand.Read(b.salt[:]); err != nil {
		return nil, fmt.Errorf("basic auth: %w", err)
	}
	if b.dummy, err = basicDummy(users); err != nil {
		return nil, fmt.Errorf("basic auth: %w", err)
	}
	return b, nil
}

// basicDummy makes the hash an unknown user is checked against: bcrypt at
// the highest cost the file uses, or else apr1, so that an unknown user
// costs what a known one does.
func basicDummy(users map[string]*basicHash) (*basicHash, error) {
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, err
	}
	cost := -1
	for _, h := range users {
		if h.kind == basicBcrypt {
			if c, err := bcrypt.Cost(h.full); err == nil && c > cost {
				cost = c
			}
		}
	}
	if cost < 0 {
		salt := []byte("dummysal")
		return &basicHash{kind: basicAPR1, salt: salt, sum: basicAPR1Sum(pw[:], salt)}, nil
	}
	full, err := bcrypt.GenerateFromPassword(pw[:], cost)
	if err != nil {
		return nil, err
	}
	return &basicHash{kind: basicBcrypt, full: full}, nil
}

// Name implements Method.
func (b *Basic) Name() string { return "basic" }

// Close implements Method; a Basic has no background work.
func (b *Basic) Close() {}

// Authenticate implements Method.
func (b *Basic) Authenticate(r *http.Request) (*Identity, error) {
	user, pass, err := basicParseHeader(r.Header)
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			ae.Challenge = b.challenge
			return nil, ae
		}
		return nil, err
	}
	key := b.cacheKey(user, pass)
	if !b.cached(key, user) {
		ok, err := b.check(r, user, pass)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &Error{Status: http.StatusUnauthorized, Reason: ReasonInvalid, Challenge: b.challenge,
				Err: fmt.Errorf("basic auth: wrong user or password for %q", user)}
		}
		b.remember(key, user)
	}
	id := &Identity{Principal: user}
	if b.forwardHeader != "" {
		id.Set = http.Header{b.forwardHeader: {user}}
	}
	return id, nil
}

// check runs the password hash in one of the bounded slots.
func (b *Basic) check(r *http.Request, user, pass string) (bool, error) {
	t := time.NewTimer(b.wait)
	defer t.Stop()
	select {
	case b.sem <- struct{}{}:
	case <-t.C:
		return false, &Error{Status: http.StatusServiceUnavailable, Reason: ReasonBusy,
			Err: fmt.Errorf("basic auth: all %d password checks busy for %s", cap(b.sem), b.wait)}
	case <-r.Context().Done():
		return false, &Error{Status: http.StatusServiceUnavailable, Reason: ReasonBusy,
			Err: fmt.Errorf("basic auth: waiting for a password check: %w", r.Context().Err())}
	}
	defer func() { <-b.sem }()
	h, known := b.users[user]
	if !known {
		h = b.dummy
	}
	ok := h.verify([]byte(pass))
	return ok && known, nil
}

func (b *Basic) cacheKey(user, pass string) [sha256.Size]byte {
	var stack [256]byte // most credentials fit: no allocation
	buf := stack[:0]
	buf = append(buf, b.salt[:]...)
	buf = append(buf, user...)
	buf = append(buf, ':')
	buf = append(buf, pass...)
	k := sha256.Sum256(buf)
	clear(buf) // it held the password
	return k
}

func (b *Basic) cached(key [sha256.Size]byte, user string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.cache[key]
	if !ok {
		return false
	}
	if !b.now().Before(e.expires) {
		delete(b.cache, key)
		return false
	}
	// The key covers the user; comparing it again costs nothing and keeps
	// a (practically impossible) digest collision from switching users.
	return e.user == user
}

func (b *Basic) remember(key [sha256.Size]byte, user string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.cache[key]; !ok && len(b.cache) >= b.size {
		// Evict expired entries first, else one chosen by the map's
		// random iteration order: O(1) and good enough for a cache whose
		// every entry is a legitimate user.
		now := b.now()
		evicted := false
		for k, e := range b.cache {
			if !now.Before(e.expires) {
				delete(b.cache, k)
				evicted = true
			}
		}
		if !evicted {
			for k := range b.cache {
				delete(b.cache, k)
				break
			}
		}
	}
	b.cache[key] = basicCacheEntry{user: user, expires: b.now().Add(b.ttl)}
}

// basicParseHeader reads RFC 7617 credentials from the Authorization
// header. No header, or another scheme, is ReasonMissing (a route may
// also accept bearer tokens); a malformed Basic one is ReasonInvalid.
// The errors never quote the credentials.
func basicParseHeader(h http.Header) (user, pass string, err error) {
	vals := h.Values("Authorization")
	invalid := func(why string) error {
		return &Error{Status: http.StatusUnauthorized, Reason: ReasonInvalid, Err: errors.New("basic auth: " + why)}
	}
	switch {
	case len(vals) == 0:
		return "", "", &Error{Status: http.StatusUnauthorized, Reason: ReasonMissing, Err: errors.New("basic auth: no Authorization header")}
	case len(vals) > 1:
		return "", "", invalid("several Authorization headers")
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", &Error{Status: http.StatusUnauthorized, Reason: ReasonMissing, Err: errors.New("basic auth: Authorization is not Basic")}
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", "", invalid("empty Basic credentials")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil || strings.ContainsAny(token, "\r\n") {
		return "", "", invalid("Basic credentials are not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	switch {
	case !ok:
		return "", "", invalid("Basic credentials lack the user:password colon")
	case user == "":
		return "", "", invalid("empty user in Basic credentials")
	case !utf8.ValidString(user):
		// The user is logged and sent upstream; a password is only
		// hashed, so a legacy client's Latin-1 one still works.
		return "", "", invalid("user in Basic credentials is not UTF-8")
	case strings.ContainsFunc(user+pass, func(r rune) bool { return r < ' ' || r == 0x7f }):
		// RFC 7617 section 2: no control characters.
		return "", "", invalid("control characters in Basic credentials")
	}
	return user, pass, nil
}
