package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends:
  - name: web
    addresses: ["127.0.0.1:8081"]
routes:
  - name: all
    backends: [{name: web}]
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	r := c.Routes[0]
	if r.Timeout != 30*time.Second {
		t.Errorf("route timeout = %s, want 30s", r.Timeout)
	}
	if r.Retries.Attempts != 2 || r.Retries.Backoff != 25*time.Millisecond || *r.Retries.Budget != 0.2 {
		t.Errorf("route retries = %+v, want 2 attempts, 25ms, budget 0.2", r.Retries)
	}
	if r.Match.Path.Type != PathPrefix || r.Match.Path.Value != "/" {
		t.Errorf("route path = %+v, want Prefix /", r.Match.Path)
	}
	if *r.Backends[0].Weight != 1 {
		t.Errorf("weight = %d, want 1", *r.Backends[0].Weight)
	}
	b := c.Backends[0]
	if b.Balance.Policy != RoundRobin || b.Protocol != "http1" || b.ResolveInterval != 5*time.Second {
		t.Errorf("backend defaults = %+v", b)
	}
	if b.Outlier.ConsecutiveFailures != 5 || b.Outlier.BaseEjection != 30*time.Second || b.Outlier.MaxEjection != 5*time.Minute {
		t.Errorf("outlier defaults = %+v", b.Outlier)
	}
}

func TestDefaultsRetriesInheritedPerRoute(t *testing.T) {
	c, err := Parse([]byte(minimal + `
defaults:
  timeout: 3s
  retries: {attempts: 4}
`))
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	r := c.Routes[0]
	if r.Timeout != 3*time.Second || r.Retries.Attempts != 4 {
		t.Errorf("route = timeout %s, attempts %d, want 3s and 4", r.Timeout, r.Retries.Attempts)
	}
	// Each route gets its own copy: changing one must not change defaults.
	r.Retries.Attempts = 9
	if c.Defaults.Retries.Attempts != 4 {
		t.Errorf("defaults.retries shared with a route")
	}
}

func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../../../examples/gateway/*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("Load(%s) error = %v", f, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"empty config"}},
		{"unknown top-level field", minimal + "extra: 1\n", []string{`line 10: unknown field "extra"`}},
		{"unknown nested field", strings.Replace(minimal, "name: all", "name: all\n    matches: {}", 1), []string{`unknown field "matches"`}},
		{"duplicate key", minimal + "kind: Gateway\n", []string{`line 10: mapping key "kind" already defined at line 3`}},
		{"bad duration", minimal + "defaults: {timeout: soon}\n", []string{"into a duration"}},
		{"wrong shape", minimal + "defaults: [1]\n", []string{"line 10", "cannot unmarshal"}},
		{"two documents", minimal + "---\n" + minimal, []string{"more than one YAML document"}},
		{"not yaml", "{", []string{"did not find expected node content"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse() error = nil, want one")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse() error = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "config.") {
				t.Errorf("Parse() error = %q names a Go type", err)
			}
		})
	}
}

func TestValidateReportsEveryProblemWithItsPath(t *testing.T) {
	in := `
apiVersion: flotilla.dev/v1
kind: Gateway
backends:
  - name: web
    addresses: ["127.0.0.1:8081", "nohost", "h:0"]
    protocol: h3
    balance: {policy: consistent_hash}
    healthCheck: {path: healthz, interval: 1s, timeout: 2s}
    outlier: {consecutiveFailures: -1}
  - name: web
    addresses: ["a:1"]
    balance: {policy: fastest}
routes:
  - name: a
    match:
      hosts: ["bad host", "*.ok.test"]
      path: {type: Regex, value: "(["}
      methods: [get]
      headers: [{name: X, type: Fuzzy}]
      query: [{name: q, type: Present, value: x}]
    backends: [{name: web, weight: 120}, {name: nope, requestHeaders: {set: {"Bad:Name": x}, add: {X-Ok: "a\rb"}}}]
    mirror: {backend: ghost, percent: 150}
    mirrors: [{backend: web}, {backend: ghost2, percent: -1}]
  - name: a
    rewrite: {path: {type: ReplacePrefix, value: /x}}
    backends: [{name: web, weight: 0}]
  - name: Bad_Name
    redirect: {scheme: ftp, statusCode: 200}
    backends: [{name: web}]
  - name: rx
    match: {path: {type: Prefix, value: /a}}
    rewrite: {path: {type: Regex, value: "/$3", pattern: "/(a)(b)"}}
    requestHeaders: {set: {"Bad Name": x}, add: {X-Ok: "a\nb"}}
    retries: {attempts: 11, budget: 2, retryOn: [404], minBackoff: 2m}
    tryTimeout: -1s
    sticky: {cookie: "a;b", ttl: 1ms}
    backends: [{name: web}]
`
	c, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	c.SetDefaults()
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	want := []string{
		`apiVersion: want "flotilla.dev/v1alpha1", got "flotilla.dev/v1"`,
		`backends[0].addresses[1]: want host:port`,
		`backends[0].addresses[2]: want host:port with port 1..65535, got "h:0"`,
		`backends[0].protocol: want "http1", "h2c", "https" or "h2", got "h3"`,
		`backends[0].balance.hashOn: want exactly one of header, cookie or clientIP`,
		`backends[0].healthCheck.path: must start with '/'`,
		`backends[0].healthCheck.timeout: must be positive and at most interval`,
		`backends[0].outlier.consecutiveFailures: must be at least 1, got -1`,
		`backends[1].name: duplicate backend "web"`,
		`backends[1].balance.policy: want round_robin, least_request, random or consistent_hash, got "fastest"`,
		`routes[0].match.hosts[0]: want a host name`,
		`routes[0].match.path.value: invalid regular expression`,
		`routes[0].match.methods[0]: want an upper-case method like GET, got "get"`,
		`routes[0].match.headers[0].type: want Exact, Regex or Present, got "Fuzzy"`,
		`routes[0].match.query[0].value: must be empty for type Present`,
		`routes[0].backends[0].weight: must be 0..100, got 120`,
		`routes[0].backends[1].name: no backend named "nope"`,
		`routes[0].backends[1].requestHeaders.set.Bad:Name: invalid header name`,
		`routes[0].backends[1].requestHeaders.add.X-Ok: value must not contain CR, LF or NUL`,
		`routes[0].mirror.backend: no backend named "ghost"`,
		`routes[0].mirror.percent: must be 0..100, got 150`,
		`routes[0].mirrors: a route has mirror or mirrors, not both`,
		`routes[0].mirrors[1].backend: no backend named "ghost2"`,
		`routes[0].mirrors[1].percent: must be 0..100, got -1`,
		`routes[1].name: duplicate route "a"`,
		`routes[1].backends: weights add up to 0`,
		`routes[2].name: want 1..63 of a-z`,
		`routes[2].redirect: a route has either redirect or backends, not both`,
		`routes[2].redirect.scheme: want "http" or "https", got "ftp"`,
		`routes[2].redirect.statusCode: want 301, 302, 303, 307 or 308, got 200`,
		`routes[3].rewrite.path.value: refers to group $3 but the pattern has 2`,
		`routes[3].requestHeaders.set.Bad Name: invalid header name`,
		`routes[3].requestHeaders.add.X-Ok: value must not contain CR, LF or NUL`,
		`routes[3].retries.attempts: must be 0..10, got 11`,
		`routes[3].retries.budget: must be 0..1, got 2`,
		`routes[3].retries.retryOn[0]: must be 500..599, got 404`,
		`routes[3].tryTimeout: must not be negative, got -1s`,
		`routes[3].retries.minBackoff: must be 0..1m, got 2m0s`,
		`routes[3].sticky.cookie: want a cookie name`,
		`routes[3].sticky.ttl: must be at least 1s`,
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("Validate() missing %q", w)
		}
	}
	if t.Failed() {
		t.Logf("Validate() =\n%s", got)
	}
	// routes[1] has ReplacePrefix with the default Prefix "/" match: valid.
	if strings.Contains(got, "routes[1].rewrite") {
		t.Errorf("Validate() rejected ReplacePrefix on the default prefix match:\n%s", got)
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Errorf("Load() error = %v, want it to start with the path", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load(missing) error = nil")
	}
}

// FuzzParse checks the decoder never panics and that what it accepts
// survives a second validation (defaults are idempotent).
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	for _, name := range []string{"talk.yaml", "strategies.yaml", "policies.yaml"} {
		if b, err := os.ReadFile("../../../examples/gateway/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: web, kubernetes: {service: web, port: http}}]\nroutes: [{name: r, backends: [{name: web}]}]\n"))
	f.Add([]byte("apiVersion: [\n"))
	f.Add([]byte("routes: [{name: a, match: {path: {type: Regex, value: '('}}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("valid config invalid after SetDefaults again: %v", err)
		}
	})
}

func TestDirectResponseValidation(t *testing.T) {
	const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: web, addresses: [\"a:1\"]}]\nroutes:\n  - name: r\n"
	tests := []struct {
		name  string
		route string
		want  []string // empty: valid
	}{
		{"404 with a body", "    directResponse: {status: 404, body: \"not found\\n\"}\n", nil},
		{"204 without a body", "    directResponse: {status: 204}\n", nil},
		{"no status", "    directResponse: {body: x}\n", []string{"routes[0].directResponse.status: must be 200..599, got 0"}},
		{"informational status", "    directResponse: {status: 101}\n", []string{"routes[0].directResponse.status: must be 200..599, got 101"}},
		{"status above 599", "    directResponse: {status: 600}\n", []string{"must be 200..599, got 600"}},
		{"body on 204", "    directResponse: {status: 204, body: x}\n", []string{"routes[0].directResponse.body: must be empty for status 204"}},
		{"body too long", "    directResponse: {status: 404, body: " + strings.Repeat("x", MaxDirectBody+1) + "}\n", []string{"routes[0].directResponse.body: must be at most 4096 bytes, got 4097"}},
		{"with backends", "    directResponse: {status: 404}\n    backends: [{name: web}]\n", []string{"routes[0].directResponse: not used with backends"}},
		{"with redirect", "    directResponse: {status: 404}\n    redirect: {path: /x}\n", []string{"routes[0].directResponse: not used with redirect"}},
		{"with rewrite", "    directResponse: {status: 404}\n    rewrite: {path: {type: ReplaceFull, value: /x}}\n", []string{"routes[0].directResponse: not used with rewrite"}},
		{"with mirror", "    directResponse: {status: 404}\n    mirror: {backend: web}\n", []string{"routes[0].directResponse: not used with mirror"}},
		{"scheme https", "    match: {scheme: https}\n    directResponse: {status: 204}\n", nil},
		{"scheme ftp", "    match: {scheme: ftp}\n    directResponse: {status: 204}\n", []string{`routes[0].match.scheme: want "http", "https" or nothing, got "ftp"`}},
		{"port 0 and 70000", "    match: {ports: [0, 70000]}\n    directResponse: {status: 204}\n", []string{"routes[0].match.ports[0]: want a port 1..65535, got 0", "routes[0].match.ports[1]: want a port 1..65535, got 70000"}},
		{"redirect replacePrefix", "    match: {path: {type: Prefix, value: /a}}\n    redirect: {replacePrefix: /b}\n", nil},
		{"redirect replacePrefix without a prefix match", "    match: {path: {type: Exact, value: /a}}\n    redirect: {replacePrefix: /b}\n", []string{"routes[0].redirect.replacePrefix: needs a Prefix path match"}},
		{"redirect replacePrefix with path", "    redirect: {path: /x, replacePrefix: /b}\n", []string{"routes[0].redirect.replacePrefix: not used with redirect.path"}},
		{"redirect replacePrefix relative", "    redirect: {replacePrefix: b}\n", []string{`routes[0].redirect.replacePrefix: must start with '/', got "b"`}},
		{"unknown field", "    directResponse: {status: 404, headers: {a: b}}\n", []string{`unknown field "headers"`}},
		{"neither backends nor an answer", "    match: {path: {type: Exact, value: /}}\n", []string{"routes[0].backends: want at least one backend (or a redirect or directResponse)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parseWant(t, head+tt.route, tt.want)
		})
	}
}

// parseWant parses yaml and checks the outcome: with want empty, no error
// (the config is returned); else an error containing every want (nil).
func parseWant(t *testing.T, yaml string, want []string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml))
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("Parse() error = %v, want nil", err)
		}
		return c
	}
	if err == nil {
		t.Fatalf("Parse() error = nil, want %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Parse() error = %q, want it to contain %q", err, w)
		}
	}
	return nil
}
