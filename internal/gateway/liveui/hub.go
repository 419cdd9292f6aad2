package liveui

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// hub pushes one encoded snapshot a second to every viewer: the snapshot
// is built and encoded once per tick, whatever the number of viewers, and
// the loop runs only while someone watches.
type hub struct {
	src      Source
	max      int
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	viewers map[chan []byte]struct{}
	running bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newHub(src Source, max int, interval time.Duration, log *slog.Logger) *hub {
	return &hub{src: src, max: max, interval: interval, log: log, viewers: map[chan []byte]struct{}{}, stop: make(chan struct{})}
}

var errTooManyViewers = errors.New("too many live view viewers; try again later")

// join adds a viewer: its channel gets every new snapshot, the latest
// replacing one it has not read yet.
func (h *hub) join() (chan []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("live view closed")
	}
	if len(h.viewers) >= h.max {
		return nil, errTooManyViewers
	}
	ch := make(chan []byte, 1)
	h.viewers[ch] = struct{}{}
	if !h.running {
		h.running = true
		h.wg.Add(1)
		go h.run()
	}
	return ch, nil
}

func (h *hub) leave(ch chan []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.viewers, ch)
}

func (h *hub) run() {
	defer h.wg.Done()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		if len(h.viewers) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		b, err := encode(h.src)
		if err != nil {
			h.log.Error("live view snapshot", slog.String("error", err.Error()))
			continue
		}
		h.mu.Lock()
		for ch := range h.viewers {
			select { // drop the unread one: a slow viewer gets the latest
			case <-ch:
			default:
			}
			ch <- b
		}
		h.mu.Unlock()
	}
}

func (h *hub) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// encode is one server-sent event carrying the snapshot.
func encode(src Source) ([]byte, error) {
	b, err := json.Marshal(src.LiveSnapshot())
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+24)
	out = append(out, "event: snapshot\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...), nil
}

// events serves GET /ui/events: the snapshot now, then every second,
// each write bounded by WriteTimeout, until the client goes, the live
// view closes, or the session expires.
func (u *UI) events(w http.ResponseWriter, r *http.Request) {
	if !u.viewer(w, r) {
		return
	}
	ch, err := u.hub.join()
	if err != nil {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer u.hub.leave(ch)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(u.o.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	first, err := encode(u.o.Source)
	if err != nil || !write(append([]byte("retry: 2000\n"), first...)) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-u.hub.stop:
			return
		case b := <-ch:
			if s, _ := u.current(r); s == nil {
				write([]byte("event: logout\ndata: {}\n\n"))
				return
			}
			if !write(b) {
				return
			}
		}
	}
}
