package liveview

import (
	"errors"
	"fmt"
)

// Limits of a snapshot received from a peer replica (Check).
const (
	// MaxPeerServices, MaxPeerVersions and MaxPeerInstances bound what
	// one peer's snapshot may list, so a merge costs what the local
	// snapshot would.
	MaxPeerServices  = 1024
	MaxPeerVersions  = MaxSeries * 4
	MaxPeerInstances = 4096
	// MaxPeerEvents bounds a peer's timeline (its own keeps
	// DefaultMaxEvents unless configured otherwise).
	MaxPeerEvents = 1000
)

// Check validates a snapshot decoded from a peer replica before it is
// merged: one replica named, a window and histories of this version's
// shape, and lists within bounds. The error names the first problem and
// where it is.
func (s *Snapshot) Check() error {
	if len(s.Replicas) != 1 || s.Replicas[0] == "" || len(s.Replicas[0]) > 253 {
		return fmt.Errorf("replicas: want one replica's name, got %d names", len(s.Replicas))
	}
	if s.Time.IsZero() {
		return errors.New("time: missing")
	}
	if s.WindowSeconds < 1 || s.WindowSeconds > HistoryLen {
		return fmt.Errorf("windowSeconds: want 1..%d, got %d", HistoryLen, s.WindowSeconds)
	}
	if len(s.Missing) > 0 {
		return errors.New("missing: a peer's own snapshot merges nobody")
	}
	if len(s.Services) > MaxPeerServices {
		return fmt.Errorf("services: %d, want at most %d", len(s.Services), MaxPeerServices)
	}
	if len(s.Events) > MaxPeerEvents {
		return fmt.Errorf("events: %d, want at most %d", len(s.Events), MaxPeerEvents)
	}
	instances := 0
	for i, svc := range s.Services {
		if len(svc.Versions) > MaxPeerVersions {
			return fmt.Errorf("services[%d].versions: %d, want at most %d", i, len(svc.Versions), MaxPeerVersions)
		}
		for j, v := range svc.Versions {
			where := fmt.Sprintf("services[%d].versions[%d]", i, j)
			if err := v.Stats.check(where + ".stats"); err != nil {
				return err
			}
			instances += len(v.Instances)
			if instances > MaxPeerInstances {
				return fmt.Errorf("%s.instances: more than %d in all", where, MaxPeerInstances)
			}
			for k := range v.Instances {
				if err := v.Instances[k].Stats.check(fmt.Sprintf("%s.instances[%d].stats", where, k)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (st *Stats) check(where string) error {
	h := st.History
	if len(h.N) > HistoryLen || len(h.Errors) > HistoryLen {
		return fmt.Errorf("%s.history: %d seconds, want at most %d", where, max(len(h.N), len(h.Errors)), HistoryLen)
	}
	if len(h.N) != len(h.Errors) {
		return fmt.Errorf("%s.history: %d counts and %d error counts, want as many", where, len(h.N), len(h.Errors))
	}
	if st.Errors > st.Requests || st.TotalErrors > st.Total {
		return fmt.Errorf("%s: more errors than requests", where)
	}
	return nil
}
