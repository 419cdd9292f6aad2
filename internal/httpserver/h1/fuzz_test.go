package h1

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzServe sends arbitrary bytes as a request stream to h1 and to
// net/http's server with the same handler: both must give the first
// response the same status (or both none), every response h1 sends must
// parse, and h1 must go on serving. Seeds run in the suite; explore with
// go test -fuzz FuzzServe ./internal/httpserver/h1.
func FuzzServe(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n",
		"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	quiet := slog.New(slog.DiscardHandler)
	s := &Server{Handler: echo, Logger: quiet, ReadHeaderTimeout: time.Second, IdleTimeout: time.Second}
	addr := serve(f, s)
	std := httptest.NewUnstartedServer(echo)
	std.Config.ErrorLog = slog.NewLogLogger(quiet.Handler(), slog.LevelError)
	std.Config.ReadHeaderTimeout, std.Config.IdleTimeout = time.Second, time.Second
	std.Start()
	f.Cleanup(std.Close)
	stdAddr := std.Listener.Addr().String()

	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := statuses(addr, in)
		if err != nil {
			t.Fatalf("h1 sent a response that does not parse: %v", err)
		}
		want, _ := statuses(stdAddr, in)
		first := func(s []int) int {
			if len(s) == 0 {
				return 0
			}
			return s[0]
		}
		// The one known difference: an HTTP/2 preface is answered 505
		// here; net/http hands it to the handler as a PRI request.
		h2 := len(got) > 0 && got[0] == http.StatusHTTPVersionNotSupported && bytes.HasPrefix(in, []byte("PRI * HTTP/2.0"))
		if first(got) != first(want) && !h2 {
			t.Errorf("first status: h1 %d, net/http %d (all: %v, %v)", first(got), first(want), got, want)
		}
		if codes, err := statuses(addr, []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil || len(codes) != 1 || codes[0] != 200 {
			t.Fatalf("a good request afterwards = %v, %v", codes, err)
		}
	})
}

// statuses writes in on a new connection, closes the writing side and
// returns the status of every response read until the server closes.
func statuses(addr string, in []byte) ([]int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write(in)
	c.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(c)
	var codes []int
	for {
		if _, err := br.Peek(1); err != nil {
			return codes, nil
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			return codes, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}
