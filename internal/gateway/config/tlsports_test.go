package config

import (
	"path/filepath"
	"testing"
)

func TestTLSPortsValidation(t *testing.T) {
	const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: web, addresses: [\"a:1\"]}]\nroutes: [{name: r, backends: [{name: web}]}]\n"
	const pair = "tls:\n  certificates: [{certFile: /tls/tls.crt, keyFile: /tls/tls.key}]\n"
	tests := []struct {
		name, ports string
		want        []string // empty: valid
	}{
		{"client CA and host names", "  ports: [{port: 20001, clientAuth: {caFile: /ca.crt, mode: insecureFallback}, hostnames: ['', a.example, '*.b.example']}]\n", nil},
		{"default entry", "  ports: [{port: 0, hostnames: [a.example, b.example]}]\n", nil},
		{"mode defaults to require", "  ports: [{port: 1, clientAuth: {caFile: /ca.crt}}]\n", nil},
		{"negative port", "  ports: [{port: -1}]\n", []string{"tls.ports[0].port: want 0 (the default) to 65535, got -1"}},
		{"port too large", "  ports: [{port: 65536}]\n", []string{"tls.ports[0].port: want 0 (the default) to 65535, got 65536"}},
		{"port twice", "  ports: [{port: 7}, {port: 7}]\n", []string{"tls.ports[1].port: port 7 has another entry"}},
		{"no CA file", "  ports: [{port: 1, clientAuth: {mode: require}}]\n", []string{"tls.ports[0].clientAuth.caFile: required"}},
		{"unknown mode", "  ports: [{port: 1, clientAuth: {caFile: /ca.crt, mode: AllowValidOnly}}]\n", []string{`tls.ports[0].clientAuth.mode: want "require", "optional" or "insecureFallback", got "AllowValidOnly"`}},
		{"bad host name", "  ports: [{port: 1, hostnames: ['a..example']}]\n", []string{`tls.ports[0].hostnames[0]: want a host name`}},
		{"inner wildcard", "  ports: [{port: 1, hostnames: ['a.*.example']}]\n", []string{`tls.ports[0].hostnames[0]: want a host name`}},
		{"double wildcard", "  ports: [{port: 1, hostnames: ['*.*.example']}]\n", []string{`tls.ports[0].hostnames[0]: want a host name`}},
		{"host with port", "  ports: [{port: 1, hostnames: ['a.example:443']}]\n", []string{`tls.ports[0].hostnames[0]: want a host name`}},
		{"host twice", "  ports: [{port: 1, hostnames: [A.example, a.example]}]\n", []string{`tls.ports[0].hostnames[1]: "a.example" is listed twice`}},
		{"unknown field", "  ports: [{port: 1, sni: true}]\n", []string{`unknown field "sni"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseWant(t, head+pair+tt.ports, tt.want)
			if c == nil {
				return
			}
			for _, p := range c.TLS.Ports {
				if p.ClientAuth != nil && p.ClientAuth.Mode == "" {
					t.Errorf("port %d: mode not defaulted", p.Port)
				}
			}
		})
	}
	// The section's clientAuth does not take the ports' mode.
	parseWant(t, head+pair+"  clientAuth: {caFile: /ca.crt, mode: insecureFallback}\n", []string{`tls.clientAuth.mode: want "require" or "optional"`})
}

func TestTLSPortsFilesRelative(t *testing.T) {
	c := &Config{TLS: &TLS{Ports: []TLSPort{{Port: 1, ClientAuth: &ClientAuth{CAFile: "ca/ca.crt"}}, {Port: 2}}}}
	c.resolveFiles("/etc/flotilla")
	if got := c.TLS.Ports[0].ClientAuth.CAFile; got != filepath.Join("/etc/flotilla", "ca/ca.crt") {
		t.Errorf("caFile %q, want it relative to the config's directory", got)
	}
}
