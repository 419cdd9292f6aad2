// Package tlsconf serves the gateway's TLS certificates and policy from
// the routing config's tls section, and reloads them when their files
// change: new connections get the new certificates, connections open
// keep theirs, and a file that does not load keeps the last good set.
package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Store holds the TLS configuration new connections get. It is safe for
// concurrent use.
type Store struct {
	// NextProtos are offered in ALPN, in order (default h2, http/1.1).
	NextProtos []string
	// Log receives reloads and failed ones (default slog.Default()).
	Log *slog.Logger
	// FromSecrets says certificates may come only from Kubernetes Secrets
	// (the Ingress and Gateway API controllers add them to the config):
	// a config without a tls section is then valid, and handshakes fail
	// until a Secret's certificate arrives.
	FromSecrets bool

	cur     atomic.Pointer[active]
	mu      sync.Mutex
	cfg     *config.TLS // the section cur was built from
	changed chan struct{}
}

// Config returns the tls.Config to serve with: each handshake gets the
// configuration current at that moment.
func (s *Store) Config() *tls.Config {
	return &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := s.cur.Load()
		if c == nil {
			return nil, errors.New("no TLS certificate loaded")
		}
		return c.configFor(hello), nil
	}}
}

// Load reads c's files and, when they all load, serves them from now
// on; else it returns every problem, each naming its config path, and
// the previous configuration stays.
func (s *Store) Load(c *config.TLS) error {
	if c == nil && !s.FromSecrets {
		return errors.New("tls: required: the gateway runs with --tls-addr, so the config needs a tls section with its certificates")
	}
	if c == nil {
		c = &config.TLS{}
	}
	tc, err := s.build(c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cfg = c
	s.cur.Store(tc)
	if s.changed != nil {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) build(c *config.TLS) (*active, error) {
	var errs []error
	tc := &tls.Config{
		MinVersion: config.TLSVersions[c.MinVersion],
		NextProtos: s.NextProtos,
	}
	if tc.NextProtos == nil {
		tc.NextProtos = []string{"h2", "http/1.1"}
	}
	for _, name := range c.CipherSuites {
		if id, ok := config.CipherSuiteID(name); ok {
			tc.CipherSuites = append(tc.CipherSuites, id)
		}
	}
	now := time.Now()
	for i, cf := range c.Certificates {
		at := fmt.Sprintf("tls.certificates[%d]", i)
		cert, err := tls.LoadX509KeyPair(cf.CertFile, cf.KeyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
			continue
		}
		if leaf := cert.Leaf; leaf != nil && now.After(leaf.NotAfter) {
			// Served all the same, as nginx does: refusing to start over
			// an expired certificate takes the whole site down.
			s.log().Warn("TLS certificate expired", slog.String("file", cf.CertFile),
				slog.Time("not_after", leaf.NotAfter), slog.Any("names", leaf.DNSNames))
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	if a := c.ClientAuth; a != nil {
		pool, err := loadPool(a.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls.clientAuth.caFile: %w", err))
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		if a.Mode == config.ClientAuthOptional {
			tc.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	ports, err := buildPorts(c, tc)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &active{base: tc, ports: ports}, nil
}

// loadPool reads PEM CA certificates.
func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

func (s *Store) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// watched reports whether an event on path may change what is served:
// one of the files, or a Kubernetes volume's "..data" swap.
func (s *Store) watched(path string) bool {
	base := filepath.Base(path)
	if strings.HasPrefix(base, "..") {
		return true
	}
	for _, f := range s.files() {
		if filepath.Clean(f) == filepath.Clean(path) {
			return true
		}
	}
	return false
}

// sameCerts reports whether a and b serve the same certificates and
// client CAs (a reload that changed nothing is not logged).
func sameCerts(as, bs *active) bool {
	if as == nil || !as.samePorts(bs) {
		return false
	}
	a, b := as.base, bs.base
	if len(a.Certificates) != len(b.Certificates) || !a.ClientCAs.Equal(b.ClientCAs) {
		return false
	}
	for i := range a.Certificates {
		if !slices.EqualFunc(a.Certificates[i].Certificate, b.Certificates[i].Certificate, bytes.Equal) {
			return false
		}
	}
	return true
}

// files are the paths the current configuration was read from.
func (s *Store) files() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil {
		return nil
	}
	var out []string
	for _, c := range s.cfg.Certificates {
		out = append(out, c.CertFile, c.KeyFile)
	}
	if s.cfg.ClientAuth != nil {
		out = append(out, s.cfg.ClientAuth.CAFile)
	}
	for _, p := range s.cfg.Ports {
		if p.ClientAuth != nil {
			out = append(out, p.ClientAuth.CAFile)
		}
	}
	return out
}

// Watch reloads the current files when they change, until ctx is done.
// It watches their directories, not the files: renewals replace files
// by rename, and a Kubernetes Secret volume swaps a "..data" symlink.
// Events are coalesced over debounce (default 200ms); a set that fails
// to load is logged and the last good one stays.
func (s *Store) Watch(ctx context.Context, debounce time.Duration) error {
	if debounce <= 0 {
		debounce = 200 * time.Millisecond
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch TLS files: %w", err)
	}
	defer w.Close()
	s.mu.Lock()
	s.changed = make(chan struct{}, 1)
	s.mu.Unlock()
	var dirs []string
	rewatch := func() {
		want := []string{}
		for _, f := range s.files() {
			if d := filepath.Dir(f); !slices.Contains(want, d) {
				want = append(want, d)
			}
		}
		for _, d := range dirs {
			if !slices.Contains(want, d) {
				w.Remove(d)
			}
		}
		for _, d := range want {
			if !slices.Contains(dirs, d) {
				if err := w.Add(d); err != nil {
					s.log().Warn("TLS files: cannot watch", slog.String("dir", d), slog.String("error", err.Error()))
				}
			}
		}
		dirs = want
	}
	rewatch()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed: // a config reload: its files may be elsewhere
			rewatch()
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op != fsnotify.Chmod && s.watched(ev.Name) {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log().Warn("TLS files: watch error", slog.String("error", err.Error()))
		case <-timer.C:
			s.mu.Lock()
			c := s.cfg
			s.mu.Unlock()
			if c == nil {
				continue
			}
			tc, err := s.build(c)
			if err != nil {
				s.log().Error("TLS files rejected; the last good certificates keep serving", slog.String("error", err.Error()))
				continue
			}
			s.mu.Lock()
			same := s.cfg != c || sameCerts(s.cur.Load(), tc)
			if !same {
				s.cur.Store(tc)
			}
			s.mu.Unlock()
			if !same {
				s.log().Info("TLS certificates reloaded", slog.Int("certificates", len(tc.base.Certificates)))
			}
		}
	}
}
