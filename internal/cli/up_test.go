package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flotilla-dev/flotilla/internal/demo"
)

// buildFlotilla compiles the real binary once per test binary run.
func buildFlotilla(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flotilla")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/flotilla")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestUpEndToEnd(t *testing.T) {
	bin := buildFlotilla(t)
	addr, tlsAddr, tlsDir := freeAddr(t), freeAddr(t), t.TempDir()
	cmd := exec.Command(bin, "up", "--addr", addr, "--tls-addr", tlsAddr, "--tls-dir", tlsDir, "--log-level", "warn")
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := bufio.NewScanner(stdout)
	var banner []string
	for lines.Scan() {
		banner = append(banner, lines.Text())
		if strings.HasPrefix(lines.Text(), "Press Ctrl-C") {
			break
		}
	}
	if !strings.Contains(strings.Join(banner, "\n"), "http://"+addr+"/counter") {
		t.Fatalf("banner does not print the counter URL:\n%s\nstderr: %s", strings.Join(banner, "\n"), stderr.String())
	}

	c := &http.Client{Timeout: 5 * time.Second}
	getHost := func(host, path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("User-Agent", "curl/8.5.0")
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %q", path, resp.StatusCode, b)
		}
		return string(b)
	}
	get := func(path string) string { t.Helper(); return getHost(addr, path) }
	if got := get("/counter"); got != "[counter-1] Redis counter value=1\n" {
		t.Errorf("first GET /counter = %q", got)
	}
	if got := get("/counter"); got != "[counter-2] Redis counter value=2\n" {
		t.Errorf("second GET /counter = %q", got)
	}
	// The live view's URL is printed and counts those requests.
	var live string
	for _, l := range banner {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "live" {
			live = f[1]
		}
	}
	if !strings.HasPrefix(live, "http://127.0.0.1:") || !strings.HasSuffix(live, "/ui/") {
		t.Fatalf("banner has no live view URL:\n%s", strings.Join(banner, "\n"))
	}
	sresp, err := c.Get(live + "session")
	if err != nil {
		t.Fatal(err)
	}
	sresp.Body.Close()
	req, _ := http.NewRequest("GET", live+"snapshot", nil)
	for _, ck := range sresp.Cookies() {
		req.AddCookie(ck)
	}
	if sresp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Services []struct {
			Name  string
			Stats struct{ Total int }
		}
	}
	json.NewDecoder(sresp.Body).Decode(&snap)
	sresp.Body.Close()
	counted := -1
	for _, s := range snap.Services {
		if s.Name == "counter" {
			counted = s.Stats.Total
		}
	}
	if counted != 2 {
		t.Errorf("live view snapshot counts %d requests on route counter, want 2: %+v", counted, snap.Services)
	}
	if got := get("/demo/ping"); got != "pong\n" {
		t.Errorf("GET /demo/ping = %q", got)
	}
	if got := get("/demo"); !strings.Contains(got, "served from demo-1") {
		t.Errorf("GET /demo = %q", got)
	}
	if got := get("/"); !strings.Contains(got, `href="/counter"`) {
		t.Errorf("GET / = %q", got)
	}
	// The talk's Ingress, through the gateway.
	if got := getHost("flaskapp.test", "/flask"); got != "[counter-1] Redis counter value=3\n" {
		t.Errorf("GET flaskapp.test/flask = %q", got)
	}
	if got := getHost("minikube.test", "/1line"); !strings.HasPrefix(got, "v1 demo-1 [127.0.0.1] <- 127.0.0.1 (X-Forwarded-For: 127.0.0.1") {
		t.Errorf("GET minikube.test/1line = %q", got)
	}

	// HTTPS with HTTP/2, trusting the local CA the banner names.
	caFile := filepath.Join(tlsDir, "ca.crt")
	if !strings.Contains(strings.Join(banner, "\n"), "https://"+tlsAddr+"/ (HTTP/2; local CA "+caFile) {
		t.Errorf("banner does not print the HTTPS URL and the CA:\n%s", strings.Join(banner, "\n"))
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	resp, err := h2.Get("https://" + tlsAddr + "/counter")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "[counter-2] Redis counter value=4\n" {
		t.Errorf("GET https://%s/counter = %s %q, want HTTP/2 and the next count", tlsAddr, resp.Proto, b)
	}

	// gRPC through the gateway over TLS (h2) to the demo's h2c port: health
	// and echo, with trailers intact.
	cc, err := grpc.NewClient("passthrough:///"+tlsAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health through the gateway: %v, %v", hr, err)
	}
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, demo.EchoMethod, wrapperspb.String("hello over h2"), out); err != nil || out.Value != "hello over h2" {
		t.Errorf("gRPC echo through the gateway: %q, %v", out.Value, err)
	}
	// WebSocket through the gateway to the demo's /ws/echo.
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/demo/ws/echo", nil)
	if err != nil {
		t.Fatalf("WebSocket through the gateway: %v", err)
	}
	ws.Write(ctx, websocket.MessageText, []byte("ping"))
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "ping" {
		t.Errorf("WebSocket echo: %q, %v", msg, err)
	}

	cmd.Process.Signal(syscall.SIGINT)
	// The gateway stops: the WebSocket gets a close frame, not a cut.
	var ce websocket.CloseError
	if _, _, err := ws.Read(ctx); !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway {
		t.Errorf("on SIGINT the WebSocket ended with %v, want close 1001", err)
	}
	done := make(chan error, 1)
	go func() { io.Copy(io.Discard, stdout); done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGINT: %v (want exit 0); stderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("flotilla up did not stop within 15s of SIGINT")
	}
}

func TestUpPortInUse(t *testing.T) {
	bin := buildFlotilla(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(bin, "up", "--addr", ln.Addr().String(), "--tls-addr", "")
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != ExitError {
		t.Fatalf("up on a used port: err = %v, want exit %d; output %q", err, ExitError, out)
	}
	if want := "listen on " + ln.Addr().String() + ": "; !strings.Contains(string(out), want) || !strings.Contains(string(out), "address already in use") {
		t.Errorf("output %q, want it to name the address and say it is in use", out)
	}
}

// TestLocalCertificateKeepsTheCA: the CA is made once and kept (users
// trust it once); each run's localhost certificate chains to it.
func TestLocalCertificateKeepsTheCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	first, err := localCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if _, err := localCertificate(dir); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if len(ca1) == 0 || string(ca1) != string(ca2) {
		t.Fatal("the local CA changed between runs")
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	pair, err := tls.LoadX509KeyPair(first.Certificates[0].CertFile, first.Certificates[0].KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca2)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A CA directory that holds something else is reported, not replaced.
	os.WriteFile(filepath.Join(dir, "ca.key"), []byte("junk"), 0o600)
	if _, err := localCertificate(dir); err == nil || !strings.Contains(err.Error(), "local CA in "+dir) {
		t.Errorf("broken CA: err = %v, want it to name the directory", err)
	}
}
