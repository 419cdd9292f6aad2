package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
)

// wsUpstream is a real WebSocket server: it echoes every message, and
// for "bye" closes with 1000, for "vanish" drops the TCP connection
// without a close frame. ended receives how each connection ended.
type wsUpstream struct {
	*httptest.Server
	ended chan error
}

func newWSUpstream(t *testing.T) *wsUpstream {
	u := &wsUpstream{ended: make(chan error, 8)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				u.ended <- err
				c.CloseNow()
				return
			}
			switch string(msg) {
			case "bye":
				c.Close(websocket.StatusNormalClosure, "bye")
				u.ended <- nil
				return
			case "vanish":
				c.CloseNow()
				u.ended <- nil
				return
			}
			if err := c.Write(ctx, typ, msg); err != nil {
				u.ended <- err
				return
			}
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *wsUpstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

// dialWS opens a WebSocket through the gateway and checks one echo.
func dialWS(t *testing.T, f *fixture) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("Dial through the gateway: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("echo = %q, %v; want hello", msg, err)
	}
	return c
}

// readClose reads until the connection ends and returns the close error.
func readClose(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v, want a close frame", err)
		}
		return ce
	}
}

func wsGateway(t *testing.T, u *wsUpstream, streams string) *fixture {
	return start(t, fmt.Sprintf(`
backends: [{name: ws, addresses: [%q]}]
routes: [{name: ws, backends: [{name: ws}], timeout: 1s, streams: %s}]
`, u.addr(), streams), Options{})
}

func TestWebSocketDrain(t *testing.T) {
	u := newWSUpstream(t)
	f := wsGateway(t, u, "{}")
	c := dialWS(t, f)
	const gauge = `# HELP flotilla_gateway_streams Long-lived streams in flight: upgraded connections (WebSocket) and response bodies without a length (gRPC streams, server-sent events).
# TYPE flotilla_gateway_streams gauge
flotilla_gateway_streams %d
`
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(fmt.Sprintf(gauge, 1)), "flotilla_gateway_streams"); err != nil {
		t.Errorf("streams gauge: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- f.gw.DrainStreams(ctx) }()
	if ce := readClose(t, c); ce.Code != websocket.StatusGoingAway || ce.Reason != "gateway shutting down" {
		t.Errorf("client got close %d %q, want 1001 \"gateway shutting down\"", ce.Code, ce.Reason)
	}
	if err := <-drained; err != nil {
		t.Errorf("DrainStreams() = %v", err)
	}
	if err := <-u.ended; err == nil {
		t.Errorf("upstream connection still open after the drain")
	}
	if err := testutil.GatherAndCompare(f.reg, strings.NewReader(fmt.Sprintf(gauge, 0)), "flotilla_gateway_streams"); err != nil {
		t.Errorf("streams gauge after the drain: %v", err)
	}
	// A WebSocket that opens while the gateway drains is ended at once.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	late, _, err := websocket.Dial(ctx2, "ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("Dial during the drain: %v", err)
	}
	defer late.CloseNow()
	if ce := readClose(t, late); ce.Code != websocket.StatusGoingAway || ce.Reason != "gateway shutting down" {
		t.Errorf("late client got close %d %q, want 1001 \"gateway shutting down\"", ce.Code, ce.Reason)
	}
}

func TestWebSocketLimits(t *testing.T) {
	tests := []struct {
		name    string
		streams string
		keep    bool // the client sends a message every 200ms
		reason  string
	}{
		{"idle", "{idleTimeout: 1s}", false, "idle timeout"},
		// The route timeout (1s) does not end a stream: it ends at 2s,
		// by its lifetime.
		{"lifetime while busy", "{idleTimeout: 1h, maxLifetime: 2s}", true, "max lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newWSUpstream(t)
			f := wsGateway(t, u, tt.streams)
			c := dialWS(t, f)
			stop := make(chan struct{})
			defer close(stop)
			if tt.keep {
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(200 * time.Millisecond):
							if c.Write(context.Background(), websocket.MessageText, []byte("ping")) != nil {
								return
							}
						}
					}
				}()
			}
			if ce := readClose(t, c); ce.Code != websocket.StatusGoingAway || ce.Reason != tt.reason {
				t.Errorf("client got close %d %q, want 1001 %q", ce.Code, ce.Reason, tt.reason)
			}
			if err := <-u.ended; err == nil {
				t.Errorf("upstream connection not closed")
			}
		})
	}
}

func TestWebSocketUpstreamGoesAway(t *testing.T) {
	tests := []struct {
		name   string
		send   string
		code   websocket.StatusCode
		reason string
	}{
		{"closes with a close frame: relayed, no second one", "bye", websocket.StatusNormalClosure, "bye"},
		{"drops the connection: the gateway says so", "vanish", websocket.StatusGoingAway, "upstream closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newWSUpstream(t)
			f := wsGateway(t, u, "{}")
			c := dialWS(t, f)
			if err := c.Write(context.Background(), websocket.MessageText, []byte(tt.send)); err != nil {
				t.Fatal(err)
			}
			if ce := readClose(t, c); ce.Code != tt.code || ce.Reason != tt.reason {
				t.Errorf("client got close %d %q, want %d %q", ce.Code, ce.Reason, tt.code, tt.reason)
			}
			waitFor(t, "the stream to end", func() bool { return f.gw.proxy.Streams() == 0 })
		})
	}
}

// TestGRPCStreamLimitsAndDrain: a gRPC server stream ends with a gRPC
// status when idle too long or drained, not with a reset.
func TestGRPCStreamLimitsAndDrain(t *testing.T) {
	up := newGRPCUpstream(t, nil)
	f := start(t, fmt.Sprintf(`
backends: [{name: h2c, addresses: [%q], protocol: h2c}]
routes:
  - {name: idle, match: {hosts: [idle.test]}, backends: [{name: h2c}], streams: {idleTimeout: 1s}}
  - {name: drain, match: {hosts: [drain.test]}, backends: [{name: h2c}]}
`, up.addr), Options{})
	up.health.SetServingStatus("watched", healthpb.HealthCheckResponse_SERVING)
	for _, tt := range []struct {
		host, message string
		drain         bool
	}{
		{"idle.test", "flotilla gateway: stream ended: idle timeout", false},
		{"drain.test", "flotilla gateway: stream ended: gateway shutting down", true},
	} {
		t.Run(tt.host, func(t *testing.T) {
			_, cc := serveH2(t, f.gw.Handler(), tt.host)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: "watched"})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Watch = %v, %v; want SERVING", m, err)
			}
			if tt.drain {
				go f.gw.DrainStreams(ctx)
			}
			_, err = stream.Recv()
			if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != tt.message {
				t.Errorf("Recv() = %v, want Unavailable %q", err, tt.message)
			}
		})
	}
}

// TestServerSentEventsIdle: an event stream that goes quiet ends cleanly
// (EventSource reconnects); a chunked download that stalls is aborted, so
// the client can tell it is truncated.
func TestServerSentEventsIdle(t *testing.T) {
	u := newUpstream(t, "events")
	u.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}
	f := start(t, fmt.Sprintf(`
backends: [{name: events, addresses: [%q]}]
routes: [{name: events, backends: [{name: events}], streams: {idleTimeout: 1s}}]
`, u.addr()), Options{})
	for _, tt := range []struct {
		path      string
		wantClean bool
	}{{"/events", true}, {"/download", false}} {
		resp, err := f.srv.Client().Get(f.srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if line != "data: one\n" || (err == nil) != tt.wantClean {
			t.Errorf("%s: first line %q, end of body %v; want the event and a clean end %v", tt.path, line, err, tt.wantClean)
		}
	}
}

// TestWebSocketOverTLSUpstream: an upgrade to a protocol https backend
// goes over TLS, and its limits and drain apply as over clear text.
func TestWebSocketOverTLSUpstream(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ws CA")
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	u := newWSUpstream(t)
	u.Close()
	u.Server = httptest.NewUnstartedServer(u.Config.Handler)
	u.TLS = &tls.Config{Certificates: []tls.Certificate{certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"ws.internal"}}).TLS}}
	u.StartTLS()
	t.Cleanup(u.Server.Close)
	port := u.Listener.Addr().(*net.TCPAddr).Port
	f := start(t, fmt.Sprintf(`
backends: [{name: ws, addresses: ["ws.internal:%d"], protocol: https, tls: {caFile: %s}}]
routes: [{name: ws, backends: [{name: ws}], streams: {idleTimeout: 1s}}]
`, port, caFile), Options{LookupHost: legacyResolver})
	resolved(t, f.gw, "ws")
	c := dialWS(t, f)
	if ce := readClose(t, c); ce.Code != websocket.StatusGoingAway || ce.Reason != "idle timeout" {
		t.Errorf("client got close %d %q, want 1001 \"idle timeout\"", ce.Code, ce.Reason)
	}
}

// TestDrainLetsDownloadsFinish: on drain a response body without a
// length that is not an endless stream (a chunked download) gets the
// drain period to finish; only when that is over is it cut.
func TestDrainLetsDownloadsFinish(t *testing.T) {
	u := newUpstream(t, "files")
	release := make(chan struct{})
	u.handler = func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part one\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
			io.WriteString(w, "part two\n")
		case <-r.Context().Done():
		}
	}
	f := start(t, fmt.Sprintf(`
backends: [{name: files, addresses: [%q]}]
routes: [{name: files, backends: [{name: files}]}]
`, u.addr()), Options{})
	for _, tt := range []struct {
		name     string
		deadline time.Duration
		finish   bool // the upstream finishes within the drain period
	}{{"finishes in time", 10 * time.Second, true}, {"cut at the deadline", 300 * time.Millisecond, false}} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.srv.Client().Get(f.srv.URL + "/file")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if line, _ := br.ReadString('\n'); line != "part one\n" {
				t.Fatalf("first line %q", line)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.deadline)
			defer cancel()
			drained := make(chan error, 1)
			go func() { drained <- f.gw.DrainStreams(ctx) }()
			if tt.finish {
				time.Sleep(100 * time.Millisecond) // the drain has begun: the download is still going
				release <- struct{}{}
			}
			rest, err := io.ReadAll(br)
			if tt.finish && (err != nil || string(rest) != "part two\n") {
				t.Errorf("rest %q, %v; want the whole body", rest, err)
			}
			if !tt.finish && err == nil {
				t.Errorf("body ended cleanly (%q) although the drain period ran out", rest)
			}
			if err := <-drained; (err == nil) != tt.finish {
				t.Errorf("DrainStreams() = %v", err)
			}
		})
	}
}
