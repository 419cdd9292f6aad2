package tlsconf

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// active is what new connections get: the tls section's configuration
// and, by local port, the configurations of tls.ports.
type active struct {
	base  *tls.Config
	ports map[int]*portTLS
}

// portTLS is one tls.ports entry, built.
type portTLS struct {
	tc    *tls.Config // base when the entry has no clientAuth of its own
	hosts hostSet
}

// buildPorts builds c.Ports on top of base: an entry with a clientAuth
// gets a copy of base asking for client certificates; verification is
// crypto/tls's (x509 chains to the entry's CAs).
func buildPorts(c *config.TLS, base *tls.Config) (map[int]*portTLS, error) {
	if len(c.Ports) == 0 {
		return nil, nil
	}
	var errs []error
	out := make(map[int]*portTLS, len(c.Ports))
	for i, p := range c.Ports {
		pt := &portTLS{tc: base, hosts: newHostSet(p.Hostnames)}
		if a := p.ClientAuth; a != nil {
			pool, err := loadPool(a.CAFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("tls.ports[%d].clientAuth.caFile: %w", i, err))
				continue
			}
			tc := base.Clone()
			tc.ClientCAs = pool
			// Session tickets of its own: a session made on another port,
			// or before a reload, with other CAs or none, is not resumed
			// here (a resumed session is not verified again).
			var key [32]byte
			rand.Read(key[:])
			tc.SetSessionTicketKeys([][32]byte{key})
			switch a.Mode {
			case config.ClientAuthOptional:
				tc.ClientAuth = tls.VerifyClientCertIfGiven
			case config.ClientAuthInsecureFallback:
				// Gateway API's AllowInsecureFallback: the handshake
				// succeeds with a certificate that does not verify, or
				// none; the CAs are still named in the request so that
				// clients pick the right certificate.
				tc.ClientAuth = tls.RequestClientCert
			default:
				tc.ClientAuth = tls.RequireAndVerifyClientCert
			}
			pt.tc = tc
		}
		out[p.Port] = pt
	}
	return out, errors.Join(errs...)
}

// entry is the tls.ports entry of local port port: its own, else the
// default one (port 0), else nil.
func (s *active) entry(port int) *portTLS {
	if p, ok := s.ports[port]; ok {
		return p
	}
	return s.ports[0]
}

// configFor is the configuration of the connection hello arrived on,
// chosen by its local port.
func (s *active) configFor(hello *tls.ClientHelloInfo) *tls.Config {
	if len(s.ports) == 0 || hello == nil || hello.Conn == nil {
		return s.base
	}
	port := 0
	if a, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok {
		port = a.Port
	}
	if p := s.entry(port); p != nil {
		return p.tc
	}
	return s.base
}

// samePorts reports whether s and o ask for the same client CAs on the
// same ports, with the same listener host names.
func (s *active) samePorts(o *active) bool {
	if len(s.ports) != len(o.ports) {
		return false
	}
	for port, p := range s.ports {
		q, ok := o.ports[port]
		if !ok || p.tc.ClientAuth != q.tc.ClientAuth || !p.tc.ClientCAs.Equal(q.tc.ClientCAs) || !p.hosts.equal(q.hosts) {
			return false
		}
	}
	return true
}

// Misdirected reports whether a request for host (the Host header or
// :authority, a port allowed) on a TLS connection made to localPort for
// serverName (SNI) must be answered 421 Misdirected Request: the port
// has several listener host names (tls.ports[].hostnames) and host
// selects another of them than serverName does, so the connection's
// certificate and client certificate policy were not chosen for it.
// Without SNI nothing is misdirected: the connection chose no listener;
// nor without a Host (HTTP/1.0): the request names no other.
func (s *Store) Misdirected(localPort int, serverName, host string) bool {
	cur := s.cur.Load()
	if cur == nil || serverName == "" || host == "" {
		return false
	}
	p := cur.entry(localPort)
	if p == nil || len(p.hosts) < 2 {
		return false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return p.hosts.pick(serverName) != p.hosts.pick(host)
}

// hostSet is listener host names: exact ("a.example.com"), wildcard
// ("*.example.com": any name ending in ".example.com") and "" (any).
type hostSet []string

func newHostSet(names []string) hostSet {
	out := make(hostSet, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(n)
	}
	return out
}

func (h hostSet) equal(o hostSet) bool {
	if len(h) != len(o) {
		return false
	}
	for i := range h {
		if h[i] != o[i] {
			return false
		}
	}
	return true
}

// pick returns the index of the listener name that serves name, the most
// specific first as Gateway API selects listeners: an exact match, then
// the longest wildcard, then "" (any); -1 when none does.
func (h hostSet) pick(name string) int {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	best, bestLen := -1, -1
	for i, pat := range h {
		switch {
		case pat == name:
			return i
		case strings.HasPrefix(pat, "*.") && strings.HasSuffix(name, pat[1:]) && len(name) > len(pat)-1:
			if len(pat) > bestLen {
				best, bestLen = i, len(pat)
			}
		case pat == "" && bestLen < 0:
			best, bestLen = i, 0
		}
	}
	return best
}
