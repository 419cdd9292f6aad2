package gateway

//lint:file-ignore SA1019 x/net/http2's Transport is deprecated for net/http's, whose HTTP/2 needs the URL's scheme to pick TLS; this dialer always speaks TLS (see newTLSTransport)

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/net/http2"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/proxy"
)

// upstreamTLS builds the client TLS config of a backend of protocol https
// or h2 from the files its config read at validation: the CA bundle (or
// the system roots), the client certificate, TLS 1.2 at least, and ALPN
// for the protocol spoken. ServerName is set per connection (tlsDialer).
func upstreamTLS(b *config.Backend) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(0)}
	if b.Protocol == config.ProtocolH2 {
		cfg.NextProtos = []string{"h2"}
	} else {
		cfg.NextProtos = []string{"http/1.1"}
	}
	ca, cert, key := b.TLS.Material()
	if ca != nil {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("backends %q: tls.caFile: no certificate", b.Name) // validated; cannot happen
		}
		cfg.RootCAs = roots
	}
	if sans := b.TLS.SubjectAltNames; len(sans) > 0 {
		// The chain is verified as always, but the names checked are the
		// SAN list, not the server name: crypto/tls checks only the
		// latter, so its own check is replaced by VerifyConnection
		// (which runs on resumed sessions too), never skipped.
		cfg.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifySANs(cs, roots, sans) }
	}
	if cert != nil {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("backend %q: tls.certFile: %w", b.Name, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// verifySANs verifies the upstream's chain against roots (nil: the
// system's) for server authentication, and that its certificate carries
// one of sans.
func verifySANs(cs tls.ConnectionState, roots *x509.CertPool, sans []config.SubjectAltName) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("upstream sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err} // as crypto/tls's own check says it
	}
	for _, san := range sans {
		if san.Hostname != "" && leaf.VerifyHostname(san.Hostname) == nil {
			return nil
		}
		if san.URI != "" && slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == san.URI }) {
			return nil
		}
	}
	uris := make([]string, len(leaf.URIs))
	for i, u := range leaf.URIs {
		uris[i] = u.String()
	}
	return fmt.Errorf("%w: certificate names %v and URIs %v match none of the subjectAltNames", proxy.ErrUpstreamTLS, leaf.DNSNames, uris)
}

// tlsDialer opens TLS connections to one backend's endpoints. The server
// name is the backend's tls.serverName, else the endpoint's configured
// host (the DNS name it was resolved from, not the IP dialled).
type tlsDialer struct {
	cfg        *tls.Config
	serverName string
	pool       *backend.Pool
	h2         bool
	net        net.Dialer
}

func (d *tlsDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg := d.cfg.Clone()
	cfg.ServerName = d.serverName
	if cfg.ServerName == "" {
		cfg.ServerName = d.pool.HostOf(addr)
	}
	td := tls.Dialer{NetDialer: &d.net, Config: cfg}
	c, err := td.DialContext(ctx, network, addr)
	if err != nil {
		if _, ok := err.(*net.OpError); ok {
			return nil, err // the TCP connect failed: nothing was sent, retry elsewhere
		}
		return nil, fmt.Errorf("tls handshake with %s (server name %q): %w", addr, cfg.ServerName, err)
	}
	if d.h2 {
		if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "h2" {
			c.Close()
			return nil, fmt.Errorf("tls handshake with %s (server name %q): %w: ALPN chose %q", addr, cfg.ServerName, proxy.ErrUpstreamTLS, p)
		}
	}
	return c, nil
}

// newTLSTransport is the own transport of a TLS backend: for https the
// lean H1 over TLS connections (net/http for bodies and upgrades, over the
// same dialer), for h2 x/net/http2's Transport. Health checks use it too,
// so they verify the same certificates.
func newTLSTransport(b *config.Backend) (func(p *backend.Pool) http.RoundTripper, error) {
	cfg, err := upstreamTLS(b)
	if err != nil {
		return nil, err
	}
	var serverName string
	if b.TLS != nil {
		serverName = b.TLS.ServerName
	}
	return func(p *backend.Pool) http.RoundTripper {
		d := &tlsDialer{cfg: cfg, serverName: serverName, pool: p, h2: b.Protocol == config.ProtocolH2,
			net: net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}}
		if d.h2 {
			return &http2.Transport{
				AllowHTTP: true, // health checks ask for http://addr; the dialer always speaks TLS
				DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
					return d.dial(ctx, network, addr)
				},
				DisableCompression: true,
				ReadIdleTimeout:    30 * time.Second, // ping a quiet connection, drop it when the ping goes unanswered
				PingTimeout:        15 * time.Second,
			}
		}
		fallback := newTransport(false)
		fallback.DialContext = d.dial
		upgrade := newTransport(false)
		upgrade.DialContext = d.dial
		upgrade.DisableKeepAlives = true
		return &proxy.H1{Dial: d.dial, Fallback: fallback, Upgrade: upgrade}
	}, nil
}
