//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/pki"
)

// testCA is a certificate authority of the test's own (internal/pki):
// the gateway's Secret holds a certificate it signed, and the test's
// clients trust it and nothing else. For a CA made elsewhere (the Helm
// chart's) only cert and pool are set.
type testCA struct {
	cert *x509.Certificate
	pool *x509.CertPool
	ca   *pki.CA // nil when the test did not make the CA
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca, err := pki.NewCA("flotilla e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: ca.Cert, pool: ca.Pool(), ca: ca}
}

// issue returns a server certificate for names (DNS names and IP
// addresses) and its key, both PEM; the chain includes the CA.
func (ca *testCA) issue(t *testing.T, names []string) (certPEM, keyPEM []byte) {
	t.Helper()
	// One day: the namespace, and the Secret in it, last one run.
	is, err := ca.ca.Issue(pki.Request{Names: names, NotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return is.CertPEM, is.KeyPEM
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
