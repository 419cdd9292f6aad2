//lint:file-ignore SA1019 the server under test is x/net/http2's (see internal/httpserver/h1/h2.go)

package gatewayapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/httpserver/h1"
	"github.com/flotilla-dev/flotilla/internal/tlsconf"
)

// serveTLS translates in (per Gateway, listener ports already mapped to
// the local ports of lns) and serves the result with a real gateway and
// TLS store on lns, as `flotilla gateway --gateway-port-range` does: the
// h1 server, HTTP/2, the translation's certificates and tls.ports.
func serveTLS(t *testing.T, in Input, lns []net.Listener, echoes ...*echo) Result {
	t.Helper()
	res := Translate(in, Options{PerGateway: true})
	dir := t.TempDir()
	for name, data := range res.Files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := map[string]string{}
	for _, e := range echoes {
		addr[e.name] = strings.TrimPrefix(e.srv.URL, "http://")
	}
	c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Routes: res.Routes, TLS: &config.TLS{}}
	for _, b := range res.Backends {
		a := addr[b.Kubernetes.Service]
		if a == "" {
			t.Fatalf("no echo for Service %s", b.Kubernetes.Service)
		}
		b.Kubernetes, b.Addresses = nil, []string{a}
		c.Backends = append(c.Backends, b)
	}
	for _, cert := range res.Certificates {
		c.TLS.Certificates = append(c.TLS.Certificates, config.Certificate{CertFile: filepath.Join(dir, cert.CertFile), KeyFile: filepath.Join(dir, cert.KeyFile)})
	}
	for _, p := range res.TLSPorts {
		if p.ClientAuth != nil {
			ca := *p.ClientAuth
			ca.CAFile = filepath.Join(dir, ca.CAFile)
			p.ClientAuth = &ca
		}
		c.TLS.Ports = append(c.TLS.Ports, p)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	store := &tlsconf.Store{}
	gw, err := gateway.New(c, gateway.Options{TLS: store})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	t.Cleanup(func() { gw.Close() })
	for _, ln := range lns {
		srv := &h1.Server{H2: &http2.Server{}, Handler: gw.Handler()}
		go srv.Serve(tls.NewListener(ln, store.Config()))
		t.Cleanup(func() { srv.Close() })
	}
	return res
}

func localListeners(t *testing.T, n int) ([]net.Listener, []int32) {
	t.Helper()
	var lns []net.Listener
	var ports []int32
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns = append(lns, ln)
		ports = append(ports, int32(ln.Addr().(*net.TCPAddr).Port))
	}
	return lns, ports
}

// httpsGet makes one request over a new TLS connection to port with SNI
// sni and Host host, presenting cert when given, over HTTP/2.
func httpsGet(t *testing.T, port int32, roots *x509.CertPool, sni, host, path string, cert *tls.Certificate) (*http.Response, string, error) {
	t.Helper()
	tc := &tls.Config{ServerName: sni, RootCAs: roots}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	resp, err := cl.Get("https://" + host + path)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// TestServeFrontendValidation: GatewayFrontendClientCertificateValidation
// and ...InsecureFallback over real handshakes: the 443 listener accepts
// only certificates of the default CA, the 8443 one only those of its
// per-port CA; with insecure fallback every request passes.
func TestServeFrontendValidation(t *testing.T) {
	p := newConfPKI(t)
	v1, v2 := newEcho(t, "infra-backend-v1"), newEcho(t, "infra-backend-v2")
	roots := p.serverCA.Pool()
	type req struct {
		listener  int // 0: 443, 1: 8443
		cert      *tls.Certificate
		succeeded bool
	}
	for _, tt := range []struct {
		name string
		mode string
		reqs []req
	}{
		{"AllowValidOnly", "", []req{
			{0, &p.client1.TLS, true}, {0, &p.client2.TLS, false}, {0, nil, false},
			{1, &p.client2.TLS, true}, {1, &p.client1.TLS, false}, {1, nil, false},
		}},
		{"AllowInsecureFallback", "mode: AllowInsecureFallback", []req{
			{0, &p.client1.TLS, true}, {0, &p.client2.TLS, true}, {0, nil, true},
			{1, &p.client2.TLS, true}, {1, &p.client1.TLS, true}, {1, nil, true},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lns, local := localListeners(t, 2)
			in := p.input(t, strings.ReplaceAll(clientValidationYAML, "MODE", tt.mode))
			in.Ports = func(string, string) map[int32]int32 { return map[int32]int32{443: local[0], 8443: local[1]} }
			serveTLS(t, in, lns, v1, v2)
			for i, r := range tt.reqs {
				sni, backend := "example.org", "infra-backend-v1"
				if r.listener == 1 {
					sni, backend = "second-example.org", "infra-backend-v2"
				}
				resp, body, err := httpsGet(t, local[r.listener], roots, sni, sni, "/", r.cert)
				switch {
				case r.succeeded && (err != nil || resp.StatusCode != 200 || body != backend):
					t.Errorf("request %d (%s): %v %v %q, want 200 from %s", i, sni, err, resp != nil && resp.StatusCode == 200, body, backend)
				case !r.succeeded && err == nil:
					t.Errorf("request %d (%s): answered %d %q, want a failed handshake", i, sni, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestServeMisdirected: HTTPRouteHTTPSListenerDetectMisdirectedRequests
// over real HTTP/2 connections: 421 when the Host selects another HTTPS
// listener of the port than the connection's SNI, else routing as usual.
func TestServeMisdirected(t *testing.T) {
	p := newConfPKI(t)
	v1, v2, v3 := newEcho(t, "infra-backend-v1"), newEcho(t, "infra-backend-v2"), newEcho(t, "infra-backend-v3")
	lns, local := localListeners(t, 1)
	in := p.input(t, misdirectedYAML)
	in.Ports = func(string, string) map[int32]int32 { return map[int32]int32{443: local[0]} }
	serveTLS(t, in, lns, v1, v2, v3)
	for _, tt := range []struct {
		sni, host string
		status    int
		backend   string
	}{
		{"example.org", "example.org", 200, "infra-backend-v1"},
		{"example.org", "second-example.org", 421, ""},
		{"example.org", "unknown-example.org", 404, ""},
		{"second-example.org", "second-example.org", 200, "infra-backend-v2"},
		{"second-example.org", "example.org", 421, ""},
		{"second-example.org", "unknown-example.org", 421, ""},
		{"third-example.wildcard.org", "third-example.wildcard.org", 200, "infra-backend-v3"},
		{"third-example.wildcard.org", "fith-example.wildcard.org", 200, "infra-backend-v3"},
		{"third-example.wildcard.org", "fourth-example.wildcard.org", 421, ""},
		{"third-example.wildcard.org", "second-example.org", 421, ""},
		{"third-example.wildcard.org", "unknown-example.org", 421, ""},
		{"fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "infra-backend-v1"},
		{"fourth-example.wildcard.org", "fith-example.wildcard.org", 421, ""},
		{"unknown-example.org", "example.org", 200, "infra-backend-v1"},
		{"unknown-example.org", "unknown-example.org", 404, ""},
	} {
		resp, body, err := httpsGet(t, local[0], p.serverCA.Pool(), tt.sni, tt.host, "/detect-misdirected-requests", nil)
		if err != nil {
			t.Errorf("SNI %s Host %s: %v", tt.sni, tt.host, err)
			continue
		}
		if resp.ProtoMajor != 2 {
			t.Errorf("SNI %s Host %s: served over %s, want HTTP/2", tt.sni, tt.host, resp.Proto)
		}
		if resp.StatusCode != tt.status || tt.backend != "" && body != tt.backend {
			t.Errorf("SNI %s Host %s: %d %q, want %d %s", tt.sni, tt.host, resp.StatusCode, body, tt.status, tt.backend)
		}
	}
}
