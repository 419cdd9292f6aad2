// Package health tracks whether an endpoint should get traffic: active
// HTTP checks (Checker) and passive outlier detection over real requests
// (Status.ObserveRequest). It holds no goroutines; the backend pool that
// owns the endpoints drives it.
package health

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// Status is the live health of one endpoint. A new endpoint is healthy
// until checks or requests say otherwise. It is safe for concurrent use.
type Status struct {
	mu           sync.Mutex
	down         bool // failed active checks
	okRun        int  // consecutive passing checks while down
	failRun      int  // consecutive failing checks while up
	reqFails     int  // consecutive failed requests
	ejectedUntil time.Time
	ejections    int // ejections in a row, for the backoff
	lastEjection time.Time
	lastError    string
}

// State is a snapshot of a Status.
type State struct {
	// Healthy is false while active checks fail.
	Healthy bool `json:"healthy"`
	// EjectedUntil is set while passive detection keeps the endpoint out.
	EjectedUntil time.Time `json:"ejectedUntil,omitzero"`
	// LastError is the last failed check's error.
	LastError string `json:"lastError,omitempty"`
}

// Available reports whether the endpoint may get traffic at now.
func (s *Status) Available(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.down && !now.Before(s.ejectedUntil)
}

// Snapshot returns the current state.
func (s *Status) Snapshot(now time.Time) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Healthy: !s.down, LastError: s.lastError}
	if now.Before(s.ejectedUntil) {
		st.EjectedUntil = s.ejectedUntil
	}
	return st
}

// EjectedUntil is when the current ejection ends (zero when none).
func (s *Status) EjectedUntil() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ejectedUntil
}

// ObserveCheck records an active check result (err nil: passed) and
// reports whether the endpoint's health flipped.
func (s *Status) ObserveCheck(err error, hc *config.HealthCheck) (flipped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.failRun = 0
		if s.down {
			s.okRun++
			if s.okRun >= hc.HealthyThreshold {
				s.down, s.okRun, s.lastError = false, 0, ""
				return true
			}
		}
		return false
	}
	s.lastError = err.Error()
	s.okRun = 0
	if !s.down {
		s.failRun++
		if s.failRun >= hc.UnhealthyThreshold {
			s.down, s.failRun = true, 0
			return true
		}
	}
	return false
}

// ObserveRequest records a proxied request's outcome (failed: it could not
// connect, broke, or got 502/503/504). When the failure makes
// ConsecutiveFailures in a row it ejects the endpoint and returns how
// long for: BaseEjection doubled for each ejection in a row, capped at
// MaxEjection. The run of ejections resets once the endpoint has gone
// MaxEjection past the end of its longest possible ejection without one.
func (s *Status) ObserveRequest(failed bool, o *config.Outlier, now time.Time) (ejectedFor time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !failed {
		s.reqFails = 0
		return 0
	}
	if now.Before(s.ejectedUntil) { // late results of requests sent before the ejection
		return 0
	}
	s.reqFails++
	if s.reqFails < o.ConsecutiveFailures {
		return 0
	}
	if !s.lastEjection.IsZero() && now.Sub(s.lastEjection) > o.MaxEjection+o.MaxEjection {
		s.ejections = 0
	}
	d := o.BaseEjection << min(s.ejections, 20)
	if d > o.MaxEjection || d <= 0 {
		d = o.MaxEjection
	}
	s.ejections++
	s.reqFails = 0
	s.lastEjection = now
	s.ejectedUntil = now.Add(d)
	return d
}

// Checker runs active HTTP checks.
type Checker struct {
	// Client sends the checks; its transport is the backend's.
	Client *http.Client
	// Config is the backend's check configuration (defaulted).
	Config *config.HealthCheck
}

// Check requests the health path of the endpoint at addr and returns nil
// when it answers an expected status within the timeout.
func (c *Checker) Check(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Config.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+c.Config.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "flotilla-gateway-health/1")
	resp, err := c.Client.Do(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused, without reading an
	// unbounded body.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if !c.expected(resp.StatusCode) {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func (c *Checker) expected(code int) bool {
	if len(c.Config.ExpectedStatuses) == 0 {
		return code >= 200 && code < 400
	}
	return slices.Contains(c.Config.ExpectedStatuses, code)
}
