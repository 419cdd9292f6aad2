package liveui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// errBadControl marks a control request that does not parse (400).
var errBadControl = errors.New("bad control request")

// MaxControlBody caps a control's JSON body (bytes).
const MaxControlBody = 1 << 10

// StepRequest is POST /ui/routes/{name}/step's body.
type StepRequest struct {
	// Backend is the backend whose weight changes (the canary).
	Backend string `json:"backend"`
	// Delta is added to its weight: -100..100, not 0. The result is
	// clamped to 0..100.
	Delta int `json:"delta"`
}

// PauseRequest is POST /ui/routes/{name}/pause's body.
type PauseRequest struct {
	Paused *bool `json:"paused"`
}

// decodeControl reads one JSON object into v: no unknown fields, nothing
// after it, at most MaxControlBody bytes.
func decodeControl(body io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(body, MaxControlBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %w", errBadControl, err)
	}
	if len(b) > MaxControlBody {
		return fmt.Errorf("%w: body larger than %d bytes", errBadControl, MaxControlBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadControl, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one JSON value", errBadControl)
	}
	return nil
}

// ParseStep parses a step body.
func ParseStep(body io.Reader) (StepRequest, error) {
	var s StepRequest
	if err := decodeControl(body, &s); err != nil {
		return s, fmt.Errorf(`step: want {"backend": "<name>", "delta": <-100..100>}: %w`, err)
	}
	switch {
	case s.Backend == "":
		return s, fmt.Errorf("step: backend: %w: required", errBadControl)
	case s.Delta == 0 || s.Delta < -100 || s.Delta > 100:
		return s, fmt.Errorf("step: delta: %w: must be -100..100 and not 0, got %d", errBadControl, s.Delta)
	}
	return s, nil
}

// ParsePause parses a pause body.
func ParsePause(body io.Reader) (bool, error) {
	var p PauseRequest
	if err := decodeControl(body, &p); err != nil {
		return false, fmt.Errorf(`pause: want {"paused": true|false}: %w`, err)
	}
	if p.Paused == nil {
		return false, fmt.Errorf("pause: paused: %w: required", errBadControl)
	}
	return *p.Paused, nil
}

// Flip swaps the weights of a route with exactly two backends: blue 100,
// green 0 becomes blue 0, green 100 (and 70/30 becomes 30/70).
func Flip(w map[string]int) (map[string]int, error) {
	if len(w) != 2 {
		return nil, fmt.Errorf("flip: %w: the route has %d backends, want 2", errBadControl, len(w))
	}
	names := slices.Sorted(maps.Keys(w))
	return map[string]int{names[0]: w[names[1]], names[1]: w[names[0]]}, nil
}

// Step adds delta to backend's weight, clamped to 0..100. On a route of
// two backends whose weights add up to 100, the other gets the rest, so
// the split stays in percent.
func Step(w map[string]int, backend string, delta int) (map[string]int, error) {
	cur, ok := w[backend]
	if !ok {
		return nil, fmt.Errorf("step: backend: %w: the route has no backend %q (it has %s)", errBadControl, backend, strings.Join(slices.Sorted(maps.Keys(w)), ", "))
	}
	next := min(max(cur+delta, 0), 100)
	out := map[string]int{backend: next}
	if len(w) == 2 {
		sum := 0
		for _, v := range w {
			sum += v
		}
		if sum == 100 {
			for n := range w {
				if n != backend {
					out[n] = 100 - next
				}
			}
		}
	}
	return out, nil
}

// routeControl serves POST /ui/routes/{name}/{flip|step|pause}.
func (u *UI) routeControl(w http.ResponseWriter, r *http.Request, rest string) {
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		writeError(w, http.StatusNotFound, errors.New("want /ui/routes/{name}/flip, step or pause"))
		return
	}
	route, action := rest[:i], rest[i+1:]
	if action != "flip" && action != "step" && action != "pause" {
		writeError(w, http.StatusNotFound, errors.New("want /ui/routes/{name}/flip, step or pause"))
		return
	}
	u.control(w, r, func(*session, string) (any, error) {
		c := u.o.Controls
		if c == nil {
			return nil, fmt.Errorf("%w: this live view has no controls", errBadControl)
		}
		body := http.MaxBytesReader(w, r.Body, MaxControlBody)
		if action == "pause" {
			paused, err := ParsePause(body)
			if err != nil {
				return nil, err
			}
			if err := c.SetPaused(route, paused); err != nil {
				return nil, err
			}
			u.o.Logger.Info("live view control", "route", route, "action", action, "paused", paused)
			return map[string]bool{"paused": paused}, nil
		}
		var step StepRequest
		if action == "step" {
			var err error
			if step, err = ParseStep(body); err != nil {
				return nil, err
			}
		}
		// Computed on the weights where they are kept, not on the page's
		// copy: two steps in quick succession make two.
		next := Flip
		if action == "step" {
			next = func(cur map[string]int) (map[string]int, error) { return Step(cur, step.Backend, step.Delta) }
		}
		done, err := c.UpdateWeights(r.Context(), route, next)
		if err != nil {
			return nil, err
		}
		u.o.Logger.Info("live view control", "route", route, "action", action, "written", done.Where)
		return done.Weights, nil
	})
}
