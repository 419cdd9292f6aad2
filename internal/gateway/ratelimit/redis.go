package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// gcraScript is one GCRA step, atomic on the Redis server. Times are
// integer microseconds (exact in a Lua double until the year 2255) taken
// from the server's own clock (TIME), so gateway replicas with skewed
// clocks share one timeline. A refusal writes nothing; an admission
// stores the new TAT with a TTL of the time until the bucket is full again,
// so an idle key vanishes exactly when forgetting it changes nothing.
//
// KEYS[1] the key; ARGV[1] the emission interval T; ARGV[2] Burst×T.
// Returns {allowed 0|1, remaining, retry after µs, reset µs}.
//
// TIME before a write needs effects replication: the default from Redis 5
// (and the only mode from 7); replicate_commands turns it on for 3.2–4.
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local ahead = tat + t - now
if ahead > cap then
  return {0, 0, ahead - cap, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', tat + t), 'PX', math.ceil(ahead / 1000))
return {1, math.floor((cap - ahead) / t), 0, ahead}
`

// Redis is a GCRA store shared by every gateway replica through one Redis:
// each decision is one atomic script step (EVALSHA, falling back to EVAL
// when the server has lost the script: a restart or SCRIPT FLUSH), so the
// fleet admits exactly Requests per Per whatever the number of replicas.
//
// Concurrent Allow calls share round trips: rueidis pipelines commands
// issued at the same time on a few connections (auto-pipelining), which
// is what keeps a Redis-backed limit cheap under load.
//
// Connecting is asynchronous and repeated (at most every redialBackoff)
// until it succeeds: NewRedis does not fail when Redis is down, and
// Allow returns an error until it is up. Once connected, rueidis
// reconnects by itself after Redis restarts.
type Redis struct {
	cfg      config.Redis
	password string
	log      *slog.Logger
	script   *rueidis.Lua

	client atomic.Pointer[rueidis.Client]
	down   atomic.Bool // last Allow failed; for logging the change once

	mu     sync.Mutex
	dial   *dialing
	closed bool
	wg     sync.WaitGroup
}

// dialing is one connection attempt; done closes when it ends.
type dialing struct {
	done  chan struct{}
	start time.Time
	err   error
}

// redialBackoff keeps a dead Redis from being dialled for every request.
const redialBackoff = 250 * time.Millisecond

// maxMicros bounds Burst×T in the script so that TIME+cap stays exact in
// a Lua double (2^53 µs from 1970 is the year 2255; 10^15 µs is 31 years).
const maxMicros = int64(1e15)

// NewRedis checks c, reads its password file and starts connecting in the
// background. It fails only for a bad config, not for Redis being down.
// log receives one line when the connection goes down or comes back.
func NewRedis(c *config.Redis, log *slog.Logger) (*Redis, error) {
	if c == nil {
		return nil, errors.New("redis: no config")
	}
	cfg := *c
	if cfg.Timeout == 0 {
		cfg.Timeout = config.DefaultRedisTimeout
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = config.DefaultRedisKeyPrefix
	}
	var errs []error
	if host, port, err := net.SplitHostPort(cfg.Address); err != nil || host == "" || port == "" {
		errs = append(errs, fmt.Errorf("redis.address: want host:port, got %q", cfg.Address))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("redis.timeout: want more than 0, got %s", cfg.Timeout))
	}
	if cfg.DB < 0 {
		errs = append(errs, fmt.Errorf("redis.db: want 0 or more, got %d", cfg.DB))
	}
	var password string
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("redis.passwordFile: %w", err))
		default:
			password = strings.TrimRight(string(b), "\r\n")
			if password == "" {
				errs = append(errs, fmt.Errorf("redis.passwordFile: %s is empty", cfg.PasswordFile))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Redis{
		cfg:      cfg,
		password: password,
		log:      log.With("redis", cfg.Address),
		script:   rueidis.NewLuaScript(gcraScript),
	}
	r.mu.Lock()
	r.startDial()
	r.mu.Unlock()
	return r, nil
}

// startDial starts a connection attempt (r.mu held).
func (r *Redis) startDial() *dialing {
	d := &dialing{done: make(chan struct{}), start: time.Now()}
	r.dial = d
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(d.done)
		c, err := rueidis.NewClient(r.clientOption())
		if err != nil {
			d.err = fmt.Errorf("redis %s: %w", r.cfg.Address, shortErr(err))
			if !r.down.Swap(true) {
				r.log.Warn("rate limit store unreachable", "err", d.err)
			}
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			c.Close()
			d.err = errClosed
			return
		}
		r.client.Store(&c)
		if r.down.Swap(false) {
			r.log.Info("rate limit store reachable again")
		}
	}()
	return d
}

var errClosed = errors.New("redis: closed")

func (r *Redis) clientOption() rueidis.ClientOption {
	return rueidis.ClientOption{
		InitAddress: []string{r.cfg.Address},
		Username:    r.cfg.Username,
		Password:    r.password,
		SelectDB:    r.cfg.DB,
		ClientName:  "flotilla-gateway-ratelimit",
		Dialer:      net.Dialer{Timeout: max(r.cfg.Timeout, time.Second), KeepAlive: 15 * time.Second},
		// A Redis that stops answering (paused, partitioned) has its
		// connection closed and redialled after this; each Allow gives
		// up after cfg.Timeout anyway.
		ConnWriteTimeout:  max(4*r.cfg.Timeout, time.Second),
		ForceSingleClient: true,
		DisableCache:      true,
		// A GCRA step is not idempotent: never resend it behind the
		// caller's back (a timed-out step may still have counted).
		DisableRetry: true,
		// Auto-pipelining stays on (the default): concurrent Allow calls
		// share writes and round trips on PipelineMultiplex connections.
	}
}

// conn returns the client, waiting (within ctx) for a connection attempt.
func (r *Redis) conn(ctx context.Context) (rueidis.Client, error) {
	if c := r.client.Load(); c != nil {
		return *c, nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	d := r.dial
	select {
	case <-d.done:
		if d.err != nil && time.Since(d.start) >= redialBackoff {
			d = r.startDial()
		}
	default:
	}
	r.mu.Unlock()
	select {
	case <-d.done:
		if d.err != nil {
			return nil, d.err
		}
		if c := r.client.Load(); c != nil {
			return *c, nil
		}
		return nil, errClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("redis %s: connecting: %w", r.cfg.Address, shortErr(ctx.Err()))
	}
}

// Allow runs one GCRA step for key (prefixed with the config's KeyPrefix)
// under lim on the Redis server, within ctx and at most the config's
// Timeout. An error means no decision: the caller applies the limit's
// OnError. (A step that timed out may still have been counted.)
func (r *Redis) Allow(ctx context.Context, key string, lim Limit) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	c, err := r.conn(ctx)
	if err != nil {
		return Decision{}, err
	}
	t, capacity := lim.micros()
	v, err := r.script.Exec(ctx, c,
		[]string{r.cfg.KeyPrefix + boundKey(key)},
		[]string{strconv.FormatInt(t, 10), strconv.FormatInt(capacity, 10)},
	).AsIntSlice()
	if err == nil && len(v) != 4 {
		err = fmt.Errorf("script answered %d values, want 4", len(v))
	}
	if err != nil {
		err = fmt.Errorf("redis %s: %w", r.cfg.Address, shortErr(err))
		if !r.down.Swap(true) {
			r.log.Warn("rate limit store failing", "err", err)
		}
		return Decision{}, err
	}
	if r.down.Load() && r.down.Swap(false) {
		r.log.Info("rate limit store answering again")
	}
	return Decision{
		Allowed:    v[0] == 1,
		Remaining:  int(v[1]),
		RetryAfter: time.Duration(v[2]) * time.Microsecond,
		Reset:      time.Duration(v[3]) * time.Microsecond,
	}, nil
}

// micros is lim's emission interval and Burst×T in whole microseconds
// (T at least 1µs: a Redis-backed limit counts at most a million requests
// a second per key).
func (lim Limit) micros() (t, capacity int64) {
	req, burst := int64(max(lim.Requests, 1)), int64(max(lim.Burst, 1))
	t = max(lim.Per.Microseconds()/req, 1)
	capacity = maxMicros
	if burst <= maxMicros/t {
		capacity = burst * t
	}
	return t, capacity
}

// Close ends the connection; Allow fails afterwards.
func (r *Redis) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	if c := r.client.Swap(nil); c != nil {
		(*c).Close()
	}
}

// shortErr reduces a client error to the part a person can act on.
func shortErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("timed out")
	case errors.Is(err, context.Canceled):
		return errors.New("canceled")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed), errors.Is(err, rueidis.ErrClosing):
		return errors.New("connection lost")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timed out")
	}
	return err
}
