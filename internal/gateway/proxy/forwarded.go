package proxy

import (
	"net/http"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// setForwarded writes X-Forwarded-For, -Proto, -Host and Forwarded (RFC
// 7239) on out. ReverseProxy's Rewrite starts without them, so a client's
// values never pass unless the peer is a trusted proxy: then its chain is
// kept and this hop appended, as Envoy (xff_num_trusted_hops) and nginx
// (set_real_ip_from) do. A route's requestHeaders edits run after this:
// removing a header there sends none, never the client's.
func setForwarded(out, in http.Header, host string, req *route.Request) {
	peer := "unknown" // RFC 7239 §6.3
	if req.Peer.IsValid() {
		peer = req.Peer.String()
	}
	proto := req.Scheme
	xff := peer
	fwdHost := host
	var fwd string
	if req.PeerTrusted {
		if prior := in["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + peer
		}
		if v := in["X-Forwarded-Proto"]; len(v) > 0 && (v[len(v)-1] == "http" || v[len(v)-1] == "https") {
			proto = v[len(v)-1]
		}
		if v := in["X-Forwarded-Host"]; len(v) > 0 && v[len(v)-1] != "" {
			fwdHost = v[len(v)-1]
		}
		if v := in["Forwarded"]; len(v) > 0 {
			fwd = strings.Join(v, ", ") + ", "
		}
	}
	out["X-Forwarded-For"] = []string{xff}
	out["X-Forwarded-Proto"] = []string{proto}
	if host != "" {
		out["X-Forwarded-Host"] = []string{fwdHost}
	}
	out["Forwarded"] = []string{fwd + forwardedElement(req, host)}
}

// forwardedElement is this hop's Forwarded element: for=, host=, proto=
// (RFC 7239 §4, §6: IPv6 in quoted brackets).
func forwardedElement(req *route.Request, host string) string {
	var b strings.Builder
	b.WriteString("for=")
	if !req.Peer.IsValid() {
		b.WriteString("unknown")
	} else if req.Peer.Is6() {
		b.WriteString(`"[` + req.Peer.String() + `]"`)
	} else {
		b.WriteString(req.Peer.String())
	}
	if host != "" {
		b.WriteString(";host=")
		if isToken(host) {
			b.WriteString(host)
		} else {
			b.WriteString(quote(host))
		}
	}
	b.WriteString(";proto=")
	b.WriteString(req.Scheme)
	return b.String()
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
