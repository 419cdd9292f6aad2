package h1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The strict scan: before net/http's parser reads a request, its raw
// request line and header section are checked against RFC 9112's
// grammar, without the leniencies a parser may allow (bare LF line ends,
// obs-fold, whitespace before a colon) and with every ambiguity in the
// message framing refused (RFC 9112 §6.1, §6.3): a proxy that reads the
// framing one way while its upstream reads it another is how requests
// are smuggled. Anything refused here is answered and the connection
// closed, so no byte after it is read as a request.

// head is what the scan learnt about a request.
type head struct {
	hosts   int    // Host field lines
	host    string // the first one's value
	chunked bool   // Transfer-Encoding: chunked (the only one accepted)
}

// errNotHTTP1 is, on a port that speaks HTTP/2 too, a request line
// without an HTTP version: neither HTTP/1.x (0.9 is not served) nor the
// HTTP/2 preface, so most likely a broken preface, which RFC 9113 §3.4
// makes a connection error. An HTTP/1.1 400 would be garbage to such a
// client: the connection is closed without an answer.
var errNotHTTP1 = errors.New("request line without an HTTP version")

// hasVersion reports whether a request line names an HTTP version
// anywhere (its end, when well formed), in any case.
func hasVersion(line []byte) bool {
	if len(line) >= 8 && hasPrefixFold(line[len(line)-8:], "http/") {
		return true
	}
	for j := range line {
		if hasPrefixFold(line[j:], "http/") {
			return true
		}
	}
	return false
}

func bad(text string) error { return statusError{http.StatusBadRequest, text} }

// scanHead checks a header block (request line through the empty line
// that ends it, as headerEnd delimits it).
func (s *Server) scanHead(block []byte) (head, error) {
	var h head
	i := bytes.IndexByte(block, '\n')
	if i < 0 {
		return h, bad("malformed HTTP request")
	}
	if i == 0 || block[i-1] != '\r' {
		return h, bad("request line not ended by CRLF")
	}
	if s.H2 != nil && i > 1 && !hasVersion(block[:i-1]) {
		return h, errNotHTTP1
	}
	http10, err := s.scanRequestLine(block[:i-1])
	if err != nil {
		return h, err
	}
	rest := block[i+1:]
	var lengths, encodings int
	for count := 0; ; count++ {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return h, bad("malformed HTTP request")
		}
		if i == 0 || rest[i-1] != '\r' {
			return h, bad("header line not ended by CRLF")
		}
		line := rest[:i-1]
		rest = rest[i+1:]
		if len(line) == 0 {
			break
		}
		if count == s.maxHeaderCount() {
			return h, statusError{http.StatusRequestHeaderFieldsTooLarge, "too many header fields"}
		}
		name, value, err := splitField(line)
		if err != nil {
			return h, err
		}
		if bytes.IndexByte(name, '_') >= 0 && forwardingSpelling(name) {
			// CGI-style upstreams (PHP, WSGI, net/http/cgi) read '_' as '-':
			// X_Forwarded_For would pass for the header the gateway rebuilds.
			return h, bad("underscore spelling of a forwarding header: " + string(name))
		}
		switch len(name) {
		case 4:
			if equalFold(name, "host") {
				if h.hosts++; h.hosts == 1 {
					h.host = string(value)
				}
			}
		case 14:
			if equalFoldUnderscore(name, "content-length") {
				if name[7] == '_' {
					return h, bad("Content_Length header name")
				}
				if lengths++; lengths > 1 {
					return h, bad("more than one Content-Length")
				}
				if !validLength(value) {
					return h, bad("bad Content-Length")
				}
			}
		case 17:
			if equalFoldUnderscore(name, "transfer-encoding") {
				if name[8] == '_' {
					return h, bad("Transfer_Encoding header name")
				}
				if encodings++; encodings > 1 {
					return h, bad("more than one Transfer-Encoding")
				}
				if err := checkTransferEncoding(value); err != nil {
					return h, err
				}
				h.chunked = true
			}
		}
	}
	switch {
	case encodings > 0 && lengths > 0:
		return h, bad("both Transfer-Encoding and Content-Length")
	case encodings > 0 && http10:
		return h, bad("Transfer-Encoding in an HTTP/1.0 request")
	}
	return h, nil
}

// scanRequestLine checks method SP request-target SP HTTP-version
// (RFC 9112 §3): single spaces, an upper-case token method, a target of
// visible ASCII without a fragment, in the form the method allows.
func (s *Server) scanRequestLine(line []byte) (http10 bool, err error) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return false, bad("malformed HTTP request")
	}
	method := line[:sp]
	for _, b := range method {
		if !tokenTable[b] {
			return false, bad("malformed HTTP request")
		}
		if 'a' <= b && b <= 'z' {
			return false, bad("method not in upper case")
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return false, bad("malformed HTTP request")
	}
	target, version := rest[:sp], rest[sp+1:]
	if len(target) > s.maxURIBytes() {
		return false, statusError{http.StatusRequestURITooLong, "request target over the limit"}
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return false, bad("invalid character in request target")
		}
		if b == '#' {
			return false, bad("fragment in request target")
		}
	}
	if len(version) != 8 || string(version[:5]) != "HTTP/" || !isDigit(version[5]) || version[6] != '.' || !isDigit(version[7]) {
		return false, bad("malformed HTTP version")
	}
	if version[5] != '1' {
		return false, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	switch {
	case target[0] == '/':
	case len(target) == 1 && target[0] == '*':
		if string(method) != http.MethodOptions {
			return false, bad("asterisk-form target with a method other than OPTIONS")
		}
	case string(method) == http.MethodConnect:
		// authority-form: net/http's parser checks it
	case hasPrefixFold(target, "http://") || hasPrefixFold(target, "https://"):
	default:
		return false, bad("request target neither a path nor an http(s) URL")
	}
	return version[7] == '0', nil
}

// splitField splits a field line (RFC 9112 §5): a token name, a colon
// right after it, a value of visible characters, spaces, tabs and
// obs-text, without leading or trailing whitespace.
func splitField(line []byte) (name, value []byte, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, bad("obsolete line folding")
	}
	i := 0
	for i < len(line) && tokenTable[line[i]] {
		i++
	}
	switch {
	case i == 0 && line[0] == ':':
		return nil, nil, bad("empty header name")
	case i < len(line) && line[i] == ':':
	case bytes.IndexByte(line[i:], ':') < 0:
		return nil, nil, bad("header line without a colon")
	default:
		return nil, nil, bad("invalid header name")
	}
	name, value = line[:i], line[i+1:]
	if !validValue(value) {
		return nil, nil, bad("invalid character in header value")
	}
	return name, trimOWS(value), nil
}

// tokenTable: RFC 9110 tchar.
var tokenTable = func() (t [256]bool) {
	for c := range 128 {
		t[c] = httpguts.IsTokenRune(rune(c))
	}
	return t
}()

// validValue reports whether v holds only HTAB, SP, VCHAR and obs-text
// (RFC 9110 §5.5): 8 bytes at a time, the usual bit trick finding a byte
// under 0x20 or equal to 0x7f; only a word with one (a tab, or worse) is
// looked at byte by byte.
func validValue(v []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(v) >= 8 {
		x := binary.LittleEndian.Uint64(v)
		del := x ^ (0x7f * ones)
		if ((x-0x20*ones)&^x|(del-ones)&^del)&highs != 0 && !validBytes(v[:8]) {
			return false
		}
		v = v[8:]
	}
	return validBytes(v)
}

func validBytes(v []byte) bool {
	for _, b := range v {
		if b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// checkTransferEncoding accepts exactly "chunked" (any case). A list
// with chunked last is understood but not supported (501, RFC 9112
// §6.1); anything else leaves the body length unknown (400, §6.3).
func checkTransferEncoding(v []byte) error {
	if equalFold(v, "chunked") {
		return nil
	}
	codings := strings.Split(string(v), ",")
	for i, c := range codings {
		c = strings.Trim(c, " \t")
		if c == "" || !isToken(c) {
			return bad("malformed Transfer-Encoding")
		}
		if strings.EqualFold(c, "chunked") && i != len(codings)-1 {
			return bad("chunked not the final transfer coding")
		}
		codings[i] = c
	}
	if strings.EqualFold(codings[len(codings)-1], "chunked") {
		return statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
	}
	return bad("chunked not the final transfer coding")
}

func validLength(v []byte) bool {
	if len(v) == 0 || len(v) > 18 {
		return false
	}
	for _, b := range v {
		if !isDigit(b) {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return s != ""
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares ASCII b with lower-case s.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// equalFoldUnderscore is equalFold where '_' also matches '-': some
// upstreams (CGI and its descendants) map one to the other.
func equalFoldUnderscore(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c == '_' {
			c = '-'
		}
		if lower(c) != s[i] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && equalFold(b[:len(prefix)], prefix)
}

// checkConnection refuses Connection options that name a field every
// recipient needs (RFC 9110 §7.6.1: a proxy removes the fields named,
// so "Connection: Content-Length" would change the framing upstream).
func checkConnection(vv []string) error {
	for _, v := range vv {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.Trim(tok, " \t")
			switch {
			case tok == "":
			case !isToken(tok):
				return bad("malformed Connection header")
			case strings.EqualFold(tok, "host"), strings.EqualFold(tok, "content-length"), strings.EqualFold(tok, "transfer-encoding"):
				return bad("Connection names an end-to-end header")
			}
		}
	}
	return nil
}

// forwardingSpelling reports whether name, with '_' read as '-', is one of
// the fields the gateway rebuilds from the peer (X-Forwarded-*, Forwarded,
// X-Real-IP).
func forwardingSpelling(name []byte) bool {
	for _, f := range []string{"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "forwarded", "x-real-ip"} {
		if len(name) == len(f) && equalFoldUnderscore(name, f) {
			return true
		}
	}
	return false
}

// filterUpgrade keeps, of a request's Upgrade offer, only the allowed
// protocols (RFC 9110 §7.8); when none is left, the Upgrade field, the
// HTTP2-Settings field and their Connection options are removed, so no
// handler relays, say, an h2c upgrade into a raw tunnel. An Upgrade that
// is not announced in Connection, or sent with HTTP/1.0, is no upgrade.
func (s *Server) filterUpgrade(req *http.Request) {
	offers := req.Header["Upgrade"]
	var keep []string
	if req.ProtoAtLeast(1, 1) && hasToken(req.Header["Connection"], "upgrade") {
		for _, v := range offers {
			for p := range strings.SplitSeq(v, ",") {
				p = strings.Trim(p, " \t")
				name, _, _ := strings.Cut(p, "/")
				if s.upgradeAllowed(name) {
					keep = append(keep, p)
				}
			}
		}
	}
	if !s.upgradeAllowed("h2c") {
		delete(req.Header, "Http2-Settings")
	}
	if len(keep) > 0 {
		if joined := strings.Join(keep, ", "); len(offers) != 1 || offers[0] != joined {
			req.Header["Upgrade"] = []string{joined}
		}
		return
	}
	delete(req.Header, "Upgrade")
	delete(req.Header, "Http2-Settings")
	var conn []string
	for _, v := range req.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.Trim(tok, " \t")
			if tok != "" && !strings.EqualFold(tok, "upgrade") && !strings.EqualFold(tok, "http2-settings") {
				conn = append(conn, tok)
			}
		}
	}
	if len(conn) == 0 {
		delete(req.Header, "Connection")
	} else {
		req.Header["Connection"] = []string{strings.Join(conn, ", ")}
	}
}

func (s *Server) upgradeAllowed(name string) bool {
	if s.AllowUpgrades == nil {
		return strings.EqualFold(name, "websocket")
	}
	for _, a := range s.AllowUpgrades {
		if strings.EqualFold(name, a) {
			return true
		}
	}
	return false
}

func isTokenByte(b byte) bool { return tokenTable[b] }

// validHost reports whether v is a Host field value as RFC 9110 §7.2
// has it: uri-host [ ":" port ], where port is digits and uri-host an
// IP-literal in brackets or a reg-name (unreserved, sub-delims and
// percent-encoded octets; RFC 3986 §3.2.2). Empty is allowed (a target
// without authority). httpguts.ValidHostHeader lets through what a
// backend or a cache may read differently ("a:xx", "a b").
func validHost(v string) bool {
	host, port := v, ""
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 {
			return false
		}
		if _, err := netip.ParseAddr(v[1:end]); err != nil {
			return false
		}
		host, port = "", v[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.LastIndexByte(v, ':'); i >= 0 {
		host, port = v[:i], v[i:]
	}
	if port != "" {
		for _, c := range []byte(port[1:]) {
			if !isDigit(c) {
				return false
			}
		}
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c), strings.IndexByte("-._~!$&'()*+,;=", c) >= 0:
		case c == '%' && i+2 < len(host) && isHex(host[i+1]) && isHex(host[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= lower(c) && lower(c) <= 'f' }
