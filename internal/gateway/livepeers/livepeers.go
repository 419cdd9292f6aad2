// Package livepeers merges the live view of every gateway replica: each
// replica fetches its peers' own snapshots from their admin API
// (GET /live/snapshot, with the admin token) and shows the merge
// (liveview.Merge: counts and histograms summed, never percentiles
// averaged). On Kubernetes the peers are the endpoints of the gateway's
// own Service (the gateway already watches EndpointSlices: no new
// permission).
//
// The page's one-second tick never waits for a peer: LiveSnapshot merges
// the answers of the last round and asks for a new round in the
// background. A round fetches every peer at once, each bounded by
// Timeout and MaxBytes; a peer that fails, or whose last good answer is
// older than Stale, is listed in Snapshot.Missing and its traffic is left
// out. Rounds run only while someone calls LiveSnapshot (someone
// watches).
package livepeers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

// Peer is another replica of this gateway.
type Peer struct {
	// Name is the replica's name (its pod), shown while it is missing.
	Name string
	// URL is its admin API's base URL, e.g. http://10.244.0.7:9901.
	URL string
}

// Options configure a Merger.
type Options struct {
	// Local returns this replica's own snapshot (required).
	Local func() *liveview.Snapshot
	// Token is the admin token, sent as a bearer token to peers (they
	// share it: one Secret for the Deployment).
	Token []byte
	// Timeout bounds one peer's fetch, connection to last byte (default
	// 800ms: under the page's one-second tick).
	Timeout time.Duration
	// MaxBytes caps one peer's answer (default 8 MiB); a larger one is
	// refused, not truncated.
	MaxBytes int64
	// Stale is how old a peer's last good answer may be and still be
	// merged (default 3s: a round that fails once keeps the last one).
	Stale time.Duration
	// Transport is the HTTP transport to peers (default: a dedicated
	// one, one idle connection per peer).
	Transport http.RoundTripper
	// Logger (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Merger is a liveui.Source: this replica's snapshot merged with its
// peers'. Close stops its fetch loop.
type Merger struct {
	o      Options
	client *http.Client
	kick   chan struct{}
	stop   context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	peers   []Peer
	results map[string]*result // by Peer.URL
}

const minRoundGap = 500 * time.Millisecond

// MaxSkew is how far a peer's snapshot time may be from this replica's
// clock; further, the peer is left out (and listed as missing).
const MaxSkew = 30 * time.Second

type result struct {
	snap   *liveview.Snapshot // last good answer
	at     time.Time          // when it came
	err    error              // the last round's failure (nil: ok)
	warned bool
}

// New returns a Merger and starts its (idle) fetch loop.
func New(o Options) *Merger {
	if o.Timeout <= 0 {
		o.Timeout = 800 * time.Millisecond
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 8 << 20
	}
	if o.Stale <= 0 {
		o.Stale = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Transport == nil {
		o.Transport = &http.Transport{
			Proxy:                  nil, // pod to pod: never through a proxy
			MaxIdleConnsPerHost:    1,
			IdleConnTimeout:        30 * time.Second,
			ResponseHeaderTimeout:  o.Timeout,
			MaxResponseHeaderBytes: 16 << 10,
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Merger{o: o, kick: make(chan struct{}, 1), stop: cancel, done: make(chan struct{}), results: map[string]*result{},
		client: &http.Client{Transport: o.Transport,
			// The token goes to the peer's address only, never where a
			// redirect points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	go m.loop(ctx)
	return m
}

// Close stops the fetch loop and waits for a round in progress.
func (m *Merger) Close() {
	m.stop()
	<-m.done
	m.client.CloseIdleConnections()
}

// SetPeers replaces the peers (this replica left out); answers of peers
// that stay are kept.
func (m *Merger) SetPeers(peers []Peer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers = slices.Clone(peers)
	for u := range m.results {
		if !slices.ContainsFunc(peers, func(p Peer) bool { return p.URL == u }) {
			delete(m.results, u)
		}
	}
}

// LiveSnapshot is this replica's snapshot merged with the last good
// answers of its peers; it does not wait for them, and asks for a new
// round.
func (m *Merger) LiveSnapshot() *liveview.Snapshot {
	select {
	case m.kick <- struct{}{}:
	default:
	}
	local := m.o.Local()
	now := m.o.Now()
	m.mu.Lock()
	snaps := []*liveview.Snapshot{local}
	var missing []liveview.MissingReplica
	for _, p := range m.peers {
		r := m.results[p.URL]
		switch {
		case r == nil:
			missing = append(missing, liveview.MissingReplica{Name: p.Name, Error: "no answer yet"})
		case r.snap != nil && now.Sub(r.at) <= m.o.Stale:
			snaps = append(snaps, r.snap)
		case r.err != nil:
			missing = append(missing, liveview.MissingReplica{Name: p.Name, Error: r.err.Error()})
		default:
			missing = append(missing, liveview.MissingReplica{Name: p.Name, Error: fmt.Sprintf("last answer %s old", now.Sub(r.at).Round(time.Second))})
		}
	}
	m.mu.Unlock()
	if len(snaps) == 1 && len(missing) == 0 {
		return local
	}
	out := liveview.Merge(snaps...)
	out.Missing = missing
	return out
}

func (m *Merger) loop(ctx context.Context) {
	defer close(m.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		}
		start := time.Now()
		m.round(ctx)
		// At most two rounds a second, however often the page is asked.
		if wait := minRoundGap - time.Since(start); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// round fetches every peer at once and records the answers.
func (m *Merger) round(ctx context.Context) {
	m.mu.Lock()
	peers := slices.Clone(m.peers)
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			snap, err := Fetch(ctx, m.client, p.URL, m.o.Token, m.o.Timeout, m.o.MaxBytes)
			if err == nil {
				// Merge aligns histories by time: a peer whose clock is far
				// off would push every other replica's history off the chart.
				if skew := snap.Time.Sub(m.o.Now()); skew > MaxSkew || skew < -MaxSkew {
					err = fmt.Errorf("peer %s: its clock is %s off this one's (more than %s)", p.URL, skew.Round(time.Second), MaxSkew)
					snap = nil
				}
			}
			m.record(p, snap, err)
		})
	}
	wg.Wait()
}

func (m *Merger) record(p Peer, snap *liveview.Snapshot, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.peers, p) {
		return // gone while it was fetched
	}
	r := m.results[p.URL]
	if r == nil {
		r = &result{}
		m.results[p.URL] = r
	}
	r.err = err
	if err == nil {
		r.snap, r.at = snap, m.o.Now()
		if r.warned {
			m.o.Logger.Info("live view peer answers again", slog.String("peer", p.Name))
		}
		r.warned = false
		return
	}
	if !r.warned {
		r.warned = true
		m.o.Logger.Warn("live view peer left out of the merge", slog.String("peer", p.Name), slog.String("url", p.URL), slog.String("error", err.Error()))
	}
}

// Fetch gets one peer's own snapshot from its admin API at base (GET
// base + admin.LiveSnapshotPath with the bearer token), within timeout
// and maxBytes, and checks it (liveview.Snapshot.Check). Errors name the
// peer's URL and never contain the token.
func Fetch(ctx context.Context, client *http.Client, base string, token []byte, timeout time.Duration, maxBytes int64) (*liveview.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := strings.TrimRight(base, "/") + admin.LiveSnapshotPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", base, err)
	}
	if token != nil {
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return nil, fmt.Errorf("peer %s: no answer within %s", u, timeout)
		}
		return nil, fmt.Errorf("peer %s: %w", u, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("peer %s: %s", u, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("peer %s: Content-Type %q, want application/json", u, resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength > maxBytes {
		return nil, fmt.Errorf("peer %s: answer of %d bytes, larger than %d", u, resp.ContentLength, maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("peer %s: answer not complete within %s", u, timeout)
		}
		return nil, fmt.Errorf("peer %s: reading the answer: %w", u, err)
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("peer %s: answer larger than %d bytes", u, maxBytes)
	}
	var s liveview.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("peer %s: not a live view snapshot: %w", u, err)
	}
	if err := s.Check(); err != nil {
		return nil, fmt.Errorf("peer %s: snapshot: %w", u, err)
	}
	return &s, nil
}
