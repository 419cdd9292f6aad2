package demo

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newDemo(t *testing.T, mod func(*Config)) *Service {
	t.Helper()
	cfg := Config{Addr: ":0", Instance: "demo-abc", Version: "v3", DieMode: "exit"}
	if mod != nil {
		mod(&cfg)
	}
	return New(Options{Config: cfg, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), PodIP: "10.244.0.7"})
}

func do(h http.Handler, method, path string, header map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.10:5555"
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestEndpoints(t *testing.T) {
	curl := map[string]string{"User-Agent": "curl/8"}
	tests := []struct {
		name, method, path string
		header             map[string]string
		body               string
		wantCode           int
		wantContain        []string
	}{
		{"index text", "GET", "/", curl, "", 200, []string{"F   L   O   T   I   L   L   A", "served from demo-abc [10.244.0.7]", "request from 192.0.2.10\n", "version v3", "\x1b[33m"}},
		{"index via proxy", "GET", "/", map[string]string{"User-Agent": "curl/8", "X-Forwarded-For": "203.0.113.9"}, "", 200, []string{"request from 192.0.2.10 (X-Forwarded-For: 203.0.113.9)"}},
		{"index html", "GET", "/", map[string]string{"Accept": "text/html"}, "", 200, []string{"<!doctype html>", "demo-abc [10.244.0.7]", "color:#d4670b"}},
		{"index json", "GET", "/", map[string]string{"Accept": "application/json"}, "", 200, []string{`"instance":"demo-abc"`, `"ip":"10.244.0.7"`, `"version":"v3"`}},
		{"map", "GET", "/map", nil, "", 200, []string{"/delay/{duration}", "/status/{code}", "/echo"}},
		{"1line", "GET", "/1line", nil, "", 200, []string{"v3 demo-abc [10.244.0.7] <- 192.0.2.10\n"}},
		{"echo", "POST", "/echo?x=1", map[string]string{"X-Test": "yes"}, "hello", 200, []string{"POST /echo?x=1 HTTP/1.1\n", "X-Test: yes\n", "\n\nhello"}},
		{"ping", "GET", "/ping", nil, "", 200, []string{"pong\n"}},
		{"test fails", "GET", "/test", nil, "", 500, []string{"test error"}},
		{"status 418", "GET", "/status/418", nil, "", 418, []string{"418 I'm a teapot"}},
		{"status 503", "GET", "/status/503", nil, "", 503, nil},
		{"status not a number", "GET", "/status/abc", nil, "", 400, []string{`got "abc"`}},
		{"status out of range", "GET", "/status/99", nil, "", 400, []string{"200-599"}},
		{"status too big", "GET", "/status/600", nil, "", 400, nil},
		{"delay zero", "GET", "/delay/0", nil, "", 200, []string{"delayed 0s"}},
		{"delay ms", "GET", "/delay/5ms", nil, "", 200, []string{"delayed 5ms"}},
		{"delay bad", "GET", "/delay/soon", nil, "", 400, []string{`got "soon"`}},
		{"delay too long", "GET", "/delay/31", nil, "", 400, []string{"0..30s"}},
		{"unknown path", "GET", "/nope", nil, "", 404, nil},
		{"version", "GET", "/version", nil, "", 200, []string{`"version":"v3"`, `"instance":"demo-abc"`}},
	}
	h := newDemo(t, nil).Handler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(h, tt.method, tt.path, tt.header, tt.body)
			if w.Code != tt.wantCode {
				t.Errorf("%s %s = %d, want %d; body %q", tt.method, tt.path, w.Code, tt.wantCode, w.Body)
			}
			for _, s := range tt.wantContain {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("%s %s body lacks %q:\n%s", tt.method, tt.path, s, w.Body)
				}
			}
			if w.Header().Get("X-Flotilla-Version") != "v3" || w.Header().Get("X-Flotilla-Instance") != "demo-abc" {
				t.Errorf("identity headers missing: %v", w.Header())
			}
		})
	}
}

func TestEchoBodyCap(t *testing.T) {
	w := do(newDemo(t, nil).Handler(), "POST", "/echo", nil, strings.Repeat("x", maxEchoBody+1))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /echo with %d bytes = %d, want 413", maxEchoBody+1, w.Code)
	}
}

func TestReadinessSwitch(t *testing.T) {
	h := newDemo(t, nil).Handler()
	steps := []struct {
		method, path string
		want         int
	}{
		{"GET", "/readyz", 200},
		{"POST", "/readyz/disable", 200},
		{"GET", "/readyz", 503},
		{"GET", "/healthz", 200},
		{"POST", "/readyz/enable", 200},
		{"GET", "/readyz", 200},
		{"GET", "/readyz/disable", 405},
	}
	for _, s := range steps {
		if w := do(h, s.method, s.path, nil, ""); w.Code != s.want {
			t.Errorf("%s %s = %d, want %d", s.method, s.path, w.Code, s.want)
		}
	}
}

func TestProbeDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newDemo(t, func(c *Config) { c.LivenessDelay = 5 * time.Second; c.ReadinessDelay = 10 * time.Second })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s.Start(ctx)
		h := s.Handler()
		check := func(when string, live, ready int) {
			t.Helper()
			if got := do(h, "GET", "/healthz", nil, "").Code; got != live {
				t.Errorf("%s: /healthz = %d, want %d", when, got, live)
			}
			if got := do(h, "GET", "/readyz", nil, "").Code; got != ready {
				t.Errorf("%s: /readyz = %d, want %d", when, got, ready)
			}
		}
		check("at start", 503, 503)
		time.Sleep(5*time.Second + time.Millisecond)
		synctest.Wait()
		check("after 5s", 200, 503)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		check("after 10s", 200, 200)
	})
}

func TestDieAfterRequests(t *testing.T) {
	s := newDemo(t, func(c *Config) { c.DieAfterRequests = 3 })
	h := s.Handler()
	for range 5 {
		do(h, "GET", "/healthz", nil, "") // probes do not count
	}
	do(h, "GET", "/ping", nil, "")
	do(h, "GET", "/", nil, "")
	select {
	case <-s.Died():
		t.Fatal("died after 2 requests, want 3")
	default:
	}
	if w := do(h, "GET", "/ping", nil, ""); w.Code != 200 {
		t.Errorf("3rd request = %d, want 200: it is still answered", w.Code)
	}
	select {
	case <-s.Died():
	default:
		t.Fatal("alive after 3 requests")
	}
	if got := s.Reason(); got != "--die-after-requests 3" {
		t.Errorf("Reason() = %q", got)
	}
}

func TestDieUnhealthyMode(t *testing.T) {
	s := newDemo(t, func(c *Config) { c.DieAfterRequests = 1; c.DieMode = "unhealthy" })
	h := s.Handler()
	do(h, "GET", "/ping", nil, "")
	for _, p := range []string{"/healthz", "/ping", "/"} {
		if w := do(h, "GET", p, nil, ""); w.Code != 503 {
			t.Errorf("unhealthy: GET %s = %d, want 503", p, w.Code)
		}
	}
	select {
	case <-s.Died():
		t.Error("unhealthy mode must keep the process running")
	default:
	}
}

func TestDieAfterDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newDemo(t, func(c *Config) { c.DieAfter = time.Minute })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s.Start(ctx)
		time.Sleep(59 * time.Second)
		synctest.Wait()
		select {
		case <-s.Died():
			t.Fatal("died before a minute")
		default:
		}
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case <-s.Died():
		default:
			t.Fatal("alive after a minute")
		}
	})
}

func TestDieAtStart(t *testing.T) {
	s := newDemo(t, func(c *Config) { c.DieAtStart = true })
	s.Start(t.Context())
	select {
	case <-s.Died():
	default:
		t.Fatal("--die-at-start did not die")
	}
}

func TestFailFraction(t *testing.T) {
	h := newDemo(t, func(c *Config) { c.FailFraction = 0.3 }).Handler()
	const n = 4000
	failed := 0
	for range n {
		if do(h, "GET", "/ping", nil, "").Code == 500 {
			failed++
		}
	}
	// Binomial(4000, 0.3): sd ≈ 29; ±150 is over 5 sd.
	if failed < 1050 || failed > 1350 {
		t.Errorf("--fail-fraction 0.3: %d of %d failed, want about 1200", failed, n)
	}
	for range 50 {
		if w := do(h, "GET", "/readyz", nil, ""); w.Code != 200 {
			t.Fatalf("probes must never be failed on purpose, /readyz = %d", w.Code)
		}
	}
}

func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newDemo(t, func(c *Config) { c.Latency = 2 * time.Second }).Handler()
		start := time.Now()
		do(h, "GET", "/ping", nil, "")
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("/ping took %s, want 2s", got)
		}
		start = time.Now()
		do(h, "GET", "/healthz", nil, "")
		if got := time.Since(start); got != 0 {
			t.Errorf("/healthz took %s, want no added latency", got)
		}
	})
}

func TestParseDelay(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"2", 2 * time.Second, false},
		{"1.5", 1500 * time.Millisecond, false},
		{"250ms", 250 * time.Millisecond, false},
		{"30s", 30 * time.Second, false},
		{"0", 0, false},
		{"30.001", 0, true},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"1h", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"", 0, true},
		{"1e9", 0, true},
		{"abc", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDelay(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseDelay(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseDelay(f *testing.F) {
	for _, s := range []string{"2", "1.5", "250ms", "-1", "NaN", "1e308"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDelay(s)
		if err == nil && (d < 0 || d > MaxDelay) {
			t.Fatalf("ParseDelay(%q) = %v, outside 0..%v", s, d, MaxDelay)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	good := Config{Addr: ":8080", Instance: "d", Version: "v1", DieMode: "exit"}
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"every problem at once", func(c *Config) {
			c.Addr = "8080"
			c.FailFraction = 1.5
			c.DieMode = "explode"
			c.Latency = -time.Second
		}, []string{"--addr (FLOTILLA_ADDR)", "--fail-fraction (FLOTILLA_FAIL_FRACTION): must be 0..1, got 1.5", `--die-mode (FLOTILLA_DIE_MODE): want "exit" or "unhealthy", got "explode"`, "--latency (FLOTILLA_LATENCY)"}},
		{"negative requests", func(c *Config) { c.DieAfterRequests = -1 }, []string{"--die-after-requests"}},
		{"empty instance", func(c *Config) { c.Instance = " " }, []string{"--instance"}},
		{"negative stream limits", func(c *Config) { c.StreamIdleTimeout, c.StreamMaxLifetime = -time.Second, -time.Minute }, []string{
			"--stream-idle-timeout (FLOTILLA_STREAM_IDLE_TIMEOUT): must not be negative, got -1s",
			"--stream-max-lifetime (FLOTILLA_STREAM_MAX_LIFETIME): must not be negative, got -1m0s"}},
		{"no stream limits", func(c *Config) { c.StreamIdleTimeout, c.StreamMaxLifetime = 0, 0 }, nil},
		{"origin patterns", func(c *Config) { c.WSOrigins = []string{"*.example.com", "https://app.test"} }, nil},
		{"bad origin pattern", func(c *Config) { c.WSOrigins = []string{"ok.test", "[a-", " "} }, []string{
			`--ws-origins (FLOTILLA_WS_ORIGINS): "[a-" is not a host pattern`, `--ws-origins (FLOTILLA_WS_ORIGINS): " " is not a host pattern`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.Server.ShutdownTimeout = time.Second
			tt.mod(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}
