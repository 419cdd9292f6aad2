//lint:file-ignore SA1019 the server under test is x/net/http2's (see internal/httpserver/h1/h2.go)

package tlsconf

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/httpserver/h1"
	"github.com/flotilla-dev/flotilla/internal/pki"
)

// servePorts serves s's configuration on n local ports, returning them.
func servePorts(t *testing.T, s *Store, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &h1.Server{H2: &http2.Server{}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
			if len(r.TLS.PeerCertificates) > 0 {
				io.WriteString(w, " "+r.TLS.PeerCertificates[0].Subject.CommonName)
			}
		})}
		go srv.Serve(tls.NewListener(ln, s.Config()))
		t.Cleanup(func() { srv.Close() })
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func issue(t *testing.T, ca *pki.CA, r pki.Request) tls.Certificate {
	t.Helper()
	is, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := is.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// get makes one HTTPS request to port with cert (nil: none) over a new
// connection, or over cache's sessions when given.
func get(t *testing.T, port int, roots *pki.CA, cert *tls.Certificate, cache tls.ClientSessionCache) (string, error) {
	t.Helper()
	tc := &tls.Config{ServerName: "localhost", RootCAs: roots.Pool(), ClientSessionCache: cache}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	resp, err := cl.Get("https://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPortClientAuth makes real handshakes to ports with different
// client certificate policies (tls.ports): each port verifies against its
// own CAs, insecureFallback accepts any certificate or none, a port
// without an entry asks for none.
func TestPortClientAuth(t *testing.T) {
	dir := t.TempDir()
	serverCA, ca1, ca2 := newCA(t), newCA(t), newCA(t)
	site := writePair(t, serverCA, dir, "site", pki.Request{Names: []string{"localhost"}})
	ca1File, ca2File := filepath.Join(dir, "ca1.pem"), filepath.Join(dir, "ca2.pem")
	os.WriteFile(ca1File, ca1.PEM, 0o600)
	os.WriteFile(ca2File, ca2.PEM, 0o600)
	c1 := issue(t, ca1, pki.Request{Names: []string{"client-one"}, Client: true})
	c2 := issue(t, ca2, pki.Request{Names: []string{"client-two"}, Client: true})

	s := &Store{Log: slog.New(slog.DiscardHandler)}
	if err := s.Load(tlsSection(site)); err != nil {
		t.Fatal(err)
	}
	ports := servePorts(t, s, 4)
	require, fallback, optional, plain := ports[0], ports[1], ports[2], ports[3]
	sec := tlsSection(site)
	sec.Ports = []config.TLSPort{
		{Port: require, ClientAuth: &config.ClientAuth{CAFile: ca1File, Mode: config.ClientAuthRequire}},
		{Port: fallback, ClientAuth: &config.ClientAuth{CAFile: ca2File, Mode: config.ClientAuthInsecureFallback}},
		{Port: optional, ClientAuth: &config.ClientAuth{CAFile: ca2File, Mode: config.ClientAuthOptional}},
	}
	if err := s.Load(sec); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		port int
		cert *tls.Certificate
		want string // "" = the request fails
	}{
		{"require, CA's certificate", require, &c1, "ok client-one"},
		{"require, another CA's certificate", require, &c2, ""},
		{"require, no certificate", require, nil, ""},
		{"insecure fallback, CA's certificate", fallback, &c2, "ok client-two"},
		{"insecure fallback, another CA's certificate", fallback, &c1, "ok client-one"},
		{"insecure fallback, no certificate", fallback, nil, "ok"},
		{"optional, CA's certificate", optional, &c2, "ok client-two"},
		{"optional, another CA's certificate", optional, &c1, ""},
		{"optional, no certificate", optional, nil, "ok"},
		{"no entry, no certificate", plain, nil, "ok"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := get(t, tt.port, serverCA, tt.cert, nil)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("request succeeded (%q), want a failed handshake", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	// A session made on a port that asks for nothing is not resumed on
	// one that requires a certificate, nor one whose certificate another
	// port's CAs verified on one that trusts other CAs.
	cache := tls.NewLRUClientSessionCache(8)
	for range 2 { // the second gets (and the first stores) a ticket
		if _, err := get(t, plain, serverCA, nil, cache); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := get(t, require, serverCA, nil, cache); err == nil {
		t.Fatalf("a session of another port was resumed without a certificate: %q", got)
	}
	cache = tls.NewLRUClientSessionCache(8)
	for range 2 {
		if _, err := get(t, require, serverCA, &c1, cache); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := get(t, optional, serverCA, &c1, cache); err == nil {
		t.Fatalf("a session verified by another port's CA was resumed: %q", got)
	}

	// The default entry (port 0) applies to ports without their own.
	sec = tlsSection(site)
	sec.Ports = []config.TLSPort{{Port: 0, ClientAuth: &config.ClientAuth{CAFile: ca1File}}}
	sec.Ports[0].ClientAuth.Mode = config.ClientAuthRequire
	if err := s.Load(sec); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, plain, serverCA, nil, nil); err == nil {
		t.Error("default entry: a request without a certificate succeeded")
	}
	if got, err := get(t, plain, serverCA, &c1, nil); err != nil || got != "ok client-one" {
		t.Errorf("default entry: got %q, %v", got, err)
	}
}

func TestPortLoadErrors(t *testing.T) {
	dir := t.TempDir()
	good := writePair(t, newCA(t), dir, "good", pki.Request{Names: []string{"a.example"}})
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not PEM"), 0o600)
	for _, tt := range []struct {
		name string
		file string
		want string
	}{
		{"not PEM", junk, "no PEM certificate"},
		{"missing", filepath.Join(dir, "nope.pem"), "nope.pem"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{}
			sec := tlsSection(good)
			sec.Ports = []config.TLSPort{{Port: 1, Hostnames: []string{"a.example", ""}}, {Port: 8443, ClientAuth: &config.ClientAuth{CAFile: tt.file, Mode: config.ClientAuthRequire}}}
			err := s.Load(sec)
			if err == nil || !strings.Contains(err.Error(), "tls.ports[1].clientAuth.caFile") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming tls.ports[1].clientAuth.caFile and %q", err, tt.want)
			}
		})
	}
}

func TestHostSetPick(t *testing.T) {
	// The listeners of the conformance test
	// HTTPRouteHTTPSListenerDetectMisdirectedRequests.
	h := newHostSet([]string{"", "second-example.org", "*.wildcard.org", "fourth-example.wildcard.org"})
	for _, tt := range []struct {
		name string
		want int
	}{
		{"example.org", 0},
		{"unknown-example.org", 0},
		{"second-example.org", 1},
		{"SECOND-example.org.", 1},
		{"third-example.wildcard.org", 2},
		{"a.b.wildcard.org", 2},
		{"wildcard.org", 0},
		{"fourth-example.wildcard.org", 3},
		{"", 0},
	} {
		if got := h.pick(tt.name); got != tt.want {
			t.Errorf("pick(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
	noAny := newHostSet([]string{"*.example.com", "*.a.example.com", "x.a.example.com"})
	for name, want := range map[string]int{"b.example.com": 0, "b.a.example.com": 1, "x.a.example.com": 2, "example.com": -1, "other.org": -1} {
		if got := noAny.pick(name); got != want {
			t.Errorf("pick(%q) = %d, want %d", name, got, want)
		}
	}
}

// TestMisdirected replays the cases of the conformance test
// HTTPRouteHTTPSListenerDetectMisdirectedRequests whose answer is 421,
// and those that must reach routing.
func TestMisdirected(t *testing.T) {
	dir := t.TempDir()
	sec := tlsSection(writePair(t, newCA(t), dir, "site", pki.Request{Names: []string{"example.org"}}))
	sec.Ports = []config.TLSPort{
		{Port: 8443, Hostnames: []string{"", "second-example.org", "*.wildcard.org", "fourth-example.wildcard.org"}},
		{Port: 9443, Hostnames: []string{"only.example"}},
	}
	s := &Store{}
	if s.Misdirected(8443, "example.org", "second-example.org") {
		t.Fatal("misdirected before any load")
	}
	if err := s.Load(sec); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		port        int
		sni, host   string
		misdirected bool
	}{
		{8443, "example.org", "example.org", false},
		{8443, "example.org", "second-example.org", true},
		{8443, "example.org", "unknown-example.org", false},
		{8443, "second-example.org", "second-example.org:8443", false},
		{8443, "second-example.org", "example.org", true},
		{8443, "second-example.org", "unknown-example.org", true},
		{8443, "third-example.wildcard.org", "third-example.wildcard.org", false},
		{8443, "third-example.wildcard.org", "fith-example.wildcard.org", false},
		{8443, "third-example.wildcard.org", "fourth-example.wildcard.org", true},
		{8443, "third-example.wildcard.org", "second-example.org", true},
		{8443, "third-example.wildcard.org", "unknown-example.org", true},
		{8443, "fourth-example.wildcard.org", "fourth-example.wildcard.org", false},
		{8443, "fourth-example.wildcard.org", "fith-example.wildcard.org", true},
		{8443, "unknown-example.org", "example.org", false},
		{8443, "unknown-example.org", "unknown-example.org", false},
		{8443, "", "second-example.org", false},        // no SNI: no listener chosen
		{8443, "second-example.org", "", false},        // no Host (HTTP/1.0)
		{9443, "only.example", "other.example", false}, // one listener: routing answers
		{1234, "second-example.org", "example.org", false},
	} {
		if got := s.Misdirected(tt.port, tt.sni, tt.host); got != tt.misdirected {
			t.Errorf("port %d SNI %q Host %q: misdirected %v, want %v", tt.port, tt.sni, tt.host, got, tt.misdirected)
		}
	}
}
