package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
)

// tlsUpstream is an HTTPS upstream (HTTP/2 too when h2) serving cert,
// recording the SNI each connection asked for; with clientCA it requires
// a client certificate signed by it.
type tlsUpstream struct {
	*upstream
	mu    sync.Mutex
	snis  []string
	peers []string // client certificate common names
}

func newTLSUpstream(t *testing.T, cert certtest.Pair, h2 bool, clientCA *certtest.CA) *tlsUpstream {
	u := &tlsUpstream{upstream: &upstream{name: "tls"}}
	u.upstream.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			w.WriteHeader(500)
			return
		}
		u.mu.Lock()
		if len(r.TLS.PeerCertificates) > 0 {
			u.peers = append(u.peers, r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		u.mu.Unlock()
		fmt.Fprintf(w, "tls HTTP/%d", r.ProtoMajor)
	}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Server.EnableHTTP2 = h2
	u.Server.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS},
		VerifyConnection: func(cs tls.ConnectionState) error {
			u.mu.Lock()
			u.snis = append(u.snis, cs.ServerName)
			u.mu.Unlock()
			return nil
		}}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.Cert)
		u.Server.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		u.Server.TLS.ClientCAs = pool
	}
	u.Server.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError) // the rejected handshakes
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *tlsUpstream) port() string { return u.addr()[strings.LastIndexByte(u.addr(), ':')+1:] }

func (u *tlsUpstream) addr() string { return strings.TrimPrefix(u.URL, "https://") }

func (u *tlsUpstream) sni() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.snis...)
}

// legacyResolver resolves every name to loopback, where the test
// upstreams listen: an address given as a DNS name keeps that name for
// SNI and verification after it resolved to an IP.
func legacyResolver(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil }

// resolved waits until the named backends' DNS names resolved: until
// then a request finds no endpoint (503).
func resolved(t *testing.T, gw *Gateway, backends ...string) {
	t.Helper()
	for _, b := range backends {
		waitFor(t, "backend "+b+" resolved", func() bool { return gw.state.Load().pools[b].Available() })
	}
}

func TestTLSUpstreams(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "legacy CA")
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	client := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"flotilla-gateway"}})
	certFile := certtest.WriteFile(t, dir, "client.pem", client.CertPEM)
	keyFile := certtest.WriteFile(t, dir, "client-key.pem", client.KeyPEM)
	legacyCert := certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}})
	tests := []struct {
		name      string
		protocol  string
		h2        bool
		mtls      bool
		tls       func(u *tlsUpstream) string // the backend's tls block
		addr      func(u *tlsUpstream) string
		wantProto string
		wantSNI   string
	}{
		{name: "https, SNI from the address's DNS name", protocol: "https",
			tls:  func(*tlsUpstream) string { return fmt.Sprintf("{caFile: %s}", caFile) },
			addr: func(u *tlsUpstream) string { return "legacy.internal:" + u.port() }, wantProto: "tls HTTP/1", wantSNI: "legacy.internal"},
		{name: "https to an IP with serverName", protocol: "https",
			tls:  func(*tlsUpstream) string { return fmt.Sprintf("{caFile: %s, serverName: legacy.internal}", caFile) },
			addr: func(u *tlsUpstream) string { return u.addr() }, wantProto: "tls HTTP/1", wantSNI: "legacy.internal"},
		{name: "h2", protocol: "h2", h2: true,
			tls:  func(*tlsUpstream) string { return fmt.Sprintf("{caFile: %s}", caFile) },
			addr: func(u *tlsUpstream) string { return "legacy.internal:" + u.port() }, wantProto: "tls HTTP/2", wantSNI: "legacy.internal"},
		{name: "https with a client certificate", protocol: "https", mtls: true,
			tls: func(*tlsUpstream) string {
				return fmt.Sprintf("{caFile: %s, certFile: %s, keyFile: %s}", caFile, certFile, keyFile)
			},
			addr: func(u *tlsUpstream) string { return "legacy.internal:" + u.port() }, wantProto: "tls HTTP/1", wantSNI: "legacy.internal"},
		{name: "h2 with a client certificate", protocol: "h2", h2: true, mtls: true,
			tls: func(*tlsUpstream) string {
				return fmt.Sprintf("{caFile: %s, certFile: %s, keyFile: %s}", caFile, certFile, keyFile)
			},
			addr: func(u *tlsUpstream) string { return "legacy.internal:" + u.port() }, wantProto: "tls HTTP/2", wantSNI: "legacy.internal"},
		// subjectAltNames replace the server name check: the SNI sent
		// is serverName, which the certificate does not name.
		{name: "https with subjectAltNames", protocol: "https",
			tls: func(*tlsUpstream) string {
				return fmt.Sprintf("{caFile: %s, serverName: sni.example, subjectAltNames: [{hostname: other.internal}, {hostname: legacy.internal}]}", caFile)
			},
			addr: func(u *tlsUpstream) string { return u.addr() }, wantProto: "tls HTTP/1", wantSNI: "sni.example"},
		{name: "h2 with subjectAltNames and a client certificate", protocol: "h2", h2: true, mtls: true,
			tls: func(*tlsUpstream) string {
				return fmt.Sprintf("{caFile: %s, certFile: %s, keyFile: %s, serverName: sni.example, subjectAltNames: [{hostname: legacy.internal}]}", caFile, certFile, keyFile)
			},
			addr: func(u *tlsUpstream) string { return u.addr() }, wantProto: "tls HTTP/2", wantSNI: "sni.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clientCA *certtest.CA
			if tt.mtls {
				clientCA = ca
			}
			u := newTLSUpstream(t, legacyCert, tt.h2, clientCA)
			f := start(t, fmt.Sprintf(`
backends: [{name: legacy, addresses: [%q], protocol: %s, tls: %s}]
routes: [{name: r, backends: [{name: legacy}]}]
`, tt.addr(u), tt.protocol, tt.tls(u)), Options{LookupHost: legacyResolver})
			resolved(t, f.gw, "legacy")
			// GET goes through the lean H1 transport, POST through
			// net/http's; both over TLS.
			for _, method := range []string{"GET", "POST"} {
				var body *strings.Reader
				if method == "POST" {
					body = strings.NewReader("order=1")
				}
				var resp *http.Response
				var got string
				if body != nil {
					resp, got = f.do(t, method, "shop.test", "/", body, nil)
				} else {
					resp, got = f.do(t, method, "shop.test", "/", nil, nil)
				}
				if resp.StatusCode != 200 || got != tt.wantProto {
					t.Errorf("%s = %d %q, want 200 %q", method, resp.StatusCode, got, tt.wantProto)
				}
			}
			if a := u.last(t); a.Method != "POST" || a.Body != "order=1" || a.Host != "shop.test" {
				t.Errorf("upstream got %s body %q host %q, want the POST with the client's Host", a.Method, a.Body, a.Host)
			}
			// Connections are kept alive: more requests, no more handshakes
			// (the lean transport's idle check peeks under TLS).
			before := len(u.sni())
			for range 5 {
				if resp, _ := f.do(t, "GET", "shop.test", "/", nil, nil); resp.StatusCode != 200 {
					t.Fatalf("GET = %d", resp.StatusCode)
				}
			}
			if after := len(u.sni()); after != before {
				t.Errorf("5 more GETs made %d TLS handshakes, want 0 (connections reused)", after-before)
			}
			for _, s := range u.sni() {
				if s != tt.wantSNI {
					t.Errorf("SNI = %q, want %q", s, tt.wantSNI)
				}
			}
			if tt.mtls {
				u.mu.Lock()
				if len(u.peers) == 0 || u.peers[0] != "flotilla-gateway" {
					t.Errorf("upstream saw client certificates %q, want flotilla-gateway", u.peers)
				}
				u.mu.Unlock()
			}
		})
	}
}

// TestTLSUpstreamRejected: an upstream certificate that is expired, for
// another host or signed by no trusted CA is refused: the client gets 502
// upstream_tls, the access log says upstream_tls and one warning says why
// in crypto/x509's words.
func TestTLSUpstreamRejected(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "legacy CA")
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	tests := []struct {
		name     string
		cert     certtest.Pair
		protocol string
		clientCA *certtest.CA // the upstream requires a client certificate
		why      string
		sans     string // the backend's tls.subjectAltNames
	}{
		{"expired", certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}),
			"https", nil, "x509: certificate has expired or is not yet valid", ""},
		{"wrong host", certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"other.internal"}}),
			"https", nil, "x509: certificate is valid for other.internal, not legacy.internal", ""},
		{"self-signed", certtest.Issue(t, nil, certtest.Leaf{Hosts: []string{"legacy.internal"}}),
			"https", nil, "x509: certificate signed by unknown authority", ""},
		{"self-signed over h2", certtest.Issue(t, nil, certtest.Leaf{Hosts: []string{"legacy.internal"}}),
			"h2", nil, "x509: certificate signed by unknown authority", ""},
		{"h2 backend, upstream without h2 (ALPN)", certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}}),
			"h2-to-http1", nil, "no application protocol", ""},
		{"no client certificate for an mTLS upstream", certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}}),
			"https", ca, "certificate required", ""},
		{"no SAN matches", certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal", "spiffe://shop/legacy"}}),
			"https", nil, "match none of the subjectAltNames", "[{hostname: other.internal}, {uri: \"spiffe://shop/other\"}]"},
		{"a SAN matches, the CA is unknown", certtest.Issue(t, nil, certtest.Leaf{Hosts: []string{"legacy.internal"}}),
			"h2", nil, "x509: certificate signed by unknown authority", "[{hostname: legacy.internal}]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newTLSUpstream(t, tt.cert, tt.protocol == "h2", tt.clientCA)
			if tt.protocol == "h2-to-http1" {
				tt.protocol = "h2" // the backend says h2, the upstream speaks HTTP/1.1 only
			}
			logs := &syncBuffer{}
			sans := ""
			if tt.sans != "" {
				sans = ", subjectAltNames: " + tt.sans
			}
			f := start(t, fmt.Sprintf(`
backends: [{name: legacy, addresses: ["legacy.internal:%s"], protocol: %s, tls: {caFile: %s%s}}]
routes: [{name: r, backends: [{name: legacy}]}]
`, u.port(), tt.protocol, caFile, sans), Options{LookupHost: legacyResolver, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			resolved(t, f.gw, "legacy")
			resp, body := f.do(t, "GET", "shop.test", "/", nil, nil)
			var e struct{ Error string }
			json.Unmarshal([]byte(body), &e)
			if resp.StatusCode != 502 || e.Error != "upstream_tls" {
				t.Errorf("GET = %d %s, want 502 upstream_tls", resp.StatusCode, body)
			}
			if strings.Contains(body, "x509") || strings.Contains(body, "127.0.0.1") {
				t.Errorf("error body leaks detail: %s", body)
			}
			if u.hits.Load() != 0 {
				t.Errorf("upstream served %d requests, want none", u.hits.Load())
			}
			if v := testutil.ToFloat64(f.gw.metrics.failures.WithLabelValues("r", "legacy", "upstream_tls")); v != 1 {
				t.Errorf("proxy_failures_total{class=upstream_tls} = %v, want 1", v)
			}
			f.gw.Close() // flushes the access log
			if !strings.Contains(f.access.String(), `"error":"upstream_tls"`) {
				t.Errorf("access log = %s, want failure upstream_tls", f.access.String())
			}
			var warnings []string
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if strings.Contains(line, `"level":"WARN"`) {
					warnings = append(warnings, line)
				}
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], tt.why) || !strings.Contains(warnings[0], `"class":"upstream_tls"`) ||
				!strings.Contains(warnings[0], `"backend":"legacy"`) {
				t.Errorf("warnings = %q, want one naming backend legacy, class upstream_tls and %q", warnings, tt.why)
			}
		})
	}
}

// TestTLSHealthChecksVerifyLikeRequests: active checks go over the
// backend's TLS settings: they pass against the right certificate and
// mark an endpoint whose certificate does not verify down.
func TestTLSHealthChecksVerifyLikeRequests(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "legacy CA")
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	good := newTLSUpstream(t, certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}}), false, nil)
	bad := newTLSUpstream(t, certtest.Issue(t, nil, certtest.Leaf{Hosts: []string{"legacy.internal"}}), false, nil)
	for _, p := range []string{"https", "h2"} {
		t.Run(p, func(t *testing.T) {
			if p == "h2" {
				good = newTLSUpstream(t, certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}}), true, nil)
				bad = newTLSUpstream(t, certtest.Issue(t, nil, certtest.Leaf{Hosts: []string{"legacy.internal"}}), true, nil)
			}
			f := start(t, fmt.Sprintf(`
backends:
  - {name: good, addresses: ["legacy.internal:%s"], protocol: %s, tls: {caFile: %s}, healthCheck: {interval: 20ms, unhealthyThreshold: 1}}
  - {name: bad, addresses: ["legacy.internal:%s"], protocol: %s, tls: {caFile: %s}, healthCheck: {interval: 20ms, unhealthyThreshold: 1}}
routes: [{name: r, backends: [{name: good}, {name: bad}]}]
`, good.port(), p, caFile, bad.port(), p, caFile), Options{LookupHost: legacyResolver})
			waitFor(t, "a health check over TLS", func() bool { return good.hits.Load() > 0 })
			waitFor(t, "the bad certificate's endpoint marked down", func() bool {
				eps := f.gw.state.Load().pools["bad"].Snapshot()
				return len(eps) == 1 && !eps[0].Healthy && strings.Contains(eps[0].LastError, "x509: certificate signed by unknown authority")
			})
			if a := good.last(t); a.Header.Get("User-Agent") != "flotilla-gateway-health/1" {
				t.Errorf("good upstream got %+v, want a health check", a)
			}
		})
	}
}

// TestTLSFileReload: a reload reads the CA file again; a file that went
// bad fails the reload naming the backend and field, and the last good
// config keeps serving.
func TestTLSFileReload(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "legacy CA")
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	u := newTLSUpstream(t, certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}}), false, nil)
	path := filepath.Join(dir, "gateway.yaml")
	cfg := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: legacy, addresses: ["legacy.internal:%s"], protocol: https, tls: {caFile: %s}}]
routes: [{name: r, backends: [{name: legacy}]}]
`, u.port(), caFile)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fixture{access: &syncBuffer{}}
	gw, err := NewFromFile(Options{ConfigPath: path, LookupHost: legacyResolver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	f.gw, f.srv = gw, serveH1(t, gw.Handler())
	resolved(t, gw, "legacy")
	if resp, _ := f.do(t, "GET", "x", "/", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET = %d, want 200", resp.StatusCode)
	}
	certtest.WriteFile(t, dir, "ca.pem", []byte("not a certificate"))
	err = gw.ReloadFile()
	if err == nil || !strings.Contains(err.Error(), "backends[0].tls.caFile: no PEM certificate found") {
		t.Fatalf("ReloadFile() = %v, want the caFile error with its path", err)
	}
	if resp, _ := f.do(t, "GET", "x", "/", nil, nil); resp.StatusCode != 200 {
		t.Errorf("after a bad reload GET = %d, want 200 from the last good config", resp.StatusCode)
	}
	// Another CA: the reload reads it, and the upstream no longer verifies.
	certtest.WriteFile(t, dir, "ca.pem", certtest.NewCA(t, "other").PEM)
	if err := gw.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	resolved(t, gw, "legacy")
	if resp, body := f.do(t, "GET", "x", "/", nil, nil); resp.StatusCode != 502 || !strings.Contains(body, "upstream_tls") {
		t.Errorf("after the CA changed GET = %d %s, want 502 upstream_tls", resp.StatusCode, body)
	}
}

// TestTLSUpstreamClosedIdleConnection: an HTTPS upstream that closes an
// idle kept-alive connection (its keep-alive timeout) costs nothing: the
// lean transport sees the close under TLS before reusing the connection
// and dials again, where writing to it would have been a 502 (the request
// may have been sent, so it cannot be retried).
func TestTLSUpstreamClosedIdleConnection(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "legacy CA")
	caFile := certtest.WriteFile(t, dir, "ca.pem", ca.PEM)
	closed := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"legacy.internal"}}).TLS}}
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	f := start(t, fmt.Sprintf(`
backends: [{name: legacy, addresses: ["legacy.internal:%d"], protocol: https, tls: {caFile: %s}}]
routes: [{name: r, backends: [{name: legacy}], retries: {attempts: 0}}]
`, port, caFile), Options{LookupHost: legacyResolver})
	resolved(t, f.gw, "legacy")
	for i := range 3 {
		if resp, body := f.do(t, "GET", "x", "/", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET %d = %d %s, want 200", i, resp.StatusCode, body)
		}
		<-closed // the upstream closed the idle connection
	}
}
