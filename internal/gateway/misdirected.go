package gateway

import (
	"net"
	"net/http"

	"github.com/flotilla-dev/flotilla/internal/gateway/proxy"
)

// misdirected reports whether r came over a TLS connection made for
// another listener than the one its Host selects (tlsconf.Store's
// Misdirected, from tls.ports[].hostnames): HTTP/2 clients reuse a
// connection for every name its certificate covers, and a connection's
// certificate and client certificate policy were chosen by its SNI.
func (g *Gateway) misdirected(r *http.Request) bool {
	if r.TLS == nil || g.opts.TLS == nil {
		return false
	}
	port := 0
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		port = a.Port
	}
	return g.opts.TLS.Misdirected(port, r.TLS.ServerName, r.Host)
}

// writeMisdirected answers 421 Misdirected Request (RFC 9110 section
// 15.5.20): the client may retry on a new connection made for the
// request's host.
func writeMisdirected(w http.ResponseWriter, r *http.Request, requestID string) string {
	const code = "misdirected_request"
	proxy.WriteRequestError(w, r, http.StatusMisdirectedRequest, code, requestID)
	return code
}
