package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/tlsconf"
)

// TestMisdirectedThroughExtra: listener host names given by a controller
// (Extra.TLSPorts) make a TLS request whose Host selects another
// listener than its SNI answer 421 with the gateway's error body; the
// same Host on its own connection, or over clear text, is routed.
func TestMisdirectedThroughExtra(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	pair := certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"a.test", "b.test"}})
	certFile, keyFile := certtest.WriteFile(t, dir, "tls.crt", pair.CertPEM), certtest.WriteFile(t, dir, "tls.key", pair.KeyPEM)
	c, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: any, directResponse: {status: 200, body: routed}}]\n" +
		"tls: {certificates: [{certFile: " + certFile + ", keyFile: " + keyFile + "}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := &tlsconf.Store{}
	gw, err := New(c, Options{TLS: store})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gw.Handler()}
	go srv.Serve(tls.NewListener(ln, store.Config()))
	defer srv.Close()
	get := func(sni, host string) (int, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, RootCAs: ca.Pool()}, DisableKeepAlives: true,
			DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}
		req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/", nil)
		req.Host = host
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("SNI %s Host %s: %v", sni, host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("a.test", "b.test"); code != 200 {
		t.Fatalf("without listener host names: %d, want 200", code)
	}
	if err := gw.SetExtraPart("gatewayapi", &Extra{TLSPorts: []config.TLSPort{{Port: 0, Hostnames: []string{"a.test", "b.test"}}}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sni, host string
		code      int
		body      string
	}{
		{"a.test", "a.test", 200, "routed"},
		{"a.test", "a.test:443", 200, "routed"},
		{"b.test", "b.test", 200, "routed"},
		{"a.test", "b.test", 421, `"misdirected_request"`},
		{"b.test", "A.TEST", 421, `"misdirected_request"`},
	} {
		if code, body := get(tt.sni, tt.host); code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("SNI %s Host %s: %d %q, want %d with %s", tt.sni, tt.host, code, body, tt.code, tt.body)
		}
	}
	// A second part naming the same port is a conflict the load reports.
	if err := gw.SetExtraPart("ingress", &Extra{TLSPorts: []config.TLSPort{{Port: 0}}}); err == nil || !strings.Contains(err.Error(), "tls.ports[1].port: port 0 has another entry") {
		t.Errorf("two parts on port 0: %v", err)
	}
}
