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

// gcraScript is a batch of GCRA steps, atomic on the Redis server, in
// order: two decisions on one key in a batch see each other. Times are
// integer microseconds (exact in a Lua double until the year 2255) taken
// from the server's own clock (TIME), so gateway replicas with skewed
// clocks share one timeline. A refusal writes nothing; an admission
// stores the new TAT with a TTL of the time until the bucket is full again,
// so an idle key vanishes exactly when forgetting it changes nothing.
//
// KEYS[i] the i-th key; ARGV[2i-1] its emission interval T; ARGV[2i]
// Burst×T. Returns 4 values per key: allowed 0|1, remaining, retry after
// µs, reset µs.
//
// TIME before a write needs effects replication: the default from Redis 5
// (and the only mode from 7); replicate_commands turns it on for 3.2–4.
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local out = {}
for i = 1, #KEYS do
  local t = tonumber(ARGV[2 * i - 1])
  local cap = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local ahead = tat + t - now
  local n = #out
  if ahead > cap then
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = 0, 0, ahead - cap, tat - now
  else
    redis.call('SET', KEYS[i], string.format('%d', tat + t), 'PX', math.ceil(ahead / 1000))
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = 1, math.floor((cap - ahead) / t), 0, ahead
  end
end
return out
`

// Redis is a GCRA store shared by every gateway replica through one Redis:
// each decision is one atomic script step (EVALSHA, falling back to EVAL
// when the server has lost the script: a restart or SCRIPT FLUSH), so the
// fleet admits exactly Requests per Per whatever the number of replicas.
//
// Concurrent Allow calls share script runs: decisions wait in a queue
// that batchers empty, up to maxBatch at a time, into one script call
// (and rueidis pipelines the batchers' calls on one connection). Under
// load a batch holds what arrived during the previous round trip, so
// Redis runs one script per batch instead of one per request: that is
// what keeps a Redis-backed limit cheap. An idle gateway's decision is
// a batch of one.
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
	queue  chan *decision
	stop   chan struct{}

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
	r.queue, r.stop = make(chan *decision, 4096), make(chan struct{})
	r.mu.Lock()
	r.startDial()
	r.mu.Unlock()
	for range batchers {
		r.wg.Go(r.batcher)
	}
	return r, nil
}

// Batching: batchers scripts may run at once, each of up to maxBatch
// decisions.
const (
	batchers = 4
	maxBatch = 128
)

// decision is one Allow waiting in the queue.
type decision struct {
	ctx    context.Context
	key    string
	t, cap int64
	done   chan decisionResult // buffered: a caller gone does not block the batcher
}

type decisionResult struct {
	d   Decision
	err error
}

// batcher runs queued decisions, as many as are waiting, in one script.
func (r *Redis) batcher() {
	batch := make([]*decision, 0, maxBatch)
	keys := make([]string, 0, maxBatch)
	args := make([]string, 0, 2*maxBatch)
	for {
		batch, keys, args = batch[:0], keys[:0], args[:0]
		select {
		case <-r.stop:
			return
		case d := <-r.queue:
			batch = append(batch, d)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case d := <-r.queue:
				batch = append(batch, d)
			default:
				break fill
			}
		}
		// A decision whose caller gave up is not counted.
		live := batch[:0]
		for _, d := range batch {
			if d.ctx.Err() != nil {
				d.done <- decisionResult{err: fmt.Errorf("redis %s: %w", r.cfg.Address, shortErr(d.ctx.Err()))}
				continue
			}
			live = append(live, d)
			keys = append(keys, d.key)
			args = append(args, strconv.FormatInt(d.t, 10), strconv.FormatInt(d.cap, 10))
		}
		if len(live) > 0 {
			r.run(live, keys, args)
		}
	}
}

// run executes one batch and answers its decisions.
func (r *Redis) run(batch []*decision, keys, args []string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	var v []int64
	c, err := r.conn(ctx)
	if err == nil {
		v, err = r.script.Exec(ctx, c, keys, args).AsIntSlice()
		if err == nil && len(v) != 4*len(batch) {
			err = fmt.Errorf("script answered %d values, want %d", len(v), 4*len(batch))
		}
	}
	if err != nil {
		err = fmt.Errorf("redis %s: %w", r.cfg.Address, shortErr(err))
		if !r.down.Swap(true) {
			r.log.Warn("rate limit store failing", "err", err)
		}
		for _, d := range batch {
			d.done <- decisionResult{err: err}
		}
		return
	}
	if r.down.Load() && r.down.Swap(false) {
		r.log.Info("rate limit store answering again")
	}
	for i, d := range batch {
		v := v[4*i:]
		d.done <- decisionResult{d: Decision{
			Allowed:    v[0] == 1,
			Remaining:  int(v[1]),
			RetryAfter: time.Duration(v[2]) * time.Microsecond,
			Reset:      time.Duration(v[3]) * time.Microsecond,
		}}
	}
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
// under lim on the Redis server, batched with the decisions of other
// requests, within ctx and at most the config's Timeout. An error means
// no decision: the caller applies the limit's OnError. (A step that timed
// out may still have been counted.)
func (r *Redis) Allow(ctx context.Context, key string, lim Limit) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	t, capacity := lim.micros()
	d := &decision{ctx: ctx, key: r.cfg.KeyPrefix + boundKey(key), t: t, cap: capacity, done: make(chan decisionResult, 1)}
	select {
	case r.queue <- d:
	case <-r.stop:
		return Decision{}, errClosed
	case <-ctx.Done():
		return Decision{}, fmt.Errorf("redis %s: queue full: %w", r.cfg.Address, shortErr(ctx.Err()))
	}
	select {
	case res := <-d.done:
		return res.d, res.err
	case <-ctx.Done():
		return Decision{}, fmt.Errorf("redis %s: %w", r.cfg.Address, shortErr(ctx.Err()))
	}
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
	if !r.closed {
		close(r.stop)
	}
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
