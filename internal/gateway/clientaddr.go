package gateway

import (
	"net/netip"
	"strings"
)

// clientAddr returns the TCP peer, the real client and whether the peer
// is a trusted proxy. Without trusted proxies (the default) the client is
// the peer and X-Forwarded-For is ignored: a client cannot choose the
// address logs, hashing and rate limits see. When the peer is trusted,
// X-Forwarded-For is read from the right (the hops nearest the gateway)
// and the client is the first address that is not trusted, as nginx's
// real_ip_recursive and Envoy's trusted-CIDR extension do; a malformed
// entry ends the walk at the last good address.
func clientAddr(remote string, xff []string, trusted []netip.Prefix) (peer, client netip.Addr, peerTrusted bool) {
	peer = parseAddr(remote)
	client = peer
	if len(trusted) == 0 || !isTrusted(peer, trusted) {
		return peer, client, false
	}
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			var hop string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				continue
			}
			a := parseAddr(hop)
			if !a.IsValid() {
				return peer, client, true
			}
			client = a
			if !isTrusted(a, trusted) {
				return peer, client, true
			}
		}
	}
	return peer, client, true
}

// parseAddr parses "ip", "ip:port" or "[ip]:port"; IPv4-mapped IPv6 is
// unmapped. It returns the zero Addr when s is none of these.
func parseAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap()
	}
	return netip.Addr{}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrString is a for the access log, without allocating when it is the
// peer: the host part of remote.
func addrString(a netip.Addr, remote string) string {
	if !a.IsValid() {
		return remote
	}
	if ap, err := netip.ParseAddrPort(remote); err == nil && ap.Addr() == a {
		return remote[:strings.LastIndexByte(remote, ':')]
	}
	return a.String()
}

// ParseTrustedProxies parses a list of CIDRs or bare addresses (a single
// host), as the --trusted-proxies flag takes them.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var bad []string
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		bad = append(bad, s)
	}
	if len(bad) > 0 {
		return nil, &badCIDRError{bad}
	}
	return out, nil
}

type badCIDRError struct{ bad []string }

func (e *badCIDRError) Error() string {
	return "want CIDRs (10.0.0.0/8) or addresses, got " + strings.Join(e.bad, ", ")
}
