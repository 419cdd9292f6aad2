package ratelimit

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// TestMain fails the package if a test leaves a goroutine behind (Redis
// clients and their connection attempts must end with Close).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type step struct {
	at   time.Duration // after t0
	n    int           // repeat count (default 1); want applies to the last
	want Decision
}

func TestLocalGCRA(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		lim   Limit
		steps []step
	}{
		{
			name: "burst then refused",
			lim:  Limit{Requests: 5, Per: time.Second, Burst: 5},
			steps: []step{
				{at: 0, want: Decision{Allowed: true, Remaining: 4, Reset: 200 * ms}},
				{at: 0, n: 3, want: Decision{Allowed: true, Remaining: 1, Reset: 800 * ms}},
				{at: 0, want: Decision{Allowed: true, Remaining: 0, Reset: time.Second}},
				{at: 0, want: Decision{Allowed: false, Remaining: 0, RetryAfter: 200 * ms, Reset: time.Second}},
				{at: 50 * ms, want: Decision{Allowed: false, Remaining: 0, RetryAfter: 150 * ms, Reset: 950 * ms}},
			},
		},
		{
			name: "steady spacing after the burst",
			lim:  Limit{Requests: 5, Per: time.Second, Burst: 5},
			steps: []step{
				{at: 0, n: 5, want: Decision{Allowed: true, Remaining: 0, Reset: time.Second}},
				{at: 200 * ms, want: Decision{Allowed: true, Remaining: 0, Reset: time.Second}},
				{at: 200 * ms, want: Decision{Allowed: false, RetryAfter: 200 * ms, Reset: time.Second}},
				{at: 399 * ms, want: Decision{Allowed: false, RetryAfter: ms, Reset: 801 * ms}},
				{at: 400 * ms, want: Decision{Allowed: true, Remaining: 0, Reset: time.Second}},
			},
		},
		{
			name: "refill after idle is partial then full",
			lim:  Limit{Requests: 5, Per: time.Second, Burst: 5},
			steps: []step{
				{at: 0, n: 5, want: Decision{Allowed: true, Remaining: 0, Reset: time.Second}},
				{at: 500 * ms, want: Decision{Allowed: true, Remaining: 1, Reset: 700 * ms}},
				{at: 5 * time.Second, want: Decision{Allowed: true, Remaining: 4, Reset: 200 * ms}},
			},
		},
		{
			name: "burst of one spaces every request",
			lim:  Limit{Requests: 10, Per: time.Second, Burst: 1},
			steps: []step{
				{at: 0, want: Decision{Allowed: true, Remaining: 0, Reset: 100 * ms}},
				{at: 0, want: Decision{Allowed: false, RetryAfter: 100 * ms, Reset: 100 * ms}},
				{at: 99 * ms, want: Decision{Allowed: false, RetryAfter: ms, Reset: ms}},
				{at: 100 * ms, want: Decision{Allowed: true, Remaining: 0, Reset: 100 * ms}},
			},
		},
		{
			name: "burst larger than requests",
			lim:  Limit{Requests: 2, Per: time.Second, Burst: 6},
			steps: []step{
				{at: 0, n: 6, want: Decision{Allowed: true, Remaining: 0, Reset: 3 * time.Second}},
				{at: 0, want: Decision{Allowed: false, RetryAfter: 500 * ms, Reset: 3 * time.Second}},
			},
		},
		{
			name: "per minute",
			lim:  Limit{Requests: 60, Per: time.Minute, Burst: 2},
			steps: []step{
				{at: 0, n: 2, want: Decision{Allowed: true, Remaining: 0, Reset: 2 * time.Second}},
				{at: 0, want: Decision{Allowed: false, RetryAfter: time.Second, Reset: 2 * time.Second}},
				{at: time.Second, want: Decision{Allowed: true, Remaining: 0, Reset: 2 * time.Second}},
			},
		},
		{
			name: "per hour",
			lim:  Limit{Requests: 2, Per: time.Hour, Burst: 2},
			steps: []step{
				{at: 0, n: 2, want: Decision{Allowed: true, Remaining: 0, Reset: time.Hour}},
				{at: 0, want: Decision{Allowed: false, RetryAfter: 30 * time.Minute, Reset: time.Hour}},
				{at: 29 * time.Minute, want: Decision{Allowed: false, RetryAfter: time.Minute, Reset: 31 * time.Minute}},
				{at: 30 * time.Minute, want: Decision{Allowed: true, Remaining: 0, Reset: time.Hour}},
			},
		},
		{
			name: "rate that does not divide the period",
			lim:  Limit{Requests: 3, Per: time.Second, Burst: 3},
			steps: []step{
				{at: 0, n: 3, want: Decision{Allowed: true, Remaining: 0, Reset: 999999999}},
				{at: 0, want: Decision{Allowed: false, RetryAfter: 333333333, Reset: 999999999}},
			},
		},
		{
			name: "huge burst does not overflow",
			lim:  Limit{Requests: 1, Per: 24 * time.Hour, Burst: 1_000_000_000},
			steps: []step{
				{at: 0, want: Decision{Allowed: true, Remaining: int((maxCap - int64(24*time.Hour)) / int64(24*time.Hour)), Reset: 24 * time.Hour}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLocal(100)
			for i, s := range tt.steps {
				var got Decision
				for range max(s.n, 1) {
					got = l.Allow("k", tt.lim, t0.Add(s.at))
				}
				if got != s.want {
					t.Errorf("step %d at %s: Allow() = %+v, want %+v", i, s.at, got, s.want)
				}
			}
		})
	}
}

// TestLocalAdmitsRateOverTime checks the long-run count: over 10 s of
// requests every millisecond from 0 to 10 s inclusive, a 50/s limit with a burst of 20 admits
// exactly 20 + 50×10.
func TestLocalAdmitsRateOverTime(t *testing.T) {
	l := NewLocal(10)
	lim := Limit{Requests: 50, Per: time.Second, Burst: 20}
	n := 0
	for at := time.Duration(0); at <= 10*time.Second; at += time.Millisecond {
		if l.Allow("k", lim, t0.Add(at)).Allowed {
			n++
		}
	}
	if want := 20 + 50*10; n != want {
		t.Errorf("admitted %d, want %d", n, want)
	}
}

func TestLocalKeysAreIndependent(t *testing.T) {
	l := NewLocal(100)
	lim := Limit{Requests: 1, Per: time.Second, Burst: 1}
	if !l.Allow("a", lim, t0).Allowed || !l.Allow("b", lim, t0).Allowed {
		t.Fatal("first request of a key refused")
	}
	if l.Allow("a", lim, t0).Allowed {
		t.Error("second request of a admitted")
	}
}

// TestLocalFloodOfKeys: a client inventing keys cannot grow the store past
// maxKeys, and a hot key that is at its limit stays limited.
func TestLocalFloodOfKeys(t *testing.T) {
	const maxKeys = 640
	l := NewLocal(maxKeys)
	hot := Limit{Requests: 10, Per: time.Second, Burst: 10}
	for range 10 {
		l.Allow("hot", hot, t0)
	}
	flood := Limit{Requests: 100, Per: time.Second, Burst: 100}
	for i := range 100_000 {
		if !l.Allow(fmt.Sprintf("flood/%d", i), flood, t0).Allowed {
			t.Fatalf("fresh key %d refused", i)
		}
		if i%1000 == 0 && l.Allow("hot", hot, t0).Allowed {
			t.Fatalf("hot key admitted after %d invented keys: its count was evicted", i)
		}
	}
	if n := l.Len(); n > maxKeys {
		t.Errorf("Len() = %d after the flood, want at most %d", n, maxKeys)
	}
	if l.Evictions() == 0 {
		t.Error("Evictions() = 0 after a flood of live keys, want them counted")
	}
	if l.Allow("hot", hot, t0).Allowed {
		t.Error("hot key admitted after the flood")
	}
}

// TestLocalDropsExpiredBeforeEvicting: keys whose bucket is full again are
// dropped to make room, which is not an eviction.
func TestLocalDropsExpiredBeforeEvicting(t *testing.T) {
	const maxKeys = 640
	l := NewLocal(maxKeys)
	lim := Limit{Requests: 1, Per: time.Second, Burst: 1}
	for i := range 4 * maxKeys { // every shard full of live keys
		l.Allow(fmt.Sprintf("old/%d", i), lim, t0)
	}
	before := l.Evictions()
	later := t0.Add(2 * time.Second) // every old key is full again
	// Few enough new keys that no shard gets more than it holds.
	for i := range maxKeys / 8 {
		if !l.Allow(fmt.Sprintf("new/%d", i), lim, later).Allowed {
			t.Fatalf("new key %d refused", i)
		}
	}
	if got := l.Evictions(); got != before {
		t.Errorf("Evictions() = %d while expired keys were there to drop, want %d", got, before)
	}
	if n := l.Len(); n > maxKeys {
		t.Errorf("Len() = %d, want at most %d", n, maxKeys)
	}
}

func TestLocalLongKeysAreBounded(t *testing.T) {
	l := NewLocal(100)
	lim := Limit{Requests: 1, Per: time.Second, Burst: 1}
	a := strings.Repeat("x", 1<<20) + "a"
	b := strings.Repeat("x", 1<<20) + "b"
	if !l.Allow(a, lim, t0).Allowed || !l.Allow(b, lim, t0).Allowed {
		t.Fatal("distinct long keys share a count")
	}
	if l.Allow(a, lim, t0).Allowed {
		t.Error("long key's second request admitted")
	}
	if k := boundKey(a); len(k) > maxKeyLen {
		t.Errorf("boundKey(1 MiB) is %d bytes, want at most %d", len(k), maxKeyLen)
	}
}

func TestLocalHitPathDoesNotAllocate(t *testing.T) {
	l := NewLocal(100)
	lim := Limit{Requests: 1000, Per: time.Second, Burst: 1000}
	now := t0
	l.Allow("route/limit/ip/10.0.0.1", lim, now)
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		l.Allow("route/limit/ip/10.0.0.1", lim, now)
	})
	if allocs != 0 {
		t.Errorf("Allow on a known key allocates %v times, want 0", allocs)
	}
}

func TestLimitOf(t *testing.T) {
	c := &config.RateLimit{Name: "x", Requests: 7, Per: time.Minute, Burst: 3}
	if got, want := LimitOf(c), (Limit{Requests: 7, Per: time.Minute, Burst: 3}); got != want {
		t.Errorf("LimitOf() = %+v, want %+v", got, want)
	}
}

func BenchmarkLocal(b *testing.B) {
	l := NewLocal(DefaultMaxKeys)
	lim := Limit{Requests: 1_000_000, Per: time.Second, Burst: 1000}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("route/limit/ip/10.0.%d.%d", i/256, i%256)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(keys[i%len(keys)], lim, time.Now())
			i++
		}
	})
}

// TestLocalConcurrentSameKey: decisions on one key are atomic: however
// many goroutines race at one instant, exactly Burst are admitted.
func TestLocalConcurrentSameKey(t *testing.T) {
	l := NewLocal(100)
	lim := Limit{Requests: 1, Per: time.Hour, Burst: 500}
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if l.Allow("k", lim, t0).Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := admitted.Load(); got != 500 {
		t.Errorf("admitted %d of 5000 concurrent requests, want 500", got)
	}
}
