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
//
// Status decides for one endpoint only; what needs the whole backend
// (the share of endpoints ejected, never the last available one, panic
// routing) is the backend pool's, which calls Eject only when those
// rules allow it.
type Status struct {
	mu           sync.Mutex
	down         bool // failed active checks
	okRun        int  // consecutive passing checks while down
	failRun      int  // consecutive failing checks while up
	reqFails     int  // consecutive failed requests
	ejectedUntil time.Time
	ejectOK      int // consecutive passing checks since the current ejection began
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

// Healthy reports whether the endpoint passes its active checks (true
// without any), whatever passive detection says.
func (s *Status) Healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.down
}

// Ejected reports whether passive detection keeps the endpoint out at now.
func (s *Status) Ejected(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Before(s.ejectedUntil)
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

// Change is what an active check result changed.
type Change int

// The changes ObserveCheck reports.
const (
	// Unchanged: the endpoint stays as it was.
	Unchanged Change = iota
	// WentDown: UnhealthyThreshold failures in a row.
	WentDown
	// CameUp: HealthyThreshold passes in a row after being down.
	CameUp
	// EjectionEnded: HealthyThreshold passes in a row by checks started
	// after a passive ejection began end it early, as Envoy's
	// successful_active_health_check_uneject_host does.
	EjectionEnded
)

func (c Change) String() string {
	switch c {
	case Unchanged:
		return "unchanged"
	case WentDown:
		return "went down"
	case CameUp:
		return "came up"
	case EjectionEnded:
		return "ejection ended"
	}
	return fmt.Sprintf("Change(%d)", int(c))
}

// ObserveCheck records an active check result (err nil: passed) of a
// check that started at started, and reports what changed.
func (s *Status) ObserveCheck(err error, hc *config.HealthCheck, started time.Time) Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastError = err.Error()
		s.okRun, s.ejectOK = 0, 0
		if !s.down {
			s.failRun++
			if s.failRun >= hc.UnhealthyThreshold {
				s.down, s.failRun = true, 0
				return WentDown
			}
		}
		return Unchanged
	}
	s.failRun = 0
	if s.down {
		s.okRun++
		if s.okRun < hc.HealthyThreshold {
			return Unchanged
		}
		s.down, s.okRun, s.lastError = false, 0, ""
		if started.Before(s.ejectedUntil) && !started.Before(s.lastEjection) {
			// The same passes that brought it up answer for the ejection.
			s.ejectedUntil, s.ejectOK = time.Time{}, 0
		}
		return CameUp
	}
	// A check that began before the ejection says nothing about what
	// happened since.
	if started.Before(s.ejectedUntil) && !started.Before(s.lastEjection) {
		s.ejectOK++
		if s.ejectOK >= hc.HealthyThreshold {
			s.ejectedUntil, s.ejectOK = time.Time{}, 0
			return EjectionEnded
		}
	}
	return Unchanged
}

// Failed reports whether a request's outcome counts against the
// endpoint under o: a transport failure (err not nil: it could not
// connect, the connection broke, no response came) or a status listed in
// o.CountStatuses. Anything else, an application's 503 included, is an
// answer and not a sign that the endpoint is down.
func Failed(o *config.Outlier, status int, err error) bool {
	return err != nil || slices.Contains(o.CountStatuses, status)
}

// ObserveRequest records a proxied request's outcome (failed: see
// Failed) and reports whether it makes ConsecutiveFailures in a row: the
// endpoint should then be ejected, if the backend's rules allow it (see
// Eject). The run starts again either way, so an ejection refused is
// tried again after as many failures more.
func (s *Status) ObserveRequest(failed bool, o *config.Outlier, now time.Time) (trip bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !failed {
		s.reqFails = 0
		return false
	}
	if now.Before(s.ejectedUntil) { // late results of requests sent before the ejection
		return false
	}
	s.reqFails++
	if s.reqFails < o.ConsecutiveFailures {
		return false
	}
	s.reqFails = 0
	return true
}

// Eject takes the endpoint out of rotation from now and returns for how
// long: BaseEjection doubled for each ejection in a row, capped at
// MaxEjection. The run of ejections resets once the endpoint has gone
// MaxEjection past the end of its longest possible ejection without one.
func (s *Status) Eject(o *config.Outlier, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastEjection.IsZero() && now.Sub(s.lastEjection) > o.MaxEjection+o.MaxEjection {
		s.ejections = 0
	}
	d := o.BaseEjection << min(s.ejections, 20)
	if d > o.MaxEjection || d <= 0 {
		d = o.MaxEjection
	}
	s.ejections++
	// Passes before now say nothing about what made it fail.
	s.reqFails, s.ejectOK, s.okRun = 0, 0, 0
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
