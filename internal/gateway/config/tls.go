package config

import (
	"crypto/tls"
	"fmt"
	"slices"
)

// TLS is the certificates and policy of the gateway's HTTPS listener
// (`flotilla gateway --tls-addr`). Files are read when the config loads
// and again whenever they change: a renewed certificate is served to new
// connections without a restart, and a bad file keeps the last good one.
type TLS struct {
	// Certificates are PEM certificate chains with their keys; the one
	// whose names match the client's SNI is served, the first one when
	// none does (or the client sends no SNI).
	Certificates []Certificate `yaml:"certificates" json:"certificates"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"minVersion" json:"minVersion"`
	// CipherSuites are the TLS 1.2 suites offered, by IANA name (default:
	// ECDHE with AES-GCM or ChaCha20-Poly1305, Mozilla's "intermediate"
	// list). TLS 1.3's suites are not configurable.
	CipherSuites []string `yaml:"cipherSuites" json:"cipherSuites,omitempty"`
	// ClientAuth, when set, asks clients for a certificate (mTLS).
	ClientAuth *ClientAuth `yaml:"clientAuth" json:"clientAuth,omitempty"`
	// Ports are policies of single local ports (tlsports.go): the Gateway
	// API controller's per-Gateway listeners.
	Ports []TLSPort `yaml:"ports" json:"ports,omitempty"`
}

// Certificate is a PEM certificate chain and its private key.
type Certificate struct {
	CertFile string `yaml:"certFile" json:"certFile"`
	KeyFile  string `yaml:"keyFile" json:"keyFile"`
}

// ClientAuth configures client certificates.
type ClientAuth struct {
	// CAFile holds the PEM CA certificates client certificates must chain
	// to; required.
	CAFile string `yaml:"caFile" json:"caFile"`
	// Mode is "require" (default: no valid certificate, no handshake),
	// "optional" (a certificate, when sent, must be valid) or
	// "insecureFallback" (a certificate is asked for but not verified:
	// Gateway API's AllowInsecureFallback, for ports only).
	Mode string `yaml:"mode" json:"mode"`
}

// Client certificate modes.
const (
	ClientAuthRequire  = "require"
	ClientAuthOptional = "optional"
	// ClientAuthInsecureFallback asks for a certificate and accepts the
	// connection with any or none (tls.RequestClientCert).
	ClientAuthInsecureFallback = "insecureFallback"
)

// DefaultCipherSuites are the TLS 1.2 suites offered unless
// tls.cipherSuites says otherwise: forward secret AEADs only.
var DefaultCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// TLSVersions maps MinVersion values to crypto/tls versions.
var TLSVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// CipherSuiteID returns the ID of a secure TLS 1.2 suite named name.
func CipherSuiteID(name string) (uint16, bool) {
	for _, s := range tls.CipherSuites() {
		if s.Name == name && slices.Contains(s.SupportedVersions, tls.VersionTLS12) {
			return s.ID, true
		}
	}
	return 0, false
}

func (t *TLS) setDefaults() {
	if t.MinVersion == "" {
		t.MinVersion = "1.2"
	}
	if len(t.CipherSuites) == 0 {
		t.CipherSuites = slices.Clone(DefaultCipherSuites)
	}
	if t.ClientAuth != nil && t.ClientAuth.Mode == "" {
		t.ClientAuth.Mode = ClientAuthRequire
	}
	for i := range t.Ports {
		if a := t.Ports[i].ClientAuth; a != nil && a.Mode == "" {
			a.Mode = ClientAuthRequire
		}
	}
}

func (t *TLS) validate(p *problems, path string) {
	if len(t.Certificates) == 0 {
		p.addf(path+".certificates", "want at least one certificate")
	}
	for i, c := range t.Certificates {
		at := fmt.Sprintf("%s.certificates[%d]", path, i)
		if c.CertFile == "" {
			p.addf(at+".certFile", "required: a PEM certificate chain file")
		}
		if c.KeyFile == "" {
			p.addf(at+".keyFile", "required: the certificate's PEM private key file")
		}
	}
	if _, ok := TLSVersions[t.MinVersion]; !ok {
		p.addf(path+".minVersion", `want "1.2" or "1.3", got %q`, t.MinVersion)
	}
	for i, name := range t.CipherSuites {
		if _, ok := CipherSuiteID(name); !ok {
			p.addf(fmt.Sprintf("%s.cipherSuites[%d]", path, i), "%q is not a secure TLS 1.2 cipher suite (see Go's tls.CipherSuites)", name)
		}
	}
	if a := t.ClientAuth; a != nil {
		if a.CAFile == "" {
			p.addf(path+".clientAuth.caFile", "required: the PEM CA certificates client certificates must chain to")
		}
		if a.Mode != ClientAuthRequire && a.Mode != ClientAuthOptional {
			p.addf(path+".clientAuth.mode", "want %q or %q, got %q", ClientAuthRequire, ClientAuthOptional, a.Mode)
		}
	}
	t.validatePorts(p, path)
}
