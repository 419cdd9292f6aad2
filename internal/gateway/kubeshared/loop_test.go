package kubeshared

import (
	"context"
	"testing"
	"time"
)

// TestReported: a problem is fresh in the first sync that has it, not in
// the syncs after while it lasts, and fresh again once it went and came
// back; problems of other objects are apart.
func TestReported(t *testing.T) {
	var r Reported
	steps := []struct {
		problems [][2]string
		fresh    []bool
	}{
		{[][2]string{{"a", "x"}, {"b", "x"}}, []bool{true, true}},
		{[][2]string{{"a", "x"}, {"b", "x"}}, []bool{false, false}},
		{[][2]string{{"a", "x"}, {"a", "y"}}, []bool{false, true}},
		{nil, nil},
		{[][2]string{{"a", "x"}}, []bool{true}},
	}
	for i, s := range steps {
		for j, p := range s.problems {
			if got := r.Fresh(p[0], p[1]); got != s.fresh[j] {
				t.Errorf("sync %d: Fresh(%q, %q) = %v, want %v", i, p[0], p[1], got, s.fresh[j])
			}
		}
		r.Done()
	}
}

// TestLoopSyncsUnderAStreamOfChanges: changes arriving faster than the
// debounce never hold the sync back: it runs while they keep coming.
func TestLoopSyncsUnderAStreamOfChanges(t *testing.T) {
	l := &Loop{Debounce: 50 * time.Millisecond}
	synced := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, nil, func(context.Context) { synced <- struct{}{} }) }()
	<-l.Synced()
	stop := time.After(10 * time.Second)
	n := 0
	for n < 3 {
		select {
		case <-synced:
			n++
		case <-stop:
			t.Fatalf("%d syncs in 10 s of changes every 5 ms, want 3 or more", n)
		case <-time.After(5 * time.Millisecond):
			l.Kick()
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
