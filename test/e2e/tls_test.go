//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority of the test's own: the gateway's
// Secret holds a certificate it signed, and the test's clients trust it
// and nothing else.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "flotilla e2e CA", Organization: []string{"flotilla e2e"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func serial(t *testing.T) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// issue returns a server certificate for names (DNS names and IP
// addresses) and its key, both PEM.
func (ca *testCA) issue(t *testing.T, names []string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"flotilla e2e"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// tlsConfig trusts only the CA.
func (ca *testCA) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
}

// gatewayNames are the names the gateway's certificate is for: its
// Services' DNS names in ns, the talk's hosts, and the addresses a client
// on this machine or the node uses (127.0.0.1, the node's InternalIPs).
func (c *cluster) gatewayNames(t *testing.T, ns string) []string {
	t.Helper()
	names := []string{"gateway." + ns + ".svc"}
	for _, svc := range []string{"gateway", "gateway-nodeport"} {
		names = append(names, svc, svc+"."+ns, svc+"."+ns+".svc", svc+"."+ns+".svc.cluster.local")
	}
	names = append(names, "minikube.test", "flaskapp.test", "localhost", "127.0.0.1", "::1")
	out := c.must(t, "", "get", "nodes", "-o", `jsonpath={range .items[*].status.addresses[?(@.type=="InternalIP")]}{.address}{"\n"}{end}`)
	return append(names, strings.Fields(out)...)
}

// createGatewayTLS creates the Secret gateway-tls (type kubernetes.io/tls)
// that components/tls mounts, as a user would: kubectl create secret tls,
// with a certificate signed by a new test CA, which it returns.
func (c *cluster) createGatewayTLS(t *testing.T, ns string) *testCA {
	t.Helper()
	ca := newTestCA(t)
	cert, key := ca.issue(t, c.gatewayNames(t, ns))
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	c.must(t, "", "create", "secret", "tls", "gateway-tls", "-n", ns, "--cert="+certFile, "--key="+keyFile)
	return ca
}

// h2Client speaks HTTP/2 over TLS (ALPN h2) to servers whose certificate
// chains to ca, on one connection: what a browser does.
func h2Client(ca *testCA) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.tlsConfig(), ForceAttemptHTTP2: true}}
}

// h1TLSClient speaks HTTP/1.1 over TLS (ALPN http/1.1 only), a new
// connection per request, as curl --http1.1 does.
func h1TLSClient(ca *testCA) *http.Client {
	tc := ca.tlsConfig()
	tc.NextProtos = []string{"http/1.1"}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
}

// verified reports whether r came over TLS with a chain to the test CA.
func verified(r response, ca *testCA) error {
	if r.TLS == nil {
		return fmt.Errorf("not over TLS")
	}
	for _, chain := range r.TLS.VerifiedChains {
		if len(chain) > 1 && chain[len(chain)-1].Equal(ca.cert) {
			return nil
		}
	}
	return fmt.Errorf("certificate %v does not chain to the test CA", r.TLS.PeerCertificates[0].Subject)
}
