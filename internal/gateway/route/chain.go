package route

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/balance"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// The request path is one straight line (docs/request-path.md):
//
//	normalize → Match → route.Filters → route.Split → balance → proxy
//
// Each step reads what the ones before it decided from a Request, passed
// forward explicitly; nothing is written into the request's context.

// Request is what the gateway learned about one request before routing
// it: computed once, read by every later step (filters, split, proxy,
// access log), never modified after the match.
type Request struct {
	// ID is the request ID (the client's X-Request-Id when well-formed).
	ID string
	// Traceparent is the W3C trace context sent upstream.
	Traceparent string
	// ClientIP is the real client: the TCP peer, or, when the peer is a
	// trusted proxy, the right-most untrusted X-Forwarded-For address.
	// Logs, consistent hashing and rate limits see this address.
	ClientIP netip.Addr
	// Peer is the TCP peer's address.
	Peer netip.Addr
	// PeerTrusted reports whether Peer is a trusted proxy, whose
	// X-Forwarded-* and Forwarded headers are kept and extended.
	PeerTrusted bool
	// Scheme is "https" when the client connected over TLS, else "http".
	Scheme string
	// Path is the normalized path that was matched.
	Path Path
	// Principal is who the route's auth accepted (the API key's name,
	// the user, the token's subject; "" when none), and APIKey the API
	// key's name; Claims are a JWT's verified claims. The auth filter
	// writes them, the only fields set after the match; rate limits and
	// the access log read them.
	Principal, APIKey string
	Claims            map[string]any
}

// Filter is one step of a route's filter chain, compiled with the table:
// it runs after the match and before the traffic split. It returns true
// when it answered the request itself (a redirect; later a refused
// credential or a rate limit), which ends the request there. Filters must
// not modify req (but for the auth filter's identity fields); a filter that edits what goes upstream does so through
// the route's compiled header operations, which the proxy applies.
type Filter func(w http.ResponseWriter, r *http.Request, req *Request) (answered bool)

// Split is a route's traffic split: its backends with their live
// weights. It is compiled with the table from the config, so reloads and
// admin weight changes go through the same validation and build a new
// table; there is no second copy of the weights.
type Split struct {
	// Names are the backends, in config order.
	Names []string
	// Weights are their weights (0..100), read-only.
	Weights []int
	picker  *balance.SmoothWeighted
}

func compileSplit(refs []config.BackendRef) Split {
	var s Split
	for _, ref := range refs {
		s.Names = append(s.Names, ref.Name)
		w := 1
		if ref.Weight != nil {
			w = *ref.Weight
		}
		s.Weights = append(s.Weights, w)
	}
	s.picker = balance.NewSmoothWeighted(s.Weights)
	return s
}

// Next returns the next backend index among those allowed returns true
// for (nil: all), or -1 when none has weight.
func (s *Split) Next(allowed func(int) bool) int { return s.picker.Next(allowed) }

// Path is a request path after normalization (see NormalizePath).
type Path struct {
	// Match is what routes match and rewrite: the path percent-decoded,
	// except encoded slashes kept by encodedSlash: keep (and '%' itself),
	// which stay encoded so that they never act as separators.
	Match string
	// Escaped is the same path as it goes upstream: canonical escaping,
	// unreserved characters decoded, kept escapes upper-case.
	Escaped string
}

// Decoded returns the path fully percent-decoded (for url.URL.Path).
func (p Path) Decoded() string {
	if strings.IndexByte(p.Escaped, '%') < 0 {
		return p.Escaped
	}
	d, err := url.PathUnescape(p.Escaped)
	if err != nil { // cannot happen: Escaped is built valid
		return p.Match
	}
	return d
}

// SetURL makes u's path p: Path decoded, RawPath the escaped form, so
// that what is sent (u.EscapedPath) is exactly p.Escaped.
func (p Path) SetURL(u *url.URL) {
	u.Path = p.Decoded()
	u.RawPath = ""
	if p.Escaped != u.Path {
		u.RawPath = p.Escaped
	}
}
