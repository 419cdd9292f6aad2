package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// run runs flotilla with a cancelled context: commands that get past
// validation stop at once.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return runCtx(ctx, env, args...)
}

// runLive runs flotilla until the command ends by itself.
func runLive(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCtx(t.Context(), nil, args...)
}

func runCtx(ctx context.Context, env map[string]string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	e := Env{Stdout: &stdout, Stderr: &stderr,
		Getenv:    func(k string) string { return env[k] },
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	}
	code := Run(ctx, args, e)
	return code, stdout.String(), stderr.String()
}

func TestBadInputExitsTwoNamingTheFlag(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{name: "malformed flag value", args: []string{"counter", "--redis-db", "x"}, want: []string{"--redis-db"}},
		{name: "malformed env value", env: map[string]string{"FLOTILLA_REDIS_TIMEOUT": "soon"}, args: []string{"counter"},
			want: []string{`--redis-timeout (FLOTILLA_REDIS_TIMEOUT): invalid value "soon" from environment`}},
		{name: "every invalid value at once", args: []string{"counter", "--store", "disk", "--addr", "nope"},
			want: []string{`--store (FLOTILLA_STORE): want "redis" or "memory", got "disk"`, "--addr (FLOTILLA_ADDR)"}},
		{name: "redis settings", args: []string{"counter", "--redis-db", "16", "--redis-addr", "redis", "--redis-password-file", "/nonexistent/pw"},
			want: []string{"--redis-db (FLOTILLA_REDIS_DB): must be 0..15, got 16", `--redis-addr (FLOTILLA_REDIS_ADDR): want host:port, got "redis"`, "--redis-password-file"}},
		{name: "demo fraction", args: []string{"demo", "--fail-fraction", "2"}, want: []string{"--fail-fraction (FLOTILLA_FAIL_FRACTION): must be 0..1, got 2"}},
		{name: "unknown flag", args: []string{"counter", "--colour", "red"}, want: []string{"unknown flag: --colour"}},
		{name: "unknown command", args: []string{"countr"}, want: []string{`unknown command "countr"`}},
		{name: "stray argument", args: []string{"up", "now"}, want: []string{`unknown command "now"`}},
		{name: "log level", args: []string{"version", "--log-level", "loud"}, want: []string{"--log-level"}},
		{name: "up takes the counter's redis settings", args: []string{"up", "--redis-addr", "127.0.0.1:6379", "--redis-password-file", "/nonexistent/pw", "--redis-timeout", "0s"},
			want: []string{"--redis-password-file (FLOTILLA_REDIS_PASSWORD_FILE)", "--redis-timeout (FLOTILLA_REDIS_TIMEOUT): must be positive"}},
		{name: "gateway trusted proxies", args: []string{"gateway", "--config", "x.yaml", "--trusted-proxies", "10.0.0.0/8,not-a-cidr"},
			want: []string{`--trusted-proxies (FLOTILLA_TRUSTED_PROXIES): want CIDRs (10.0.0.0/8) or addresses, got not-a-cidr`}},
		{name: "up counters", args: []string{"up", "--counters", "0"}, want: []string{"--counters (FLOTILLA_COUNTERS): must be 1..16, got 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.env, tt.args...)
			if code != ExitUsage {
				t.Errorf("flotilla %v exit = %d, want %d; stderr %q", tt.args, code, ExitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr, w)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "flotilla v1 (revision ") {
		t.Errorf("flotilla version = %d %q", code, out)
	}
	code, out, _ = run(t, nil, "version", "--json")
	if code != 0 || !strings.Contains(out, `"version":"v1"`) {
		t.Errorf("flotilla version --json = %d %q", code, out)
	}
}

func TestHelpShowsEnvEquivalents(t *testing.T) {
	code, out, _ := run(t, nil, "counter", "--help")
	if code != 0 || !strings.Contains(out, "[$FLOTILLA_REDIS_ADDR]") {
		t.Errorf("counter --help = %d, lacks [$FLOTILLA_REDIS_ADDR]:\n%s", code, out)
	}
}
