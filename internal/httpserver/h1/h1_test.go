package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts s (its Handler set) on loopback and returns its address.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve() = %v, want ErrServerClosed", err)
		}
		// Connection goroutines end when their connection does.
		deadline := time.Now().Add(5 * time.Second)
		for s.closeIdle(); !s.closeIdle() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	})
	return ln.Addr().String()
}

// echo answers with what it read: method, path, host and body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s host=%s body=%s", r.Method, r.URL.RequestURI(), r.Host, b)
})

// dial connects to addr with a 5s deadline; the connection closes when
// the test ends.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// exchange writes raw on a new connection and reads one response.
func exchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %.80q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestMalformedRequests: each malformed request gets the status net/http
// gives it (or, where h1 is stricter, the one in std), a body that names
// the problem, and the server goes on serving. The same bytes are sent
// to net/http's server for comparison; strict_test.go has the rules
// where h1 refuses what net/http accepts.
func TestMalformedRequests(t *testing.T) {
	addr := serve(t, &Server{Handler: echo, MaxHeaderBytes: 1 << 10})
	std := httptest.NewUnstartedServer(echo)
	std.Config.MaxHeaderBytes = 1 << 10
	std.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	std.Start()
	defer std.Close()
	stdAddr := std.Listener.Addr().String()

	tests := []struct {
		name, raw string
		code      int
		says      string
		std       int // net/http's status when it differs
	}{
		{"garbage", "GARBAGE\r\n\r\n", 400, "malformed HTTP request", 0},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400, "missing required Host header", 0},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400, "too many Host headers", 0},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "malformed Host header", 0},
		{"space in a header name", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400, "invalid header name", 0},
		{"control byte in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400, "invalid character in header value", 0},
		{"HTTP/2 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported protocol version", 0},
		{"bad version", "GET / HTTP/x\r\nHost: a\r\n\r\n", 400, "malformed HTTP version", 0},
		{"headers over the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431, "Request Header Fields Too Large", 0},
		{"unknown transfer encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "chunked not the final transfer coding", 501},
		{"unsupported transfer encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported transfer encoding", 0},
		{"negative length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "bad Content-Length", 0},
		{"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "Content-Length", 0},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", 417, "", 0},
		{"bad chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "body: ", 0},
		{"bad URL", "GET http://[::1 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "parse: missing ']' in host", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := exchange(t, addr, tt.raw)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.says) {
				t.Errorf("got %d %q, want %d naming %q", resp.StatusCode, body, tt.code, tt.says)
			}
			want := tt.std
			if want == 0 {
				want = resp.StatusCode
			}
			if stdResp, _ := exchange(t, stdAddr, tt.raw); stdResp.StatusCode != want {
				t.Errorf("net/http answers %d, want %d", stdResp.StatusCode, want)
			}
			if resp, body := exchange(t, addr, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
				t.Errorf("a good request after it = %d %q, want 200", resp.StatusCode, body)
			}
		})
	}
}

// TestResponses: what a handler writes reaches a real client framed as
// net/http frames it.
func TestResponses(t *testing.T) {
	big := strings.Repeat("x", 10<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	mux.HandleFunc("/sized", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "sized")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
			t.Errorf("Write after 204 = %v, want ErrBodyNotAllowed", err)
		}
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(200)
		io.WriteString(w, big)
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/over", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		if _, err := io.WriteString(w, "abc"); !errors.Is(err, http.ErrContentLength) {
			t.Errorf("writing 3 bytes with Content-Length 2 = %v, want ErrContentLength", err)
		}
		io.WriteString(w, "ab")
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	var accepted atomic.Int32
	s := &Server{Handler: mux}
	addr := serve(t, s)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
		accepted.Add(1)
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}}}
	defer client.CloseIdleConnections()

	tests := []struct {
		method, path, body string
		code               int
		length             int64
		chunked            bool
	}{
		{"GET", "/small", "hello", 200, 5, false},
		{"GET", "/empty", "", 200, 0, false},
		{"GET", "/big", big, 200, -1, true},
		{"GET", "/sized", "sized", 200, 5, false},
		{"HEAD", "/sized", "", 200, 5, false},
		{"GET", "/nocontent", "", 204, 0, false},
		{"GET", "/over", "ab", 200, 2, false},
		{"GET", "/hints", "final", 200, 5, false},
		{"GET", "/nowhere", "404 page not found\n", 404, 19, false},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		chunked := len(resp.TransferEncoding) > 0
		if err != nil || resp.StatusCode != tt.code || string(b) != tt.body || resp.ContentLength != tt.length || chunked != tt.chunked {
			t.Errorf("%s %s = %d, %d bytes, Content-Length %d, chunked %v, err %v; want %d, %d bytes, %d, %v",
				tt.method, tt.path, resp.StatusCode, len(b), resp.ContentLength, chunked, err, tt.code, len(tt.body), tt.length, tt.chunked)
		}
		if resp.Header.Get("Date") == "" {
			t.Errorf("%s %s: no Date header", tt.method, tt.path)
		}
	}
	resp, err := client.Get("http://" + addr + "/trailer")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("trailer X-Sum = %q, want 42", got)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections for %d sequential requests, want 1 (keep-alive)", n, len(tests)+1)
	}
}

// TestPipelining: requests sent back to back on one connection are
// answered in order.
func TestPipelining(t *testing.T) {
	addr := serve(t, &Server{Handler: echo})
	c := dial(t, addr)
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"GET /1 host=a body=", "POST /2 host=a body=abc", "GET /3 host=a body="} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the response for %q: %v", want, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Errorf("pipelined response = %q, want %q", b, want)
		}
	}
}

// TestConnectionLifetime: HTTP/1.0 and Connection: close end the
// connection after the response; HTTP/1.0 keep-alive keeps it.
func TestConnectionLifetime(t *testing.T) {
	addr := serve(t, &Server{Handler: echo})
	// http.ReadResponse turns Connection: close into resp.Close.
	tests := []struct {
		name, raw, header string
		open              bool
	}{
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", "", false},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "keep-alive", true},
		{"HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "", false},
		{"HTTP/1.1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "", true},
	}
	for _, tt := range tests {
		c := dial(t, addr)
		io.WriteString(c, tt.raw)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		io.ReadAll(resp.Body)
		if got := resp.Header.Get("Connection"); got != tt.header || resp.Close == tt.open {
			t.Errorf("%s: Connection = %q, close %v; want %q, close %v", tt.name, got, resp.Close, tt.header, !tt.open)
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err = br.ReadByte()
		var ne net.Error
		open := errors.As(err, &ne) && ne.Timeout()
		if open != tt.open {
			t.Errorf("%s: connection open after the response = %v (read: %v), want %v", tt.name, open, err, tt.open)
		}
		c.Close()
	}
}

// TestExpectContinue: the client that waits for 100 Continue gets it
// when the handler reads the body, and not when the handler answers
// without reading it (then the connection closes).
func TestExpectContinue(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/echo", echo)
	mux.HandleFunc("/deny", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	addr := serve(t, &Server{Handler: mux})
	for _, tt := range []struct {
		path      string
		continues bool
		code      int
	}{{"/echo", true, 200}, {"/deny", false, 403}} {
		c := dial(t, addr)
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", tt.path)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.StatusCode == 100; got != tt.continues {
			t.Errorf("%s: first response %d, want 100 Continue: %v", tt.path, resp.StatusCode, tt.continues)
		}
		if tt.continues {
			io.WriteString(c, "hello")
			if resp, err = http.ReadResponse(br, nil); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.code || tt.continues && string(b) != "POST /echo host=a body=hello" {
			t.Errorf("%s: final response %d %q", tt.path, resp.StatusCode, b)
		}
		c.Close()
	}
}

// TestUnreadBody: a body the handler leaves is drained when small (the
// connection is reused) and closes the connection when large, without
// losing the response.
func TestUnreadBody(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ignored") })})
	for _, tt := range []struct {
		size int
		open bool
	}{{1000, true}, {4 << 20, false}} {
		c := dial(t, addr)
		go func() {
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", tt.size)
			c.Write(make([]byte, tt.size))
		}()
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%d-byte unread body: %v", tt.size, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "ignored" {
			t.Errorf("%d-byte unread body: response %q", tt.size, b)
		}
		if open := !resp.Close; open != tt.open {
			t.Errorf("%d-byte unread body: connection kept = %v, want %v", tt.size, open, tt.open)
		}
		c.Close()
	}
}

// TestClientGone: a client that closes its connection cancels the
// request's context with ErrClientGone.
func TestClientGone(t *testing.T) {
	cause := make(chan error, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cause <- context.Cause(r.Context())
		case <-time.After(5 * time.Second):
			cause <- errors.New("not cancelled within 5s")
		}
	})})
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	c.Close()
	if err := <-cause; !errors.Is(err, ErrClientGone) {
		t.Errorf("context cause = %v, want ErrClientGone", err)
	}
}

// TestStreaming: a flushed write reaches the client while the handler is
// still running.
func TestStreaming(t *testing.T) {
	release := make(chan struct{})
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "second\n")
	})})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); line != "first\n" {
		t.Errorf("first line = %q, %v", line, err)
	}
	close(release)
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Errorf("rest = %q", rest)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestHijack: a handler takes the connection over (protocol upgrade).
func TestHijack(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})})
	c := dial(t, addr)
	// The upgraded protocol's first bytes come with the request.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade = %v, %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "echo: ping\n" {
		t.Errorf("after the upgrade = %q, want \"echo: ping\\n\"", line)
	}
}

// TestPanic: a panicking handler closes its connection, not the server.
func TestPanic(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "fine")
	}), Logger: slog.New(slog.DiscardHandler)})
	if _, err := http.Get("http://" + addr + "/panic"); err == nil {
		t.Error("GET /panic succeeded, want the connection closed")
	}
	resp, body := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 200 || body != "fine" {
		t.Errorf("after a panic: %d %q", resp.StatusCode, body)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestTimeouts: a client that stalls in its headers, stays idle, or does
// not read its response is cut off within the bounds.
func TestTimeouts(t *testing.T) {
	writeErr := make(chan error, 1)
	s := &Server{
		ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/flood" {
				return
			}
			buf := make([]byte, 64<<10)
			for {
				if _, err := w.Write(buf); err != nil {
					writeErr <- err
					return
				}
			}
		}),
	}
	addr := serve(t, s)
	closedWithin := func(name, raw string, bound time.Duration) {
		t.Helper()
		c := dial(t, addr)
		io.WriteString(c, raw)
		start := time.Now()
		c.SetReadDeadline(start.Add(5 * time.Second))
		io.Copy(io.Discard, c)
		if d := time.Since(start); d > bound {
			t.Errorf("%s: closed after %v, want within %v", name, d, bound)
		}
	}
	closedWithin("half a header", "GET / HTTP/1.1\r\nHost: a\r\nX-Slow:", time.Second)
	closedWithin("idle after a response", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", time.Second)

	c := dial(t, addr)
	io.WriteString(c, "GET /flood HTTP/1.1\r\nHost: a\r\n\r\n") // and never read
	select {
	case err := <-writeErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("write to a client that reads nothing = %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("write to a client that reads nothing still blocked after 5s")
	}
}

// TestShutdown: in-flight requests finish (told to close), idle
// connections close, Serve returns ErrServerClosed.
func TestShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	// An idle keep-alive connection: one request answered.
	idle := dial(t, addr)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idleBr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBr, nil); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(resp.Body)
	}
	type result struct {
		resp *http.Response
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- result{resp, string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	close(release)
	r := <-slow
	if r.err != nil || r.body != "done" || !r.resp.Close {
		t.Errorf("in-flight request during shutdown = %v %q, err %v; want done with Connection: close", r.resp, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	idle.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := idleBr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection after shutdown: read = %v, want EOF", err)
	}
}

// A request that runs longer than ReadHeaderTimeout, its client still
// connected, is not cancelled (the watch must not inherit the header
// deadline).
func TestLongRequestNotCancelled(t *testing.T) {
	cause := make(chan error, 1)
	addr := serve(t, &Server{ReadHeaderTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cause <- context.Cause(r.Context())
		case <-time.After(time.Second):
			cause <- nil
		}
	})})
	c := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") // client stays connected
	if err := <-cause; err != nil {
		t.Errorf("live client's request cancelled after ReadHeaderTimeout: %v", err)
	}
}

// Same with a body, past ReadTimeout after the last body read.
func TestLongRequestWithBodyNotCancelled(t *testing.T) {
	cause := make(chan error, 1)
	addr := serve(t, &Server{ReadTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			cause <- context.Cause(r.Context())
		case <-time.After(1500 * time.Millisecond):
			cause <- nil
		}
	})})
	c := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "ab") // read from the network: pushes the progress deadline
	if err := <-cause; err != nil {
		t.Errorf("live client's request cancelled after ReadTimeout: %v", err)
	}
}

// A body that never comes is bounded by ReadTimeout, also on a connection
// whose previous request had a body less than a second ago.
func TestBodyReadTimeoutOnReusedConnection(t *testing.T) {
	got := make(chan error, 2)
	addr := serve(t, &Server{ReadTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	})})
	c := dial(t, addr)
	io.WriteString(c, "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, "ab")
	<-got
	io.WriteString(c, "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n") // body never comes
	select {
	case err := <-got:
		t.Logf("second body read ended: %v", err)
	case <-time.After(3 * time.Second):
		t.Errorf("body read still blocked after 3s with ReadTimeout 200ms")
	}
}

// ReverseProxy on h1: a backend that dies mid-body gives the client a
// broken response, not a complete-looking one (ReverseProxy aborts only
// when http.ServerContextKey is set).
func TestProxiedTruncationReachesClient(t *testing.T) {
	bln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer bln.Close()
	go func() {
		for {
			bc, err := bln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(bc)
				http.ReadRequest(br)
				io.WriteString(bc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				time.Sleep(50 * time.Millisecond)
				bc.Close() // dies mid-body
			}()
		}
	}()
	u, _ := url.Parse("http://" + bln.Addr().String())
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	addr := serve(t, &Server{Handler: rp})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("client read %q with no error: a truncated upstream body looks complete", b)
	}
	http.DefaultClient.CloseIdleConnections()
}

// Declared trailers arrive also with a body under the buffering size.
func TestTrailersWithSmallBody(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.WriteHeader(200)
		io.WriteString(w, "hi")
		w.Header().Set("X-Sum", "42")
	})})
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("trailer lost; Content-Length %d, TE %v", resp.ContentLength, resp.TransferEncoding)
	}
	http.DefaultClient.CloseIdleConnections()
}

// A handler-set Transfer-Encoding: chunked with a small body never comes
// with a Content-Length too.
func TestHandlerTransferEncoding(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		io.WriteString(w, "hello")
	})})
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if strings.Contains(string(raw), "Transfer-Encoding: chunked") && strings.Contains(string(raw), "Content-Length") {
		t.Errorf("response has both TE and CL:\n%s", raw)
	}
}

// Headers far over the limit: the 431 reaches the client (the close must
// not reset the connection before it reads it).
func TestHeaderLimitAnswerSurvives(t *testing.T) {
	addr := serve(t, &Server{Handler: echo, MaxHeaderBytes: 1 << 10})
	fails := 0
	for i := 0; i < 20; i++ {
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		go func() {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX: "+strings.Repeat("a", 1<<20)+"\r\n\r\n")
		}()
		time.Sleep(20 * time.Millisecond)
		_, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			fails++
		}
		c.Close()
	}
	if fails > 0 {
		t.Errorf("%d/20 clients lost the 431: connection reset", fails)
	}
}

// Absolute-form request: the Host header is validated all the same.
func TestAbsoluteFormBadHost(t *testing.T) {
	addr := serve(t, &Server{Handler: echo})
	resp, body := exchange(t, addr, "GET http://good/ HTTP/1.1\r\nHost: bad host\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Errorf("got %d %q; net/http answers 400 malformed Host header", resp.StatusCode, body)
	}
}

// Under -race: a pipelined request read by the watch while a full-duplex
// goroutine reads the body.
func TestPipelinedWithFullDuplexBody(t *testing.T) {
	addr := serve(t, &Server{WatchAfter: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		done := make(chan struct{})
		go func() { io.ReadAll(r.Body); close(done) }()
		time.Sleep(5 * time.Millisecond)
		fmt.Fprintf(w, "x")
		w.(http.Flusher).Flush()
		<-done
		time.Sleep(5 * time.Millisecond)
	})})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for i := 0; i < 50; i++ {
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n")
		for j := 0; j < 2; j++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(i, j, err)
			}
			io.ReadAll(resp.Body)
		}
	}
}
