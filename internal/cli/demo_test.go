package cli

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// `flotilla demo` serves gRPC (h2c) and WebSocket on its one port, and
// its drain on SIGTERM closes WebSocket connections with 1001.
func TestDemoServesGRPCAndWebSocket(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuf
	e := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan int, 1)
	go func() { done <- Run(ctx, []string{"demo", "--addr", addr, "--shutdown-timeout", "10s"}, e) }()

	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer tcancel()
	var ws *websocket.Conn
	for { // until it listens
		c, _, err := websocket.Dial(tctx, "ws://"+addr+"/ws/echo", nil)
		if err == nil {
			ws = c
			break
		}
		if tctx.Err() != nil {
			t.Fatalf("dial /ws/echo: %v; stderr %s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer ws.CloseNow()
	if err := ws.Write(tctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(tctx); err != nil || string(b) != "hi" {
		t.Fatalf("WebSocket echo = %q, %v; want hi", b, err)
	}

	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(tctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health Check() = %v, %v; want SERVING", resp, err)
	}

	cancel() // SIGTERM
	_, _, err = ws.Read(tctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Errorf("WebSocket Read() on SIGTERM = %v, want close 1001", err)
	}
	if code := <-done; code != ExitOK {
		t.Errorf("demo exit = %d, stderr %s", code, stderr.String())
	}
}
