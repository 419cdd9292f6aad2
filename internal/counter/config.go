// Package counter is the talk's flask-app: a web counter kept in Redis.
package counter

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// Config is the counter service's start-up configuration.
type Config struct {
	// Addr is the listen address (default ":8080").
	Addr string
	// Instance names this replica in answers (default: $POD_NAME, else the host name).
	Instance string
	// Version is shown and sent in X-Flotilla-Version (default: baked in at build).
	Version string
	// Store is "redis" (default) or "memory" (in-process, one machine only).
	Store string
	// Redis settings; used when Store is "redis".
	Redis RedisConfig
	// Server holds the drain and shutdown settings.
	Server httpserver.Options
}

// RedisConfig says how to reach Redis. The password is read from a file so
// it never appears in process listings, environment dumps or logs.
type RedisConfig struct {
	Addr         string        // default "redis:6379", the talk's Service name
	Username     string        // ACL user; empty for none
	PasswordFile string        // file holding the password; empty for none
	DB           int           // 0..15 (default 0)
	Key          string        // default "count"
	Timeout      time.Duration // per operation and per dial (default 500ms)
	TLS          bool          // encrypt the connection
	TLSCAFile    string        // PEM CA bundle; default: system roots
	TLSServer    string        // server name to verify; default: host of Addr
}

// Flags registers the configuration on fs with its defaults.
func (c *Config) Flags(fs *pflag.FlagSet, defaultInstance, defaultVersion string) {
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&c.Instance, "instance", defaultInstance, "instance name shown in answers (default: $POD_NAME, else host name)")
	fs.StringVar(&c.Version, "version", defaultVersion, "version shown in answers and X-Flotilla-Version")
	fs.StringVar(&c.Store, "store", "redis", `where the count lives: "redis" or "memory" (in-process)`)
	c.Redis.Flags(fs, "redis:6379")
	c.Server.Flags(fs)
}

// Flags registers the Redis settings on fs (--redis-*), with defaultAddr
// as --redis-addr's default; `flotilla up` shares them.
func (r *RedisConfig) Flags(fs *pflag.FlagSet, defaultAddr string) {
	fs.StringVar(&r.Addr, "redis-addr", defaultAddr, "Redis host:port")
	fs.StringVar(&r.Username, "redis-username", "", "Redis ACL user name")
	fs.StringVar(&r.PasswordFile, "redis-password-file", "", "file holding the Redis password")
	fs.IntVar(&r.DB, "redis-db", 0, "Redis database number (0-15)")
	fs.StringVar(&r.Key, "redis-key", "count", "Redis key to increment")
	fs.DurationVar(&r.Timeout, "redis-timeout", 500*time.Millisecond, "bound on each Redis operation and dial; past it GET / answers 503")
	fs.BoolVar(&r.TLS, "redis-tls", false, "connect to Redis over TLS")
	fs.StringVar(&r.TLSCAFile, "redis-tls-ca-file", "", "PEM CA bundle to verify Redis (default: system roots)")
	fs.StringVar(&r.TLSServer, "redis-tls-server-name", "", "server name to verify (default: host of --redis-addr)")
}

// Validate reports every problem of the Redis settings, each naming its
// flag and env var.
func (r RedisConfig) Validate() error { return r.validate() }

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
	switch c.Store {
	case "memory":
	case "redis":
		errs = append(errs, c.Redis.validate())
	default:
		errs = append(errs, flagenv.Errorf("store", `want "redis" or "memory", got %q`, c.Store))
	}
	errs = append(errs, c.Server.Validate())
	return errors.Join(errs...)
}

func (r RedisConfig) validate() error {
	var errs []error
	if host, port, err := net.SplitHostPort(r.Addr); err != nil || host == "" || port == "" {
		errs = append(errs, flagenv.Errorf("redis-addr", "want host:port, got %q", r.Addr))
	}
	if r.DB < 0 || r.DB > 15 {
		errs = append(errs, flagenv.Errorf("redis-db", "must be 0..15, got %d", r.DB))
	}
	if r.Key == "" {
		errs = append(errs, flagenv.Errorf("redis-key", "must not be empty"))
	}
	if r.Timeout <= 0 {
		errs = append(errs, flagenv.Errorf("redis-timeout", "must be positive, got %s", r.Timeout))
	}
	if r.PasswordFile != "" {
		if _, err := os.Stat(r.PasswordFile); err != nil {
			errs = append(errs, flagenv.Errorf("redis-password-file", "%v", err))
		}
	}
	if r.TLSCAFile != "" && !r.TLS {
		errs = append(errs, flagenv.Errorf("redis-tls-ca-file", "set, but --redis-tls is off"))
	}
	return errors.Join(errs...)
}

// Options turns the configuration into store options, reading secrets.
func (r RedisConfig) Options() (RedisOptions, error) {
	o := RedisOptions{Addr: r.Addr, Username: r.Username, DB: r.DB, Key: r.Key, Timeout: r.Timeout}
	if r.PasswordFile != "" {
		b, err := os.ReadFile(r.PasswordFile)
		if err != nil {
			return o, flagenv.Errorf("redis-password-file", "%v", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if r.TLS {
		host, _, _ := net.SplitHostPort(r.Addr)
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if r.TLSServer != "" {
			o.TLS.ServerName = r.TLSServer
		}
		if r.TLSCAFile != "" {
			pem, err := os.ReadFile(r.TLSCAFile)
			if err != nil {
				return o, flagenv.Errorf("redis-tls-ca-file", "%v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, flagenv.Errorf("redis-tls-ca-file", "no PEM certificate found in %s", r.TLSCAFile)
			}
			o.TLS.RootCAs = pool
		}
	}
	return o, nil
}
