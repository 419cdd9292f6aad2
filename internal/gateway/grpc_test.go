package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
)

// grpcUpstream is a grpc-go server with the standard health service;
// calls to any other service block until their deadline and record it.
type grpcUpstream struct {
	srv    *grpc.Server
	health *health.Server
	addr   string
	mu     sync.Mutex
	left   []time.Duration // what was left of each blocked call's deadline when it arrived
}

func newGRPCUpstream(t *testing.T, creds credentials.TransportCredentials) *grpcUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &grpcUpstream{health: health.NewServer(), addr: ln.Addr().String()}
	opts := []grpc.ServerOption{grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		ctx := stream.Context()
		if d, ok := ctx.Deadline(); ok {
			u.mu.Lock()
			u.left = append(u.left, time.Until(d))
			u.mu.Unlock()
		}
		<-ctx.Done()
		return status.Error(codes.DeadlineExceeded, "upstream gave up")
	})}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	u.srv = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(u.srv, u.health)
	u.health.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	done := make(chan struct{})
	go func() {
		defer close(done)
		u.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		u.health.Shutdown()
		u.srv.Stop()
		<-done
	})
	return u
}

// serveH2 fronts the gateway with an HTTP/2 server over TLS, standing in
// for the edge listener, and returns a grpc-go client connection to it
// sending authority.
func serveH2(t *testing.T, h http.Handler, authority string) (*httptest.Server, *grpc.ClientConn) {
	ca := certtest.NewCA(t, "edge CA")
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{authority, "127.0.0.1"}}).TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs = roots
	cc, err := grpc.NewClient(srv.Listener.Addr().String(), grpc.WithAuthority(authority),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return srv, cc
}

func TestGRPCThroughGateway(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "grpc CA")
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	leaf := certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"grpc.internal"}})
	h2c := newGRPCUpstream(t, nil)
	tlsUp := newGRPCUpstream(t, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{leaf.TLS}}))
	f := start(t, fmt.Sprintf(`
backends:
  - {name: h2c, addresses: [%q], protocol: h2c}
  - {name: h2, addresses: ["grpc.internal:%s"], protocol: h2, tls: {caFile: %s}}
  - {name: dead, addresses: [%q], protocol: h2c}
routes:
  - {name: h2c, match: {hosts: [h2c.test]}, backends: [{name: h2c}], timeout: 200ms}
  - {name: h2, match: {hosts: [h2.test]}, backends: [{name: h2}]}
  - {name: dead, match: {hosts: [dead.test]}, backends: [{name: dead}], retries: {attempts: 0}}
`, h2c.addr, tlsUp.addr[strings.LastIndexByte(tlsUp.addr, ':')+1:], caFile, deadAddr(t)), Options{LookupHost: legacyResolver})
	resolved(t, f.gw, "h2")

	for _, host := range []string{"h2c.test", "h2.test"} {
		t.Run(host, func(t *testing.T) {
			_, cc := serveH2(t, f.gw.Handler(), host)
			client := healthpb.NewHealthClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
			if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check(echo) = %v, %v; want SERVING", resp, err)
			}
			// The upstream's status and message travel in trailers.
			_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
			if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "unknown service" {
				t.Errorf("Check(nope) = %v, want the upstream's NotFound \"unknown service\"", err)
			}
			// A server stream: the second message comes after the first
			// was delivered, through the gateway.
			up := h2c
			if host == "h2.test" {
				up = tlsUp
			}
			up.health.SetServingStatus("watched", healthpb.HealthCheckResponse_SERVING)
			stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "watched"})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Watch first = %v, %v; want SERVING", m, err)
			}
			up.health.SetServingStatus("watched", healthpb.HealthCheckResponse_NOT_SERVING)
			if m, err := stream.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("Watch second = %v, %v; want NOT_SERVING", m, err)
			}
		})
	}

	t.Run("gateway errors are gRPC statuses", func(t *testing.T) {
		for _, tt := range []struct {
			authority string
			code      codes.Code
			class     string
		}{
			{"nowhere.test", codes.Unimplemented, "no_route"},
			{"dead.test", codes.Unavailable, "upstream_failure"},
		} {
			_, cc := serveH2(t, f.gw.Handler(), tt.authority)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
			cancel()
			s := status.Convert(err)
			if s.Code() != tt.code || !strings.HasPrefix(s.Message(), "flotilla gateway: "+tt.class) {
				t.Errorf("%s: Check = %v, want %v with the gateway's %s", tt.authority, err, tt.code, tt.class)
			}
		}
	})

	t.Run("grpc-timeout and the route timeout", func(t *testing.T) {
		_, cc := serveH2(t, f.gw.Handler(), "h2c.test")
		// The client allows an hour; the route 200ms: the upstream is
		// told the shorter deadline and the gateway ends the call with
		// DEADLINE_EXCEEDED when it passes.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		err := cc.Invoke(ctx, "/slow.Service/Wait", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
		if s := status.Convert(err); s.Code() != codes.DeadlineExceeded || !strings.HasPrefix(s.Message(), "flotilla gateway: upstream_timeout") {
			t.Errorf("Invoke = %v, want DeadlineExceeded from the gateway", err)
		}
		h2c.mu.Lock()
		left := h2c.left
		h2c.mu.Unlock()
		if len(left) != 1 || left[0] > 200*time.Millisecond {
			t.Errorf("upstream deadlines = %v, want one of at most the route's 200ms", left)
		}
	})
}

// TestGRPCRejectedRequests sends gRPC requests a grpc-go client would not
// (a malformed grpc-timeout, a declared body over the cap) over HTTP/2
// and checks each gets a trailers-only gRPC status.
func TestGRPCRejectedRequests(t *testing.T) {
	h2c := newGRPCUpstream(t, nil)
	f := start(t, fmt.Sprintf(`
backends: [{name: h2c, addresses: [%q], protocol: h2c}]
routes:
  - {name: get, match: {path: {type: Exact, value: /get.Only/M}, methods: [GET]}, backends: [{name: h2c}]}
  - {name: grpc, match: {path: {value: /grpc.health.v1.Health}}, backends: [{name: h2c}]}
`, h2c.addr), Options{MaxRequestBody: 1 << 10})
	srv, _ := serveH2(t, f.gw.Handler(), "x")
	client := srv.Client() // HTTP/2 over TLS
	tests := []struct {
		name    string
		path    string
		timeout string
		length  int
		status  string
		class   string
	}{
		{"grpc-timeout with a Go duration", "/grpc.health.v1.Health/Check", "5ms", 5, "13", "bad_grpc_timeout"},
		{"grpc-timeout without unit", "/grpc.health.v1.Health/Check", "100", 5, "13", "bad_grpc_timeout"},
		{"grpc-timeout of nine digits", "/grpc.health.v1.Health/Check", "123456789S", 5, "13", "bad_grpc_timeout"},
		{"grpc-timeout negative", "/grpc.health.v1.Health/Check", "-1S", 5, "13", "bad_grpc_timeout"},
		{"body over the cap", "/grpc.health.v1.Health/Check", "", 2 << 10, "8", "request_too_large"},
		{"no route", "/other.Service/M", "", 5, "12", "no_route"},
		{"method not allowed", "/get.Only/M", "", 5, "12", "method_not_allowed"},
		{"encoded slash", "/grpc.health.v1.Health%2FCheck", "", 5, "13", "bad_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+tt.path, strings.NewReader(strings.Repeat("\x00", tt.length)))
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("TE", "trailers")
			if tt.timeout != "" {
				req.Header.Set("Grpc-Timeout", tt.timeout)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/grpc" || resp.Header.Get("Grpc-Status") != tt.status ||
				!strings.HasPrefix(resp.Header.Get("Grpc-Message"), "flotilla gateway: "+tt.class) || len(body) != 0 {
				t.Errorf("HTTP %d %q grpc-status %q grpc-message %q body %q; want 200, trailers-only grpc-status %s for %s",
					resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"), body, tt.status, tt.class)
			}
		})
	}
}

// TestGRPCNotRetriedOnceSent: a gRPC call that reached the upstream is
// never sent again, whatever the route's retry policy: not when the
// upstream reset the stream, not on a retryOn status.
func TestGRPCNotRetriedOnceSent(t *testing.T) {
	for _, tt := range []struct {
		name       string
		handler    http.HandlerFunc
		wantStatus string // grpc-status the client sees ("" for an HTTP error)
		wantHTTP   int
	}{
		{"reset after reading", func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			panic(http.ErrAbortHandler)
		}, "14", 200},
		{"503 status", func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			w.WriteHeader(503)
		}, "", 503},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := &upstream{name: "h2c", handler: tt.handler}
			u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
			u.Config.Protocols = new(http.Protocols)
			u.Config.Protocols.SetUnencryptedHTTP2(true)
			u.Config.ErrorLog = log.New(io.Discard, "", 0)
			u.Start()
			t.Cleanup(u.Close)
			f := start(t, fmt.Sprintf(`
backends: [{name: h2c, addresses: [%q, %q], protocol: h2c}]
routes: [{name: r, backends: [{name: h2c}], retries: {attempts: 3, retryOn: [503]}}]
`, u.addr(), u.addr()), Options{})
			srv, _ := serveH2(t, f.gw.Handler(), "x")
			req, _ := http.NewRequest("POST", srv.URL+"/pkg.Svc/M", strings.NewReader("\x00\x00\x00\x00\x00"))
			req.Header.Set("Content-Type", "application/grpc")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantHTTP || resp.Header.Get("Grpc-Status") != tt.wantStatus {
				t.Errorf("HTTP %d grpc-status %q, want %d %q", resp.StatusCode, resp.Header.Get("Grpc-Status"), tt.wantHTTP, tt.wantStatus)
			}
			if n := u.hits.Load(); n != 1 {
				t.Errorf("upstream got the call %d times, want once", n)
			}
		})
	}
}
