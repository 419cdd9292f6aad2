// Package balance holds the load-balancing policies, one small type each.
// A policy sees only what it needs of the endpoints (how many, their
// addresses, their in-flight counts) and returns an index, so it never
// allocates and knows nothing of HTTP or health.
package balance

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Endpoints is the set a Picker chooses from: the available endpoints of
// one backend.
type Endpoints interface {
	Len() int
	// Addr is endpoint i's stable identity (host:port).
	Addr(i int) string
	// InFlight is endpoint i's current number of requests.
	InFlight(i int) int64
}

// Picker chooses an endpoint. key is the consistent-hash key ("" when the
// request has none). Pick returns -1 only when eps is empty. Pickers are
// safe for concurrent use.
type Picker interface {
	Pick(eps Endpoints, key string) int
}

var (
	_ Picker = (*RoundRobin)(nil)
	_ Picker = (*LeastRequest)(nil)
	_ Picker = (*Random)(nil)
	_ Picker = (*ConsistentHash)(nil)
)

// IntN returns a uniform integer in [0, n). rand.IntN is the default: it is
// safe for concurrent use and does not contend.
type IntN func(n int) int

// Seeded returns an IntN from a fixed seed, for reproducible tests. It is
// safe for concurrent use.
func Seeded(seed uint64) IntN {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return r.IntN(n)
	}
}

func orDefault(f IntN) IntN {
	if f == nil {
		return rand.IntN
	}
	return f
}

// RoundRobin takes endpoints in turn. The zero value is ready to use.
type RoundRobin struct{ next atomic.Uint64 }

// Pick implements Picker.
func (p *RoundRobin) Pick(eps Endpoints, _ string) int {
	n := eps.Len()
	if n == 0 {
		return -1
	}
	return int((p.next.Add(1) - 1) % uint64(n))
}

// LeastRequest picks two endpoints at random and takes the one with fewer
// requests in flight (power of two choices): nearly as good as scanning all
// endpoints, without the herd behaviour of always picking the minimum.
type LeastRequest struct {
	// Rand is the random source (default rand.IntN).
	Rand IntN
}

// Pick implements Picker.
func (p *LeastRequest) Pick(eps Endpoints, _ string) int {
	n := eps.Len()
	switch n {
	case 0:
		return -1
	case 1:
		return 0
	}
	rnd := orDefault(p.Rand)
	a := rnd(n)
	b := rnd(n - 1)
	if b >= a { // b is uniform over the others
		b++
	}
	if eps.InFlight(b) < eps.InFlight(a) {
		return b
	}
	return a
}

// Random picks uniformly.
type Random struct {
	// Rand is the random source (default rand.IntN).
	Rand IntN
}

// Pick implements Picker.
func (p *Random) Pick(eps Endpoints, _ string) int {
	n := eps.Len()
	if n == 0 {
		return -1
	}
	return orDefault(p.Rand)(n)
}

// ConsistentHash maps a key to an endpoint with rendezvous (highest random
// weight) hashing: when an endpoint leaves, only the keys it had move, and
// they spread evenly over the rest. A request without a key falls back to
// round robin. Cost is one hash per endpoint, fine for the tens of
// endpoints a backend has.
type ConsistentHash struct{ fallback RoundRobin }

// Pick implements Picker.
func (p *ConsistentHash) Pick(eps Endpoints, key string) int {
	n := eps.Len()
	if n == 0 || key == "" {
		return p.fallback.Pick(eps, key)
	}
	kh := fnv1a(fnvOffset, key)
	best, bestScore := 0, uint64(0)
	for i := range n {
		if s := mix(fnv1a(kh, eps.Addr(i))); i == 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is splitmix64's finaliser: FNV alone spreads similar addresses
// poorly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// SmoothWeighted is nginx's smooth weighted round robin: over any window
// of sum(weights) picks each index i is chosen exactly weights[i] times,
// interleaved rather than in bursts (5,1,1 gives a a b a c a a). Weight 0
// is never picked. It splits a route's traffic across backends.
type SmoothWeighted struct {
	mu      sync.Mutex
	weights []int
	current []int
	total   int
}

// NewSmoothWeighted returns a picker over weights, which must not be
// negative.
func NewSmoothWeighted(weights []int) *SmoothWeighted {
	s := &SmoothWeighted{weights: weights, current: make([]int, len(weights))}
	for _, w := range weights {
		s.total += w
	}
	return s
}

// Next returns the next index, or -1 when every weight is 0. allowed, if
// not nil, excludes indexes for this pick (a group with no healthy
// endpoint) without disturbing the sequence of the others more than
// necessary.
func (s *SmoothWeighted) Next(allowed func(i int) bool) int {
	if len(s.weights) == 1 { // the common case: one backend, no lock
		if s.total > 0 && (allowed == nil || allowed(0)) {
			return 0
		}
		return -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	best, total := -1, 0
	for i, w := range s.weights {
		if w == 0 || allowed != nil && !allowed(i) {
			continue
		}
		s.current[i] += w
		total += w
		if best < 0 || s.current[i] > s.current[best] {
			best = i
		}
	}
	if best >= 0 {
		s.current[best] -= total
	}
	return best
}
