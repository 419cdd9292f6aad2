// Package negotiate decides how a Flotilla service answers a request: plain
// text for terminal clients (as the talk shows with curl), HTML for
// browsers, JSON for programs that ask for it.
package negotiate

import (
	"mime"
	"net/http"
	"strings"
)

// Format is a response representation.
type Format int

// The formats a service can answer in.
const (
	Text Format = iota
	HTML
	JSON
)

func (f Format) String() string {
	return [...]string{"text", "html", "json"}[f]
}

// textClients are User-Agent prefixes of terminal programs: they get text
// even when they accept */*.
var textClients = []string{"curl/", "wget/", "httpie/", "lynx/", "links", "elinks/", "go-http-client/", "flotilla"}

// Of picks the format for r:
//  1. an Accept header that names application/json (and prefers it to
//     text/html) gets JSON;
//  2. a known terminal client gets text;
//  3. an Accept header that names text/html (a browser) gets HTML;
//  4. anything else gets text.
func Of(r *http.Request) Format {
	accept := r.Header.Get("Accept")
	jsonQ, htmlQ := quality(accept, "application/json"), quality(accept, "text/html")
	if jsonQ > 0 && jsonQ >= htmlQ {
		return JSON
	}
	ua := strings.ToLower(r.Header.Get("User-Agent"))
	for _, p := range textClients {
		if strings.HasPrefix(ua, p) {
			return Text
		}
	}
	if htmlQ > 0 {
		return HTML
	}
	return Text
}

// quality returns the q value accept gives media type want (exact match
// only: wildcards say nothing about what the client prefers), or 0.
func quality(accept, want string) float64 {
	best := 0.0
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || mt != want {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			q = parseQ(s)
		}
		best = max(best, q)
	}
	return best
}

// parseQ parses a qvalue ("0", "0.5", "1.000"); malformed values count as 0.
func parseQ(s string) float64 {
	if s == "" || len(s) > 5 {
		return 0
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole != "0" && whole != "1" {
		return 0
	}
	q, scale := float64(whole[0]-'0'), 0.1
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0
		}
		q += float64(c-'0') * scale
		scale /= 10
	}
	return min(q, 1)
}
