package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/url"
	"os"
)

// maxPEMBytes caps a CA bundle, certificate or key file (1 MiB, like the
// config file itself).
const maxPEMBytes = 1 << 20

// validate checks b's TLS block and reads its files, keeping what they
// held (a reload reads them again). Every problem names the backend's
// YAML path and the field.
func (t *BackendTLS) validate(p *problems, path string, b *Backend) {
	if t == nil {
		return
	}
	tp := path + ".tls"
	if !b.UsesTLS() {
		p.addf(tp, `only used with protocol "https" or "h2", got protocol %q`, b.Protocol)
	}
	if t.ServerName != "" && (!validHost(t.ServerName) || t.ServerName[0] == '*') {
		p.addf(tp+".serverName", "want a host name without port, got %q", t.ServerName)
	}
	for i, san := range t.SubjectAltNames {
		sp := fmt.Sprintf("%s.subjectAltNames[%d]", tp, i)
		switch {
		case (san.Hostname == "") == (san.URI == ""):
			p.addf(sp, "want exactly one of hostname and uri")
		case san.Hostname != "" && !validHost(san.Hostname):
			p.addf(sp+".hostname", "want a DNS name, got %q", san.Hostname)
		case san.URI != "":
			if u, err := url.Parse(san.URI); err != nil || u.Scheme == "" {
				p.addf(sp+".uri", "want an absolute URI such as spiffe://example.com/id, got %q", san.URI)
			}
		}
	}
	t.caPEM, t.certPEM, t.keyPEM = nil, nil, nil
	switch {
	case t.CAFile != "" && t.CAPEM != nil:
		p.addf(tp+".caFile", "set with an in-memory CA bundle; want one of them")
	case t.CAPEM != nil:
		if err := checkCABundle(t.CAPEM); err != nil {
			p.addf(tp+".caPEM", "%v", err)
		} else {
			t.caPEM = t.CAPEM
		}
	case t.CAFile != "":
		data, err := readPEM(t.CAFile)
		if err == nil {
			err = checkCABundle(data)
		}
		if err != nil {
			p.addf(tp+".caFile", "%v", err)
		} else {
			t.caPEM = data
		}
	}
	if t.CertPEM != nil || t.KeyPEM != nil {
		if t.CertFile != "" || t.KeyFile != "" {
			p.addf(tp+".certFile", "set with an in-memory client certificate; want one of them")
			return
		}
		if _, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM); err != nil {
			p.addf(tp+".certPEM", "with keyPEM: %v", err)
			return
		}
		t.certPEM, t.keyPEM = t.CertPEM, t.KeyPEM
		return
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "":
		p.addf(tp+".certFile", "required with keyFile")
	case t.KeyFile == "":
		p.addf(tp+".keyFile", "required with certFile")
	default:
		cert, cerr := readPEM(t.CertFile)
		if cerr != nil {
			p.addf(tp+".certFile", "%v", cerr)
		}
		key, kerr := readPEM(t.KeyFile)
		if kerr != nil {
			p.addf(tp+".keyFile", "%v", kerr)
		}
		if cerr != nil || kerr != nil {
			return
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			p.addf(tp+".certFile", "with keyFile %s: %v", t.KeyFile, err)
			return
		}
		t.certPEM, t.keyPEM = cert, key
	}
}

// readPEM reads a regular file of at most maxPEMBytes: a device or FIFO
// named by mistake (or by a hostile config) must not hang validation.
func readPEM(path string) ([]byte, error) {
	st, err := os.Stat(path) // follows symlinks: Kubernetes Secret volumes are made of them
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxPEMBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxPEMBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxPEMBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxPEMBytes)
	}
	return data, nil
}

// checkCABundle wants at least one certificate and nothing but
// certificates, each parseable: a bundle that silently loses a CA fails
// in production, not here.
func checkCABundle(data []byte) error {
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is a %q, want only CERTIFICATE blocks", n, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n, err)
		}
	}
	if n == 0 {
		return fmt.Errorf("no PEM certificate found")
	}
	return nil
}
