package config

import (
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
)

func TestBackendTLSValidation(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test CA")
	client := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"gateway"}})
	other := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"other"}})
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	certFile := certtest.WriteFile(t, dir, "client.pem", client.CertPEM)
	keyFile := certtest.WriteFile(t, dir, "client-key.pem", client.KeyPEM)
	otherKey := certtest.WriteFile(t, dir, "other-key.pem", other.KeyPEM)
	empty := certtest.WriteFile(t, dir, "empty.pem", nil)
	garbage := certtest.WriteFile(t, dir, "garbage.pem", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	keyAsCA := certtest.WriteFile(t, dir, "key-as-ca.pem", client.KeyPEM)
	missing := dir + "/missing.pem"
	huge := certtest.WriteFile(t, dir, "huge.pem", make([]byte, maxPEMBytes+1))

	const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends:\n  - name: web\n    addresses: [\"legacy.internal:443\"]\n"
	tests := []struct {
		name    string
		backend string
		want    []string // empty: valid
	}{
		{"https with system roots", "    protocol: https\n", nil},
		{"h2 with a CA and SNI", "    protocol: h2\n    tls: {caFile: " + caFile + ", serverName: legacy.example.com}\n", nil},
		{"mTLS", "    protocol: https\n    tls: {caFile: " + caFile + ", certFile: " + certFile + ", keyFile: " + keyFile + "}\n", nil},
		{"unknown protocol", "    protocol: h3\n", []string{`backends[0].protocol: want "http1", "h2c", "https" or "h2", got "h3"`}},
		{"tls on clear text", "    protocol: h2c\n    tls: {caFile: " + caFile + "}\n", []string{`backends[0].tls: only used with protocol "https" or "h2", got protocol "h2c"`}},
		{"tls on the default protocol", "    tls: {serverName: a.example}\n", []string{`backends[0].tls: only used with protocol "https" or "h2", got protocol "http1"`}},
		{"missing CA file", "    protocol: https\n    tls: {caFile: " + missing + "}\n", []string{"backends[0].tls.caFile: stat " + missing + ": no such file or directory"}},
		{"empty CA file", "    protocol: https\n    tls: {caFile: " + empty + "}\n", []string{"backends[0].tls.caFile: no PEM certificate found"}},
		{"malformed CA", "    protocol: https\n    tls: {caFile: " + garbage + "}\n", []string{"backends[0].tls.caFile: certificate 1: x509: "}},
		{"a key as CA", "    protocol: https\n    tls: {caFile: " + keyAsCA + "}\n", []string{`backends[0].tls.caFile: PEM block 1 is a "PRIVATE KEY", want only CERTIFICATE blocks`}},
		{"cert without key", "    protocol: https\n    tls: {certFile: " + certFile + "}\n", []string{"backends[0].tls.keyFile: required with certFile"}},
		{"key without cert", "    protocol: https\n    tls: {keyFile: " + keyFile + "}\n", []string{"backends[0].tls.certFile: required with keyFile"}},
		{"missing cert file", "    protocol: https\n    tls: {certFile: " + missing + ", keyFile: " + keyFile + "}\n", []string{"backends[0].tls.certFile: stat " + missing}},
		{"missing key file", "    protocol: https\n    tls: {certFile: " + certFile + ", keyFile: " + missing + "}\n", []string{"backends[0].tls.keyFile: stat " + missing}},
		{"key of another cert", "    protocol: https\n    tls: {certFile: " + certFile + ", keyFile: " + otherKey + "}\n", []string{"backends[0].tls.certFile: with keyFile " + otherKey + ": tls: private key does not match public key"}},
		{"serverName with port", "    protocol: https\n    tls: {serverName: \"a.example:443\"}\n", []string{`backends[0].tls.serverName: want a host name without port, got "a.example:443"`}},
		{"serverName wildcard", "    protocol: https\n    tls: {serverName: \"*.example\"}\n", []string{`backends[0].tls.serverName: want a host name without port, got "*.example"`}},
		{"CA is a device", "    protocol: https\n    tls: {caFile: /dev/zero}\n", []string{"backends[0].tls.caFile: /dev/zero: not a regular file"}},
		{"CA is a directory", "    protocol: https\n    tls: {caFile: " + dir + "}\n", []string{"backends[0].tls.caFile: " + dir + ": not a regular file"}},
		{"CA too large", "    protocol: https\n    tls: {caFile: " + huge + "}\n", []string{"backends[0].tls.caFile: " + huge + ": larger than 1048576 bytes"}},
		{"unknown tls field", "    protocol: https\n    tls: {insecureSkipVerify: true}\n", []string{`unknown field "insecureSkipVerify"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseWant(t, head+tt.backend, tt.want)
			if c == nil {
				return
			}
			if tls := c.Backends[0].TLS; tls != nil && tls.CAFile != "" && tls.caPEM == nil {
				t.Errorf("CA bundle not kept after validation")
			}
		})
	}
}

// A reload reads the files again: a CA that changed on disk is what the
// new config holds.
func TestBackendTLSFilesReadOnEveryValidate(t *testing.T) {
	dir := t.TempDir()
	one, two := certtest.NewCA(t, "one"), certtest.NewCA(t, "two")
	caFile := certtest.WriteFile(t, dir, "ca.pem", one.PEM)
	data := []byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends:\n  - {name: web, addresses: [\"a:443\"], protocol: https, tls: {caFile: " + caFile + "}}\n")
	c1, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	certtest.WriteFile(t, dir, "ca.pem", two.PEM)
	c2, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if ca, _, _ := c2.Backends[0].TLS.Material(); string(ca) != string(two.PEM) {
		t.Errorf("second load holds %q, want the new CA", ca)
	}
	if ca, _, _ := c1.Backends[0].TLS.Material(); string(ca) != string(one.PEM) {
		t.Errorf("first load changed")
	}
}

func TestStreamsDefaultsAndValidation(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Routes[0].Streams; s.IdleTimeout != 5*time.Minute || s.MaxLifetime != 24*time.Hour {
		t.Errorf("route streams = %+v, want idle 5m, lifetime 24h", s)
	}
	c, err = Parse([]byte(minimal + "defaults:\n  streams: {idleTimeout: 1m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Routes[0].Streams; s.IdleTimeout != time.Minute || s.MaxLifetime != 24*time.Hour {
		t.Errorf("route streams = %+v, want idle 1m from defaults, lifetime 24h", s)
	}
	c, err = Parse([]byte(minimal + "    streams: {maxLifetime: 1h}\ndefaults:\n  streams: {idleTimeout: 1m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Routes[0].Streams; s.IdleTimeout != time.Minute || s.MaxLifetime != time.Hour {
		t.Errorf("route streams = %+v, want idle 1m from defaults, lifetime 1h from the route", s)
	}

	tests := []struct {
		name, yaml, want string
	}{
		{"negative idle", "    streams: {idleTimeout: -1s}\n", "routes[0].streams.idleTimeout: must be at least 1s, got -1s"},
		{"tiny idle", "    streams: {idleTimeout: 10ms}\n", "routes[0].streams.idleTimeout: must be at least 1s, got 10ms"},
		{"negative lifetime", "    streams: {maxLifetime: -5m}\n", "routes[0].streams.maxLifetime: must be at least 1s, got -5m0s"},
		{"defaults tiny lifetime", "defaults:\n  streams: {maxLifetime: 1ms}\n", "defaults.streams.maxLifetime: must be at least 1s, got 1ms"},
		{"not a duration", "    streams: {idleTimeout: soon}\n", "into a duration"},
		{"unknown field", "    streams: {idle: 5m}\n", `unknown field "idle"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal + tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestTLSFilesRelativeToTheConfig: relative file names in a config file
// are relative to its directory, whatever the working directory.
func TestTLSFilesRelativeToTheConfig(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	path := certtest.WriteFile(t, dir, "gateway.yaml", []byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends:\n  - {name: web, addresses: [\"a:443\"], protocol: https, tls: {caFile: ca.pem}}\n"))
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if got := c.Backends[0].TLS.CAFile; got != dir+"/ca.pem" {
		t.Errorf("caFile = %q, want it next to the config", got)
	}
	// The HTTPS port's files too (read by the gateway's TLS store).
	path = certtest.WriteFile(t, dir, "edge.yaml", []byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends: [{name: web, addresses: [\"a:80\"]}]\ntls:\n  certificates: [{certFile: tls/a.crt, keyFile: /abs/a.key}]\n  clientAuth: {caFile: clients.pem}\n"))
	if c, err = Load(path); err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if got := []string{c.TLS.Certificates[0].CertFile, c.TLS.Certificates[0].KeyFile, c.TLS.ClientAuth.CAFile}; got[0] != dir+"/tls/a.crt" || got[1] != "/abs/a.key" || got[2] != dir+"/clients.pem" {
		t.Errorf("tls files = %q, want relative ones next to the config", got)
	}
	// Parse has no file: the name stays relative to the working directory.
	if _, err := Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends:\n  - {name: web, addresses: [\"a:443\"], protocol: https, tls: {caFile: ca.pem}}\n")); err == nil || !strings.Contains(err.Error(), "backends[0].tls.caFile: stat ca.pem") {
		t.Errorf("Parse() error = %v, want caFile not found", err)
	}
}

// TestBackendTLSSubjectAltNames: the SAN list's entries, each one name.
func TestBackendTLSSubjectAltNames(t *testing.T) {
	const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends:\n  - name: web\n    addresses: [\"legacy.internal:443\"]\n    protocol: https\n"
	tests := []struct {
		name, tls string
		want      []string
	}{
		{"hostname and uri", "    tls: {serverName: a.example, subjectAltNames: [{hostname: a.example}, {uri: \"spiffe://example.com/app\"}]}\n", nil},
		{"wildcard hostname", "    tls: {subjectAltNames: [{hostname: \"*.example.com\"}]}\n", nil},
		{"both", "    tls: {subjectAltNames: [{hostname: a.example, uri: \"spiffe://x/y\"}]}\n", []string{"backends[0].tls.subjectAltNames[0]: want exactly one of hostname and uri"}},
		{"neither", "    tls: {subjectAltNames: [{}]}\n", []string{"backends[0].tls.subjectAltNames[0]: want exactly one of hostname and uri"}},
		{"bad hostname", "    tls: {subjectAltNames: [{hostname: \"a b\"}]}\n", []string{`backends[0].tls.subjectAltNames[0].hostname: want a DNS name, got "a b"`}},
		{"relative uri", "    tls: {subjectAltNames: [{uri: /path}]}\n", []string{`backends[0].tls.subjectAltNames[0].uri: want an absolute URI such as spiffe://example.com/id, got "/path"`}},
		{"unknown field", "    tls: {subjectAltNames: [{dns: a.example}]}\n", []string{`unknown field "dns"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { parseWant(t, head+tt.tls, tt.want) })
	}
}

// TestBackendTLSInMemoryPEM: PEM given in memory (the Gateway API
// controller's) is checked like files, excludes them, and is what
// Material returns.
func TestBackendTLSInMemoryPEM(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	client := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"gateway"}})
	other := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"other"}})
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	certFile := certtest.WriteFile(t, dir, "client.pem", client.CertPEM)
	tests := []struct {
		name string
		tls  BackendTLS
		want []string
	}{
		{"CA and client certificate", BackendTLS{CAPEM: ca.PEM, CertPEM: client.CertPEM, KeyPEM: client.KeyPEM}, nil},
		{"garbage CA", BackendTLS{CAPEM: []byte("garbage")}, []string{"backends[0].tls.caPEM: no PEM certificate found"}},
		{"a key as CA", BackendTLS{CAPEM: client.KeyPEM}, []string{`backends[0].tls.caPEM: PEM block 1 is a "PRIVATE KEY", want only CERTIFICATE blocks`}},
		{"CA file and PEM", BackendTLS{CAFile: caFile, CAPEM: ca.PEM}, []string{"backends[0].tls.caFile: set with an in-memory CA bundle; want one of them"}},
		{"cert without key", BackendTLS{CertPEM: client.CertPEM}, []string{"backends[0].tls.certPEM: with keyPEM: tls: "}},
		{"key of another cert", BackendTLS{CertPEM: client.CertPEM, KeyPEM: other.KeyPEM}, []string{"backends[0].tls.certPEM: with keyPEM: tls: private key does not match public key"}},
		{"cert file and PEM", BackendTLS{CertFile: certFile, CertPEM: client.CertPEM, KeyPEM: client.KeyPEM}, []string{"backends[0].tls.certFile: set with an in-memory client certificate; want one of them"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bt := tt.tls
			c := Config{APIVersion: APIVersion, Kind: Kind, Backends: []Backend{{Name: "web", Addresses: []string{"a.example:443"}, Protocol: ProtocolHTTPS, TLS: &bt}},
				Routes: []Route{{Name: "r", Backends: []BackendRef{{Name: "web"}}}}}
			c.SetDefaults()
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				if ca2, cert, key := bt.Material(); string(ca2) != string(ca.PEM) || string(cert) != string(client.CertPEM) || string(key) != string(client.KeyPEM) {
					t.Errorf("Material() does not return the in-memory PEM")
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
