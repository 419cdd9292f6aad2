package config

import (
	"strings"
	"testing"
)

func TestTLSValidation(t *testing.T) {
	const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: web, addresses: [\"a:1\"]}]\nroutes: [{name: r, backends: [{name: web}]}]\n"
	const pair = "  certificates: [{certFile: /tls/tls.crt, keyFile: /tls/tls.key}]\n"
	tests := []struct {
		name string
		tls  string
		want []string // empty: valid
	}{
		{"one certificate", "tls:\n" + pair, nil},
		{"TLS 1.3 and mTLS", "tls:\n" + pair + "  minVersion: \"1.3\"\n  clientAuth: {caFile: /tls/ca.crt, mode: optional}\n", nil},
		{"named suites", "tls:\n" + pair + "  cipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n", nil},
		{"no certificate", "tls: {minVersion: \"1.2\"}\n", []string{"tls.certificates: want at least one certificate"}},
		{"no key file", "tls:\n  certificates: [{certFile: /a.crt}]\n", []string{"tls.certificates[0].keyFile: required"}},
		{"no cert file", "tls:\n  certificates: [{keyFile: /a.key}]\n", []string{"tls.certificates[0].certFile: required"}},
		{"TLS 1.0", "tls:\n" + pair + "  minVersion: \"1.0\"\n", []string{`tls.minVersion: want "1.2" or "1.3", got "1.0"`}},
		{"number version", "tls:\n" + pair + "  minVersion: 1.2\n", nil}, // YAML reads 1.2 as the string "1.2"
		{"unknown suite", "tls:\n" + pair + "  cipherSuites: [TLS_FOO]\n", []string{`tls.cipherSuites[0]: "TLS_FOO" is not a secure TLS 1.2 cipher suite`}},
		{"insecure suite", "tls:\n" + pair + "  cipherSuites: [TLS_RSA_WITH_RC4_128_SHA]\n", []string{`tls.cipherSuites[0]: "TLS_RSA_WITH_RC4_128_SHA" is not a secure`}},
		{"TLS 1.3 suite", "tls:\n" + pair + "  cipherSuites: [TLS_AES_128_GCM_SHA256]\n", []string{`tls.cipherSuites[0]`}},
		{"client CA missing", "tls:\n" + pair + "  clientAuth: {mode: require}\n", []string{"tls.clientAuth.caFile: required"}},
		{"client auth mode", "tls:\n" + pair + "  clientAuth: {caFile: /ca.crt, mode: sometimes}\n", []string{`tls.clientAuth.mode: want "require" or "optional", got "sometimes"`}},
		{"unknown field", "tls:\n" + pair + "  ocsp: true\n", []string{`unknown field "ocsp"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseWant(t, head+tt.tls, tt.want)
			if c == nil {
				return
			}
			if c.TLS.MinVersion == "" || len(c.TLS.CipherSuites) == 0 {
				t.Errorf("defaults not set: %+v", c.TLS)
			}
		})
	}
}

func TestHTTPSRedirectValidation(t *testing.T) {
	const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: web, addresses: [\"a:1\"]}]\nroutes:\n  - name: r\n    backends: [{name: web}]\n"
	tests := []struct {
		name, route string
		want        string // "": valid
		code        int
	}{
		{"defaults", "    httpsRedirect: {}\n", "", 308},
		{"port and status", "    httpsRedirect: {port: 8443, statusCode: 301}\n", "", 301},
		{"303 changes the method", "    httpsRedirect: {statusCode: 303}\n", "routes[0].httpsRedirect.statusCode: want 301, 302, 307 or 308, got 303", 0},
		{"port out of range", "    httpsRedirect: {port: 70000}\n", "routes[0].httpsRedirect.port: must be 0..65535, got 70000", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(head + tt.route))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := c.Routes[0].HTTPSRedirect.StatusCode; got != tt.code {
					t.Errorf("statusCode = %d, want %d", got, tt.code)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse() error = %v, want %q", err, tt.want)
			}
		})
	}
}
