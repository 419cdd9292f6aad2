package h1

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// closedBy reads c until the server closes it (or the 5s deadline) and
// reports whether the server closed it, and what it sent.
func closedBy(c net.Conn) (closed bool, got string) {
	b, err := io.ReadAll(c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout()), string(b)
}

// TestFirstByteTimeout: a connection that sends nothing is closed after
// FirstByteTimeout, not after the (long) IdleTimeout.
func TestFirstByteTimeout(t *testing.T) {
	addr := serve(t, &Server{Handler: echo, FirstByteTimeout: 100 * time.Millisecond, IdleTimeout: time.Hour})
	c := dial(t, addr)
	if closed, got := closedBy(c); !closed || got != "" {
		t.Errorf("silent connection: closed=%v, sent %q; want closed without a word", closed, got)
	}
}

// TestHeaderTimeoutFromAccept: a client trickling its header, a byte at a
// time well within any progress timeout, is cut ReadHeaderTimeout after
// accept: its request is never answered.
func TestHeaderTimeoutFromAccept(t *testing.T) {
	addr := serve(t, &Server{Handler: echo, ReadHeaderTimeout: 300 * time.Millisecond})
	c := dial(t, addr)
	raw := "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("x", 100) + "\r\n\r\n"
	var werr error
	for i := 0; i < len(raw) && werr == nil; i++ {
		_, werr = c.Write([]byte{raw[i]})
		time.Sleep(20 * time.Millisecond) // 2s for the whole header
	}
	if closed, got := closedBy(c); !closed || strings.Contains(got, "200 OK") {
		t.Errorf("trickled header: closed=%v, sent %q; want closed, not served", closed, got)
	}
}

// TestMaxRequestsPerConn: the last allowed response says Connection:
// close and the connection ends there.
func TestMaxRequestsPerConn(t *testing.T) {
	addr := serve(t, &Server{Handler: echo, MaxRequestsPerConn: 2})
	c := dial(t, addr)
	io.WriteString(c, strings.Repeat("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 3))
	br := bufio.NewReader(c)
	for i, wantClose := range []bool{false, true} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.Close != wantClose {
			t.Errorf("response %d: Connection close = %v, want %v", i, resp.Close, wantClose)
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Errorf("after the last allowed request the server sent %q", rest)
	}
}

// TestMinBodyRate: a body trickled a byte per 50ms (20 B/s) makes
// progress well within ReadTimeout, but is under MinBodyRate: the
// handler's read fails, the connection closes.
func TestMinBodyRate(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serve(t, &Server{
		ReadTimeout: time.Hour, MinBodyRate: 1000, RateWindow: 200 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			readErr <- err
		}),
	})
	c := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
	go func() {
		for range 100 {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if err := <-readErr; !errors.Is(err, errTooSlow) {
		t.Errorf("trickled body read = %v, want %v", err, errTooSlow)
	}
	if closed, _ := closedBy(c); !closed {
		t.Error("the connection stayed open")
	}
}

// TestMinBodyRateDiscountsHandlerTime: time the handler spends between
// reads (an upstream slow to take the body) is not held against the
// client.
func TestMinBodyRateDiscountsHandlerTime(t *testing.T) {
	addr := serve(t, &Server{
		ReadTimeout: time.Hour, MinBodyRate: 1000, RateWindow: 100 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 10)
			var n int
			for {
				m, err := r.Body.Read(buf)
				n += m
				if err == io.EOF {
					break
				}
				if err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				time.Sleep(150 * time.Millisecond) // more than a window
			}
			io.WriteString(w, "read all")
		}),
	})
	resp, body := exchange(t, addr, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n"+strings.Repeat("x", 40))
	if resp.StatusCode != 200 {
		t.Errorf("got %d %q, want 200", resp.StatusCode, body)
	}
}

// TestMinResponseRate: a client that takes nothing fails the handler's
// writes once a window passes under MinResponseRate, long before the
// (progress) WriteTimeout.
func TestMinResponseRate(t *testing.T) {
	writeErr := make(chan error, 1)
	addr := serve(t, &Server{
		WriteTimeout: time.Hour, MinResponseRate: 1 << 30, RateWindow: 200 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, 64<<10)
			for {
				if _, err := w.Write(buf); err != nil {
					writeErr <- err
					return
				}
			}
		}),
	})
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") // and never read
	select {
	case err := <-writeErr:
		if !errors.Is(err, errTooSlow) {
			t.Errorf("write to a client that reads nothing = %v, want %v", err, errTooSlow)
		}
	case <-time.After(10 * time.Second):
		t.Error("write to a client that reads nothing still blocked after 10s")
	}
}

// dialFrom connects from a given local IP (any 127/8 address works on
// loopback); it returns nil when the dial fails.
func dialFrom(t testing.TB, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// served sends a GET on c and reports whether it was answered 200.
func served(c net.Conn) bool {
	if c == nil {
		return false
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == 200
}

// TestConnectionCaps: connections over MaxConnsPerIP from one address,
// and over MaxConns in all, are closed at accept and counted; other
// addresses are still served under the global cap, and a freed slot is
// taken again.
func TestConnectionCaps(t *testing.T) {
	s := &Server{Handler: echo, MaxConns: 4, MaxConnsPerIP: 2, Logger: slog.New(slog.DiscardHandler)}
	addr := serve(t, s)
	a1, a2 := dialFrom(t, "127.0.0.1", addr), dialFrom(t, "127.0.0.1", addr)
	if !served(a1) || !served(a2) {
		t.Fatal("the first two connections from 127.0.0.1 were not served")
	}
	if served(dialFrom(t, "127.0.0.1", addr)) {
		t.Error("a third connection from 127.0.0.1 was served, want refused (MaxConnsPerIP 2)")
	}
	b1, b2 := dialFrom(t, "127.0.0.2", addr), dialFrom(t, "127.0.0.2", addr)
	if !served(b1) || !served(b2) {
		t.Fatal("connections from 127.0.0.2 were not served")
	}
	if served(dialFrom(t, "127.0.0.3", addr)) {
		t.Error("a fifth connection was served, want refused (MaxConns 4)")
	}
	if total, perIP := s.Refused(); total != 1 || perIP != 1 {
		t.Errorf("Refused() = %d, %d; want 1, 1", total, perIP)
	}
	a1.Close()
	ok := false
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
		ok = served(dialFrom(t, "127.0.0.1", addr))
	}
	if !ok {
		t.Error("after one connection closed, a new one was never served")
	}
}

// TestHostileClients: with the default caps, 2000 clients trickling
// their headers and 2000 idle ones, all from one address: the excess is
// refused at accept (the per-address cap), and a client from another
// address is served normally all along.
func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 4000 connections")
	}
	s := &Server{Handler: echo, Logger: slog.New(slog.DiscardHandler)}
	addr := serve(t, s)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	var conns []net.Conn
	sem := make(chan struct{}, 200)
	for i := range 4000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second}
			c, err := d.Dial("tcp", addr)
			<-sem
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if i%2 == 1 {
				return // idle
			}
			for _, b := range []byte("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}()
	// While they are at it, a normal client is served.
	for i := range 20 {
		if !served(dialFrom(t, "127.0.0.2", addr)) {
			t.Fatalf("normal request %d not served", i)
		}
	}
	// Every connection is either open on the server or was refused.
	var total, perIP uint64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if total, perIP = s.Refused(); total+perIP >= 4000-1024 {
			break
		}
	}
	if total+perIP < 4000-1024 {
		t.Errorf("refused %d + %d connections, want at least %d (all over MaxConnsPerIP 1024)", total, perIP, 4000-1024)
	}
	s.mu.Lock()
	open, fromOne := len(s.conns), s.perIP[ipv4(127, 0, 0, 1)]
	s.mu.Unlock()
	if fromOne > 1024 || open > 4096 {
		t.Errorf("%d connections open, %d from 127.0.0.1; want at most 4096 and 1024", open, fromOne)
	}
	if !served(dialFrom(t, "127.0.0.2", addr)) {
		t.Error("a normal request after the flood was not served")
	}
}

func ipv4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }
