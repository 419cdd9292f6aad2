package config

import (
	"fmt"
	"strings"
)

// TLSPort is the TLS policy of one local port of the gateway: the Gateway
// API controller writes one per per-Gateway HTTPS port
// (--gateway-port-range), and one with port 0 for the shared --tls-addr
// listener (docs/gateway-api.md, "Client certificates and misdirected
// requests").
type TLSPort struct {
	// Port is the local port the policy applies to; 0: every port without
	// an entry of its own (the --tls-addr listener).
	Port int `yaml:"port" json:"port"`
	// ClientAuth, when set, replaces the section's clientAuth on this
	// port: connections to it are asked for a client certificate,
	// verified against its CAs as its mode says.
	ClientAuth *ClientAuth `yaml:"clientAuth" json:"clientAuth,omitempty"`
	// Hostnames are the host names of the HTTPS listeners sharing this
	// port: exact names, wildcards ("*.example.com", any subdomain) and
	// "" for a listener without one (any host). With two or more, a
	// request whose Host selects another of them than the TLS server
	// name (SNI) the connection was made for is answered 421 Misdirected
	// Request (RFC 9110 section 15.5.20): it was not meant for the
	// certificate and client certificate policy that connection got.
	Hostnames []string `yaml:"hostnames" json:"hostnames,omitempty"`
}

func (t *TLS) validatePorts(p *problems, path string) {
	seen := map[int]bool{}
	for i, tp := range t.Ports {
		at := fmt.Sprintf("%s.ports[%d]", path, i)
		if tp.Port < 0 || tp.Port > 65535 {
			p.addf(at+".port", "want 0 (the default) to 65535, got %d", tp.Port)
		} else if seen[tp.Port] {
			p.addf(at+".port", "port %d has another entry", tp.Port)
		}
		seen[tp.Port] = true
		if a := tp.ClientAuth; a != nil {
			if a.CAFile == "" {
				p.addf(at+".clientAuth.caFile", "required: the PEM CA certificates client certificates must chain to")
			}
			if a.Mode != ClientAuthRequire && a.Mode != ClientAuthOptional && a.Mode != ClientAuthInsecureFallback {
				p.addf(at+".clientAuth.mode", "want %q, %q or %q, got %q", ClientAuthRequire, ClientAuthOptional, ClientAuthInsecureFallback, a.Mode)
			}
		}
		hosts := map[string]bool{}
		for j, h := range tp.Hostnames {
			hp := fmt.Sprintf("%s.hostnames[%d]", at, j)
			switch {
			case h != "" && (!validHost(h) || strings.Contains(strings.TrimPrefix(h, "*."), "*")):
				p.addf(hp, "want a host name, a wildcard such as *.example.com, or \"\" for any, got %q", h)
			case hosts[strings.ToLower(h)]:
				p.addf(hp, "%q is listed twice", h)
			}
			hosts[strings.ToLower(h)] = true
		}
	}
}
