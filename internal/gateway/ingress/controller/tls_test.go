package controller

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
	"github.com/flotilla-dev/flotilla/internal/tlsconf"
)

// TestIngressTLSFromSecret: the certificate of an Ingress's TLS Secret is
// served for its host (SNI) by the gateway's HTTPS listener, next to the
// file config's default certificate, and its host redirects HTTP to HTTPS.
func TestIngressTLSFromSecret(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "upstream") }))
	defer upstream.Close()
	ca := certtest.NewCA(t, "test CA")
	dir := t.TempDir()
	def := certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"default.test"}})
	app := certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"app.test"}})
	base := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
tls: {certificates: [{certFile: %q, keyFile: %q}]}
routes: [{name: healthz, match: {path: {type: Exact, value: /healthz}}, directResponse: {status: 200, body: ok}}]
`, certtest.WriteFile(t, dir, "def.crt", def.CertPEM), certtest.WriteFile(t, dir, "def.key", def.KeyPEM))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: app.CertPEM, corev1.TLSPrivateKeyKey: app.KeyPEM}}
	ing := ingressObj("secure", nil, "app.test", "/", "app")
	ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"app.test"}, SecretName: "app-tls"}}
	store := &tlsconf.Store{}
	h := startWith(t, upstream, base, store, nil, secret, ing)

	tlsSrv := httptest.NewUnstartedServer(h.gw.Handler())
	tlsSrv.TLS = store.Config()
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "app.test"}}}
	discoverytest.Eventually(t, "the Ingress's certificate served for app.test", func() error {
		req, _ := http.NewRequest("GET", tlsSrv.URL+"/x", nil)
		req.Host = "app.test"
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET https://app.test/x = %d, want 200", resp.StatusCode)
		}
		if cn := resp.TLS.PeerCertificates[0].DNSNames; len(cn) != 1 || cn[0] != "app.test" {
			return fmt.Errorf("certificate names %v, want app.test", cn)
		}
		return nil
	})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", h.srv.URL+"/x", nil)
	req.Host = "app.test"
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://app.test/x" {
		t.Errorf("GET http://app.test/x = %d Location %q, want 308 to https://app.test/x (ssl-redirect)", resp.StatusCode, resp.Header.Get("Location"))
	}
}
