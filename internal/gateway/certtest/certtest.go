// Package certtest makes certificates for tests (package pki, failing
// the test on error): a CA and leaf certificates signed by it or
// self-signed, with the names, validity and key usage a test asks for,
// written as PEM files.
package certtest

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/pki"
)

// CA is a certificate authority.
type CA = pki.CA

// NewCA returns a fresh CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := pki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Leaf is what a leaf certificate says.
type Leaf struct {
	// Hosts are DNS names and IP addresses (default "localhost" and
	// 127.0.0.1).
	Hosts []string
	// NotBefore and NotAfter (default an hour ago and 90 days ahead).
	NotBefore, NotAfter time.Time
	// Client makes a client certificate (ExtKeyUsageClientAuth).
	Client bool
}

// Pair is a certificate (with its CA after it) and its key.
type Pair struct {
	CertPEM, KeyPEM []byte
	TLS             tls.Certificate
}

// Issue signs a leaf certificate with ca; a nil ca makes it self-signed.
func Issue(t testing.TB, ca *CA, l Leaf) Pair {
	t.Helper()
	if l.Hosts == nil {
		l.Hosts = []string{"localhost", "127.0.0.1"}
	}
	r := pki.Request{Names: l.Hosts, NotBefore: l.NotBefore, NotAfter: l.NotAfter, Client: l.Client}
	var is pki.Issued
	var err error
	if ca == nil {
		is, err = pki.SelfSigned(r)
	} else {
		is, err = ca.Issue(r)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{CertPEM: is.CertPEM, KeyPEM: is.KeyPEM}
	if p.TLS, err = is.TLS(); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteFile writes data to name in dir and returns its path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
