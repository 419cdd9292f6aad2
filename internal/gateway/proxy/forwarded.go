package proxy

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// setForwarded writes X-Forwarded-For, -Proto, -Host and Forwarded (RFC
// 7239) on out, for the client request in. ReverseProxy's Rewrite starts without them, so a client's
// values never pass unless the peer is a trusted proxy: then its chain is
// kept and this hop appended, as Envoy (xff_num_trusted_hops) and nginx
// (set_real_ip_from) do. A route's requestHeaders edits run after this:
// removing a header there sends none, never the client's.
func setForwarded(out http.Header, in *http.Request, req *route.Request) {
	host := in.Host
	peer := peerText(req.Peer, in.RemoteAddr)
	proto := req.Scheme
	xff := peer
	fwdHost := host
	var fwd string
	if req.PeerTrusted {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + peer
		}
		if v := in.Header["X-Forwarded-Proto"]; len(v) > 0 && (v[len(v)-1] == "http" || v[len(v)-1] == "https") {
			proto = v[len(v)-1]
		}
		if v := in.Header["X-Forwarded-Host"]; len(v) > 0 && v[len(v)-1] != "" {
			fwdHost = v[len(v)-1]
		}
		if v := in.Header["Forwarded"]; len(v) > 0 {
			fwd = strings.Join(v, ", ") + ", "
		}
	}
	// This hop's Forwarded element (RFC 7239 §4): for=, host=, proto=;
	// IPv6 in quoted brackets, a host that is no token quoted (§6).
	forNode := peer
	if req.Peer.Is6() {
		forNode = `"[` + peer + `]"`
	}
	hostPart := ""
	if host != "" {
		hostPart = ";host=" + host
		if !isToken(host) {
			hostPart = ";host=" + quote(host)
		}
	}
	vals := make([]string, 4) // one allocation for the four headers
	vals[0], vals[1], vals[2] = xff, proto, fwd+"for="+forNode+hostPart+";proto="+req.Scheme
	out["X-Forwarded-For"] = vals[0:1:1]
	out["X-Forwarded-Proto"] = vals[1:2:2]
	out["Forwarded"] = vals[2:3:3]
	if host != "" {
		vals[3] = fwdHost
		out["X-Forwarded-Host"] = vals[3:4:4]
	}
}

// peerText is the peer's address as text, taken from remote ("ip:port")
// when it says the same, which spares formatting it.
func peerText(peer netip.Addr, remote string) string {
	if !peer.IsValid() {
		return "unknown" // RFC 7239 §6.3
	}
	if i := strings.LastIndexByte(remote, ':'); i > 0 && peer.Is4() && !strings.Contains(remote[:i], ":") {
		return remote[:i]
	}
	return peer.String()
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
