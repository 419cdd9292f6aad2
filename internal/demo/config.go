// Package demo is the talk's k8s-demo: a web app whose behaviour is chosen
// by URL, with knobs that make its health checks misbehave on purpose.
package demo

import (
	"errors"
	"net"
	"path"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// Defaults of --stream-idle-timeout and --stream-max-lifetime.
const (
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultStreamMaxLifetime = time.Hour
)

// Config is the demo service's start-up configuration.
type Config struct {
	// Addr is the listen address (default ":8080").
	Addr string
	// Instance names this replica (default: $POD_NAME, else the host name).
	Instance string
	// Version is shown and sent in X-Flotilla-Version (default: baked in).
	Version string

	// LivenessDelay keeps /healthz failing for this long after start.
	LivenessDelay time.Duration
	// ReadinessDelay keeps /readyz failing for this long after start.
	ReadinessDelay time.Duration
	// DieAtStart makes the process exit with status 1 at once.
	DieAtStart bool
	// DieAfter makes the process die this long after start (0: never).
	DieAfter time.Duration
	// DieAfterRequests makes the process die after serving this many
	// application requests (probes and metrics do not count; 0: never).
	DieAfterRequests int64
	// DieMode is how it dies: "exit" (status 1) or "unhealthy" (keeps
	// running, but /healthz and every page answer 503, so only a liveness
	// probe can end it).
	DieMode string
	// FailFraction of application requests answer 500 (0..1).
	FailFraction float64
	// Latency is added to every application request.
	Latency time.Duration

	// StreamIdleTimeout ends a WebSocket connection (close 1001) or an
	// EchoStream call (Unavailable) that receives no message for this
	// long (default 5m, Envoy's stream idle timeout; 0: no limit).
	StreamIdleTimeout time.Duration
	// StreamMaxLifetime ends a WebSocket connection (close 1001) or any
	// gRPC streaming call (Unavailable) this long after it began
	// (default 1h; 0: no limit).
	StreamMaxLifetime time.Duration
	// WSOrigins are extra Origin host patterns (path.Match syntax, e.g.
	// "*.example.com"; with "://" the scheme is matched too) a browser
	// page may open /ws/echo from. The page's own host is always allowed,
	// and clients that send no Origin (curl, websocat, Go) are not
	// checked. Default none: a page elsewhere cannot use a visitor's
	// browser to reach the demo.
	WSOrigins []string

	Server httpserver.Options
}

// Flags registers the configuration on fs with its defaults.
func (c *Config) Flags(fs *pflag.FlagSet, defaultInstance, defaultVersion string) {
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&c.Instance, "instance", defaultInstance, "instance name shown in answers (default: $POD_NAME, else host name)")
	fs.StringVar(&c.Version, "version", defaultVersion, "version shown in answers and X-Flotilla-Version")
	fs.DurationVar(&c.LivenessDelay, "liveness-delay", 0, "keep /healthz failing for this long after start")
	fs.DurationVar(&c.ReadinessDelay, "readiness-delay", 0, "keep /readyz failing for this long after start")
	fs.BoolVar(&c.DieAtStart, "die-at-start", false, "exit with status 1 at once")
	fs.DurationVar(&c.DieAfter, "die-after", 0, "die this long after start (0: never)")
	fs.Int64Var(&c.DieAfterRequests, "die-after-requests", 0, "die after this many application requests (0: never)")
	fs.StringVar(&c.DieMode, "die-mode", "exit", `how to die: "exit" (status 1) or "unhealthy" (every answer 503 until a liveness probe restarts it)`)
	fs.Float64Var(&c.FailFraction, "fail-fraction", 0, "fraction of application requests answered with 500 (0..1)")
	fs.DurationVar(&c.Latency, "latency", 0, "latency added to every application request")
	fs.DurationVar(&c.StreamIdleTimeout, "stream-idle-timeout", DefaultStreamIdleTimeout, "end a WebSocket connection or EchoStream call that receives no message for this long (0: no limit)")
	fs.DurationVar(&c.StreamMaxLifetime, "stream-max-lifetime", DefaultStreamMaxLifetime, "end a WebSocket connection or gRPC streaming call this long after it began (0: no limit)")
	fs.StringSliceVar(&c.WSOrigins, "ws-origins", nil, `extra Origin host patterns allowed on /ws/echo, e.g. "*.example.com" (the page's own host always is)`)
	c.Server.Flags(fs)
}

// Validate reports every problem at once, each naming its flag and env var.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, flagenv.Errorf("addr", "want host:port or :port, got %q", c.Addr))
	}
	if strings.TrimSpace(c.Instance) == "" {
		errs = append(errs, flagenv.Errorf("instance", "must not be empty"))
	}
	if strings.TrimSpace(c.Version) == "" {
		errs = append(errs, flagenv.Errorf("version", "must not be empty"))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"liveness-delay", c.LivenessDelay}, {"readiness-delay", c.ReadinessDelay}, {"die-after", c.DieAfter}, {"latency", c.Latency},
		{"stream-idle-timeout", c.StreamIdleTimeout}, {"stream-max-lifetime", c.StreamMaxLifetime}} {
		if d.v < 0 {
			errs = append(errs, flagenv.Errorf(d.flag, "must not be negative, got %s", d.v))
		}
	}
	if c.DieAfterRequests < 0 {
		errs = append(errs, flagenv.Errorf("die-after-requests", "must not be negative, got %d", c.DieAfterRequests))
	}
	if c.DieMode != "exit" && c.DieMode != "unhealthy" {
		errs = append(errs, flagenv.Errorf("die-mode", `want "exit" or "unhealthy", got %q`, c.DieMode))
	}
	if !(c.FailFraction >= 0 && c.FailFraction <= 1) { // also rejects NaN
		errs = append(errs, flagenv.Errorf("fail-fraction", "must be 0..1, got %v", c.FailFraction))
	}
	for _, p := range c.WSOrigins {
		if _, err := path.Match(p, ""); err != nil || strings.TrimSpace(p) == "" {
			errs = append(errs, flagenv.Errorf("ws-origins", "%q is not a host pattern (path.Match syntax)", p))
		}
	}
	errs = append(errs, c.Server.Validate())
	return errors.Join(errs...)
}
