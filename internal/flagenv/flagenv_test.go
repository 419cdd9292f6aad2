package flagenv

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantWait time.Duration
		wantErrs []string
	}{
		{name: "default", wantAddr: ":8080", wantWait: time.Second},
		{name: "env over default", env: map[string]string{"FLOTILLA_ADDR": ":9"}, wantAddr: ":9", wantWait: time.Second},
		{name: "flag over env", args: []string{"--addr", ":7"}, env: map[string]string{"FLOTILLA_ADDR": ":9"}, wantAddr: ":7", wantWait: time.Second},
		{name: "malformed env names flag and var", env: map[string]string{"FLOTILLA_WAIT": "soon"}, wantAddr: ":8080",
			wantErrs: []string{`--wait (FLOTILLA_WAIT): invalid value "soon" from environment`}},
		{name: "every problem at once", env: map[string]string{"FLOTILLA_WAIT": "x", "FLOTILLA_COUNT": "-"},
			wantErrs: []string{"--wait (FLOTILLA_WAIT)", "--count (FLOTILLA_COUNT)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			addr := fs.String("addr", ":8080", "listen address")
			wait := fs.Duration("wait", time.Second, "wait")
			fs.Int("count", 1, "count")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := Apply(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if len(tt.wantErrs) > 0 {
				if err == nil {
					t.Fatalf("Apply() = nil, want errors %q", tt.wantErrs)
				}
				for _, w := range tt.wantErrs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Apply() = %q, want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply() = %v", err)
			}
			if *addr != tt.wantAddr || *wait != tt.wantWait {
				t.Errorf("addr, wait = %q, %v; want %q, %v", *addr, *wait, tt.wantAddr, tt.wantWait)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("redis-password-file"); got != "FLOTILLA_REDIS_PASSWORD_FILE" {
		t.Errorf("EnvName() = %q", got)
	}
}
