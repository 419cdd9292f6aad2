//lint:file-ignore SA1019 the server under test is x/net/http2's (see internal/httpserver/h1/h2.go)

package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/httpserver/h1"
	"github.com/flotilla-dev/flotilla/internal/pki"
)

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// writePair issues a certificate for names into dir/name.crt and .key,
// replacing them by rename as renewal tools do.
func writePair(t *testing.T, ca *pki.CA, dir, name string, r pki.Request) config.Certificate {
	t.Helper()
	is, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	c := config.Certificate{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key")}
	for path, data := range map[string][]byte{c.KeyFile: is.KeyPEM, c.CertFile: is.CertPEM} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func tlsSection(certs ...config.Certificate) *config.TLS {
	c := &config.Config{TLS: &config.TLS{Certificates: certs}}
	c.SetDefaults()
	return c.TLS
}

// serveStore serves a handler over TLS with s's configuration.
func serveStore(t *testing.T, s *Store) string {
	t.Helper()
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
	return ln.Addr().String()
}

// served returns the leaf certificate a handshake with SNI name gets.
func served(t *testing.T, addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestLoadErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	good := writePair(t, ca, dir, "good", pki.Request{Names: []string{"a.example"}})
	other := writePair(t, ca, dir, "other", pki.Request{Names: []string{"b.example"}})
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not PEM"), 0o600)
	for _, tt := range []struct {
		name string
		tls  *config.TLS
		want []string
	}{
		{"no section", nil, []string{"tls: required"}},
		{"missing file", tlsSection(config.Certificate{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: good.KeyFile}), []string{"tls.certificates[0]", "nope.crt"}},
		{"key of another certificate", tlsSection(good, config.Certificate{CertFile: good.CertFile, KeyFile: other.KeyFile}), []string{"tls.certificates[1]", "private key does not match"}},
		{"not PEM", tlsSection(config.Certificate{CertFile: filepath.Join(dir, "junk.pem"), KeyFile: good.KeyFile}), []string{"tls.certificates[0]"}},
		{"client CA not PEM", func() *config.TLS {
			c := tlsSection(good)
			c.ClientAuth = &config.ClientAuth{CAFile: filepath.Join(dir, "junk.pem"), Mode: config.ClientAuthRequire}
			return c
		}(), []string{"tls.clientAuth.caFile", "no PEM certificate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{Log: slog.New(slog.DiscardHandler)}
			if err := s.Load(tlsSection(good)); err != nil {
				t.Fatal(err)
			}
			before := s.cur.Load()
			err := s.Load(tt.tls)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if s.cur.Load() != before {
				t.Error("a failed load replaced the configuration")
			}
		})
	}
}

func TestSNI(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	s := &Store{}
	if err := s.Load(tlsSection(
		writePair(t, ca, dir, "a", pki.Request{Names: []string{"a.example"}}),
		writePair(t, ca, dir, "b", pki.Request{Names: []string{"b.example", "*.b.example"}}),
	)); err != nil {
		t.Fatal(err)
	}
	addr := serveStore(t, s)
	for sni, want := range map[string]string{"a.example": "a.example", "b.example": "b.example", "x.b.example": "b.example", "": "a.example", "c.example": "a.example"} {
		// Only which certificate is served matters here, not whether it
		// verifies for the name.
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("SNI %q: %v", sni, err)
		}
		got := c.ConnectionState().PeerCertificates[0].Subject.CommonName
		c.Close()
		if got != want {
			t.Errorf("SNI %q: served %s, want %s", sni, got, want)
		}
	}
	// Old protocol versions are refused.
	if _, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
}

// TestRotationUnderLoad renews the certificate files while clients make
// new connections without pause: every request succeeds, new handshakes
// get the new certificate, and a broken file keeps the last good one.
func TestRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	pair := writePair(t, ca, dir, "site", pki.Request{Names: []string{"localhost"}})
	var logs syncBuffer
	s := &Store{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := s.Load(tlsSection(pair)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var watchDone sync.WaitGroup
	watchDone.Go(func() { s.Watch(ctx, 20*time.Millisecond) })
	defer func() { cancel(); watchDone.Wait() }()
	addr := serveStore(t, s)
	first, err := served(t, addr, "localhost", ca.Pool())
	if err != nil {
		t.Fatal(err)
	}

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var load sync.WaitGroup
	for range 4 {
		load.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}, ForceAttemptHTTP2: true, DisableKeepAlives: true}}
				resp, err := client.Get("https://" + addr + "/")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("some requests", func() bool { return ok.Load() > 20 })
	writePair(t, ca, dir, "site", pki.Request{Names: []string{"localhost"}})
	var second *x509.Certificate
	waitFor("the renewed certificate", func() bool {
		leaf, err := served(t, addr, "localhost", ca.Pool())
		second = leaf
		return err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	// A broken renewal: the last good certificate stays.
	os.WriteFile(pair.CertFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600)
	waitFor("the broken file to be rejected", func() bool { return strings.Contains(logs.String(), "TLS files rejected") })
	n := ok.Load()
	waitFor("more requests", func() bool { return ok.Load() > n+20 })
	close(stop)
	load.Wait()
	if leaf, err := served(t, addr, "localhost", ca.Pool()); err != nil || leaf.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("after a broken file: served %v, %v; want the last good certificate", leaf, err)
	}
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d requests failed during rotation, first: %v", f, f+ok.Load(), firstErr.Load())
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca, clientCA, stranger := newCA(t), newCA(t), newCA(t)
	pair := writePair(t, ca, dir, "site", pki.Request{Names: []string{"localhost"}})
	os.WriteFile(filepath.Join(dir, "clients.pem"), clientCA.PEM, 0o600)
	issue := func(ca *pki.CA, name string) []tls.Certificate {
		is, err := ca.Issue(pki.Request{Names: []string{name}, Client: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := is.TLS()
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	alice, mallory := issue(clientCA, "alice"), issue(stranger, "mallory")
	for _, mode := range []string{config.ClientAuthRequire, config.ClientAuthOptional} {
		sec := tlsSection(pair)
		sec.ClientAuth = &config.ClientAuth{CAFile: filepath.Join(dir, "clients.pem"), Mode: mode}
		s := &Store{}
		if err := s.Load(sec); err != nil {
			t.Fatal(err)
		}
		addr := serveStore(t, s)
		for _, tt := range []struct {
			name  string
			certs []tls.Certificate
			want  string // "" when refused
		}{
			{"trusted client", alice, "ok alice"},
			{"no certificate", nil, map[string]string{config.ClientAuthRequire: "", config.ClientAuthOptional: "ok"}[mode]},
			{"certificate from another CA", mallory, ""},
		} {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
					RootCAs: ca.Pool(), ServerName: "localhost", Certificates: tt.certs}}}
				resp, err := client.Get("https://" + addr + "/")
				got := ""
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got = string(b)
				}
				if got != tt.want {
					t.Errorf("got %q (%v), want %q", got, err, tt.want)
				}
				if tt.want == "" && err == nil {
					t.Error("refused client was served")
				}
			})
		}
	}
}

// syncBuffer is a log destination the test reads while the store writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFromSecretsStartsWithoutCertificates: with certificates only from
// Secrets (the Kubernetes controllers), a config without a tls section
// loads, a handshake then fails (nothing to serve, nothing served in
// clear), and the Secret's certificate serves once it arrives.
func TestFromSecretsStartsWithoutCertificates(t *testing.T) {
	s := &Store{Log: slog.New(slog.DiscardHandler), FromSecrets: true}
	if err := s.Load(nil); err != nil {
		t.Fatalf("no tls section with FromSecrets: %v", err)
	}
	addr := serveStore(t, s)
	if c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example", InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Fatal("handshake succeeded with no certificate loaded")
	}
	dir := t.TempDir()
	if err := s.Load(tlsSection(writePair(t, newCA(t), dir, "a", pki.Request{Names: []string{"a.example"}}))); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "a.example", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("after the Secret's certificate: %v", err)
	}
	c.Close()
}
