package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestGatewayDirectResponse runs `flotilla gateway` (its own HTTP/1.1
// server) with a directResponse route and talks to it over one raw TCP
// connection: the fixed answer for GET, HEAD (no body) and POST with a
// body, the connection still usable after each, the backend never asked.
func TestGatewayDirectResponse(t *testing.T) {
	var reached atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, "app")
	}))
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "gateway.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: app, addresses: [%q]}]
routes:
  - {name: app, match: {methods: [GET, HEAD]}, backends: [{name: app}]}
  - {name: private, match: {path: {type: Regex, value: "/(metrics|readyz)(/.*)?"}}, directResponse: {status: 404, body: "not found\n"}}
  - {name: gone, match: {path: {type: Exact, value: /gone}}, directResponse: {status: 204}}
`, strings.TrimPrefix(up.URL, "http://"))), 0o600)
	addr := gwFreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuf
	e := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"gateway", "--config", cfg, "--addr", addr, "--admin-addr", "", "--shutdown-timeout", "2s"}, e)
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("gateway did not stop")
		}
	}()
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never listened: %v; stderr %s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for _, tt := range []struct {
		req    string
		method string
		status int
		body   string
		cl     string
	}{
		{"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", 404, "not found\n", "10"},
		{"HEAD /readyz/disable HTTP/1.1\r\nHost: gw\r\n\r\n", "HEAD", 404, "", "10"},
		{"POST /readyz/disable HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello", "POST", 404, "not found\n", "10"},
		{"GET /gone HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", 204, "", ""},
		{"GET /ok HTTP/1.1\r\nHost: gw\r\n\r\n", "GET", 200, "app", "3"},
	} {
		if _, err := io.WriteString(conn, tt.req); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		req, _ := http.NewRequest(tt.method, "/", nil)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("%q: %v", tt.req, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || string(b) != tt.body || resp.Header.Get("Content-Length") != tt.cl {
			t.Errorf("%q = %d %q Content-Length %q, want %d %q %q", tt.req, resp.StatusCode, b, resp.Header.Get("Content-Length"), tt.status, tt.body, tt.cl)
		}
		if tt.status != 200 && resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%q: no X-Request-Id", tt.req)
		}
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("the backend got %d requests, want 1 (only GET /ok)", n)
	}
}
