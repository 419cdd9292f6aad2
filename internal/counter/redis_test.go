package counter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/flotilla-dev/flotilla/internal/redistest"
)

// opTimeout is the bound under test: with Redis gone or hung, GET / must
// answer 503 well within a second.
const opTimeout = 300 * time.Millisecond

func startCounter(t *testing.T, addr string, timeout time.Duration) (*httptest.Server, *Redis) {
	t.Helper()
	store := NewRedis(RedisOptions{Addr: addr, Timeout: timeout, Registerer: prometheus.NewRegistry()})
	svc := New(Options{Instance: "c1", Version: "v1", Store: store, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); store.Close() })
	return srv, store
}

func fetch(t *testing.T, c *http.Client, url string) (int, string, time.Duration) {
	t.Helper()
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

func countOf(t *testing.T, body string) int64 {
	t.Helper()
	_, v, ok := strings.Cut(strings.TrimSpace(body), "value=")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		t.Fatalf("body %q is not the counter line", body)
	}
	return n
}

func TestRedisIncrementsExactUnderConcurrency(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	rs := redistest.Start(t)
	// This test is about exact counts, not timeouts: a busy CI machine
	// must not turn slow answers into 503s.
	srv, store := startCounter(t, rs.Addr, 10*time.Second)
	const clients, each = 50, 40
	seen := make([]bool, clients*each+1)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for range each {
				resp, err := c.Get(srv.URL + "/")
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				_, v, _ := strings.Cut(strings.TrimSpace(string(b)), "value=")
				n, err := strconv.Atoi(v)
				if resp.StatusCode != 200 || err != nil || n < 1 || n > clients*each {
					errs <- fmt.Errorf("GET / = %d %q", resp.StatusCode, b)
					return
				}
				mu.Lock()
				dup := seen[n]
				seen[n] = true
				mu.Unlock()
				if dup {
					errs <- fmt.Errorf("value %d answered twice", n)
					return
				}
			}
			c.CloseIdleConnections()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, _ := rs.Do("GET", "count"); got != strconv.Itoa(clients*each) {
		t.Errorf("Redis count = %s, want %d", got, clients*each)
	}
	srv.Close()
	store.Close()
	goleak.VerifyNone(t, ignore)
}

func TestRedisDownGives503AndRecovers(t *testing.T) {
	// appendfsync always: every acknowledged INCR is on disk before the
	// reply, so a SIGKILL must not lose any of them.
	rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	srv, _ := startCounter(t, rs.Addr, opTimeout)
	c := &http.Client{Timeout: 5 * time.Second}

	var acked int64
	for range 5 {
		code, body, _ := fetch(t, c, srv.URL+"/")
		if code != 200 {
			t.Fatalf("GET / = %d %q, want 200", code, body)
		}
		acked = countOf(t, body)
	}

	rs.Kill()
	for i := range 5 {
		code, body, took := fetch(t, c, srv.URL+"/")
		if code != http.StatusServiceUnavailable {
			t.Fatalf("Redis down, GET / #%d = %d %q, want 503", i, code, body)
		}
		if want := "Redis at " + rs.Addr + " is unavailable"; !strings.HasPrefix(body, want) || strings.Count(body, "\n") != 1 {
			t.Errorf("503 body = %q, want one line starting %q", body, want)
		}
		if took > 3*time.Second { // generous: CI machines are shared
			t.Errorf("503 took %s, want well under 3s (timeout %s)", took, opTimeout)
		}
	}
	if code, body, _ := fetch(t, c, srv.URL+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "Redis at "+rs.Addr) {
		t.Errorf("Redis down, /readyz = %d %q, want 503 naming Redis", code, body)
	}
	if code, _, _ := fetch(t, c, srv.URL+"/healthz"); code != 200 {
		t.Errorf("Redis down, /healthz = %d, want 200: the process itself is fine", code)
	}

	rs.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := fetch(t, c, srv.URL+"/")
		if code == 200 {
			if n := countOf(t, body); n <= acked {
				t.Fatalf("after restart count = %d, want > %d (acknowledged before the crash)", n, acked)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis back, GET / still %d %q after 10s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, _ := fetch(t, c, srv.URL+"/readyz"); code != 200 {
		t.Errorf("Redis back, /readyz = %d, want 200", code)
	}
}

func TestRedisHungGives503WithinBound(t *testing.T) {
	rs := redistest.Start(t)
	srv, _ := startCounter(t, rs.Addr, opTimeout)
	c := &http.Client{Timeout: 5 * time.Second}
	if code, body, _ := fetch(t, c, srv.URL+"/"); code != 200 {
		t.Fatalf("GET / = %d %q", code, body)
	}
	rs.Pause()
	defer rs.Resume()
	code, body, took := fetch(t, c, srv.URL+"/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "timed out") {
		t.Errorf("Redis hung, GET / = %d %q, want 503 timed out", code, body)
	}
	if took > 3*time.Second {
		t.Errorf("Redis hung, GET / took %s, want well under 3s (timeout %s)", took, opTimeout)
	}
	rs.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for code != 200 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		code, body, _ = fetch(t, c, srv.URL+"/")
	}
	if code != 200 {
		t.Errorf("Redis resumed, GET / = %d %q after 10s", code, body)
	}
}

func TestRedisAbsentAtStart(t *testing.T) {
	// Nothing listens here: the service must start, answer 503 and not panic.
	srv, _ := startCounter(t, "127.0.0.1:1", opTimeout)
	code, body, took := fetch(t, &http.Client{Timeout: 5 * time.Second}, srv.URL+"/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "Redis at 127.0.0.1:1 is unavailable: connection refused") {
		t.Errorf("GET / = %d %q, want 503 connection refused", code, body)
	}
	if took > 3*time.Second {
		t.Errorf("Redis absent, GET / took %s, want well under 3s", took)
	}
}

func TestRedisPing(t *testing.T) {
	rs := redistest.Start(t)
	store := NewRedis(RedisOptions{Addr: rs.Addr})
	defer store.Close()
	if err := store.Ping(context.Background()); err != nil {
		t.Fatalf("Ping() = %v", err)
	}
}

func TestRedisPassword(t *testing.T) {
	rs := redistest.Start(t, "--requirepass", "s3cret")
	good := NewRedis(RedisOptions{Addr: rs.Addr, Password: "s3cret"})
	defer good.Close()
	if n, err := good.Incr(context.Background()); err != nil || n != 1 {
		t.Errorf("Incr() with the password = %d, %v; want 1", n, err)
	}
	bad := NewRedis(RedisOptions{Addr: rs.Addr, Password: "wrong"})
	defer bad.Close()
	if _, err := bad.Incr(context.Background()); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("Incr() with a wrong password = %v, want an error that does not echo the password", err)
	}
}
