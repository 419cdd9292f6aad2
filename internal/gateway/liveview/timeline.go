package liveview

import (
	"sync"
	"time"
)

// Event kinds. Other packages may add their own (Kubernetes: "rollout",
// "pod-ready", "pod-terminating"); the page shows any kind as text.
const (
	KindReload          = "reload"
	KindReloadFailed    = "reload-failed"
	KindWeights         = "weights"
	KindPaused          = "paused"
	KindResumed         = "resumed"
	KindEndpointAdded   = "endpoint-added"
	KindEndpointRemoved = "endpoint-removed"
	KindEjected         = "ejected"
	KindRecovered       = "recovered"
	KindUnhealthy       = "unhealthy"
	KindHealthy         = "healthy"
	KindDraining        = "draining"
)

// Event is one line of the timeline.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is one of the Kind constants or another package's own.
	Kind string `json:"kind"`
	// Service, Backend and Instance say what it is about, when it is
	// about one (route name, backend name, endpoint address).
	Service  string `json:"service,omitempty"`
	Backend  string `json:"backend,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Message is a sentence for people.
	Message string `json:"message"`
	// Replica is the gateway replica that saw it (set by Merge when
	// empty).
	Replica string `json:"replica,omitempty"`
}

// DefaultMaxEvents is the timeline's default length.
const DefaultMaxEvents = 200

// Timeline keeps the last events in a ring. Safe for concurrent use.
type Timeline struct {
	mu   sync.Mutex
	ring []Event
	next int
	full bool
}

// NewTimeline returns a timeline of max events (DefaultMaxEvents when
// max ≤ 0).
func NewTimeline(max int) *Timeline {
	if max <= 0 {
		max = DefaultMaxEvents
	}
	return &Timeline{ring: make([]Event, max)}
}

// Add appends e, dropping the oldest event when full. A zero Time is now.
func (t *Timeline) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring[t.next] = e
	t.next = (t.next + 1) % len(t.ring)
	if t.next == 0 {
		t.full = true
	}
}

// List returns the events, oldest first.
func (t *Timeline) List() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]Event(nil), t.ring[:t.next]...)
	}
	return append(append([]Event(nil), t.ring[t.next:]...), t.ring[:t.next]...)
}
