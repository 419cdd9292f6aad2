package load

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options say where the live view goes; they do not change the load.
type Options struct {
	// Out receives the live view and, at the end, the text summary
	// (default nil: nothing is written).
	Out io.Writer
	// TTY redraws a live view in place several times a second; otherwise
	// Out gets one plain line a second.
	TTY bool
}

// Run sends the load c describes and returns its summary. It returns early,
// with Summary.Interrupted set, when ctx ends; requests cut short then are
// not counted. The error is non-nil only for an invalid Config; a run whose
// checks failed has a nil error and Summary.Failures set.
func Run(ctx context.Context, c Config, o Options) (Summary, error) {
	if err := c.Validate(); err != nil {
		return Summary{}, err
	}
	c = c.withDefaults()
	r, err := newRunner(c)
	if err != nil {
		return Summary{}, err
	}
	defer r.transport.CloseIdleConnections()

	r.start = time.Now()
	v := newView(c, o, r)
	viewCtx, stopView := context.WithCancel(context.Background())
	var viewDone sync.WaitGroup
	viewDone.Go(func() { v.loop(viewCtx) })

	stop := ctx
	if c.Duration > 0 {
		var cancel context.CancelFunc
		stop, cancel = context.WithDeadline(ctx, r.start.Add(c.Duration))
		defer cancel()
	}
	if c.Rate > 0 {
		r.open(ctx, stop)
	} else {
		r.closed(ctx, stop)
	}
	elapsed := time.Since(r.start)
	stopView()
	viewDone.Wait()

	s := summarize(c, r.snapshot(), elapsed)
	s.Interrupted = ctx.Err() != nil
	s.Unsent = r.unsent
	s.check(c)
	v.finish(s)
	return s, nil
}

type runner struct {
	cfg       Config
	transport *http.Transport
	template  *http.Request
	body      []byte
	start     time.Time
	shards    []*shard
	taken     atomic.Int64 // requests claimed by closed-loop workers
	inFlight  atomic.Int64
	unsent    int64 // set by open before Run reads it
}

func newRunner(c Config) (*runner, error) {
	req, err := http.NewRequest(c.Method, c.URL, nil)
	if err != nil {
		return nil, err
	}
	for _, h := range c.Headers {
		name, value, _ := ParseHeader(h) // validated
		if http.CanonicalHeaderKey(name) == "Host" {
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	if c.Host != "" { // --host wins over -H "Host: …"
		req.Host = c.Host
	}
	r := &runner{cfg: c, template: req, body: []byte(c.Body)}
	r.transport = &http.Transport{
		// No Proxy: the load goes to the target, not to $HTTP_PROXY.
		DialContext:           (&net.Dialer{Timeout: c.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   c.Timeout,
		DisableKeepAlives:     c.DisableKeepAlive,
		MaxIdleConnsPerHost:   c.Concurrency, // every worker keeps its connection
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The body is discarded: asking for gzip would only cost both sides
		// CPU, and wrk does not ask for it either.
		DisableCompression: true,
	}
	// A few shards per CPU keep workers from contending on one lock without
	// making every frame merge hundreds of histograms.
	r.shards = make([]*shard, 4*runtime.GOMAXPROCS(0))
	for i := range r.shards {
		r.shards[i] = &shard{t: newTally()}
	}
	return r, nil
}

// snapshot merges every shard into a fresh tally.
func (r *runner) snapshot() *tally {
	t := newTally()
	for _, s := range r.shards {
		s.mu.Lock()
		t.merge(s.t)
		s.mu.Unlock()
	}
	return t
}

// take claims the next request of a Requests-bounded run.
func (r *runner) take() bool {
	n := r.taken.Add(1)
	return r.cfg.Requests == 0 || n <= r.cfg.Requests
}

// closed runs Concurrency workers, each sending requests back to back until
// stop ends or the requests are used up.
func (r *runner) closed(ctx, stop context.Context) {
	var wg sync.WaitGroup
	for i := range r.cfg.Concurrency {
		sh := r.shards[i%len(r.shards)]
		wg.Go(func() {
			for stop.Err() == nil && r.take() {
				r.do(ctx, sh, time.Now())
			}
		})
	}
	wg.Wait()
}

// due is when open-loop request i is due, as an offset from the start;
// computed from i rather than accumulated, so the schedule does not drift.
func (r *runner) due(i int64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / r.cfg.Rate)
}

// planned is the number of requests the open-loop schedule holds.
func (r *runner) planned() int64 {
	n := int64(math.MaxInt64)
	if r.cfg.Duration > 0 {
		n = int64(math.Ceil(r.cfg.Duration.Seconds() * r.cfg.Rate))
		for n > 0 && r.due(n-1) >= r.cfg.Duration { // float rounding
			n--
		}
		for r.due(n) < r.cfg.Duration {
			n++
		}
	}
	if r.cfg.Requests > 0 {
		n = min(n, r.cfg.Requests)
	}
	return n
}

// open sends request i at due(i). A request goes to an idle worker; when
// none is idle a new one starts, up to Concurrency. With all of them busy
// the schedule waits, and the wait counts in the latency of the requests
// that were due, so a stall cannot hide.
func (r *runner) open(ctx, stop context.Context) {
	work := make(chan time.Time) // unbuffered: a send succeeds only into an idle worker
	var wg sync.WaitGroup
	workers := 0
	worker := func(sh *shard, first time.Time) {
		for due := first; ; {
			r.do(ctx, sh, due)
			var ok bool
			if due, ok = <-work; !ok {
				return
			}
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	planned := r.planned()
	var i int64
loop:
	for ; i < planned; i++ {
		due := r.start.Add(r.due(i))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done(): // not stop: every due time is before its deadline
				break loop
			}
		}
		select {
		case work <- due:
			continue
		default:
		}
		if workers < r.cfg.Concurrency {
			sh := r.shards[workers%len(r.shards)]
			workers++
			wg.Go(func() { worker(sh, due) })
			continue
		}
		select {
		case work <- due:
		case <-stop.Done():
			break loop
		}
	}
	close(work)
	if ctx.Err() == nil {
		r.unsent = planned - i
	}
	wg.Wait()
}

// do sends one request that was due at due and records its outcome.
func (r *runner) do(ctx context.Context, sh *shard, due time.Time) {
	r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req := r.template.WithContext(rctx)
	if len(r.body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(r.body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(r.body)), nil }
		req.ContentLength = int64(len(r.body))
	}
	resp, err := r.transport.RoundTrip(req)
	if err == nil {
		// Read the whole body, as wrk does: the latency is the full answer,
		// and a drained body lets the connection be reused.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	lat := time.Since(due)
	if err != nil && ctx.Err() != nil {
		return // cut short by the caller, not failed by the target
	}
	sh.record(resp, err, lat, due.Sub(r.start))
}
