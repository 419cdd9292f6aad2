package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzServe sends arbitrary bytes as a request stream to h1 and to
// net/http's server with the same handler: every response of the
// connection must have the same status as net/http's, in order, except
// where h1 is deliberately stricter (strict.go, chunked.go): there h1
// answers a rejection (400, 414, 431, 501, 505) and closes, while
// net/http accepted or rejected that request otherwise. Every response
// h1 sends must parse, and h1 must go on serving. Seeds run in the suite;
// explore with go test -fuzz FuzzServe ./internal/httpserver/h1.
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
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=\"y\"\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
		"get / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
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
		// h1 skips up to maxEmptyLines empty lines before a request-line
		// (RFC 9112 §2.2), net/http none: net/http gets the stream without
		// those at its start. (Between pipelined requests the fuzzer may
		// still find h1 serving what net/http refused: compareStatuses
		// allows that.)
		stdIn := in
		for range maxEmptyLines {
			if !bytes.HasPrefix(stdIn, []byte("\r\n")) {
				break
			}
			stdIn = stdIn[2:]
		}
		want, _ := statuses(stdAddr, stdIn)
		if msg := compareStatuses(in, got, want); msg != "" {
			t.Errorf("%s (h1 %v, net/http %v)", msg, got, want)
		}
		if codes, err := statuses(addr, []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil || len(codes) != 1 || codes[0] != 200 {
			t.Fatalf("a good request afterwards = %v, %v", codes, err)
		}
	})
}

// compareStatuses returns what is wrong with h1's statuses got against
// net/http's want, "" if nothing.
func compareStatuses(in []byte, got, want []int) string {
	for k := range max(len(got), len(want)) {
		if k < len(got) && k < len(want) && got[k] == want[k] {
			continue
		}
		// Empty lines after a request (RFC 9112 §2.2): h1 skips them where
		// net/http refuses them as a request; from there on the two read
		// the stream differently.
		if k < len(want) && want[k] == http.StatusBadRequest && bytes.Contains(in, []byte("\r\n\r\n\r\n")) {
			return ""
		}
		if k >= len(got) {
			return fmt.Sprintf("response %d: h1 sent none, net/http %d", k, want[k])
		}
		// The stricter h1: a rejection, the last response of the
		// connection, where net/http answered otherwise or not at all.
		if rejection[got[k]] && k == len(got)-1 {
			return ""
		}
		// An HTTP/2 preface is answered 505 here; net/http hands it to
		// the handler as a PRI request.
		if k == 0 && got[0] == http.StatusHTTPVersionNotSupported && bytes.HasPrefix(in, []byte("PRI * HTTP/2.0")) {
			return ""
		}
		if k >= len(want) {
			return fmt.Sprintf("response %d: h1 %d, net/http none", k, got[k])
		}
		return fmt.Sprintf("response %d: h1 %d, net/http %d", k, got[k], want[k])
	}
	return ""
}

var rejection = map[int]bool{400: true, 414: true, 431: true, 501: true, 505: true}

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
