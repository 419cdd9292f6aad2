// Package load sends bounded HTTP load to one URL and reports, live and at
// the end, which versions answered (X-Flotilla-Version), the status codes,
// errors by kind and latency percentiles. It is `flotilla load` and the
// traffic source of the end-to-end suite.
package load

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
)

// DefaultMaxInFlight caps the requests in flight in open-loop mode when
// Config.Concurrency is 0.
const DefaultMaxInFlight = 1000

// MaxRate bounds Config.Rate, far above what one process can send, so the
// schedule's arithmetic cannot overflow.
const MaxRate = 10_000_000

// Config is one load run. A valid one names a URL, a mode (Rate or
// Concurrency) and a bound (Duration or Requests).
type Config struct {
	// URL is the target, http:// or https://.
	URL string
	// Method is the request method (default GET).
	Method string
	// Headers are sent with every request, each "Name: value". A Host
	// header sets the Host like Host does (default none).
	Headers []string
	// Host overrides the Host header (default: the URL's host).
	Host string
	// Body is sent with every request (default empty).
	Body string

	// Rate, in requests per second, selects open-loop mode: request i is
	// due i/Rate seconds after the start whatever earlier requests do, and
	// its latency counts from then, so a stalled server shows in the
	// percentiles instead of slowing the load (no coordinated omission).
	// Default 0: closed loop.
	Rate float64
	// Concurrency is, in closed-loop mode (Rate 0), the number of workers,
	// each sending its next request when its previous one ends. In
	// open-loop mode it caps the requests in flight; requests due while
	// the cap is reached wait, and their wait counts in their latency.
	// Default 0: required in closed loop, DefaultMaxInFlight in open loop.
	Concurrency int

	// Duration bounds the run in time: no request starts after it
	// (default 0: no time bound). Requests in flight then may end, each
	// within Timeout.
	Duration time.Duration
	// Requests bounds the run in requests (default 0: no count bound). At
	// least one of Duration and Requests is required; the first reached
	// ends the run.
	Requests int64

	// Timeout bounds each request, from dialling to the last byte of the
	// body (default 5s). A request past it counts as a timeout error.
	Timeout time.Duration
	// DisableKeepAlive opens a new connection for every request (default
	// false: connections are reused).
	DisableKeepAlive bool

	// MaxErrorRate is the error budget, a fraction 0..1 of requests: the
	// run fails when errors/requests is above it (default 0: any error
	// fails the run; 1 never fails).
	MaxErrorRate float64
	// ExpectVersions, when not empty, lists the versions allowed to
	// answer: the run fails when any response carries another
	// X-Flotilla-Version, or none ("unknown"). Requests that got no
	// response carry no version and are judged by MaxErrorRate alone.
	// Default: any version.
	ExpectVersions []string

	// PerInstance adds a bar per instance under each version to the live
	// view (default false). The summary always lists instances.
	PerInstance bool
}

// Flags registers the configuration on fs with its defaults.
func (c *Config) Flags(fs *pflag.FlagSet) {
	fs.StringVarP(&c.Method, "method", "X", "GET", "request method")
	fs.StringArrayVarP(&c.Headers, "header", "H", nil, `request header "Name: value" (repeatable)`)
	fs.StringVar(&c.Host, "host", "", "Host header (default: the URL's host)")
	fs.StringVar(&c.Body, "body", "", "request body")
	fs.Float64VarP(&c.Rate, "rate", "r", 0, "open loop: requests per second, on schedule whatever the latency")
	fs.IntVarP(&c.Concurrency, "concurrency", "c", 0, fmt.Sprintf("closed loop: number of workers; with --rate: cap on requests in flight, %d if unset", DefaultMaxInFlight))
	fs.DurationVarP(&c.Duration, "duration", "d", 0, "stop starting requests after this long (e.g. 30s)")
	fs.Int64VarP(&c.Requests, "requests", "n", 0, "stop after this many requests")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Second, "bound on each request, dial to last byte")
	keepAlive := fs.VarPF(negatedBool{&c.DisableKeepAlive}, "keepalive", "", "reuse connections (--keepalive=false: a new connection per request)")
	keepAlive.NoOptDefVal = "true"
	keepAlive.DefValue = "true"
	fs.Float64Var(&c.MaxErrorRate, "max-error-rate", 0, "error budget, a fraction 0..1: exit 1 when errors/requests is above it (0: any error fails; 1: never)")
	fs.StringSliceVar(&c.ExpectVersions, "expect-version", nil, "versions allowed to answer (comma-separated): exit 1 when another, or none, answers")
	fs.BoolVar(&c.PerInstance, "per-instance", false, "live view: a bar per instance under each version")
}

// negatedBool is a bool flag stored inverted, so that the Config's zero
// value keeps connections alive while the flag reads --keepalive=false.
type negatedBool struct{ p *bool }

func (b negatedBool) String() string {
	if b.p == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.p)
}

func (b negatedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = !v
	return nil
}

func (negatedBool) Type() string { return "bool" }

// Validate reports every problem at once, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("URL argument: want http://host[:port]/path or https://…, got %q", c.URL))
	}
	if c.Method != "" && !isToken(c.Method) {
		errs = append(errs, flagenv.Errorf("method", "not a valid method: %q", c.Method))
	}
	for _, h := range c.Headers {
		if _, _, err := ParseHeader(h); err != nil {
			errs = append(errs, flagenv.Errorf("header", "%v", err))
		}
	}
	if strings.ContainsAny(c.Host, "\r\n \t") {
		errs = append(errs, flagenv.Errorf("host", "must not contain spaces or line breaks, got %q", c.Host))
	}
	if c.Rate < 0 || c.Rate > MaxRate || math.IsNaN(c.Rate) {
		errs = append(errs, flagenv.Errorf("rate", "must be 0..%d requests per second, got %v", MaxRate, c.Rate))
	}
	if c.Concurrency < 0 {
		errs = append(errs, flagenv.Errorf("concurrency", "must be positive, got %d", c.Concurrency))
	}
	if c.Rate == 0 && c.Concurrency == 0 {
		errs = append(errs, errors.New("--rate or --concurrency: one is required (open loop at a rate, or closed loop with N workers)"))
	}
	if c.Duration < 0 {
		errs = append(errs, flagenv.Errorf("duration", "must be positive, got %s", c.Duration))
	}
	if c.Requests < 0 {
		errs = append(errs, flagenv.Errorf("requests", "must be positive, got %d", c.Requests))
	}
	if c.Duration == 0 && c.Requests == 0 {
		errs = append(errs, errors.New("--duration or --requests: one is required, so the run ends by itself"))
	}
	if c.Timeout < 0 {
		errs = append(errs, flagenv.Errorf("timeout", "must be positive, got %s", c.Timeout))
	}
	if c.MaxErrorRate < 0 || c.MaxErrorRate > 1 || math.IsNaN(c.MaxErrorRate) {
		errs = append(errs, flagenv.Errorf("max-error-rate", "must be a fraction 0..1 (0.01 is 1 %%), got %v", c.MaxErrorRate))
	}
	for _, v := range c.ExpectVersions {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, flagenv.Errorf("expect-version", "empty version in %q", strings.Join(c.ExpectVersions, ",")))
			break
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills in the documented defaults of a validated Config.
func (c Config) withDefaults() Config {
	if c.Method == "" {
		c.Method = "GET"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Rate > 0 && c.Concurrency == 0 {
		c.Concurrency = DefaultMaxInFlight
	}
	// "--expect-version v1, v2" arrives as "v1" and " v2".
	c.ExpectVersions = slices.Clone(c.ExpectVersions)
	for i, v := range c.ExpectVersions {
		c.ExpectVersions[i] = strings.TrimSpace(v)
	}
	return c
}

// ParseHeader splits a "Name: value" header line as given to -H. The name
// must be an HTTP token; the value is trimmed and must not hold line
// breaks.
func ParseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf(`want "Name: value", got %q`, s)
	}
	if !isToken(name) {
		return "", "", fmt.Errorf("invalid header name %q in %q", name, s)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n\x00") {
		return "", "", fmt.Errorf("header %s: value must not contain line breaks or NUL", name)
	}
	return name, value, nil
}

// isToken reports whether s is an RFC 9110 token, as header names and
// methods must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c <= ' ' || c == 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
