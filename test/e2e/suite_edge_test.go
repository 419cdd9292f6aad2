//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// testEdge runs the protocols of the gateway's edge through its NodePorts,
// side by side (none of them changes anything the others look at): HTTPS
// with HTTP/2, WebSocket and gRPC.
func testEdge(t *testing.T, s *system) {
	t.Run("HTTPS", func(t *testing.T) { t.Parallel(); testHTTPS(t, s) })
	t.Run("WebSocket", func(t *testing.T) { t.Parallel(); testWebSocket(t, s) })
	t.Run("GRPC", func(t *testing.T) { t.Parallel(); testGRPC(t, s) })
}

// testHTTPS is the talk's counter flow over HTTPS through the gateway
// Service: HTTP/2 by ALPN on one connection, and HTTP/1.1 over TLS on a
// new connection per request; every certificate verified against the
// test's CA, the only one the clients trust.
func testHTTPS(t *testing.T, s *system) {
	h2, h1 := h2Client(s.ca), h1TLSClient(s.ca)
	get := func(hc *http.Client, path, host string) (response, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.gatewayTLS+path, nil)
		if err != nil {
			return response{}, err
		}
		req.Host = host
		return do(hc, req)
	}
	// The NodePort's second port is programmed with the first, and the
	// gateway opens both listeners before it is ready: this is a bound on
	// kube-proxy, not a wait for the gateway.
	eventually(t, convergeTimeout, "GET "+s.gatewayTLS+"/counter", func() error {
		r, err := get(h2, "/counter", "")
		if err == nil && r.Status != http.StatusOK {
			err = fmt.Errorf("status %d: %q", r.Status, r.Body)
		}
		return err
	})

	pods := s.podNames(t, s.ns, "app.kubernetes.io/name=counter")
	prev := -1
	try := func(what string, hc *http.Client, path, host string, proto int) {
		t.Helper()
		r, err := get(hc, path, host)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.ProtoMajor != proto {
			t.Errorf("%s: HTTP/%d, want HTTP/%d", what, r.ProtoMajor, proto)
		}
		if err := verified(r, s.ca); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		_, n := counterAnswer(t, what, r, pods)
		if prev >= 0 && n != prev+1 {
			t.Errorf("%s: value=%d after value=%d, want %d", what, n, prev, prev+1)
		}
		prev = n
	}
	for i := range 5 {
		try(fmt.Sprintf("HTTP/2 flaskapp.test/flask request %d", i), h2, "/flask", "flaskapp.test", 2)
		try(fmt.Sprintf("HTTP/2 /counter request %d", i), h2, "/counter", "", 2)
		try(fmt.Sprintf("HTTP/1.1 over TLS /counter request %d", i), h1, "/counter", "", 1)
	}

	// The demo by the talk's host, its name also sent as SNI: the gateway
	// tells the demo the client came over HTTPS.
	tc := s.ca.tlsConfig()
	tc.ServerName = "minikube.test"
	sni := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	r, err := get(sni, "/echo", "minikube.test")
	if err != nil {
		t.Fatalf("minikube.test/echo over HTTPS: %v", err)
	}
	if r.Status != http.StatusOK || r.ProtoMajor != 2 || !strings.Contains(r.Body, "X-Forwarded-Proto: https") || r.Header.Get("X-Flotilla-Version") != "v1" {
		t.Errorf("minikube.test/echo over HTTPS: HTTP/%d %d, version %q, body %q; want HTTP/2 200 from v1 with X-Forwarded-Proto: https",
			r.ProtoMajor, r.Status, r.Header.Get("X-Flotilla-Version"), r.Body)
	}
	if err := verified(r, s.ca); err != nil {
		t.Errorf("minikube.test/echo over HTTPS: %v", err)
	}

	// A client that does not trust the test's CA refuses the certificate:
	// the gateway serves the Secret's, not one of its own.
	untrusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
	_, err = get(untrusting, "/counter", "")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("GET /counter trusting only the system's CAs: %v, want an unknown authority error", err)
	}
	t.Logf("15 counter answers over HTTPS (10 HTTP/2, 5 HTTP/1.1), value now %d", prev)
}

// testWebSocket sends a text message to the demo's /ws/echo through the
// gateway, over clear text (ws://) and over TLS (wss://), and expects it
// back unchanged.
func testWebSocket(t *testing.T, s *system) {
	wss := &http.Client{Transport: &http.Transport{TLSClientConfig: s.ca.tlsConfig()}} // HTTP/1.1: the Upgrade needs it
	for _, c := range []struct {
		name, url string
		hc        *http.Client
	}{
		{"ws", "ws" + strings.TrimPrefix(s.gateway, "http") + "/demo/ws/echo", nil},
		{"wss", "wss" + strings.TrimPrefix(s.gatewayTLS, "https") + "/demo/ws/echo", wss},
		{"wss as minikube.test", "wss" + strings.TrimPrefix(s.gatewayTLS, "https") + "/ws/echo", wss},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		opts := &websocket.DialOptions{HTTPClient: c.hc}
		if strings.HasSuffix(c.name, "minikube.test") {
			opts.Host = "minikube.test"
		}
		err := echoWebSocket(ctx, c.url, opts)
		cancel()
		if err != nil {
			t.Errorf("%s %s: %v", c.name, c.url, err)
		}
	}
}

// echoWebSocket dials url, sends two text messages and reads each back.
func echoWebSocket(ctx context.Context, url string, opts *websocket.DialOptions) error {
	conn, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.CloseNow()
	for _, msg := range []string{"hello flotilla", strings.Repeat("x", 4096)} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		typ, got, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if typ != websocket.MessageText || string(got) != msg {
			return fmt.Errorf("echo: %v %q, want text %.20q", typ, got, msg)
		}
	}
	if err := conn.Close(websocket.StatusNormalClosure, "done"); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// testGRPC calls the demo's gRPC health and echo services through the
// gateway: over HTTPS (HTTP/2 by ALPN, the certificate verified against
// the test's CA) and over clear text (HTTP/2 with prior knowledge); the
// gateway speaks h2c to the demo.
func testGRPC(t *testing.T, s *system) {
	// demo-grpc is the demo's pods again, checked over h2c: every gateway
	// replica must have them before a call may count.
	s.waitGateway(t, "demo-grpc", "app.kubernetes.io/name=demo")
	demoPods := s.podNames(t, s.ns, "app.kubernetes.io/name=demo")
	for _, c := range []struct {
		name, target string
		creds        credentials.TransportCredentials
	}{
		{"TLS", strings.TrimPrefix(s.gatewayTLS, "https://"), credentials.NewTLS(s.ca.tlsConfig())},
		{"h2c", strings.TrimPrefix(s.gateway, "http://"), insecure.NewCredentials()},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := grpc.NewClient(c.target, grpc.WithTransportCredentials(c.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()

			health := healthpb.NewHealthClient(conn)
			for _, svc := range []string{"", "flotilla.demo.v1.Echo"} {
				var md metadata.MD
				res, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc}, grpc.Header(&md))
				if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("Health/Check(%q) = %v, %v; want SERVING", svc, res.GetStatus(), err)
				}
				if inst := md.Get("x-flotilla-instance"); len(inst) != 1 || !slices.Contains(demoPods, inst[0]) {
					t.Errorf("Health/Check(%q): X-Flotilla-Instance %q, want one of the demo pods %q", svc, inst, demoPods)
				}
			}

			in, out := wrapperspb.String("hello flotilla "+c.name), new(wrapperspb.StringValue)
			if err := conn.Invoke(ctx, "/flotilla.demo.v1.Echo/Echo", in, out); err != nil || out.GetValue() != in.GetValue() {
				t.Errorf("Echo/Echo(%q) = %q, %v; want the same message", in.GetValue(), out.GetValue(), err)
			}
			// A bidirectional stream: each message comes back, then the
			// demo ends the call with status OK in its trailers.
			stream, err := conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "EchoStream", ServerStreams: true, ClientStreams: true}, "/flotilla.demo.v1.Echo/EchoStream")
			if err != nil {
				t.Fatalf("EchoStream: %v", err)
			}
			for i := range 3 {
				msg := wrapperspb.String(fmt.Sprintf("message %d over %s", i, c.name))
				got := new(wrapperspb.StringValue)
				if err := stream.SendMsg(msg); err != nil {
					t.Fatalf("EchoStream send %d: %v", i, err)
				}
				if err := stream.RecvMsg(got); err != nil || got.GetValue() != msg.GetValue() {
					t.Fatalf("EchoStream receive %d = %q, %v; want %q", i, got.GetValue(), err, msg.GetValue())
				}
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if err := stream.RecvMsg(new(wrapperspb.StringValue)); err != io.EOF {
				t.Errorf("EchoStream after CloseSend: %v, want io.EOF (status OK)", err)
			}
			// The demo's own error, its status and trailers intact through
			// the gateway; and a service no route sends on.
			for _, m := range []string{"/flotilla.demo.v1.Echo/Nope", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
				err := conn.Invoke(ctx, m, in, out)
				if status.Code(err) != codes.Unimplemented {
					t.Errorf("%s: %v, want code Unimplemented", m, err)
				}
			}
		})
	}
}
