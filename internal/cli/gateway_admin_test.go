package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const adminTestToken = "c0ffee0123456789c0ffee0123456789"

func TestGatewayAdminFlagsBadInput(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("secret-ish\n"), 0o600)
	spaced := filepath.Join(dir, "spaced")
	os.WriteFile(spaced, []byte("c0ffee0123456789 c0ffee0123456789\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"network admin without token", []string{"gateway", "--config", "x.yaml", "--admin-addr", ":9901"}, nil,
			`--admin-token-file (FLOTILLA_ADMIN_TOKEN_FILE): required: --admin-addr ":9901" is not a loopback address`},
		{"network admin from env without token", []string{"gateway", "--config", "x.yaml"}, map[string]string{"FLOTILLA_ADMIN_ADDR": "0.0.0.0:9901"},
			`--admin-token-file (FLOTILLA_ADMIN_TOKEN_FILE): required`},
		{"token file missing", []string{"gateway", "--config", "x.yaml", "--admin-token-file", filepath.Join(dir, "nope")}, nil,
			"--admin-token-file (FLOTILLA_ADMIN_TOKEN_FILE): open "},
		{"token too short", []string{"gateway", "--config", "x.yaml", "--admin-token-file", short}, nil,
			"token is 10 bytes, want at least 16"},
		{"token with a space", []string{"gateway", "--config", "x.yaml", "--admin-token-file", spaced}, nil,
			"byte 17 of the token is not allowed"},
		{"host with port", []string{"gateway", "--config", "x.yaml", "--admin-hosts", "admin.test:9901"}, nil,
			`--admin-hosts (FLOTILLA_ADMIN_HOSTS): entry 1: want a host name without port, got "admin.test:9901"`},
		{"admin client with a bad token file", []string{"gateway", "admin", "--admin-token-file", short, "routes"}, nil,
			"--admin-token-file (FLOTILLA_ADMIN_TOKEN_FILE): " + short},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.env, tt.args...)
			if code != ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("flotilla %v = %d, stderr %q; want %d and %q", tt.args, code, stderr, ExitUsage, tt.want)
			}
			if strings.Contains(stderr, "secret-ish") || strings.Contains(stderr, "c0ffee") {
				t.Errorf("stderr shows the token: %q", stderr)
			}
		})
	}
}

// TestGatewayAdminToken runs `flotilla gateway` with its admin API on every
// address and a token: the admin CLI needs the token (flag or env), probes
// and metrics do not, and the token never reaches the logs.
func TestGatewayAdminToken(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up") }))
	defer up.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gateway.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: a, addresses: [%q]}, {name: b, addresses: [%q]}]
routes: [{name: app, backends: [{name: a, weight: 100}, {name: b, weight: 0}]}]
`, strings.TrimPrefix(up.URL, "http://"), strings.TrimPrefix(up.URL, "http://"))), 0o600)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(adminTestToken+"\n"), 0o600)
	_, port, _ := net.SplitHostPort(gwFreeAddr(t))
	adminURL := "http://127.0.0.1:" + port

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuf
	e := Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	done := make(chan int)
	go func() {
		done <- Run(ctx, []string{"gateway", "--config", cfg, "--addr", gwFreeAddr(t), "--admin-addr", ":" + port,
			"--admin-token-file", tokenFile, "--shutdown-timeout", "2s"}, e)
	}()
	get := func(path, auth string) int {
		deadline := time.Now().Add(10 * time.Second)
		for {
			req, _ := http.NewRequest("GET", adminURL+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("admin API never answered: %v; stderr %s", err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, tt := range []struct {
		path, auth string
		want       int
	}{
		{"/readyz", "", 200}, {"/healthz", "", 200}, {"/metrics", "", 200},
		{"/routes", "", 401}, {"/routes", "Bearer wrong-token-wrong-token", 401}, {"/routes", "Bearer " + adminTestToken, 200},
		{"/debug/pprof/", "Bearer " + adminTestToken, 404},
	} {
		if got := get(tt.path, tt.auth); got != tt.want {
			t.Errorf("GET %s (auth %v) = %d, want %d", tt.path, tt.auth != "", got, tt.want)
		}
	}
	if code, _, errOut := runWith(t, "gateway", "admin", "--admin-url", adminURL, "weights", "app"); code != ExitError || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "--admin-token-file") {
		t.Errorf("admin weights without the token = %d %q, want exit 1 naming 401 and --admin-token-file", code, errOut)
	}
	if code, out, errOut := runWith(t, "gateway", "admin", "--admin-url", adminURL, "--admin-token-file", tokenFile, "weights", "app", "a=0", "b=100"); code != ExitOK || !strings.Contains(out, `"b": 100`) || !strings.Contains(errOut, "written to: local") {
		t.Errorf("admin weights with --admin-token-file = %d %q %q; want the weights and \"written to: local\"", code, out, errOut)
	}
	if code, out, errOut := runCtx(t.Context(), map[string]string{"FLOTILLA_ADMIN_TOKEN_FILE": tokenFile}, "gateway", "admin", "--admin-url", adminURL, "routes"); code != ExitOK || !strings.Contains(out, `"app"`) {
		t.Errorf("admin routes with FLOTILLA_ADMIN_TOKEN_FILE = %d %q %q", code, out, errOut)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("gateway exit = %d, stderr %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not stop")
	}
	if strings.Contains(stderr.String()+stdout.String(), adminTestToken) {
		t.Error("the token appears in the gateway's output")
	}
}
