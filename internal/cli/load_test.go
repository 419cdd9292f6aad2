package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// runCLI runs flotilla with args and the given environment variables.
func runCLI(t *testing.T, args []string, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = Run(context.Background(), args, Env{Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { v, _ := lookup(k); return v }, LookupEnv: lookup})
	return code, out.String(), errOut.String()
}

func TestLoadUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in stderr
	}{
		{name: "no URL", args: []string{"load", "-c", "1", "-n", "1"}, want: "URL argument: want exactly one URL, got 0"},
		{name: "two URLs", args: []string{"load", "http://a/", "http://b/", "-c", "1", "-n", "1"}, want: "got 2 arguments"},
		{name: "bad URL", args: []string{"load", "localhost:8080", "-c", "1", "-n", "1"}, want: `URL argument: want http://`},
		{name: "no mode", args: []string{"load", "http://h/", "-n", "1"}, want: "--rate or --concurrency"},
		{name: "no bound", args: []string{"load", "http://h/", "-c", "1"}, want: "--duration or --requests"},
		{name: "malformed rate", args: []string{"load", "http://h/", "--rate", "fast", "-n", "1"}, want: `"fast" for "-r, --rate"`},
		{name: "negative rate", args: []string{"load", "http://h/", "--rate", "-5", "-n", "1"}, want: "--rate (FLOTILLA_RATE): must be 0..10000000 requests per second, got -5"},
		{name: "bad header", args: []string{"load", "http://h/", "-c", "1", "-n", "1", "-H", "X-Canary"}, want: `--header (FLOTILLA_HEADER): want "Name: value", got "X-Canary"`},
		{name: "error rate as percent", args: []string{"load", "http://h/", "-c", "1", "-n", "1", "--max-error-rate", "5"}, want: "--max-error-rate (FLOTILLA_MAX_ERROR_RATE): must be a fraction 0..1"},
		{name: "bad duration", args: []string{"load", "http://h/", "-c", "1", "-d", "10"}, want: `"10" for "-d, --duration"`},
		{name: "bad keepalive", args: []string{"load", "http://h/", "-c", "1", "-n", "1", "--keepalive=maybe"}, want: `"maybe" for "--keepalive"`},
		{name: "unknown flag", args: []string{"load", "http://h/", "--rps", "5"}, want: "unknown flag: --rps"},
		{name: "bad env", args: []string{"load", "http://h/", "-n", "1"}, env: map[string]string{"FLOTILLA_CONCURRENCY": "many"}, want: "--concurrency (FLOTILLA_CONCURRENCY)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args, tt.env)
			if code != ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, ExitUsage, tt.want)
			}
		})
	}
}

func TestLoadExitCodes(t *testing.T) {
	// One request in ten fails with a 503; answers come from v1 and v2.
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := n.Add(1)
		w.Header().Set("X-Flotilla-Version", []string{"v1", "v2"}[i%2])
		if i%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "within budget", args: []string{"--max-error-rate", "0.1"}, wantCode: ExitOK},
		{name: "budget exceeded", args: []string{"--max-error-rate", "0.05"}, wantCode: ExitError, wantErr: "above --max-error-rate 5 %"},
		{name: "default budget is zero", wantCode: ExitError, wantErr: "above --max-error-rate 0 %"},
		{name: "unexpected version", args: []string{"--max-error-rate", "1", "--expect-version", "v2"}, wantCode: ExitError, wantErr: `version "v1" answered 10 times`},
		{name: "expected versions", args: []string{"--max-error-rate", "1", "--expect-version", "v1,v2"}, wantCode: ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.Store(0)
			args := append([]string{"load", srv.URL, "-c", "1", "-n", "20", "--json"}, tt.args...)
			code, stdout, stderr := runCLI(t, args, nil)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tt.wantCode, tt.wantErr)
			}
			var s struct {
				Requests int64
				Errors   int64
				Status   map[string]int64
			}
			if err := json.Unmarshal([]byte(stdout), &s); err != nil {
				t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout)
			}
			if s.Requests != 20 || s.Errors != 2 || s.Status["503"] != 2 {
				t.Errorf("summary requests, errors, 503s = %d, %d, %d; want 20, 2, 2", s.Requests, s.Errors, s.Status["503"])
			}
		})
	}
}

func TestLoadTextSummary(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Flotilla-Version", "v7")
	}))
	defer srv.Close()
	code, stdout, stderr := runCLI(t, []string{"load", srv.URL, "-r", "200", "-n", "10"}, nil)
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	for _, want := range []string{"open loop at 200/s", "requests   10 in", "v7", "result     ok"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}
