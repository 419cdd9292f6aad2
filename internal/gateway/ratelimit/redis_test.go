package ratelimit

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/redistest"
)

func newRedis(t testing.TB, c config.Redis) *Redis {
	t.Helper()
	if c.Timeout == 0 {
		c.Timeout = time.Second // generous: a loaded test machine is slow
	}
	r, err := NewRedis(&c, nil)
	if err != nil {
		t.Fatalf("NewRedis() error = %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// waitUp polls until r answers, for at most 10 s.
func waitUp(t testing.TB, r *Redis) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err = r.Allow(context.Background(), "probe", Limit{Requests: 1_000_000, Per: time.Second, Burst: 1_000_000}); err == nil {
			return
		}
	}
	t.Fatalf("Redis did not answer within 10s: %v", err)
}

func TestNewRedisConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-password")
	tests := []struct {
		name string
		c    *config.Redis
		want []string // substrings of the error
	}{
		{"no config", nil, []string{"no config"}},
		{"no port", &config.Redis{Address: "redis"}, []string{"redis.address", `"redis"`}},
		{"empty address", &config.Redis{}, []string{"redis.address"}},
		{"missing password file", &config.Redis{Address: "redis:6379", PasswordFile: missing}, []string{"redis.passwordFile", missing}},
		{"empty password file", &config.Redis{Address: "redis:6379", PasswordFile: empty}, []string{"redis.passwordFile", empty, "empty"}},
		{"negative timeout", &config.Redis{Address: "redis:6379", Timeout: -time.Second}, []string{"redis.timeout"}},
		{"every problem at once", &config.Redis{Address: "x", PasswordFile: missing, DB: -1}, []string{"redis.address", missing, "redis.db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRedis(tt.c, nil)
			if err == nil {
				r.Close()
				t.Fatal("NewRedis() error = nil, want one")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewRedis() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestRedisGCRA(t *testing.T) {
	s := redistest.Start(t)
	r := newRedis(t, config.Redis{Address: s.Addr, KeyPrefix: "test:"})
	waitUp(t, r)
	lim := Limit{Requests: 5, Per: time.Hour, Burst: 5}
	ctx := context.Background()
	for i := range 5 {
		d, err := r.Allow(ctx, "k", lim)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed || d.Remaining != 4-i || d.RetryAfter != 0 {
			t.Fatalf("request %d: Allow() = %+v, want allowed with Remaining %d", i, d, 4-i)
		}
		// Reset is (i+1)×T less the time since the first request (well
		// under a minute on any machine).
		if want := time.Duration(i+1) * 12 * time.Minute; d.Reset <= want-time.Minute || d.Reset > want {
			t.Errorf("request %d: Reset = %s, want just under %s", i, d.Reset, want)
		}
	}
	d, err := r.Allow(ctx, "k", lim)
	if err != nil {
		t.Fatal(err)
	}
	// Refused: RetryAfter is T less the time since the burst (well under
	// a minute on any machine), Reset the hour less that time.
	if d.Allowed || d.Remaining != 0 ||
		d.RetryAfter <= 11*time.Minute || d.RetryAfter > 12*time.Minute ||
		d.Reset <= 59*time.Minute || d.Reset > time.Hour {
		t.Errorf("6th request: Allow() = %+v, want refused, RetryAfter just under 12m, Reset just under 1h", d)
	}
	// The key carries the prefix and lives until the bucket is full.
	pttl, err := s.Do("PTTL", "test:k")
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := strconv.Atoi(pttl); ms <= int((59*time.Minute).Milliseconds()) || ms > int(time.Hour.Milliseconds()) {
		t.Errorf("PTTL test:k = %s ms, want just under an hour", pttl)
	}
	// Another key is independent.
	if d, err := r.Allow(ctx, "other", lim); err != nil || !d.Allowed {
		t.Errorf("other key: Allow() = %+v, %v, want allowed", d, err)
	}
}

func TestRedisIdleKeyExpires(t *testing.T) {
	s := redistest.Start(t)
	r := newRedis(t, config.Redis{Address: s.Addr})
	waitUp(t, r)
	if _, err := r.Allow(context.Background(), "short", Limit{Requests: 50, Per: time.Second, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	// TTL = 20ms (one emission interval): the key is gone soon after.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, err := s.Do("EXISTS", config.DefaultRedisKeyPrefix+"short")
		if err != nil {
			t.Fatal(err)
		}
		if v == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("key still there 10s after its bucket was full again")
		}
	}
}

func TestRedisPassword(t *testing.T) {
	s := redistest.Start(t, "--requirepass", "s3cret")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	waitUp(t, newRedis(t, config.Redis{Address: s.Addr, PasswordFile: good}))
	r := newRedis(t, config.Redis{Address: s.Addr, PasswordFile: bad, Timeout: 200 * time.Millisecond})
	for range 3 {
		if _, err := r.Allow(context.Background(), "k", Limit{Requests: 1, Per: time.Second, Burst: 1}); err == nil {
			t.Fatal("Allow() with a wrong password: error = nil")
		}
		time.Sleep(redialBackoff)
	}
}

// TestRedisAccuracy is the fleet proof: three gateway replicas (three
// clients with their own connections) hammer one key at three times its
// limit; together they admit Burst + Requests/Per × duration within 5 %.
// FLOTILLA_RATELIMIT_LONG=1 runs it for 20 s instead of 3 s.
func TestRedisAccuracy(t *testing.T) {
	dur := 3 * time.Second
	if os.Getenv("FLOTILLA_RATELIMIT_LONG") == "1" {
		dur = 20 * time.Second
	}
	s := redistest.Start(t)
	const replicas, workers = 3, 10
	lim := Limit{Requests: 100, Per: time.Second, Burst: 100}
	// Each worker sends at a fixed interval; all of them together offer 3× the limit.
	interval := time.Duration(float64(replicas*workers) / (3 * float64(lim.Requests)) * float64(lim.Per))
	rs := make([]*Redis, replicas)
	for i := range rs {
		rs[i] = newRedis(t, config.Redis{Address: s.Addr})
		waitUp(t, rs[i])
	}
	var admitted, refused, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(dur)
	for _, r := range rs {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := start.Add(time.Duration(w) * interval / workers)
				for next.Before(end) {
					time.Sleep(time.Until(next))
					d, err := r.Allow(context.Background(), "route/api/route", lim)
					switch {
					case err != nil:
						failed.Add(1)
					case d.Allowed:
						admitted.Add(1)
					default:
						refused.Add(1)
					}
					next = next.Add(interval)
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	// The last request was sent before end; decisions are taken on the
	// server clock between start and now.
	want := float64(lim.Burst) + float64(lim.Requests)*elapsed.Seconds()/lim.Per.Seconds()
	got := float64(admitted.Load())
	errPct := 100 * (got - want) / want
	t.Logf("%d replicas × %d workers, %s at %.0f/s offered: admitted %.0f, refused %d, failed %d; expected %.1f (burst %d + %d/s × %.3fs): error %+.2f%%",
		replicas, workers, elapsed.Round(time.Millisecond), float64(replicas*workers)/interval.Seconds(),
		got, refused.Load(), failed.Load(), want, lim.Burst, lim.Requests, elapsed.Seconds(), errPct)
	if failed.Load() > 0 {
		t.Errorf("%d decisions failed", failed.Load())
	}
	if refused.Load() == 0 {
		t.Error("nothing refused: the load did not exceed the limit")
	}
	if math.Abs(errPct) > 5 {
		t.Errorf("admitted %.0f, want %.1f within 5%% (error %+.2f%%)", got, want, errPct)
	}
}

// TestRedisKilledAndRestarted: with Redis gone, Allow fails (no hang: each
// call is bounded by Timeout); when it is back, Allow works again with no
// action from the caller.
func TestRedisKilledAndRestarted(t *testing.T) {
	s := redistest.Start(t)
	r := newRedis(t, config.Redis{Address: s.Addr, Timeout: 200 * time.Millisecond})
	waitUp(t, r)
	s.Kill()
	lim := Limit{Requests: 100, Per: time.Second, Burst: 100}
	for i := range 3 {
		start := time.Now()
		_, err := r.Allow(context.Background(), "k", lim)
		if err == nil {
			t.Fatalf("call %d with Redis killed: Allow() error = nil", i)
		}
		t.Logf("call %d with Redis killed: %v after %s", i, err, time.Since(start).Round(time.Microsecond))
	}
	s.Restart()
	waitUp(t, r)
}

// TestRedisDownAtStart: NewRedis does not fail when Redis is down; Allow
// works once it is up.
func TestRedisDownAtStart(t *testing.T) {
	s := redistest.Start(t)
	s.Kill()
	r := newRedis(t, config.Redis{Address: s.Addr, Timeout: 200 * time.Millisecond})
	if _, err := r.Allow(context.Background(), "k", Limit{Requests: 1, Per: time.Second, Burst: 1}); err == nil {
		t.Fatal("Allow() with Redis down: error = nil")
	}
	s.Restart()
	waitUp(t, r)
}

// TestRedisPaused: a Redis that accepts but never answers gives an error
// once the Timeout has passed, and recovery when it answers again.
func TestRedisPaused(t *testing.T) {
	s := redistest.Start(t)
	timeout := 200 * time.Millisecond
	r := newRedis(t, config.Redis{Address: s.Addr, Timeout: timeout})
	waitUp(t, r)
	s.Pause()
	resumed := false
	defer func() {
		if !resumed {
			s.Resume()
		}
	}()
	start := time.Now()
	_, err := r.Allow(context.Background(), "k", Limit{Requests: 1, Per: time.Second, Burst: 1})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Allow() with Redis paused: error = nil")
	}
	if !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Allow() with Redis paused: error = %q, want a timeout", err)
	}
	t.Logf("paused: %v after %s (timeout %s)", err, took.Round(time.Microsecond), timeout)
	s.Resume()
	resumed = true
	waitUp(t, r)
}

// TestRedisNoScript: after SCRIPT FLUSH (or a restart) EVALSHA answers
// NOSCRIPT; the step is sent again with EVAL and the count goes on.
func TestRedisNoScript(t *testing.T) {
	s := redistest.Start(t)
	r := newRedis(t, config.Redis{Address: s.Addr})
	waitUp(t, r)
	ctx := context.Background()
	lim := Limit{Requests: 10, Per: time.Hour, Burst: 10}
	for i := range 3 {
		if d, err := r.Allow(ctx, "k", lim); err != nil || d.Remaining != 9-i {
			t.Fatalf("Allow() = %+v, %v, want Remaining %d", d, err, 9-i)
		}
	}
	evalsBefore := commandCalls(t, s.Addr, "eval")
	if _, err := s.Do("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		d, err := r.Allow(ctx, "k", lim)
		if err != nil {
			t.Fatalf("Allow() after SCRIPT FLUSH: error = %v", err)
		}
		if d.Remaining != 9-i {
			t.Fatalf("Allow() after SCRIPT FLUSH = %+v, want Remaining %d", d, 9-i)
		}
	}
	if got := commandCalls(t, s.Addr, "eval") - evalsBefore; got != 1 {
		t.Errorf("EVAL sent %d times after the flush, want 1 (then EVALSHA again)", got)
	}
	if commandCalls(t, s.Addr, "evalsha") < 6 {
		t.Error("EVALSHA not used for every step")
	}
}

// commandCalls reads calls= of cmdstat_<cmd> from INFO commandstats.
func commandCalls(t *testing.T, addr, cmd string) int {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Do(context.Background(), c.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// BenchmarkRedis runs decisions through one client: one at a time (each
// waits for its round trip), and from 64 goroutines per CPU, which
// auto-pipelining batches into shared round trips. Compare decisions/s,
// with -cpu 1,2.
func BenchmarkRedis(b *testing.B) {
	s := redistest.Start(b)
	r := newRedis(b, config.Redis{Address: s.Addr})
	waitUp(b, r)
	lim := Limit{Requests: 1_000_000, Per: time.Second, Burst: 1_000_000}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("route/limit/ip/10.0.%d.%d", i/256, i%256)
	}
	for _, par := range []int{0, 64} {
		name := "sequential"
		if par > 0 {
			name = fmt.Sprintf("goroutines=%dxCPU", par)
		}
		b.Run(name, func(b *testing.B) {
			var failed atomic.Int64
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			if par == 0 {
				for i := 0; b.Loop(); i++ {
					if _, err := r.Allow(context.Background(), keys[i%len(keys)], lim); err != nil {
						failed.Add(1)
					}
				}
			} else {
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if _, err := r.Allow(context.Background(), keys[i%len(keys)], lim); err != nil {
							failed.Add(1)
						}
						i++
					}
				})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
			// The gateway's own cost: this process's CPU time (user +
			// system) per decision, Redis's excluded.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "client-cpu-ns/op")
			if n := failed.Load(); n > 0 {
				b.Errorf("%d of %d decisions failed", n, b.N)
			}
		})
	}
}

// cpuTime is this process's CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestRedisClosed(t *testing.T) {
	s := redistest.Start(t)
	r := newRedis(t, config.Redis{Address: s.Addr})
	waitUp(t, r)
	r.Close()
	if _, err := r.Allow(context.Background(), "k", Limit{Requests: 1, Per: time.Second, Burst: 1}); err == nil {
		t.Error("Allow() after Close: error = nil")
	}
	r.Close() // twice is harmless (the test's cleanup closes it again too)
}
