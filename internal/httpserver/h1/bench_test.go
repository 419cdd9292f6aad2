package h1

import (
	"bufio"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// BenchmarkServe measures one request and response on a kept-alive
// connection over loopback (reopened when the server closes it, as
// clients do), client included: a GET with browser-like headers, a POST
// with a small Content-Length body and one with a small chunked body. Compare runs with benchstat.
func BenchmarkServe(b *testing.B) {
	const headers = "Host: a.test\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\nCookie: session=0123456789abcdef\r\n"
	for _, tc := range []struct{ name, raw string }{
		{"get", "GET /api/x?q=1 HTTP/1.1\r\n" + headers + "\r\n"},
		{"post-length", "POST /api/x HTTP/1.1\r\n" + headers + "Content-Length: 11\r\n\r\nhello world"},
		{"post-chunked", "POST /api/x HTTP/1.1\r\n" + headers + "Transfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr := serve(b, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "ok\n")
			})})
			c := dial(b, addr)
			c.SetDeadline(time.Time{})
			br := bufio.NewReader(c)
			req := &http.Request{Method: "GET"}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, err := io.WriteString(c, tc.raw); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
				if resp.Close { // MaxRequestsPerConn: reconnect, as clients do
					c.Close()
					c = dial(b, addr)
					c.SetDeadline(time.Time{})
					br = bufio.NewReader(c)
				}
			}
			// CPU time (client and server, this process) is steadier than
			// wall time on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScanHead: the strict scan of a browser-like request head.
func BenchmarkScanHead(b *testing.B) {
	head := []byte("GET /api/x?q=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\nCookie: session=0123456789abcdef\r\n\r\n")
	s := &Server{}
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.scanHead(head); err != nil {
			b.Fatal(err)
		}
	}
}
