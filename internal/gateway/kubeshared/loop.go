package kubeshared

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	typedcoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/cache"
)

// Loop is how both controllers run: informers that each kick a sync on
// any change, a sync Debounce after the first change of a burst, level-
// triggered (every sync recomputes everything from the caches), and, with
// a Lease, one elected replica that writes status. Synced closes after
// the first sync.
type Loop struct {
	// Name identifies the election ("flotilla-ingress-status").
	Name string
	// Debounce coalesces bursts of changes (default 100ms).
	Debounce time.Duration
	// Lease, when set, elects the status writer through Leases; without it
	// every replica leads.
	Lease  *Lease
	Leases typedcoordinationv1.LeasesGetter
	Log    *slog.Logger

	initOnce  sync.Once
	trigger   chan struct{}
	firstSync chan struct{}
	syncOnce  sync.Once
	leading   atomic.Bool
}

func (l *Loop) init() {
	l.initOnce.Do(func() {
		l.trigger = make(chan struct{}, 1)
		l.firstSync = make(chan struct{})
		if l.Debounce <= 0 {
			l.Debounce = 100 * time.Millisecond
		}
		if l.Log == nil {
			l.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Kick schedules a sync; bursts coalesce.
func (l *Loop) Kick() {
	l.init()
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// Synced is closed once the first sync has run.
func (l *Loop) Synced() <-chan struct{} {
	l.init()
	return l.firstSync
}

// Leading reports whether this replica writes status.
func (l *Loop) Leading() bool { return l.leading.Load() }

// Run starts infs, waits for their caches, starts the election, then
// calls onSync after every burst of changes until ctx is done; it returns
// once the informers and the election have stopped.
func (l *Loop) Run(ctx context.Context, infs []cache.SharedIndexInformer, onSync func(context.Context)) error {
	l.init()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { l.Kick() },
		UpdateFunc: func(any, any) { l.Kick() },
		DeleteFunc: func(any) { l.Kick() },
	}
	var informers, wg sync.WaitGroup
	defer informers.Wait()
	infCtx, stop := context.WithCancel(ctx)
	defer stop()
	var synced []cache.InformerSynced
	for _, inf := range infs {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
		synced = append(synced, inf.HasSynced)
		informers.Go(func() { inf.RunWithContext(infCtx) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	defer wg.Wait()
	if l.Lease != nil {
		err := Elect(ctx, &wg, l.Leases, l.Lease, l.Name, l.Log, func(lead bool) {
			l.leading.Store(lead)
			if lead {
				l.Kick()
			}
		})
		if err != nil {
			return err
		}
	} else {
		l.leading.Store(true)
	}
	l.Kick()
	timer := time.NewTimer(0)
	<-timer.C
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.trigger:
			// The sync runs Debounce after the first change of a burst,
			// not the last: a stream of changes (one object edited every
			// few milliseconds) cannot hold every sync back.
			if !pending {
				pending = true
				timer.Reset(l.Debounce)
			}
		case <-timer.C:
			pending = false
			onSync(ctx)
			l.syncOnce.Do(func() { close(l.firstSync) })
		}
	}
}

// Reported remembers the problems reported in the last sync, so that
// each is reported (Event, log line) once for as long as it lasts.
type Reported struct {
	mu        sync.Mutex
	prev, cur map[string]map[string]bool
}

// Fresh records problem msg of object key in this sync and reports
// whether the last sync did not have it.
func (r *Reported) Fresh(key, msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		r.cur = map[string]map[string]bool{}
	}
	if r.cur[key] == nil {
		r.cur[key] = map[string]bool{}
	}
	r.cur[key][msg] = true
	return !r.prev[key][msg]
}

// Done ends a sync: its problems are the ones the next compares with.
func (r *Reported) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prev, r.cur = r.cur, nil
}
