package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes caps the size of a config file (1 MiB).
const MaxFileBytes = 1 << 20

// Load reads, decodes, defaults and validates the file at path. Errors name
// the file and every problem found.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseFile(path, data)
}

// ReadFile reads the file at path, at most MaxFileBytes of it.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

// ParseFile is Parse for data read from path: errors name the file, and
// relative file names in it (tls, backends[].tls) are relative to the file's
// directory, so a config and its certificates can move together.
func ParseFile(path string, data []byte) (*Config, error) {
	return ParseFileWith(path, data, ValidateOptions{})
}

// ParseFileWith is ParseFile validating with o.
func ParseFileWith(path string, data []byte, o ValidateOptions) (*Config, error) {
	c, err := Decode(data)
	if err == nil {
		c.resolveFiles(filepath.Dir(path))
		c.SetDefaults()
		err = c.ValidateWith(o)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// resolveFiles makes the relative file names of c relative to dir.
func (c *Config) resolveFiles(dir string) {
	var files []*string
	for i := range c.Backends {
		if t := c.Backends[i].TLS; t != nil {
			files = append(files, &t.CAFile, &t.CertFile, &t.KeyFile)
		}
	}
	if t := c.TLS; t != nil {
		for i := range t.Certificates {
			files = append(files, &t.Certificates[i].CertFile, &t.Certificates[i].KeyFile)
		}
		if t.ClientAuth != nil {
			files = append(files, &t.ClientAuth.CAFile)
		}
		for i := range t.Ports {
			if a := t.Ports[i].ClientAuth; a != nil {
				files = append(files, &a.CAFile)
			}
		}
	}
	if c.Redis != nil {
		files = append(files, &c.Redis.PasswordFile)
	}
	if c.Defaults.Auth != nil {
		files = append(files, c.Defaults.Auth.files()...)
	}
	for i := range c.Routes {
		if a := c.Routes[i].Auth; a != nil && a != c.Defaults.Auth {
			files = append(files, a.files()...)
		}
	}
	for _, f := range files {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(dir, *f)
		}
	}
}

// Parse strictly decodes one YAML document (unknown fields, duplicate keys
// and extra documents are errors), applies defaults and validates it.
func Parse(data []byte) (*Config, error) {
	c, err := Decode(data)
	if err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Decode strictly decodes data without defaulting or validating it.
func Decode(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config: want apiVersion, kind, backends and routes")
		}
		return nil, cleanYAMLError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document: want exactly one")
	}
	return &c, nil
}

var (
	notFound = regexp.MustCompile(`field (\S+) not found in type config\.\w+`)
	intoType = regexp.MustCompile(` into (config\.\w+|time\.Duration|\*?\w+)`)
)

// cleanYAMLError rewrites yaml.v3's messages, which name Go types, into
// ones that name what the user wrote.
func cleanYAMLError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	msg = notFound.ReplaceAllString(msg, `unknown field "$1"`)
	msg = intoType.ReplaceAllStringFunc(msg, func(s string) string {
		switch t := strings.TrimPrefix(s, " into "); t {
		case "time.Duration":
			return " into a duration (like 500ms, 5s, 1m)"
		case "int", "float64", "bool", "string":
			return " into " + map[string]string{"int": "an integer", "float64": "a number", "bool": "a boolean", "string": "a string"}[t]
		default:
			return " into an object or list of the wrong shape"
		}
	})
	return errors.New(msg)
}

// SetDefaults fills every unset field with its documented default.
func (c *Config) SetDefaults() {
	if c.Defaults.Timeout == 0 {
		c.Defaults.Timeout = 30 * time.Second
	}
	if c.Defaults.Retries == nil {
		c.Defaults.Retries = &Retries{Attempts: 2}
	}
	c.Defaults.Retries.setDefaults()
	c.Defaults.Paths.setDefaults()
	if c.TLS != nil {
		c.TLS.setDefaults()
	}
	if c.Redis != nil {
		c.Redis.setDefaults()
	}
	if c.Defaults.Auth != nil {
		c.Defaults.Auth.setDefaults()
	}
	if c.Defaults.Streams == nil {
		c.Defaults.Streams = &Streams{}
	}
	c.Defaults.Streams.setDefaults(Streams{IdleTimeout: DefaultStreamIdle, MaxLifetime: DefaultStreamLifetime})
	for i := range c.Backends {
		b := &c.Backends[i]
		if b.ResolveInterval == 0 {
			b.ResolveInterval = 5 * time.Second
		}
		if b.Protocol == "" {
			b.Protocol = "http1"
		}
		if b.Balance.Policy == "" {
			b.Balance.Policy = RoundRobin
		}
		if h := b.HealthCheck; h != nil {
			if h.Path == "" {
				h.Path = "/healthz"
			}
			if h.Interval == 0 {
				h.Interval = 5 * time.Second
			}
			if h.Timeout == 0 {
				h.Timeout = min(time.Second, h.Interval/2)
			}
			if h.HealthyThreshold == 0 {
				h.HealthyThreshold = 1
			}
			if h.UnhealthyThreshold == 0 {
				h.UnhealthyThreshold = 2
			}
		}
		if b.Outlier == nil {
			b.Outlier = &Outlier{}
		}
		if b.Outlier.ConsecutiveFailures == 0 {
			b.Outlier.ConsecutiveFailures = 5
		}
		if b.Outlier.BaseEjection == 0 {
			b.Outlier.BaseEjection = 30 * time.Second
		}
		if b.Outlier.MaxEjection == 0 {
			b.Outlier.MaxEjection = 5 * time.Minute
		}
		if b.Outlier.MaxEjectionPercent == nil {
			b.Outlier.MaxEjectionPercent = new(50)
		}
		if b.Outlier.PanicThreshold == nil {
			b.Outlier.PanicThreshold = new(50)
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Match.Path == nil {
			r.Match.Path = &PathMatch{Type: PathPrefix, Value: "/"}
		}
		if r.Match.Path.Type == "" {
			r.Match.Path.Type = PathPrefix
		}
		for _, vs := range [][]ValueMatch{r.Match.Headers, r.Match.Query, r.Match.Cookies} {
			for j := range vs {
				if vs[j].Type == "" {
					vs[j].Type = MatchExact
				}
			}
		}
		for j := range r.Backends {
			if r.Backends[j].Weight == nil {
				one := 1
				r.Backends[j].Weight = &one
			}
		}
		if r.Redirect != nil && r.Redirect.StatusCode == 0 {
			r.Redirect.StatusCode = 302
		}
		if r.HTTPSRedirect != nil && r.HTTPSRedirect.StatusCode == 0 {
			r.HTTPSRedirect.StatusCode = 308
		}
		if r.Sticky != nil {
			if r.Sticky.Cookie == "" {
				r.Sticky.Cookie = "flotilla-backend"
			}
			if r.Sticky.TTL == 0 {
				r.Sticky.TTL = time.Hour
			}
		}
		if r.Mirror != nil && r.Mirror.Percent == nil {
			hundred := 100.0
			r.Mirror.Percent = &hundred
		}
		for j := range r.Mirrors {
			if r.Mirrors[j].Percent == nil {
				hundred := 100.0
				r.Mirrors[j].Percent = &hundred
			}
		}
		if r.Timeout == 0 {
			r.Timeout = c.Defaults.Timeout
		}
		if r.Retries == nil {
			rr := *c.Defaults.Retries
			r.Retries = &rr
		}
		r.Retries.setDefaults()
		if r.Streams == nil {
			s := *c.Defaults.Streams
			r.Streams = &s
		}
		r.Streams.setDefaults(*c.Defaults.Streams)
		if r.IPRules == nil {
			r.IPRules = c.Defaults.IPRules
		}
		if r.CORS == nil {
			r.CORS = c.Defaults.CORS
		}
		if r.Auth == nil && !r.Public {
			r.Auth = c.Defaults.Auth
		}
		if r.Auth != nil && r.Auth != c.Defaults.Auth {
			r.Auth.setDefaults()
		}
		if r.RateLimits == nil && c.Defaults.RateLimits != nil {
			r.RateLimits = slices.Clone(c.Defaults.RateLimits)
		}
		for j := range r.RateLimits {
			r.RateLimits[j].setDefaults(r.Name, j)
		}
	}
}

// Stream limits' defaults (see Streams).
const (
	DefaultStreamIdle     = 5 * time.Minute
	DefaultStreamLifetime = 24 * time.Hour
)

func (s *Streams) setDefaults(d Streams) {
	if s.IdleTimeout == 0 {
		s.IdleTimeout = d.IdleTimeout
	}
	if s.MaxLifetime == 0 {
		s.MaxLifetime = d.MaxLifetime
	}
}

func (r *Retries) setDefaults() {
	if r.Backoff == 0 {
		r.Backoff = 25 * time.Millisecond
	}
	if r.Budget == nil {
		b := 0.2
		r.Budget = &b
	}
}
