package load

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Unknown groups answers without an X-Flotilla-Version or
// X-Flotilla-Instance header.
const Unknown = "unknown"

// The identity headers every Flotilla service sends (internal/httpserver.Identity).
const (
	headerVersion  = "X-Flotilla-Version"
	headerInstance = "X-Flotilla-Instance"
)

// errKind is how a request failed to get a whole response.
type errKind int

const (
	kindRefused errKind = iota // connection refused: nothing listens
	kindReset                  // connection reset or closed mid-request
	kindTimeout                // Timeout passed (dial, headers or body)
	kindOther                  // anything else: DNS, TLS, malformed response…
	numKinds
)

// classify sorts a transport error into a kind.
func classify(err error) errKind {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return kindRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return kindReset
	}
	return kindOther
}

// failureText is how a failed request reads in Summary.ErrorSamples: the
// transport error without its local address (which would make every
// connection's text unique), or the status of a 5xx answer and who gave it.
func failureText(resp *http.Response, err error) string {
	if err == nil {
		text := resp.Status
		if v := resp.Header[headerInstance]; len(v) > 0 && v[0] != "" {
			text += " from " + v[0]
		}
		return text
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Source != nil {
		c := *oe
		c.Source = nil
		return c.Error()
	}
	return err.Error()
}

// maxSamples bounds the distinct failure texts a run keeps; the rest
// count under otherFailures.
const (
	maxSamples    = 8
	otherFailures = "(other failures)"
)

// sample is how often one failure text came, and when first.
type sample struct {
	count int64
	first time.Duration // since the start of the run
}

type instanceKey struct{ version, instance string }

// tally is what a set of requests produced. Workers record into shards of
// their own, so they rarely contend; the view merges the shards into a
// fresh tally for each frame.
type tally struct {
	lat       histogram // latency of every request, answered or failed
	requests  int64
	errs      [numKinds]int64
	status    map[int]int64
	versions  map[string]int64
	instances map[instanceKey]int64
	samples   map[string]sample // failure texts, at most maxSamples+1
}

func newTally() *tally {
	return &tally{status: map[int]int64{}, versions: map[string]int64{}, instances: map[instanceKey]int64{}, samples: map[string]sample{}}
}

// addSample counts n failures with text first seen at first.
func (t *tally) addSample(text string, n int64, first time.Duration) {
	if _, ok := t.samples[text]; !ok && len(t.samples) >= maxSamples {
		text = otherFailures
	}
	s, ok := t.samples[text]
	if !ok || first < s.first {
		s.first = first
	}
	s.count += n
	t.samples[text] = s
}

// record counts one request that started at offset at from the start of
// the run and took lat.
func (t *tally) record(resp *http.Response, err error, lat, at time.Duration) {
	t.requests++
	t.lat.record(lat)
	if err != nil {
		t.errs[classify(err)]++
		t.addSample(failureText(nil, err), 1, at)
		return
	}
	t.status[resp.StatusCode]++
	if resp.StatusCode >= 500 {
		t.addSample(failureText(resp, nil), 1, at)
	}
	version, instance := Unknown, Unknown
	if v := resp.Header[headerVersion]; len(v) > 0 && v[0] != "" {
		version = v[0]
	}
	if v := resp.Header[headerInstance]; len(v) > 0 && v[0] != "" {
		instance = v[0]
	}
	t.versions[version]++
	t.instances[instanceKey{version, instance}]++
}

func (t *tally) merge(o *tally) {
	t.lat.merge(&o.lat)
	t.requests += o.requests
	for i, n := range o.errs {
		t.errs[i] += n
	}
	for k, n := range o.status {
		t.status[k] += n
	}
	for k, n := range o.versions {
		t.versions[k] += n
	}
	for k, n := range o.instances {
		t.instances[k] += n
	}
	for text, s := range o.samples {
		t.addSample(text, s.count, s.first)
	}
}

func (t *tally) serverErrors() int64 {
	var n int64
	for code, c := range t.status {
		if code >= 500 {
			n += c
		}
	}
	return n
}

// failed counts requests that got no response or a 5xx.
func (t *tally) failed() int64 {
	n := t.serverErrors()
	for _, c := range t.errs {
		n += c
	}
	return n
}

func (t *tally) answered() int64 {
	var n int64
	for _, c := range t.status {
		n += c
	}
	return n
}

type shard struct {
	mu sync.Mutex
	t  *tally
}

func (s *shard) record(resp *http.Response, err error, lat, at time.Duration) {
	s.mu.Lock()
	s.t.record(resp, err, lat, at)
	s.mu.Unlock()
}

// Summary is the outcome of a run. Its JSON form is what `flotilla load
// --json` prints; latencies there are in milliseconds.
type Summary struct {
	URL string `json:"url"`
	// Mode is "open" (Rate) or "closed" (Concurrency).
	Mode string `json:"mode"`
	// TargetRate is Config.Rate, requests per second; 0 in closed loop.
	TargetRate float64 `json:"target_rate,omitempty"`
	// Concurrency is the number of workers, or the in-flight cap in open loop.
	Concurrency int `json:"concurrency"`
	// Elapsed is from the start to the end of the last request.
	Elapsed time.Duration `json:"-"`
	// Interrupted is true when the caller's context ended the run early.
	Interrupted bool `json:"interrupted"`

	// Requests ended, answered or failed. Requests cut short by an
	// interruption are not counted.
	Requests int64 `json:"requests"`
	// Rate achieved: Requests / Elapsed, per second.
	Rate float64 `json:"rate"`
	// Unsent counts open-loop requests that were due but never started
	// because Concurrency requests stayed in flight until the end.
	Unsent int64 `json:"unsent,omitempty"`
	// Errors counts requests that got no response or a 5xx status.
	Errors int64 `json:"errors"`
	// ErrorRate is Errors / Requests, 0..1.
	ErrorRate float64 `json:"error_rate"`
	// ErrorKinds splits Errors by kind.
	ErrorKinds ErrorKinds `json:"error_kinds"`
	// Status counts responses by status code.
	Status map[int]int64 `json:"status"`
	// Versions counts responses by X-Flotilla-Version, in version order,
	// Unknown last; shares are of all responses.
	Versions []Count `json:"versions"`
	// Instances counts responses by version and X-Flotilla-Instance.
	Instances []Count `json:"instances"`
	// Latency of every counted request, answered or failed; in open loop
	// from the time it was due.
	Latency Latency `json:"latency"`

	// ErrorSamples lists the distinct failures (transport errors and 5xx
	// answers) with how often and when each came first, in order of first
	// appearance; at most 8 texts, the rest under "(other failures)", last.
	ErrorSamples []ErrorSample `json:"error_samples,omitempty"`

	// Failures lists the checks that failed (error budget, expected
	// versions); empty when the run passed.
	Failures []string `json:"failures"`
}

// ErrorKinds counts failed requests by kind.
type ErrorKinds struct {
	Refused   int64 `json:"refused"`    // connection refused
	Reset     int64 `json:"reset"`      // connection reset or closed early
	Timeout   int64 `json:"timeout"`    // Config.Timeout passed
	ServerErr int64 `json:"server_5xx"` // answered with a 5xx status
	Other     int64 `json:"other"`      // DNS, TLS, malformed response…
}

// ErrorSample is one distinct failure of a run.
type ErrorSample struct {
	Error string        `json:"error"`
	Count int64         `json:"count"`
	First time.Duration `json:"-"` // since the start of the run
}

// Count is how many responses one version (and instance) gave.
type Count struct {
	Version  string  `json:"version"`
	Instance string  `json:"instance,omitempty"`
	Count    int64   `json:"count"`
	Share    float64 `json:"share"` // of all responses, 0..1
}

// Latency holds percentiles, each within 0.4 % of the exact value (Min,
// Mean and Max are exact).
type Latency struct {
	Min, Mean, P50, P90, P99, P999, Max time.Duration
}

func latencyOf(h *histogram) Latency {
	return Latency{Min: h.min, Mean: h.mean(), P50: h.quantile(.5), P90: h.quantile(.9),
		P99: h.quantile(.99), P999: h.quantile(.999), Max: h.max}
}

// counts returns the versions (instances false) or instances as sorted
// Counts with their shares of all responses.
func (t *tally) counts(instances bool) []Count {
	total := t.answered()
	var out []Count
	add := func(v, i string, n int64) {
		out = append(out, Count{Version: v, Instance: i, Count: n, Share: float64(n) / float64(max(total, 1))})
	}
	if instances {
		for k, n := range t.instances {
			add(k.version, k.instance, n)
		}
	} else {
		for v, n := range t.versions {
			add(v, "", n)
		}
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(compareVersions(a.Version, b.Version), compareVersions(a.Instance, b.Instance))
	})
	return out
}

// compareVersions orders names, Unknown last, so bars keep their place.
func compareVersions(a, b string) int {
	if (a == Unknown) != (b == Unknown) {
		if a == Unknown {
			return 1
		}
		return -1
	}
	return cmp.Compare(a, b)
}

// summarize builds the Summary of a run with config c from t.
func summarize(c Config, t *tally, elapsed time.Duration) Summary {
	s := Summary{URL: c.URL, Mode: "closed", Concurrency: c.Concurrency, Elapsed: elapsed,
		Requests: t.requests, Errors: t.failed(), Status: t.status,
		ErrorKinds: ErrorKinds{Refused: t.errs[kindRefused], Reset: t.errs[kindReset], Timeout: t.errs[kindTimeout],
			ServerErr: t.serverErrors(), Other: t.errs[kindOther]},
		Versions: t.counts(false), Instances: t.counts(true), Latency: latencyOf(&t.lat), Failures: []string{}}
	for text, smp := range t.samples {
		s.ErrorSamples = append(s.ErrorSamples, ErrorSample{Error: text, Count: smp.count, First: smp.first})
	}
	slices.SortFunc(s.ErrorSamples, func(a, b ErrorSample) int {
		return cmp.Or(compareBool(a.Error == otherFailures, b.Error == otherFailures),
			cmp.Compare(a.First, b.First), cmp.Compare(a.Error, b.Error))
	})
	if c.Rate > 0 {
		s.Mode, s.TargetRate = "open", c.Rate
	}
	if elapsed > 0 {
		s.Rate = float64(t.requests) / elapsed.Seconds()
	}
	if t.requests > 0 {
		s.ErrorRate = float64(s.Errors) / float64(t.requests)
	}
	return s
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// check fills in s.Failures from c's budgets.
func (s *Summary) check(c Config) {
	if s.ErrorRate > c.MaxErrorRate {
		s.Failures = append(s.Failures, fmt.Sprintf("error rate %.3g %% (%d of %d) is above --max-error-rate %.3g %%",
			100*s.ErrorRate, s.Errors, s.Requests, 100*c.MaxErrorRate))
	}
	if len(c.ExpectVersions) > 0 {
		for _, v := range s.Versions {
			if !slices.Contains(c.ExpectVersions, v.Version) {
				s.Failures = append(s.Failures, fmt.Sprintf("version %q answered %d times; --expect-version allows only %q",
					v.Version, v.Count, c.ExpectVersions))
			}
		}
	}
}
