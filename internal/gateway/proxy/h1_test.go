package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type countingRT struct {
	n  atomic.Int64
	rt http.RoundTripper
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

func h1Server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func get(t *testing.T, tr http.RoundTripper, ctx context.Context, url string, body io.Reader) (string, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, body)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b), err
}

func TestH1ReusesAndRecovers(t *testing.T) {
	srv, conns := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	})
	fallback := &countingRT{rt: http.DefaultTransport}
	tr := &H1{Fallback: fallback}
	defer tr.CloseIdleConnections()
	ctx := context.Background()
	for i := range 3 {
		if got, err := get(t, tr, ctx, srv.URL+"/a", nil); err != nil || got != "200 OK /a" {
			t.Fatalf("request %d = %q, %v", i, got, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("3 sequential requests used %d connections, want 1 (keep-alive)", n)
	}
	// The server drops its idle connections: the next request meets a
	// stale one and must go again on a new connection.
	srv.CloseClientConnections()
	if got, err := get(t, tr, ctx, srv.URL+"/b", nil); err != nil || got != "200 OK /b" {
		t.Fatalf("after the server closed idle connections: %q, %v", got, err)
	}
	if got, err := get(t, tr, ctx, srv.URL+"/c", strings.NewReader("body")); err != nil || got != "200 OK /c" || fallback.n.Load() != 1 {
		t.Errorf("request with a body = %q, %v, fallback used %d times; want it sent by the fallback", got, err, fallback.n.Load())
	}
}

func TestH1EarlyCloseDropsConnection(t *testing.T) {
	srv, conns := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 100<<10))
	})
	tr := &H1{Fallback: http.DefaultTransport}
	defer tr.CloseIdleConnections()
	for range 2 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 10))
		resp.Body.Close() // unread rest: the connection cannot be reused
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("connections = %d, want 2: a half-read body must not go back to the pool", n)
	}
}

func TestH1CancelUnblocks(t *testing.T) {
	release := make(chan struct{})
	srv, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	defer close(release)
	tr := &H1{Fallback: http.DefaultTransport}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(20*time.Millisecond, func() { cancel(ErrTimeout) })
	_, err := get(t, tr, ctx, srv.URL, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("RoundTrip() after cancel = %v, want the context's cause", err)
	}
}

func TestH1DialError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := &H1{Fallback: http.DefaultTransport}
	_, err := get(t, tr, context.Background(), "http://"+addr, nil)
	if !notSent(err) {
		t.Errorf("RoundTrip(closed port) = %v, want a dial error", err)
	}
}

func TestH1SweepsExpiredIdle(t *testing.T) {
	tr := &H1{IdleTimeout: time.Minute}
	now := time.Now()
	a, b := net.Pipe()
	defer b.Close()
	tr.idle = map[string][]*h1Conn{"gone:80": {{Conn: a, idleAt: now.Add(-2 * time.Minute)}}, "live:80": {{Conn: a, idleAt: now}}}
	drop := tr.sweepLocked(now)
	if len(drop) != 1 || len(tr.idle) != 1 || tr.idle["live:80"] == nil {
		t.Errorf("sweep dropped %d, kept %v; want the expired one dropped and its address forgotten", len(drop), tr.idle)
	}
}

// closeWithin fails the test when Close does not return within d.
func closeWithin(t *testing.T, c io.Closer, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		c.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("Close() still blocked after %v", d)
	}
}

// endless streams until the client goes away or stop is called.
func endless() (h http.HandlerFunc, stop func()) {
	stopped := make(chan struct{})
	return func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 4<<10))
		rc := http.NewResponseController(w)
		for r.Context().Err() == nil {
			select {
			case <-stopped:
				return
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
			rc.Flush()
		}
	}, func() { close(stopped) }
}

func TestH1CloseHalfReadEndlessBody(t *testing.T) {
	h, stop := endless()
	defer stop() // before the server's Cleanup, which waits for handlers
	srv, _ := h1Server(t, h)
	tr := &H1{Fallback: http.DefaultTransport}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	// Closing must not read the rest of an endless stream.
	closeWithin(t, resp.Body, 5*time.Second)
}

func TestH1ManyStaleIdleConnections(t *testing.T) {
	const n = 8
	var arrivedN atomic.Int64
	all := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fill" && arrivedN.Add(1) == n {
			close(all)
		}
		if r.URL.Path == "/fill" {
			<-all // hold each request so that n connections open
		}
		io.WriteString(w, r.URL.Path)
	}))
	var closed atomic.Int64
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &H1{Fallback: http.DefaultTransport}
	defer tr.CloseIdleConnections()
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := get(t, tr, context.Background(), srv.URL+"/fill", nil)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the server to close all n idle connections.
	deadline := time.Now().Add(10 * time.Second)
	for closed.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("server closed %d of %d idle connections", closed.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := get(t, tr, context.Background(), srv.URL+"/after", nil); err != nil || got != "200 OK /after" {
		t.Fatalf("GET after %d pooled connections went stale = %q, %v", n, got, err)
	}
}

// TestH1NeverResendsWrittenRequest: the upstream reads a GET on a reused
// keep-alive connection and closes it without answering. The GET may
// have been acted on (a counter's visit): H1 returns the error and does
// not send it again, unlike net/http's Transport, which retries an
// idempotent request after EOF on a reused connection.
func TestH1NeverResendsWrittenRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var requests atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			for {
				if _, err := http.ReadRequest(br); err != nil {
					break
				}
				if requests.Add(1) >= 2 {
					break // read, acted on, never answered
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
			c.Close()
		}
	}()
	tr := &H1{Fallback: http.DefaultTransport}
	defer tr.CloseIdleConnections()
	url := "http://" + ln.Addr().String() + "/"
	if got, err := get(t, tr, context.Background(), url, nil); err != nil || got != "200 OK ok" {
		t.Fatalf("first GET = %q, %v", got, err)
	}
	_, err = get(t, tr, context.Background(), url, nil)
	if err == nil || notSent(err) {
		t.Errorf("GET cut after it was written: error %v, want a failure that is not ErrNotSent", err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("upstream read %d requests, want 2: the cut GET was sent again", n)
	}
	ln.Close()
	<-done
}

// TestH1RedialsBeforeWritingToClosedConn: an idle connection the
// upstream closed is found out before the request is written to it, so
// the request goes on a new connection without having been sent twice.
func TestH1RedialsBeforeWritingToClosedConn(t *testing.T) {
	var requests atomic.Int64
	srv, conns := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.WriteString(w, "ok")
	})
	tr := &H1{Fallback: http.DefaultTransport}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		if got, err := get(t, tr, context.Background(), srv.URL, nil); err != nil || got != "200 OK ok" {
			t.Fatalf("GET %d = %q, %v", i, got, err)
		}
		srv.CloseClientConnections() // the keep-alive timeout passes
	}
	if r, c := requests.Load(), conns.Load(); r != 3 || c != 3 {
		t.Errorf("3 GETs = %d requests on %d connections, want 3 on 3", r, c)
	}
}

// TestH1UpgradeUsesItsOwnTransport: a bodiless request with Upgrade goes
// to Upgrade (a transport without keep-alives), never to a pooled
// connection net/http could resend it on.
func TestH1UpgradeUsesItsOwnTransport(t *testing.T) {
	srv, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	fallback, upgrade := &countingRT{rt: http.DefaultTransport}, &countingRT{rt: &http.Transport{DisableKeepAlives: true}}
	tr := &H1{Fallback: fallback, Upgrade: upgrade}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if upgrade.n.Load() != 1 || fallback.n.Load() != 0 {
		t.Errorf("Upgrade request: upgrade transport %d, fallback %d; want 1, 0", upgrade.n.Load(), fallback.n.Load())
	}
}
