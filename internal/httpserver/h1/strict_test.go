package h1

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a handler that notes the path of every request it sees and
// reads its body.
type recorder struct {
	mu    sync.Mutex
	paths []string
	got   []http.Header
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.paths = append(rec.paths, r.URL.Path)
	rec.got = append(rec.got, r.Header.Clone())
	rec.mu.Unlock()
	if _, err := io.ReadAll(r.Body); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, "ok")
}

func (rec *recorder) seen() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.paths...)
}

// smuggled is a request pipelined after each bad one: the server must
// never serve it.
const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

// sendBad writes raw and then smuggled on one connection and returns
// the first response's status and body, and what came after it before
// the server closed the connection.
func sendBad(t *testing.T, addr, raw string) (code int, body, after string) {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, raw+smuggled); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rest, err := io.ReadAll(br)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("after the response: %v, want the connection closed", err)
	}
	return resp.StatusCode, string(b), string(rest)
}

// TestStrictRejects: each request is answered with the status, the
// connection closed with nothing served after it, and the handler never
// sees a request (no upstream would).
func TestStrictRejects(t *testing.T) {
	const post = "POST /bad HTTP/1.1\r\nHost: a\r\n"
	long := strings.Repeat("a", 9<<10)
	tests := []struct {
		name, raw string
		code      int
		says      string
	}{
		// Framing (RFC 9112 §6.1, §6.3)
		{"CL and TE", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "both Transfer-Encoding and Content-Length"},
		{"TE and CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "both Transfer-Encoding and Content-Length"},
		{"TE on HTTP/1.0", "POST /bad HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "HTTP/1.0"},
		{"gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "unsupported transfer encoding"},
		{"chunked, gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400, "chunked not the final"},
		{"chunked, chunked", post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400, "chunked not the final"},
		{"identity", post + "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, "chunked not the final"},
		{"xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400, "chunked not the final"},
		{"chunked with a parameter", post + "Transfer-Encoding: chunked;x\r\n\r\n0\r\n\r\n", 400, "malformed Transfer-Encoding"},
		{"chunked in quotes", post + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", 400, "malformed Transfer-Encoding"},
		{"empty TE", post + "Transfer-Encoding: \r\n\r\n0\r\n\r\n", 400, "malformed Transfer-Encoding"},
		{"two TE lines", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "more than one Transfer-Encoding"},
		{"TE then identity", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, "more than one Transfer-Encoding"},
		{"space before colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, "invalid header name"},
		{"tab before colon", post + "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400, "invalid header name"},
		{"vertical tab in TE", post + "Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400, "invalid character in header value"},
		{"TE folded", post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400, "malformed Transfer-Encoding"},
		{"TE folded after chunked", post + "Transfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\n", 400, "obsolete line folding"},
		{"any header folded", post + "X-A: b\r\n\tc\r\nContent-Length: 0\r\n\r\n", 400, "obsolete line folding"},
		{"bare LF after TE", post + "Transfer-Encoding: chunked\n\r\n0\r\n\r\n", 400, "header line not ended by CRLF"},
		{"bare LF request line", "GET /bad HTTP/1.1\nHost: a\r\n\r\n", 400, "request line not ended by CRLF"},
		{"bare CR in a header", post + "X-A: b\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "invalid character in header value"},
		{"Transfer_Encoding", post + "Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "Transfer_Encoding"},
		{"Content_Length", post + "Content_Length: 5\r\n\r\nhello", 400, "Content_Length"},
		{"two equal lengths", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, "more than one Content-Length"},
		{"two lengths", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "more than one Content-Length"},
		{"length list", post + "Content-Length: 5, 5\r\n\r\nhello", 400, "bad Content-Length"},
		{"length with plus", post + "Content-Length: +5\r\n\r\nhello", 400, "bad Content-Length"},
		{"negative length", post + "Content-Length: -5\r\n\r\nhello", 400, "bad Content-Length"},
		{"hex length", post + "Content-Length: 0x5\r\n\r\nhello", 400, "bad Content-Length"},
		{"length with inner space", post + "Content-Length: 5 5\r\n\r\nhello", 400, "bad Content-Length"},
		{"huge length", post + "Content-Length: 99999999999999999999\r\n\r\n", 400, "bad Content-Length"},
		// Chunked body, small enough to be buffered: the handler never
		// sees the request.
		{"chunk size not hex", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk size not hexadecimal"},
		{"chunk size 0x", post + "Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400, "malformed chunk extension"},
		{"negative chunk size", post + "Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400, "chunk size not hexadecimal"},
		{"space after chunk size", post + "Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400, "malformed chunk extension"},
		{"empty chunk extension", post + "Transfer-Encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n", 400, "malformed chunk extension"},
		{"chunk extension without a name", post + "Transfer-Encoding: chunked\r\n\r\n3;=x\r\nabc\r\n0\r\n\r\n", 400, "malformed chunk extension"},
		{"unterminated quoted extension", post + "Transfer-Encoding: chunked\r\n\r\n3;a=\"x\r\nabc\r\n0\r\n\r\n", 400, "malformed chunk extension"},
		{"chunk extension too long", post + "Transfer-Encoding: chunked\r\n\r\n3;a=" + strings.Repeat("x", 5000) + "\r\nabc\r\n0\r\n\r\n", 400, "chunk line too long"},
		{"chunk extensions outweigh data", post + "Transfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;a="+strings.Repeat("x", 1000)+"\r\nz\r\n", 20) + "0\r\n\r\n", 400, "chunk extensions outweigh the data"},
		{"data not followed by CRLF", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400, "chunk data not followed by CRLF"},
		{"data followed by LF", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400, "chunk data not followed by CRLF"},
		{"bare LF in a chunk line", post + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400, "line not ended by CRLF"},
		{"CR inside a chunk line", post + "Transfer-Encoding: chunked\r\n\r\n3\r;a\r\nabc\r\n0\r\n\r\n", 400, "CR inside a line"},
		{"chunk size with 17 digits", post + "Transfer-Encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\n", 400, "chunk size too long"},
		{"oversize chunk", post + "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n", 400, "chunk size too large"},
		{"forbidden trailer", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n", 400, "trailer field Content-Length not allowed"},
		{"Host trailer", post + "Transfer-Encoding: chunked\r\n\r\n0\r\nHost: b\r\n\r\n", 400, "trailer field Host not allowed"},
		{"folded trailer", post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n", 400, "obsolete line folding"},
		{"trailer with a space before colon", post + "Transfer-Encoding: chunked\r\n\r\n0\r\nX-T : a\r\n\r\n", 400, "invalid header name"},
		{"chunk longer than its data", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nab", 400, "chunk data not followed by CRLF"},
		// Request line (RFC 9112 §3)
		{"two spaces", "GET  /bad HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP request"},
		{"tab separator", "GET\t/bad HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP request"},
		{"trailing space", "GET /bad HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
		{"lower-case method", "get /bad HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method not in upper case"},
		{"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk-form"},
		{"fragment", "GET /bad#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment in request target"},
		// Host (RFC 9110 §7.2, RFC 9112 §3.2: an invalid value is 400)
		{"absolute-form with a bad authority", "GET http://a\"b<x>/bad HTTP/1.1\r\nHost: ok\r\n\r\n", 400, "malformed Host header"},
		{"X_Forwarded_For", "GET /bad HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n", 400, "underscore spelling of a forwarding header"},
		{"x_real_ip", "GET /bad HTTP/1.1\r\nHost: a\r\nx_real_ip: 1.2.3.4\r\n\r\n", 400, "underscore spelling of a forwarding header"},
		{"X-Forwarded_Host", "GET /bad HTTP/1.1\r\nHost: a\r\nX-Forwarded_Host: evil\r\n\r\n", 400, "underscore spelling of a forwarding header"},
		{"Host port not digits", "GET /bad HTTP/1.1\r\nHost: a:xx\r\n\r\n", 400, "malformed Host header"},
		{"Host two ports", "GET /bad HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400, "malformed Host header"},
		{"Host userinfo", "GET /bad HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "malformed Host header"},
		{"Host bad IP literal", "GET /bad HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400, "malformed Host header"},
		{"Host IP literal junk", "GET /bad HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400, "malformed Host header"},
		{"Host slash", "GET /bad HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "malformed Host header"},
		{"Host bad escape", "GET /bad HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400, "malformed Host header"},
		{"relative target", "GET bad HTTP/1.1\r\nHost: a\r\n\r\n", 400, "neither a path nor an http(s) URL"},
		{"ftp URL", "GET ftp://a/bad HTTP/1.1\r\nHost: a\r\n\r\n", 400, "neither a path nor an http(s) URL"},
		{"non-ASCII target", "GET /b\xc3\xa4d HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid character in request target"},
		{"lower-case version", "GET /bad http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
		{"HTTP/1.10", "GET /bad HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
		{"HTTP/0.9", "GET /bad HTTP/0.9\r\nHost: a\r\n\r\n", 505, "unsupported protocol version"},
		{"five empty lines first", "\r\n\r\n\r\n\r\n\r\nGET /bad HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP request"},
		{"target too long", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 414, "request target over the limit"},
		// Fields (RFC 9112 §5, RFC 9110 §5.5)
		{"NUL in a value", "GET /bad HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", 400, "invalid character in header value"},
		{"DEL in a value", "GET /bad HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n", 400, "invalid character in header value"},
		{"no colon", "GET /bad HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400, "header line without a colon"},
		{"empty name", "GET /bad HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, "empty header name"},
		{"too many fields", "GET /bad HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n", 431, "too many header fields"},
		{"no Host", "GET /bad HTTP/1.1\r\n\r\n", 400, "missing required Host header"},
		{"two Hosts", "GET /bad HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "too many Host headers"},
		{"Host with a path", "GET /bad HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "malformed Host header"},
		{"Host with userinfo", "GET /bad HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "malformed Host header"},
		{"Connection names Content-Length", post + "Content-Length: 5\r\nConnection: Content-Length\r\n\r\nhello", 400, "Connection names an end-to-end header"},
		{"Connection names Host", "GET /bad HTTP/1.1\r\nHost: a\r\nConnection: close, host\r\n\r\n", 400, "Connection names an end-to-end header"},
		{"Connection not a token list", "GET /bad HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", 400, "malformed Connection header"},
		{"unknown expectation", "GET /bad HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			addr := serve(t, &Server{Handler: rec})
			code, body, after := sendBad(t, addr, tt.raw)
			if code != tt.code || !strings.Contains(body, tt.says) {
				t.Errorf("got %d %q, want %d naming %q", code, body, tt.code, tt.says)
			}
			if after != "" {
				t.Errorf("after the rejection the server sent %q, want the connection closed", after)
			}
			if seen := rec.seen(); len(seen) > 0 {
				t.Errorf("the handler saw %v, want nothing", seen)
			}
		})
	}
}

// TestStrictAccepts: what RFC 9112 allows still passes, and the server
// serves what follows on the connection.
func TestStrictAccepts(t *testing.T) {
	const post = "POST /ok HTTP/1.1\r\nHost: a\r\n"
	tests := []struct{ name, raw string }{
		{"chunked in capitals", post + "Transfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"TE with OWS", post + "Transfer-Encoding: \tchunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{"chunk extensions", post + "Transfer-Encoding: chunked\r\n\r\n3 ; a=b;c=\"d\\\"e\"\r\nabc\r\n0;x\r\n\r\n"},
		{"hex in capitals", post + "Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"},
		{"trailer", post + "Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n"},
		{"length with leading zeros", post + "Content-Length: 003\r\n\r\nabc"},
		{"length with OWS", post + "Content-Length:  3 \r\n\r\nabc"},
		{"absolute-form", "GET http://a/ok HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"Host with port", "GET /ok HTTP/1.1\r\nHost: a.example:8080\r\n\r\n"},
		{"Host IPv6 with port", "GET /ok HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"},
		{"Host empty port", "GET /ok HTTP/1.1\r\nHost: a:\r\n\r\n"},
		{"Host empty", "GET /ok HTTP/1.1\r\nHost:\r\n\r\n"},
		{"Host sub-delims and escape", "GET /ok HTTP/1.1\r\nHost: a-b_c~d!%41\r\n\r\n"},
		{"HTTP/1.0 without Host", "GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"},
		{"obs-text in a value", "GET /ok HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n"},
		{"extension method", "PURGE /ok HTTP/1.1\r\nHost: a\r\n\r\n"},
		// RFC 9112 §2.2: empty lines before a request-line are ignored.
		{"empty line first", "\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"CRLF after a body", post + "Content-Length: 3\r\n\r\nabc\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"Connection options", "GET /ok HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			addr := serve(t, &Server{Handler: rec})
			c := dial(t, addr)
			io.WriteString(c, tt.raw+"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			br := bufio.NewReader(c)
			for i := range 2 {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("response %d = %d %q, want 200", i, resp.StatusCode, b)
				}
			}
		})
	}
}

// TestChunkedBuffered: a chunked body that fits the request buffer
// reaches the handler whole, with its length (upstreams get a
// Content-Length) and trailers.
func TestChunkedBuffered(t *testing.T) {
	got := make(chan string, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		got <- fmt.Sprintf("len=%d te=%v body=%s err=%v trailer=%v", r.ContentLength, r.TransferEncoding, b, err, r.Trailer)
	})})
	for _, tt := range []struct{ name, raw, want string }{
		{"no trailer", "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "len=5 te=[] body=abcde err=<nil> trailer=map[]"},
		{"trailer", "Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 7\r\n\r\n", "len=-1 te=[chunked] body=abc err=<nil> trailer=map[X-Sum:[7]]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exchange(t, addr, "POST / HTTP/1.1\r\nHost: a\r\n"+tt.raw)
			if g := <-got; g != tt.want {
				t.Errorf("handler saw %s, want %s", g, tt.want)
			}
		})
	}
}

// TestChunkedStreamedMalformed: a chunked body over the request buffer
// streams to the handler; when it turns out malformed, the handler's
// read fails and the connection closes, nothing after it served.
func TestChunkedStreamedMalformed(t *testing.T) {
	rec := &recorder{}
	addr := serve(t, &Server{Handler: rec, RequestBufferBytes: 16})
	raw := "POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"20\r\n" + strings.Repeat("x", 32) + "\r\nzz\r\n"
	code, body, after := sendBad(t, addr, raw)
	if code != 400 || !strings.Contains(body, "chunk size not hexadecimal") {
		t.Errorf("got %d %q, want the handler's 400 naming the error", code, body)
	}
	if after != "" {
		t.Errorf("after it the server sent %q, want the connection closed", after)
	}
	if seen := rec.seen(); len(seen) != 1 || seen[0] != "/big" {
		t.Errorf("the handler saw %v, want only /big", seen)
	}
}

// TestUpgradeAllowList: only an allowed Upgrade reaches the handler; an
// h2c offer is removed with its Connection options and HTTP2-Settings.
func TestUpgradeAllowList(t *testing.T) {
	tests := []struct {
		name, headers       string
		upgrade, connection string
		settings            bool
		allow               []string
	}{
		{"h2c", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n", "", "", false, nil},
		{"h2c with keep-alive", "Upgrade: h2c\r\nConnection: keep-alive, Upgrade\r\n", "", "keep-alive", false, nil},
		{"websocket", "Upgrade: websocket\r\nConnection: Upgrade\r\n", "websocket", "Upgrade", false, nil},
		{"WebSocket, h2c", "Upgrade: WebSocket, h2c\r\nConnection: Upgrade\r\n", "WebSocket", "Upgrade", false, nil},
		{"websocket not announced in Connection", "Upgrade: websocket\r\n", "", "", false, nil},
		{"websocket when none allowed", "Upgrade: websocket\r\nConnection: Upgrade\r\n", "", "", false, []string{}},
		{"h2c when allowed", "Upgrade: h2c\r\nConnection: Upgrade\r\n", "h2c", "Upgrade", false, []string{"h2c"}},
		{"h2c hidden in a second Upgrade line", "Upgrade: websocket\r\nUpgrade: h2c, websocket\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n", "websocket, websocket", "Upgrade, HTTP2-Settings", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			addr := serve(t, &Server{Handler: rec, AllowUpgrades: tt.allow})
			if resp, _ := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n"+tt.headers+"\r\n"); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			rec.mu.Lock()
			h := rec.got[0]
			rec.mu.Unlock()
			if got := strings.Join(h["Upgrade"], ","); got != tt.upgrade {
				t.Errorf("Upgrade = %q, want %q", got, tt.upgrade)
			}
			if got := strings.Join(h["Connection"], ","); got != tt.connection {
				t.Errorf("Connection = %q, want %q", got, tt.connection)
			}
			if _, ok := h["Http2-Settings"]; ok != tt.settings {
				t.Errorf("HTTP2-Settings present = %v, want %v", ok, tt.settings)
			}
		})
	}
}

// TestSmugglingNeverReachesUpstream: h1 in front of httputil.ReverseProxy
// and a real upstream. Ambiguous framing and small malformed chunked
// bodies never reach the upstream; a large malformed one reaches it as a
// request whose body never completes (the proxy aborts it), and nothing
// pipelined after any of them does.
func TestSmugglingNeverReachesUpstream(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %s complete=%v", r.Method, r.URL.Path, err == nil && len(b) >= 0))
		mu.Unlock()
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{
		Rewrite:  func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ErrorLog: log.New(io.Discard, "", 0),
	}
	addr := serve(t, &Server{Handler: rp, RequestBufferBytes: 64})
	const post = "POST /bad HTTP/1.1\r\nHost: a\r\n"
	for _, tt := range []struct{ name, raw, upstream string }{
		{"CL and TE", post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ""},
		{"TE with a tab trick", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding:\tx\r\n\r\n0\r\n\r\n", ""},
		{"small malformed chunked", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", ""},
		{"large malformed chunked", post + "Transfer-Encoding: chunked\r\n\r\n80\r\n" + strings.Repeat("x", 128) + "\r\nzz\r\n", "POST /bad complete=false"},
		{"h2c upgrade", "GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 0\r\n\r\n", "GET /up complete=true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			c := dial(t, addr)
			// The h2c request is served as a plain GET; the request
			// after it closes the connection.
			io.WriteString(c, tt.raw+strings.Replace(smuggled, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1))
			io.ReadAll(c) // until the server closes
			want := tt.upstream
			if tt.name == "h2c upgrade" {
				want += "; GET /smuggled complete=true"
			}
			// What reached the upstream may be recorded a moment after
			// the client connection closed.
			var seen string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				mu.Lock()
				seen = strings.Join(got, "; ")
				mu.Unlock()
				if seen == want || want == "" || time.Now().After(deadline) {
					break
				}
			}
			if seen != want {
				t.Errorf("upstream saw %q, want %q", seen, want)
			}
		})
	}
}
