//lint:file-ignore SA1019 the server under test is x/net/http2's (see h2.go)

package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/flotilla-dev/flotilla/internal/pki"
)

// tlsPair issues a localhost certificate from a fresh CA.
func tlsPair(t testing.TB) (*tls.Config, *pki.CA) {
	t.Helper()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue(pki.Request{Names: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := is.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}, ca
}

// serveBoth starts s on a clear-text and a TLS listener.
func serveBoth(t testing.TB, s *Server) (clear, secure string, ca *pki.CA) {
	t.Helper()
	cfg, ca := tlsPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve(TLS) = %v, want ErrServerClosed", err)
		}
	})
	return serve(t, s), ln.Addr().String(), ca
}

// proto answers with the protocol and whether the request came over TLS.
var proto = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "%s tls=%v", r.Proto, r.TLS != nil)
})

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // prior knowledge
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p}}
}

func TestProtocolsOnBothPorts(t *testing.T) {
	s := &Server{Handler: proto, H2: &http2.Server{}}
	clear, secure, ca := serveBoth(t, s)
	roots := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	var h1only http.Protocols
	h1only.SetHTTP1(true)
	h1TLS := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: roots, Protocols: &h1only}}
	var h2only http.Protocols
	h2only.SetHTTP2(true)
	h2TLS := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: roots, Protocols: &h2only}}
	for _, tt := range []struct {
		name   string
		client *http.Client
		url    string
		want   string
	}{
		{"HTTP/1.1", &http.Client{Timeout: 5 * time.Second}, "http://" + clear + "/", "HTTP/1.1 tls=false"},
		{"h2c prior knowledge", h2cClient(), "http://" + clear + "/", "HTTP/2.0 tls=false"},
		{"HTTP/1.1 over TLS", h1TLS, "https://" + secure + "/", "HTTP/1.1 tls=true"},
		{"HTTP/2 over TLS", h2TLS, "https://" + secure + "/", "HTTP/2.0 tls=true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 { // reused connections too
				resp, err := tt.client.Get(tt.url)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != tt.want {
					t.Fatalf("got %q, want %q", b, tt.want)
				}
			}
		})
	}
	t.Run("HTTP/1.1 starting like the preface", func(t *testing.T) {
		for _, raw := range []string{"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "PATCH / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"} {
			c := dial(t, clear)
			for _, b := range []byte(raw) { // byte by byte: the server must not wait for 24
				c.Write([]byte{b})
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%q: %v, %v", raw, resp, err)
			}
		}
	})
	t.Run("h2 offered without ALPN is HTTP/1.1", func(t *testing.T) {
		c, err := tls.Dial("tcp", secure, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %v, %v", resp, err)
		}
	})
}

func TestHandshakeFailures(t *testing.T) {
	s := &Server{Handler: proto, H2: &http2.Server{}, ReadHeaderTimeout: 300 * time.Millisecond}
	_, secure, _ := serveBoth(t, s)
	// An untrusted client gives up; the server counts the failure.
	if _, err := tls.Dial("tcp", secure, &tls.Config{ServerName: "localhost"}); err == nil {
		t.Fatal("a client without the CA trusted the server")
	}
	// A client that sends nothing is closed after the header timeout.
	c := dial(t, secure)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read = %v, want the server to close a silent TLS connection", err)
	}
	// Clear text to the TLS port is no handshake either.
	c = dial(t, secure)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	b, _ := io.ReadAll(c)
	if bytes.Contains(b, []byte("tls=")) {
		t.Fatalf("clear text on the TLS port was served: %q", b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.TLSFailures() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.TLSFailures(); n < 3 {
		t.Errorf("TLSFailures() = %d, want 3", n)
	}
}

// h2Exchange opens a prior-knowledge HTTP/2 connection, sends SETTINGS
// (with extra settings) and one request with the given header fields,
// and returns the first frame that answers stream 1: its RST_STREAM
// error code, or the response status.
func h2Exchange(t *testing.T, addr string, settings []http2.Setting, body string, fields ...string) (rst http2.ErrCode, status string) {
	t.Helper()
	c := dial(t, addr)
	io.WriteString(c, clientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	all := append([]string{":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"}, fields...)
	for i := 0; i < len(all); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: body == "", EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if body != "" {
		// After a pause: the handler could answer before the body comes.
		time.Sleep(20 * time.Millisecond)
		if err := fr.WriteData(1, true, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			return f.ErrCode, ""
		case *http2.MetaHeadersFrame:
			return 0, f.PseudoValue("status")
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v: %s", f.ErrCode, f.DebugData())
		}
	}
}

// TestH2MalformedRequests: RFC 9113 §8.2.2 makes connection-specific
// fields a stream error of type PROTOCOL_ERROR, which Go's server alone
// answers 400; §6.5.3 lets SETTINGS repeat a parameter.
func TestH2MalformedRequests(t *testing.T) {
	s := &Server{Handler: proto, H2: &http2.Server{}, MaxHeaderCount: 10}
	addr := serve(t, s)
	for _, tt := range []struct {
		name     string
		settings []http2.Setting
		body     string
		fields   []string
		rst      http2.ErrCode
		status   string
	}{
		{"plain", nil, "", nil, 0, "200"},
		{"te trailers", nil, "", []string{"te", "trailers"}, 0, "200"},
		{"te gzip", nil, "", []string{"te", "gzip"}, http2.ErrCodeProtocol, ""},
		{"connection", nil, "", []string{"connection", "keep-alive"}, http2.ErrCodeProtocol, ""},
		{"keep-alive", nil, "", []string{"keep-alive", "timeout=5"}, http2.ErrCodeProtocol, ""},
		{"proxy-connection", nil, "", []string{"proxy-connection", "close"}, http2.ErrCodeProtocol, ""},
		{"transfer-encoding", nil, "", []string{"transfer-encoding", "chunked"}, http2.ErrCodeProtocol, ""},
		{"upgrade", nil, "", []string{"upgrade", "websocket"}, http2.ErrCodeProtocol, ""},
		{"repeated settings", []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 100}, {ID: http2.SettingInitialWindowSize, Val: 65535}}, "", nil, 0, "200"},
		{"underscore forwarding header", nil, "", []string{"x_forwarded_for", "1.2.3.4"}, 0, "400"},
		{"body as declared", nil, "test", []string{"content-length", "4"}, 0, "200"},
		{"body longer than declared", nil, "test", []string{"content-length", "1"}, http2.ErrCodeProtocol, ""},
		{"body shorter than declared", nil, "test", []string{"content-length", "10"}, http2.ErrCodeInternal, ""},
		{"too many fields", nil, "", strings.Split(strings.Repeat("x-a,1,", 11), ",")[:22], 0, "431"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rst, status := h2Exchange(t, addr, tt.settings, tt.body, tt.fields...)
			if rst != tt.rst || status != tt.status {
				t.Errorf("got RST_STREAM %v, status %q; want RST_STREAM %v, status %q", rst, status, tt.rst, tt.status)
			}
		})
	}
}

func TestH2Shutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := &Server{H2: &http2.Server{}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})}
	addr := serve(t, s)
	client := h2cClient()
	got := make(chan string, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// GOAWAY has gone out: the connection takes no new stream.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/fast")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("new streams still served after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if b := <-got; b != "done" {
		t.Fatalf("the stream in flight got %q, want it to finish", b)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
}

func FuzzFrameFilter(f *testing.F) {
	f.Add([]byte{0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 100})
	f.Add([]byte{0, 0, 4, 1, 5, 0, 0, 0, 1, 0x82, 0x84, 0x86, 0x41})
	f.Add([]byte{0, 0, 3, 1, 0x0c, 0, 0, 0, 1, 1, 0x82, 0})
	f.Add([]byte{0, 0, 1, 9, 4, 0, 0, 0, 1, 0x82})
	f.Fuzz(func(t *testing.T, in []byte) {
		src := bufio.NewReader(io.MultiReader(strings.NewReader(clientPreface), bytes.NewReader(in)))
		out, err := io.ReadAll(newFrameFilter(src, 4096, 64<<10))
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read: %v", err)
		}
		if !bytes.HasPrefix(out, []byte(clientPreface)) {
			t.Fatal("the preface did not pass unchanged")
		}
		// The filter only ever adds one field or drops repeated settings.
		if len(out) > len(clientPreface)+len(in)+len(malformedField)*(len(in)/9+1) {
			t.Fatalf("%d bytes in, %d out", len(in), len(out))
		}
	})
}

// h2Conn opens a prior-knowledge HTTP/2 connection and returns its
// framer after the SETTINGS exchange, with the server's settings.
func h2Open(t *testing.T, addr string) (*http2.Framer, map[http2.SettingID]uint32) {
	t.Helper()
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, clientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	settings := map[http2.SettingID]uint32{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			sf.ForeachSetting(func(s http2.Setting) error { settings[s.ID] = s.Val; return nil })
			fr.WriteSettingsAck()
			return fr, settings
		}
	}
}

func headerBlock(fields ...string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	all := append([]string{":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"}, fields...)
	for i := 0; i < len(all); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]})
	}
	return b.Bytes()
}

// untilClosed reads frames until the connection ends and returns the
// GOAWAY error code seen, if any.
func untilClosed(fr *http2.Framer) (goaway http2.ErrCode, sawGoAway bool) {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return goaway, sawGoAway
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goaway, sawGoAway = g.ErrCode, true
		}
	}
}

// h2ClosedBy reports an error unless the server ends the connection before
// the connection's deadline (h2Open sets 10s).
func h2ClosedBy(fr *http2.Framer) error {
	for {
		_, err := fr.ReadFrame()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errors.New("the server kept the connection open")
		}
		if err != nil {
			return nil
		}
	}
}

// TestH2Limits: the HTTP/2 counterparts of the HTTP/1.1 limits.
func TestH2Limits(t *testing.T) {
	var running, peak atomic.Int64
	release := make(chan struct{})
	s := &Server{MaxHeaderBytes: 8 << 10, H2: &http2.Server{MaxConcurrentStreams: 10, MaxReadFrameSize: 16 << 10},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-release // a handler slow to notice resets: they pile up
				running.Add(-1)
			}
		})}
	addr := serve(t, s)
	defer close(release)

	t.Run("settings", func(t *testing.T) {
		_, settings := h2Open(t, addr)
		if settings[http2.SettingMaxConcurrentStreams] != 10 || settings[http2.SettingMaxFrameSize] != 16<<10 ||
			settings[http2.SettingMaxHeaderListSize] == 0 || settings[http2.SettingMaxHeaderListSize] > 16<<10 {
			t.Errorf("advertised %v", settings)
		}
	})
	t.Run("header list over the limit", func(t *testing.T) {
		fr, _ := h2Open(t, addr)
		var fields []string
		for i := range 12 {
			fields = append(fields, fmt.Sprintf("x-f%d", i), strings.Repeat("a", 1<<10))
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(fields...), EndStream: true, EndHeaders: true})
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if h, ok := f.(*http2.MetaHeadersFrame); ok {
				if st := h.PseudoValue("status"); st != "431" {
					t.Fatalf("status %s, want 431", st)
				}
				return
			}
		}
	})
	t.Run("CONTINUATION flood", func(t *testing.T) {
		fr, _ := h2Open(t, addr)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(), EndHeaders: false})
		frag := bytes.Repeat([]byte{0x40, 0x01, 'x', 0x01, 'y'}, 1000) // literal "x: y", 5000 bytes a frame
		go func() {
			for range 4000 { // 20 MB of one header block, never ended
				if fr.WriteContinuation(1, false, frag) != nil {
					return
				}
			}
		}()
		if err := h2ClosedBy(fr); err != nil {
			t.Error(err)
		}
	})
	t.Run("rapid reset", func(t *testing.T) {
		fr, _ := h2Open(t, addr)
		var b bytes.Buffer
		enc := hpack.NewEncoder(&b)
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/slow"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		block := b.Bytes()
		go func() {
			for id := uint32(1); id < 2000; id += 2 {
				if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
					fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
					return
				}
			}
		}()
		code, ok := untilClosed(fr)
		if !ok || code != http2.ErrCodeEnhanceYourCalm {
			t.Errorf("after 1000 opened and reset streams: GOAWAY %v (seen %v), want ENHANCE_YOUR_CALM", code, ok)
		}
		if p := peak.Load(); p > 10 {
			t.Errorf("%d handlers ran at once, want at most the 10 streams allowed", p)
		}
	})
}

// TestH2StreamsShareTheConnectionBudget: HTTP/2 requests in flight count
// against MaxConnsPerIP as HTTP/1.1 connections do, so one client cannot
// multiply its share by the streams of each connection.
func TestH2StreamsShareTheConnectionBudget(t *testing.T) {
	var running atomic.Int64
	release := make(chan struct{})
	s := &Server{MaxConnsPerIP: 3, H2: &http2.Server{}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/warm" {
			running.Add(1)
			<-release
		}
	})}
	addr := serve(t, s)
	client := h2cClient()
	// One connection first, so that the burst shares it.
	if resp, err := client.Get("http://" + addr + "/warm"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	codes := make(chan int, 5)
	for range 5 {
		go func() {
			resp, err := client.Get("http://" + addr + "/")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := map[int]int{}
	for range 2 {
		got[<-codes]++
	}
	// The three admitted handlers start in their own time.
	for deadline := time.Now().Add(5 * time.Second); running.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got[503] != 2 || running.Load() != 3 {
		t.Errorf("with 3 running: %v answered, %d running; want two 503s", got, running.Load())
	}
	close(release)
	for range 3 {
		got[<-codes]++
	}
	if got[200] != 3 {
		t.Errorf("statuses %v, want three 200s", got)
	}
	if _, perIP := s.Refused(); perIP != 2 {
		t.Errorf("Refused() per IP = %d, want 2", perIP)
	}
	// The budget is given back once the handlers have returned.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := client.Get("http://" + addr + "/warm")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the burst: %s", resp.Status)
		}
	}
}
