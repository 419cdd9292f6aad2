package counter

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// Store holds the counter.
type Store interface {
	// Incr adds one and returns the new value. A returned value has been
	// acknowledged by the store: it is never lost by the store's own doing.
	Incr(ctx context.Context) (int64, error)
	// Ping reports whether the store can serve Incr now.
	Ping(ctx context.Context) error
	// Close releases connections.
	Close() error
	// String names the store for messages, e.g. "Redis at redis:6379".
	String() string
}

// Memory is an in-process Store for one-machine use. Several services may
// share one.
type Memory struct{ n atomic.Int64 }

var _ Store = (*Memory)(nil)

// Incr implements Store.
func (m *Memory) Incr(context.Context) (int64, error) { return m.n.Add(1), nil }

// Ping implements Store.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *Memory) Close() error { return nil }

func (m *Memory) String() string { return "in-process store" }

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// Addr is host:port (the talk's default is redis:6379).
	Addr string
	// Username and Password authenticate (ACL or requirepass); empty for none.
	Username, Password string
	// DB is the database number (default 0).
	DB int
	// TLS, when not nil, encrypts the connection.
	TLS *tls.Config
	// Key is the key incremented (default "count").
	Key string
	// Timeout bounds connecting and each operation (default 500ms), so a
	// request never hangs on a slow or absent Redis.
	Timeout time.Duration
	// Registerer, if set, receives the operation metrics.
	Registerer prometheus.Registerer
}

// Redis is a Store backed by Redis through rueidis. Concurrent increments
// share round trips (automatic pipelining), which is what lets one counter
// process serve several times more requests per second than a
// connection-per-request client; each caller still gets its answer only
// after Redis has executed its own INCR.
//
// Connecting is lazy: the service starts, and reports not ready, while
// Redis is absent, and reconnects by itself when Redis returns.
type Redis struct {
	opts RedisOptions

	mu       sync.Mutex // serialises connecting
	client   atomic.Pointer[rueidis.Client]
	lastDial time.Time
	lastErr  error

	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

var _ Store = (*Redis)(nil)

// redialBackoff keeps a dead Redis from being dialled by every request.
const redialBackoff = 250 * time.Millisecond

// NewRedis returns a Redis store; it does not connect yet.
func NewRedis(o RedisOptions) *Redis {
	if o.Key == "" {
		o.Key = "count"
	}
	if o.Timeout <= 0 {
		o.Timeout = 500 * time.Millisecond
	}
	r := &Redis{
		opts: o,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flotilla_redis_operation_duration_seconds",
			Help:    "Latency of Redis operations, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flotilla_redis_errors_total",
			Help: "Failed Redis operations, by operation.",
		}, []string{"op"}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(r.duration, r.errors)
	}
	return r
}

func (r *Redis) String() string { return "Redis at " + r.opts.Addr }

// conn returns the client, dialling if there is none yet.
func (r *Redis) conn() (rueidis.Client, error) {
	if c := r.client.Load(); c != nil {
		return *c, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.client.Load(); c != nil {
		return *c, nil
	}
	if time.Since(r.lastDial) < redialBackoff {
		return nil, r.lastErr
	}
	r.lastDial = time.Now()
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{r.opts.Addr},
		Username:    r.opts.Username,
		Password:    r.opts.Password,
		SelectDB:    r.opts.DB,
		TLSConfig:   r.opts.TLS,
		ClientName:  "flotilla-counter",
		Dialer:      net.Dialer{Timeout: r.opts.Timeout, KeepAlive: 15 * time.Second},
		// Keeps the reason when Redis refuses the connection (protected
		// mode, max clients): rueidis would report only the close.
		DialCtxFn:         dialRecordingRefusals,
		ConnWriteTimeout:  2 * r.opts.Timeout,
		ForceSingleClient: true,
		DisableCache:      true,
		// INCR is not idempotent: never resend it behind the caller's back.
		DisableRetry: true,
	})
	if err != nil {
		r.lastErr = shortErr(err)
		return nil, r.lastErr
	}
	r.client.Store(&c)
	return c, nil
}

// Incr implements Store.
func (r *Redis) Incr(ctx context.Context) (int64, error) {
	start := time.Now()
	n, err := r.do(ctx, func(ctx context.Context, c rueidis.Client) (int64, error) {
		return c.Do(ctx, c.B().Incr().Key(r.opts.Key).Build()).AsInt64()
	})
	r.observe("incr", start, err)
	return n, err
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error {
	start := time.Now()
	_, err := r.do(ctx, func(ctx context.Context, c rueidis.Client) (int64, error) {
		return 0, c.Do(ctx, c.B().Ping().Build()).Error()
	})
	r.observe("ping", start, err)
	return err
}

func (r *Redis) do(ctx context.Context, fn func(context.Context, rueidis.Client) (int64, error)) (int64, error) {
	c, err := r.conn()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	n, err := fn(ctx, c)
	if err != nil {
		return 0, shortErr(err)
	}
	return n, nil
}

func (r *Redis) observe(op string, start time.Time, err error) {
	r.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		r.errors.WithLabelValues(op).Inc()
	}
}

// Close implements Store.
func (r *Redis) Close() error {
	if c := r.client.Swap(nil); c != nil {
		(*c).Close()
	}
	return nil
}

// shortErr reduces a client error to the part a person can act on. A
// refusal is the reason Redis gave, not the close that followed it.
func shortErr(err error) error {
	var refused *RefusedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		return refused
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("timed out")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return errors.New("connection lost")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("timed out")
	}
	return err
}
