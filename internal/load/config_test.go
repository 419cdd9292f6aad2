package load

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name, in, wantName, wantValue, wantErr string
	}{
		{name: "plain", in: "Accept: application/json", wantName: "Accept", wantValue: "application/json"},
		{name: "no space", in: "X-Canary:always", wantName: "X-Canary", wantValue: "always"},
		{name: "value keeps inner colons", in: "Authorization: Bearer a:b", wantName: "Authorization", wantValue: "Bearer a:b"},
		{name: "empty value", in: "X-Empty:", wantName: "X-Empty", wantValue: ""},
		{name: "trimmed value", in: "X-A:   v  ", wantName: "X-A", wantValue: "v"},
		{name: "no colon", in: "Accept application/json", wantErr: `want "Name: value"`},
		{name: "empty name", in: ": v", wantErr: "invalid header name"},
		{name: "space in name", in: "X A: v", wantErr: "invalid header name"},
		{name: "space before colon", in: "X-A : v", wantErr: "invalid header name"},
		{name: "line break in value", in: "X-A: v\r\nX-B: w", wantErr: "line breaks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, value, err := ParseHeader(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseHeader(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || name != tt.wantName || value != tt.wantValue {
				t.Errorf("ParseHeader(%q) = %q, %q, %v; want %q, %q, nil", tt.in, name, value, err, tt.wantName, tt.wantValue)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"Accept: */*", "a:b:c", ":", "X\x00: y", "Host: h\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseHeader(s)
		if err != nil {
			return
		}
		if !isToken(name) || strings.ContainsAny(value, "\r\n\x00") || value != strings.TrimSpace(value) {
			t.Fatalf("ParseHeader(%q) = %q, %q accepted an unsendable header", s, name, value)
		}
		if !strings.HasPrefix(s, name+":") {
			t.Fatalf("ParseHeader(%q) name %q is not the part before the colon", s, name)
		}
	})
}

func TestValidate(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:8080/counter", Concurrency: 2, Requests: 10}
	tests := []struct {
		name     string
		edit     func(*Config)
		wantErrs []string
	}{
		{name: "valid closed loop", edit: func(*Config) {}},
		{name: "valid open loop", edit: func(c *Config) { c.Concurrency, c.Rate, c.Requests, c.Duration = 0, 100, 0, time.Second }},
		{name: "bad scheme", edit: func(c *Config) { c.URL = "ftp://h/" }, wantErrs: []string{"URL argument", `"ftp://h/"`}},
		{name: "no host", edit: func(c *Config) { c.URL = "http:///x" }, wantErrs: []string{"URL argument"}},
		{name: "no mode", edit: func(c *Config) { c.Concurrency = 0 }, wantErrs: []string{"--rate or --concurrency"}},
		{name: "no bound", edit: func(c *Config) { c.Requests = 0 }, wantErrs: []string{"--duration or --requests"}},
		{name: "negatives, all at once", edit: func(c *Config) {
			c.Rate, c.Concurrency, c.Duration, c.Requests, c.Timeout = -1, -2, -time.Second, -4, -time.Millisecond
		}, wantErrs: []string{"--rate (FLOTILLA_RATE): must be 0..", "--concurrency (FLOTILLA_CONCURRENCY)", "--duration (FLOTILLA_DURATION)",
			"--requests (FLOTILLA_REQUESTS)", "--timeout (FLOTILLA_TIMEOUT)"}},
		{name: "bad header", edit: func(c *Config) { c.Headers = []string{"X-A: 1", "nocolon"} }, wantErrs: []string{"--header (FLOTILLA_HEADER)", `"nocolon"`}},
		{name: "bad method", edit: func(c *Config) { c.Method = "GE T" }, wantErrs: []string{"--method", `"GE T"`}},
		{name: "bad host", edit: func(c *Config) { c.Host = "a\r\nb" }, wantErrs: []string{"--host"}},
		{name: "rate too high", edit: func(c *Config) { c.Rate = 1e12 }, wantErrs: []string{"--rate", "0..10000000"}},
		{name: "error rate above 1", edit: func(c *Config) { c.MaxErrorRate = 5 }, wantErrs: []string{"--max-error-rate", "got 5"}},
		{name: "empty expected version", edit: func(c *Config) { c.ExpectVersions = []string{"v1", ""} }, wantErrs: []string{"--expect-version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErrs)
			}
			for _, w := range tt.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		wantKeepAlive bool
	}{
		{name: "default keeps alive", wantKeepAlive: true},
		{name: "bare flag", args: []string{"--keepalive"}, wantKeepAlive: true},
		{name: "off", args: []string{"--keepalive=false"}, wantKeepAlive: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			c.Flags(fs)
			if err := fs.Parse(append(tt.args, "-c", "3", "-X", "POST", "-H", "A: 1", "-H", "B: 2")); err != nil {
				t.Fatal(err)
			}
			if c.DisableKeepAlive == tt.wantKeepAlive {
				t.Errorf("DisableKeepAlive = %v, want %v", c.DisableKeepAlive, !tt.wantKeepAlive)
			}
			if c.Concurrency != 3 || c.Method != "POST" || len(c.Headers) != 2 || c.Timeout != 5*time.Second {
				t.Errorf("parsed %+v, want concurrency 3, POST, 2 headers, 5s timeout", c)
			}
		})
	}
}
