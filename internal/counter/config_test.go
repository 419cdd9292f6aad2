package counter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

func validConfig() Config {
	return Config{Addr: ":8080", Instance: "c", Version: "v1", Store: "redis",
		Redis:  RedisConfig{Addr: "redis:6379", Key: "count", Timeout: time.Second},
		Server: httpserver.Options{ShutdownTimeout: time.Second}}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"valid", func(*Config) {}, nil},
		{"memory ignores redis settings", func(c *Config) { c.Store = "memory"; c.Redis.Addr = "" }, nil},
		{"all at once", func(c *Config) {
			c.Redis.Addr = ":6379"
			c.Redis.Timeout = 0
			c.Redis.Key = ""
			c.Server.DrainDelay = -time.Second
		}, []string{"--redis-addr", "--redis-timeout (FLOTILLA_REDIS_TIMEOUT): must be positive", "--redis-key", "--drain-delay"}},
		{"ca without tls", func(c *Config) { c.Redis.TLSCAFile = "/ca.pem" }, []string{"--redis-tls-ca-file (FLOTILLA_REDIS_TLS_CA_FILE): set, but --redis-tls is off"}},
		{"empty version", func(c *Config) { c.Version = "" }, []string{"--version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(&c)
			err := c.Validate()
			if len(tt.want) == 0 && err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestRedisOptionsReadsPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	c := validConfig().Redis
	c.PasswordFile = pw
	o, err := c.Options()
	if err != nil || o.Password != "s3cret" {
		t.Fatalf("Options() = %q, %v; want the file's password without newline", o.Password, err)
	}
	c.TLS, c.TLSCAFile = true, pw // not PEM
	if _, err := c.Options(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("Options() with a non-PEM CA = %v", err)
	}
}
