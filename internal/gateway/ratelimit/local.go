// Package ratelimit holds the rate-limit engines of the gateway: Local, an
// in-memory store for limits each replica counts alone, and Redis, one
// shared count for the fleet, both running the generic cell rate algorithm
// (GCRA); and SetHeaders, which writes the RateLimit-Policy, RateLimit and
// Retry-After fields.
//
// GCRA keeps one number per key, the theoretical arrival time (TAT): when
// the key's bucket will be full again if nothing more arrives. A request
// at now is admitted when, after adding one emission interval
// T = Per/Requests, the TAT is no further than Burst×T ahead of now. A
// refused request changes nothing. This is a token bucket of Burst tokens
// refilled at Requests/Per, stored in 8 bytes, with no timer per key.
package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Limit is one rate limit: Requests per Per, evenly spaced, with up to
// Burst at once.
type Limit struct {
	Requests int
	Per      time.Duration
	Burst    int
}

// LimitOf returns c's limit (after the config's defaults are applied).
func LimitOf(c *config.RateLimit) Limit {
	return Limit{Requests: c.Requests, Per: c.Per, Burst: c.Burst}
}

// Decision is the answer for one request.
type Decision struct {
	// Allowed says whether the request is admitted (and counted).
	Allowed bool
	// Remaining is how many more requests would be admitted right now,
	// before a refusal.
	Remaining int
	// RetryAfter, when refused, is the time until one more request would
	// be admitted; 0 when allowed.
	RetryAfter time.Duration
	// Reset is the time until the bucket is full again (Remaining back to
	// Burst) if nothing more arrives.
	Reset time.Duration
}

// gcra holds a limit in the integer nanoseconds the arithmetic uses.
type gcra struct {
	t   int64 // emission interval: Per/Requests
	cap int64 // Burst×t: how far ahead of now the TAT may run
}

// maxCap bounds Burst×T so that now+cap cannot overflow int64 nanoseconds
// (about 146 years of headroom is left).
const maxCap = int64(1) << 62

func (lim Limit) gcra() gcra {
	req, burst := int64(lim.Requests), int64(lim.Burst)
	if req < 1 {
		req = 1
	}
	if burst < 1 {
		burst = 1
	}
	t := int64(lim.Per) / req
	if t < 1 {
		t = 1
	}
	c := maxCap
	if burst <= maxCap/t {
		c = burst * t
	}
	return gcra{t: t, cap: c}
}

// step runs one GCRA decision for a key whose stored TAT is tat (0 or
// anything at or before now: a full bucket) and returns the decision and
// the TAT to store (unchanged when refused).
func (g gcra) step(tat, now int64) (Decision, int64) {
	if tat < now {
		tat = now
	}
	next := tat + g.t
	if ahead := next - now; ahead > g.cap {
		reset := tat - now
		return Decision{RetryAfter: time.Duration(ahead - g.cap), Reset: time.Duration(reset)}, tat
	}
	ahead := next - now
	return Decision{
		Allowed:   true,
		Remaining: int((g.cap - ahead) / g.t),
		Reset:     time.Duration(ahead),
	}, next
}

// Local is an in-memory GCRA store, safe for concurrent use, shared by
// every route and limit (the caller's key names the limit) and across
// config reloads. It holds at most maxKeys keys: when a shard is full, a
// key whose bucket is full again (TAT at or before now) is dropped, which
// changes no decision; only when a sample of the shard holds none is the
// sampled key nearest to full dropped, and counted in Evictions. A client
// inventing keys therefore cannot grow memory beyond maxKeys entries of at
// most maxKeyLen bytes each, and mostly displaces other idle keys rather
// than hot ones (a hot key's TAT runs furthest ahead).
//
// There is no goroutine: expired keys are removed lazily when their shard
// is full.
type Local struct {
	seed      maphash.Seed
	perShard  int
	shards    [shards]shard
	evictions atomic.Uint64
}

const (
	shards = 64
	// sample is how many entries of a full shard are looked at to find
	// one to drop.
	sample = 8
	// maxKeyLen caps the bytes a key holds in memory: longer keys (a
	// client's invented header value) are replaced by their SHA-256.
	maxKeyLen = 128
	// sweepEvery bounds how often a full shard is swept of every expired
	// key (in the clock of the now values passed to Allow).
	sweepEvery = int64(time.Second)
)

type shard struct {
	mu        sync.Mutex
	tat       map[string]int64 // key → TAT in Unix nanoseconds
	lastSweep int64
	_         [40]byte // keep shards on separate cache lines
}

// DefaultMaxKeys is a sensible NewLocal bound: about 100 bytes a key, so
// ~10 MB at most.
const DefaultMaxKeys = 100_000

// NewLocal returns a store that keeps at most maxKeys keys (at least one
// per shard: 64; DefaultMaxKeys when maxKeys <= 0).
func NewLocal(maxKeys int) *Local {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	per := (maxKeys + shards - 1) / shards
	l := &Local{seed: maphash.MakeSeed(), perShard: per}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]int64)
	}
	return l
}

// Allow decides one request for key under lim at now (the caller's clock:
// time.Now() in the gateway, a fake one in tests). An admitted request is
// counted; a refused one is not.
func (l *Local) Allow(key string, lim Limit, now time.Time) Decision {
	key = boundKey(key)
	g := lim.gcra()
	n := now.UnixNano()
	s := &l.shards[maphash.String(l.seed, key)%shards]
	s.mu.Lock()
	tat, ok := s.tat[key]
	d, next := g.step(tat, n)
	if d.Allowed {
		if !ok && len(s.tat) >= l.perShard {
			l.makeRoom(s, n)
		}
		s.tat[key] = next
	}
	s.mu.Unlock()
	return d
}

// makeRoom drops one entry of the full shard s (locked).
func (l *Local) makeRoom(s *shard, now int64) {
	if now-s.lastSweep >= sweepEvery {
		s.lastSweep = now
		for k, t := range s.tat {
			if t <= now {
				delete(s.tat, k)
			}
		}
		if len(s.tat) < l.perShard {
			return
		}
	}
	// Map iteration starts at a random place: the first entries are a
	// random sample.
	victim, oldest, i := "", int64(math.MaxInt64), 0
	for k, t := range s.tat {
		if t <= now {
			delete(s.tat, k)
			return
		}
		if t < oldest {
			victim, oldest = k, t
		}
		if i++; i == sample {
			break
		}
	}
	delete(s.tat, victim)
	l.evictions.Add(1)
}

// Evictions counts keys dropped before their bucket was full again (their
// next request starts a fresh bucket): a sign maxKeys is too small or a
// client invents keys.
func (l *Local) Evictions() uint64 { return l.evictions.Load() }

// Len is the number of keys held now.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// boundKey replaces a key longer than maxKeyLen by a fixed-size digest, so
// a client's long header value costs no more memory (here or in Redis)
// than a short one.
func boundKey(key string) string {
	if len(key) <= maxKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}
