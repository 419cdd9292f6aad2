package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// live is a demo served on a real TCP port, as `flotilla demo` serves it.
type live struct {
	svc  *Service
	srv  *http.Server
	addr string
	errc chan error
}

func startLive(t *testing.T, mod func(*Config)) *live {
	t.Helper()
	cfg := Config{Addr: ":0", Instance: "demo-abc", Version: "v3", DieMode: "exit",
		StreamIdleTimeout: DefaultStreamIdleTimeout, StreamMaxLifetime: DefaultStreamMaxLifetime}
	if mod != nil {
		mod(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
	svc := New(Options{Config: cfg, Registry: prometheus.NewRegistry(), Logger: log, PodIP: "10.244.0.7"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &live{svc: svc, srv: svc.NewServer(cfg.Server, log), addr: ln.Addr().String(), errc: make(chan error, 1)}
	go func() { l.errc <- l.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		l.shutdown(t, ctx)
	})
	return l
}

// shutdown stops the server as httpserver.Serve and runDemo do; a second
// call is a no-op.
func (l *live) shutdown(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := l.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown() = %v, want nil", err)
	}
	if err := l.svc.Close(ctx); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
}

func (l *live) grpcConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+l.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func (l *live) dialWS(t *testing.T, ctx context.Context) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.Dial(ctx, "ws://"+l.addr+"/ws/echo", nil)
	if err != nil {
		t.Fatalf("Dial(/ws/echo) = %v", err)
	}
	if got := resp.Header.Get("X-Flotilla-Instance"); got != "demo-abc" {
		t.Errorf("handshake X-Flotilla-Instance = %q, want demo-abc", got)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(2 * MaxWSMessage)
	return c
}

func wsRoundTrip(t *testing.T, ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	if err := c.Write(ctx, typ, msg); err != nil {
		t.Fatalf("Write(%d bytes) = %v", len(msg), err)
	}
	gotTyp, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("Read() after writing %d bytes = %v", len(msg), err)
	}
	if gotTyp != typ || !bytes.Equal(got, msg) {
		t.Errorf("echo = %v %d bytes, want %v %d bytes", gotTyp, len(got), typ, len(msg))
	}
}

// wantClose reads until the connection closes and checks the close frame.
func wantClose(t *testing.T, ctx context.Context, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	_, _, err := c.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("Read() = %v, want close frame %d", err, code)
	}
	if ce.Code != code || !strings.Contains(ce.Reason, reason) {
		t.Errorf("close frame = %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	}
}

func TestWebSocketEcho(t *testing.T) {
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := l.dialWS(t, ctx)
	wsRoundTrip(t, ctx, c, websocket.MessageText, []byte("hello"))
	wsRoundTrip(t, ctx, c, websocket.MessageBinary, []byte{0, 1, 2, 0xff})
	wsRoundTrip(t, ctx, c, websocket.MessageText, []byte(""))
	wsRoundTrip(t, ctx, c, websocket.MessageBinary, bytes.Repeat([]byte{7}, MaxWSMessage))
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("client Close() = %v, want nil", err)
	}
}

func TestWebSocketOversizeCloses1009(t *testing.T) {
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := l.dialWS(t, ctx)
	if err := c.Write(ctx, websocket.MessageBinary, make([]byte, MaxWSMessage+1)); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	wantClose(t, ctx, c, websocket.StatusMessageTooBig, "")
}

// The connection outlives the server's --read-timeout and
// --write-timeout, which bound ordinary requests; the stream limits
// bound it instead.
func TestWebSocketOutlivesRequestTimeouts(t *testing.T) {
	l := startLive(t, func(c *Config) {
		c.Server.ReadTimeout = 50 * time.Millisecond
		c.Server.WriteTimeout = 50 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := l.dialWS(t, ctx)
	time.Sleep(300 * time.Millisecond) // past both timeouts
	wsRoundTrip(t, ctx, c, websocket.MessageText, []byte("still here"))
}

func TestWebSocketLimitsClose1001(t *testing.T) {
	tests := []struct {
		name       string
		idle, life time.Duration
		reason     string
	}{
		{"idle timeout", 100 * time.Millisecond, 0, wsReasonIdle},
		{"max lifetime", 0, 200 * time.Millisecond, wsReasonLifetime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startLive(t, func(c *Config) { c.StreamIdleTimeout, c.StreamMaxLifetime = tt.idle, tt.life })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := l.dialWS(t, ctx)
			wsRoundTrip(t, ctx, c, websocket.MessageText, []byte("hi"))
			wantClose(t, ctx, c, websocket.StatusGoingAway, tt.reason)
		})
	}
}

// A message resets the idle timer: a client that talks more often than
// --stream-idle-timeout keeps its connection.
func TestWebSocketActivityResetsIdle(t *testing.T) {
	l := startLive(t, func(c *Config) { c.StreamIdleTimeout = 400 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := l.dialWS(t, ctx)
	for range 5 { // 5 × 150ms > 400ms
		time.Sleep(150 * time.Millisecond)
		wsRoundTrip(t, ctx, c, websocket.MessageText, []byte("tick"))
	}
}

func TestWebSocketBadRequests(t *testing.T) {
	l := startLive(t, func(c *Config) { c.WSOrigins = []string{"*.example.com"} })
	upgrade := map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
	with := func(extra map[string]string) map[string]string {
		h := map[string]string{}
		for k, v := range upgrade {
			h[k] = v
		}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name, method string
		header       map[string]string
		wantCode     int
		wantBody     string
	}{
		{"plain GET", "GET", nil, http.StatusUpgradeRequired, "Connection header"},
		{"no Upgrade header", "GET", with(map[string]string{"Upgrade": ""}), http.StatusUpgradeRequired, "Upgrade header"},
		{"POST", "POST", upgrade, http.StatusMethodNotAllowed, ""},
		{"old version", "GET", with(map[string]string{"Sec-WebSocket-Version": "8"}), http.StatusBadRequest, "only 13 is supported"},
		{"bad key", "GET", with(map[string]string{"Sec-WebSocket-Key": "short"}), http.StatusBadRequest, "Sec-WebSocket-Key"},
		{"foreign origin", "GET", with(map[string]string{"Origin": "https://evil.test"}), http.StatusForbidden, "not authorized"},
		{"origin not a URL", "GET", with(map[string]string{"Origin": "::"}), http.StatusForbidden, "Origin"},
		{"same-host origin", "GET", with(map[string]string{"Origin": "http://" + l.addr}), http.StatusSwitchingProtocols, ""},
		{"--ws-origins match", "GET", with(map[string]string{"Origin": "https://app.example.com"}), http.StatusSwitchingProtocols, ""},
		{"no origin (curl, Go)", "GET", upgrade, http.StatusSwitchingProtocols, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://"+l.addr+"/ws/echo", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body []byte
			if resp.StatusCode != http.StatusSwitchingProtocols { // else the WebSocket stream: nothing to read
				body, _ = io.ReadAll(io.LimitReader(resp.Body, 4096))
			}
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s /ws/echo = %d %q, want %d containing %q", tt.method, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

// The same port still serves HTTP/1.1, and HTTP/2 with prior knowledge.
func TestWebPagesOnSharedPort(t *testing.T) {
	l := startLive(t, nil)
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	tests := []struct {
		name      string
		rt        http.RoundTripper
		wantProto string
	}{
		{"HTTP/1.1", &http.Transport{}, "HTTP/1.1"},
		{"h2c prior knowledge", h2c, "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := (&http.Client{Transport: tt.rt}).Get("http://" + l.addr + "/ping")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "pong\n" || resp.Proto != tt.wantProto {
				t.Errorf("GET /ping = %s %d %q, want %s 200 %q", resp.Proto, resp.StatusCode, body, tt.wantProto, "pong\n")
			}
		})
	}
}

func healthOf(t *testing.T, ctx context.Context, hc healthpb.HealthClient, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("Check(%q) = %v", service, err)
	}
	return resp.Status
}

func TestGRPCHealthFollowsReadiness(t *testing.T) {
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(l.grpcConn(t))
	serving, notServing := healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING
	post := func(path string) {
		resp, err := http.Post("http://"+l.addr+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	steps := []struct {
		name string
		do   func()
		want healthpb.HealthCheckResponse_ServingStatus
	}{
		{"at start", func() {}, serving},
		{"readiness disabled", func() { post("/readyz/disable") }, notServing},
		{"readiness enabled", func() { post("/readyz/enable") }, serving},
		{"draining", l.svc.Drain, notServing},
		{"enable while draining", func() { post("/readyz/enable") }, notServing},
	}
	for _, s := range steps {
		s.do()
		for _, service := range []string{"", EchoService} {
			if got := healthOf(t, ctx, hc, service); got != s.want {
				t.Errorf("%s: Check(%q) = %v, want %v", s.name, service, got, s.want)
			}
		}
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check(no.such.Service) = %v, want NotFound", err)
	}
}

func TestGRPCHealthNotServingWhileStarting(t *testing.T) {
	l := startLive(t, func(c *Config) { c.ReadinessDelay = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := healthOf(t, ctx, healthpb.NewHealthClient(l.grpcConn(t)), ""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Check() during --readiness-delay = %v, want NOT_SERVING", got)
	}
}

// The drain sequence of httpserver.Serve: Watch sees NOT_SERVING as soon
// as the drain starts; Shutdown then ends every stream with a close
// frame (WebSocket 1001) or a status (gRPC Unavailable), and returns.
func TestShutdownEndsStreams(t *testing.T) {
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc := l.grpcConn(t)

	watch, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first Recv() = %v, %v; want SERVING", m, err)
	}
	echo, err := cc.NewStream(ctx, &EchoStreamDesc, EchoStreamMethod)
	if err != nil {
		t.Fatal(err)
	}
	streamRoundTrip(t, echo, "before")
	ws := l.dialWS(t, ctx)
	wsRoundTrip(t, ctx, ws, websocket.MessageText, []byte("before"))

	l.svc.Drain() // what httpserver.Serve calls first
	if m, err := watch.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch Recv() after drain = %v, %v; want NOT_SERVING", m, err)
	}
	streamRoundTrip(t, echo, "while draining") // streams carry on during --drain-delay

	done := make(chan struct{})
	go func() { defer close(done); l.shutdown(t, ctx) }()
	wantClose(t, ctx, ws, websocket.StatusGoingAway, wsReasonShutdown)
	if _, err := watch.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("Watch Recv() on shutdown = %v, want Unavailable", err)
	}
	if err := echo.RecvMsg(new(wrapperspb.StringValue)); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("EchoStream Recv() on shutdown = %v, want Unavailable: server shutting down", err)
	}
	<-done
	if err := <-l.errc; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve() = %v, want ErrServerClosed", err)
	}
}

// The whole drain through httpserver.Serve, as `flotilla demo` runs it.
func TestServeDrainsWebSocket(t *testing.T) {
	cfg := Config{Addr: ":0", Instance: "demo-abc", Version: "v3", DieMode: "exit",
		StreamIdleTimeout: DefaultStreamIdleTimeout, StreamMaxLifetime: DefaultStreamMaxLifetime}
	log := slog.New(slog.DiscardHandler)
	svc := New(Options{Config: cfg, Registry: prometheus.NewRegistry(), Logger: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	opts := httpserver.Options{ShutdownTimeout: 20 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- httpserver.Serve(sctx, svc.NewServer(opts, log), ln, opts, svc.Drain) }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/ws/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	wsRoundTrip(t, ctx, ws, websocket.MessageText, []byte("hi"))
	stop()
	wantClose(t, ctx, ws, websocket.StatusGoingAway, wsReasonShutdown)
	if err := <-errc; err != nil {
		t.Errorf("Serve() = %v, want nil", err)
	}
	if err := svc.Close(ctx); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
}

func streamRoundTrip(t *testing.T, s grpc.ClientStream, msg string) {
	t.Helper()
	if err := s.SendMsg(wrapperspb.String(msg)); err != nil {
		t.Fatalf("EchoStream Send(%q) = %v", msg, err)
	}
	got := new(wrapperspb.StringValue)
	if err := s.RecvMsg(got); err != nil || got.Value != msg {
		t.Fatalf("EchoStream Recv() = %q, %v; want %q", got.Value, err, msg)
	}
}

func TestGRPCEcho(t *testing.T) {
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc := l.grpcConn(t)

	var header metadata.MD
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, EchoMethod, wrapperspb.String("hello"), out, grpc.Header(&header)); err != nil || out.Value != "hello" {
		t.Fatalf("Echo(hello) = %q, %v; want hello", out.Value, err)
	}
	if got := header.Get("x-flotilla-instance"); !slices.Equal(got, []string{"demo-abc"}) {
		t.Errorf("Echo header x-flotilla-instance = %q, want demo-abc", got)
	}

	s, err := cc.NewStream(ctx, &EchoStreamDesc, EchoStreamMethod)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"one", "", "three"} {
		streamRoundTrip(t, s, m)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); err != io.EOF {
		t.Errorf("EchoStream Recv() after CloseSend = %v, want io.EOF (status OK)", err)
	}
}

func TestGRPCEchoStreamEnds(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*Config)
		deadline time.Duration
		want     codes.Code
		wantMsg  string
	}{
		{"client deadline", nil, 200 * time.Millisecond, codes.DeadlineExceeded, ""},
		{"idle timeout", func(c *Config) { c.StreamIdleTimeout = 100 * time.Millisecond }, 0, codes.Unavailable, "--stream-idle-timeout"},
		{"max lifetime", func(c *Config) { c.StreamMaxLifetime = 200 * time.Millisecond }, 0, codes.Unavailable, "--stream-max-lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startLive(t, tt.mod)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if tt.deadline > 0 {
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			s, err := l.grpcConn(t).NewStream(ctx, &EchoStreamDesc, EchoStreamMethod)
			if err != nil {
				t.Fatal(err)
			}
			streamRoundTrip(t, s, "hi")
			err = s.RecvMsg(new(wrapperspb.StringValue)) // nothing more sent: wait for the end
			if status.Code(err) != tt.want || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("EchoStream Recv() = %v, want %v %q", err, tt.want, tt.wantMsg)
			}
		})
	}
}

func TestGRPCBadCalls(t *testing.T) {
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc := l.grpcConn(t)
	tests := []struct {
		name   string
		method string
		in     proto.Message
		want   codes.Code
	}{
		{"unknown method", "/flotilla.demo.v1.Echo/Shout", wrapperspb.String("x"), codes.Unimplemented},
		{"unknown service", "/flotilla.demo.v1.Nope/Echo", wrapperspb.String("x"), codes.Unimplemented},
		{"message over 64 KiB", EchoMethod, wrapperspb.String(strings.Repeat("x", MaxGRPCMessage+1)), codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cc.Invoke(ctx, tt.method, tt.in, new(wrapperspb.StringValue))
			if status.Code(err) != tt.want {
				t.Errorf("Invoke(%s) = %v, want %v", tt.method, err, tt.want)
			}
		})
	}
}

// gRPC's content type on HTTP/1.1, or with a GET, gets a clear HTTP
// error from the gRPC server rather than the web routes' 404.
func TestGRPCBadHTTP(t *testing.T) {
	l := startLive(t, nil)
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	tests := []struct {
		name, method string
		rt           http.RoundTripper
		want         int
	}{
		{"HTTP/1.1", "POST", &http.Transport{}, http.StatusHTTPVersionNotSupported},
		{"GET over h2c", "GET", h2c, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://"+l.addr+EchoMethod, strings.NewReader(""))
			req.Header.Set("Content-Type", "application/grpc")
			resp, err := tt.rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, EchoMethod, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestGRPCReflection(t *testing.T) {
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rc, err := reflectionpb.NewServerReflectionClient(l.grpcConn(t)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := rc.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := rc.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{EchoService, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("ListServices = %q, want it to contain %q", names, want)
		}
	}

	files := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: EchoService}})
	var methods []string
	var paths []string
	for _, raw := range files.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(raw, fd); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, fd.GetName())
		for _, s := range fd.GetService() {
			for _, m := range s.GetMethod() {
				methods = append(methods, fd.GetPackage()+"."+s.GetName()+"/"+m.GetName()+" "+m.GetInputType()+
					map[bool]string{true: " stream", false: ""}[m.GetClientStreaming() && m.GetServerStreaming()])
			}
		}
	}
	wantMethods := []string{"flotilla.demo.v1.Echo/Echo .google.protobuf.StringValue", "flotilla.demo.v1.Echo/EchoStream .google.protobuf.StringValue stream"}
	if !slices.Equal(methods, wantMethods) {
		t.Errorf("FileContainingSymbol(%s) methods = %q, want %q", EchoService, methods, wantMethods)
	}
	if !slices.Contains(paths, "google/protobuf/wrappers.proto") {
		t.Errorf("FileContainingSymbol(%s) files = %q, want the wrappers.proto dependency too", EchoService, paths)
	}

	bad := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "no.such.Symbol"}})
	if got := codes.Code(bad.GetErrorResponse().GetErrorCode()); got != codes.NotFound {
		t.Errorf("FileContainingSymbol(no.such.Symbol) error = %v, want NotFound", got)
	}
}
