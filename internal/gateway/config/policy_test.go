package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseIPEntry(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means an error
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"}, // host bits cleared
		{"192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:0:0/80", ""},
		{"10.0.0.0/33", ""},
		{"10.0.0.0/", ""},
		{"/8", ""},
		{"10.0.0", ""},
		{"fe80::1%eth0", ""},
		{"", ""},
		{"example.com", ""},
		{" 10.0.0.1", ""},
		{"2001:db8::/129", ""},
	} {
		p, err := ParseIPEntry(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseIPEntry(%q) = %s, want an error", tc.in, p)
			}
			continue
		}
		if err != nil || p != netip.MustParsePrefix(tc.want) {
			t.Errorf("ParseIPEntry(%q) = %s, %v, want %s", tc.in, p, err, tc.want)
		}
	}
}

func TestParseOrigin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want OriginPattern
		bad  bool
	}{
		{in: "*", want: OriginPattern{Any: true}},
		{in: "https://app.example.com", want: OriginPattern{Scheme: "https", Host: "app.example.com"}},
		{in: "HTTPS://App.Example.COM", want: OriginPattern{Scheme: "https", Host: "app.example.com"}},
		{in: "https://app.example.com:443", want: OriginPattern{Scheme: "https", Host: "app.example.com"}},
		{in: "http://localhost:3000", want: OriginPattern{Scheme: "http", Host: "localhost", Port: "3000"}},
		{in: "https://*.example.com", want: OriginPattern{Scheme: "https", Host: ".example.com", Wildcard: true}},
		{in: "https://*.example.com:8443", want: OriginPattern{Scheme: "https", Host: ".example.com", Wildcard: true, Port: "8443"}},
		{in: "http://[::1]:8080", want: OriginPattern{Scheme: "http", Host: "[::1]", Port: "8080"}},
		{in: "http://192.0.2.1", want: OriginPattern{Scheme: "http", Host: "192.0.2.1"}},
		{in: "", bad: true},
		{in: "null", bad: true},
		{in: "example.com", bad: true},
		{in: "https://", bad: true},
		{in: "https://app.example.com/", bad: true},
		{in: "https://app.example.com/path", bad: true},
		{in: "https://app.example.com?q", bad: true},
		{in: "https://user@app.example.com", bad: true},
		{in: "https://app.example.com:0", bad: true},
		{in: "https://app.example.com:65536", bad: true},
		{in: "https://app.example.com:08", bad: true},
		{in: "https://app.example.com:", bad: true},
		{in: "https://*", bad: true},
		{in: "https://*.", bad: true},
		{in: "https://*example.com", bad: true},
		{in: "https://a.*.example.com", bad: true},
		{in: "https://*.*.example.com", bad: true},
		{in: "https://app*.example.com", bad: true},
		{in: "https://::1", bad: true},
		{in: "https://[::1", bad: true},
		{in: "https://[zz]", bad: true},
		{in: "1https://x", bad: true},
		{in: "://x", bad: true},
		{in: "https://bad_host", bad: true},
		{in: "https://a b", bad: true},
	} {
		got, err := ParseOrigin(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseOrigin(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseOrigin(%q) = %+v, %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidatePolicies(t *testing.T) {
	base := `
apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: web, addresses: ["127.0.0.1:8081"]}]
`
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error; none: valid
	}{
		{"valid", `
defaults:
  ipRules: {allow: [10.0.0.0/8, "2001:db8::/32"], deny: [10.0.0.1]}
  cors: {allowOrigins: ["https://*.example.com"], allowCredentials: true, maxAge: 10m}
routes:
  - {name: a, backends: [{name: web}]}
  - {name: b, backends: [{name: web}], ipRules: {deny: ["::ffff:192.0.2.0/120"]}, cors: {allowOrigins: ["*"], allowHeaders: ["*"]}}
`, nil},
		{"bad entries named by field and index", `
routes:
  - {name: a, backends: [{name: web}]}
  - {name: b, backends: [{name: web}]}
  - name: c
    backends: [{name: web}]
    ipRules: {allow: [10.0.0.0/8, 10.0.0.0/33], deny: [nope]}
`, []string{
			`routes[2].ipRules.allow[1]: "10.0.0.0/33" is not a CIDR or address`,
			`routes[2].ipRules.deny[0]: "nope" is not a CIDR or address`,
		}},
		{"empty rules", `
routes: [{name: a, backends: [{name: web}], ipRules: {}}]
`, []string{`routes[0].ipRules: want allow or deny entries`}},
		{"defaults reported once, as defaults", `
defaults: {ipRules: {deny: [300.0.0.1]}}
routes: [{name: a, backends: [{name: web}]}]
`, []string{`defaults.ipRules.deny[0]: "300.0.0.1" is not a CIDR or address`}},
		{"cors", `
routes:
  - name: a
    backends: [{name: web}]
    cors:
      allowOrigins: ["*", "https://x.test/", "https://*.*.test"]
      allowCredentials: true
      allowMethods: [get, "PO ST"]
      allowHeaders: ["X-Ok", "Bad Header", "*"]
      exposeHeaders: ["a:b"]
      maxAge: 1500ms
  - {name: b, backends: [{name: web}], cors: {}}
`, []string{
			`routes[0].cors.allowOrigins[0]: "*" with allowCredentials: true is forbidden`,
			`routes[0].cors.allowOrigins[1]: "https://x.test/" is not an origin`,
			`routes[0].cors.allowOrigins[2]: "https://*.*.test" is not an origin`,
			`routes[0].cors.allowMethods[0]: want an upper-case method like GET, got "get"`,
			`routes[0].cors.allowMethods[1]: want an upper-case method like GET, got "PO ST"`,
			`routes[0].cors.allowHeaders[1]: want a header name, got "Bad Header"`,
			`routes[0].cors.allowHeaders[2]: "*" with allowCredentials: true`,
			`routes[0].cors.exposeHeaders[0]: want a header name, got "a:b"`,
			`routes[0].cors.maxAge: want whole seconds, 0 or more, got 1.5s`,
			`routes[1].cors.allowOrigins: want at least one origin`,
		}},
		{"reflectWildcards makes \"*\" usable with credentials", `
routes:
  - name: a
    backends: [{name: web}]
    cors: {allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"], allowCredentials: true, reflectWildcards: true}
`, nil},
		{"wildcard methods with credentials", `
routes:
  - name: a
    backends: [{name: web}]
    cors: {allowOrigins: ["https://app.test"], allowMethods: ["*"], allowCredentials: true}
`, []string{`routes[0].cors.allowMethods[0]: "*" with allowCredentials: true means a method named "*"`}},
		{"reflectWildcards does not cover exposeHeaders", `
routes:
  - name: a
    backends: [{name: web}]
    cors: {allowOrigins: ["*"], exposeHeaders: ["*"], allowCredentials: true, reflectWildcards: true}
`, []string{`routes[0].cors.exposeHeaders[0]: "*" with allowCredentials: true`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base + tc.yaml))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Parse() error = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Parse() = nil error, want errors")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error missing %q; got:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) {
				t.Errorf("got %d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

func TestPoliciesInheritDefaults(t *testing.T) {
	c, err := Parse([]byte(`
apiVersion: flotilla.dev/v1alpha1
kind: Gateway
defaults:
  ipRules: {allow: [10.0.0.0/8]}
  cors: {allowOrigins: ["https://app.test"]}
backends: [{name: web, addresses: ["127.0.0.1:8081"]}]
routes:
  - {name: inherits, backends: [{name: web}]}
  - {name: own, backends: [{name: web}], ipRules: {deny: [192.0.2.1]}, cors: {allowOrigins: ["*"]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Routes[0]; r.IPRules == nil || r.IPRules.Allow[0] != "10.0.0.0/8" || r.CORS == nil || r.CORS.AllowOrigins[0] != "https://app.test" {
		t.Errorf("inherits = %+v %+v, want the defaults'", r.IPRules, r.CORS)
	}
	if r := c.Routes[1]; len(r.IPRules.Allow) != 0 || r.IPRules.Deny[0] != "192.0.2.1" || r.CORS.AllowOrigins[0] != "*" {
		t.Errorf("own = %+v %+v, want its own, replacing the defaults' whole", r.IPRules, r.CORS)
	}
}
