package route

import (
	"errors"
	"fmt"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// PathOptions is how NormalizePath treats a path (config.Paths, defaulted).
type PathOptions struct {
	// MergeSlashes turns "//" into "/".
	MergeSlashes bool
	// EncodedSlash is config.EncodedSlashReject, Keep or Decode.
	EncodedSlash string
}

// PathOptionsFrom returns the options of a defaulted config.
func PathOptionsFrom(p config.Paths) PathOptions {
	return PathOptions{MergeSlashes: p.MergeSlashes == nil || *p.MergeSlashes, EncodedSlash: p.EncodedSlash}
}

// ErrBadPath is the cause of every path NormalizePath refuses (400).
var ErrBadPath = errors.New("bad request path")

// NormalizePath normalizes escaped, a request's path in its escaped form
// (url.URL.EscapedPath), before routes are matched, as Envoy's
// normalize_path, merge_slashes and path_with_escaped_slashes_action do:
//
//   - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded,
//     other escapes upper-cased; a malformed escape is refused;
//   - %2F, %5C and a raw backslash are refused, kept encoded (never a
//     separator) or decoded to '/', as o.EncodedSlash says;
//   - dot segments are removed (RFC 3986 §5.2.4), after decoding, so
//     "%2e%2e" is ".." and "/api/../internal" is "/internal";
//   - with o.MergeSlashes, empty segments are dropped ("//admin" is
//     "/admin"); a trailing slash stays.
//
// The result is idempotent: NormalizePath(p.Escaped) returns p.
func NormalizePath(escaped string, o PathOptions) (Path, error) {
	if escaped == "" {
		return Path{Match: "/", Escaped: "/"}, nil
	}
	if escaped[0] != '/' {
		return Path{}, fmt.Errorf("%w: must start with '/'", ErrBadPath)
	}
	if clean(escaped, o.MergeSlashes) {
		return Path{Match: escaped, Escaped: escaped}, nil
	}
	return normalizeSlow(escaped, o)
}

// clean reports whether p needs no work: no escape, no backslash, no dot
// segment, no empty segment to merge. It is the common case and
// allocates nothing.
func clean(p string, merge bool) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !literal[c] {
			return false
		}
		if c != '/' || i+1 == len(p) {
			continue
		}
		switch p[i+1] {
		case '/':
			if merge {
				return false
			}
		case '.':
			// "/." or "/.." ending the path or followed by '/' or ';'.
			rest := p[i+2:]
			if rest == "" || rest[0] == '/' || rest[0] == ';' || rest[0] == '.' && (len(rest) == 1 || rest[1] == '/' || rest[1] == ';') {
				return false
			}
		}
	}
	return true
}

// literal marks the bytes a path carries as they are: '/' and what
// shouldEscape leaves alone.
var literal = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c == '/' || !shouldEscape(byte(c))
	}
	return t
}()

func normalizeSlow(p string, o PathOptions) (Path, error) {
	// Pass 1: canonical escaping, with real separators as '/'.
	var b strings.Builder
	b.Grow(len(p) + 8)
	slash := func(enc string) error {
		switch o.EncodedSlash {
		case config.EncodedSlashKeep:
			b.WriteString(enc)
		case config.EncodedSlashDecode:
			b.WriteByte('/')
		default:
			return fmt.Errorf("%w: encoded slash or backslash", ErrBadPath)
		}
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			if err := slash("%5C"); err != nil {
				return Path{}, err
			}
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return Path{}, fmt.Errorf("%w: malformed percent-encoding at byte %d", ErrBadPath, i)
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case isUnreserved(v):
				b.WriteByte(v)
			case v == '/':
				if err := slash("%2F"); err != nil {
					return Path{}, err
				}
			case v == '\\':
				if err := slash("%5C"); err != nil {
					return Path{}, err
				}
			default:
				writeEscape(&b, v)
			}
		case shouldEscape(c):
			writeEscape(&b, c)
		default:
			b.WriteByte(c)
		}
	}
	s := b.String()

	// Pass 2: remove dot segments and merge slashes, segment by segment.
	segs := strings.Split(s[1:], "/")
	out := make([]string, 0, len(segs))
	for k, seg := range segs {
		last := k == len(segs)-1
		if dot, _, params := strings.Cut(seg, ";"); params && (dot == "." || dot == "..") {
			// Tomcat, Jetty and Spring drop ";params" from each segment:
			// "/public/..;/admin" is "/admin" to them, "/public/…" here.
			return Path{}, fmt.Errorf("%w: dot segment with parameters %q", ErrBadPath, seg)
		}
		switch {
		case seg == ".":
			if last {
				out = append(out, "")
			}
		case seg == "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		case seg == "" && o.MergeSlashes && !last:
		default:
			out = append(out, seg)
		}
	}
	esc := "/" + strings.Join(out, "/")
	return Path{Match: matchForm(esc), Escaped: esc}, nil
}

// matchForm decodes a canonical escaped path for matching, except %25,
// %2F and %5C: a kept encoded slash must not become a separator, and '%'
// stays encoded so that "%252F" and "%2F" remain different.
func matchForm(esc string) string {
	if !strings.Contains(esc, "%") {
		return esc
	}
	var b strings.Builder
	b.Grow(len(esc))
	for i := 0; i < len(esc); i++ {
		c := esc[i]
		if c == '%' && i+2 < len(esc) {
			v := unhex(esc[i+1])<<4 | unhex(esc[i+2])
			if v != '%' && v != '/' && v != '\\' {
				b.WriteByte(v)
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// escapeMatch is matchForm's inverse, for a rewritten path: every byte a
// path may not carry literally is escaped; '%' already starts an escape.
func escapeMatch(m string) string {
	n := 0
	for i := 0; i < len(m); i++ {
		if c := m[i]; c != '%' && shouldEscape(c) {
			n++
		}
	}
	if n == 0 {
		return m
	}
	var b strings.Builder
	b.Grow(len(m) + 2*n)
	for i := 0; i < len(m); i++ {
		if c := m[i]; c != '%' && shouldEscape(c) {
			writeEscape(&b, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// shouldEscape reports whether c must be percent-encoded in a path
// segment: anything but unreserved, sub-delims, ':', '@' and '/' (RFC
// 3986 §3.3).
func shouldEscape(c byte) bool {
	if isUnreserved(c) {
		return false
	}
	switch c {
	case '/', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return false
	}
	return true
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func writeEscape(b *strings.Builder, c byte) {
	const hexDigits = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hexDigits[c>>4])
	b.WriteByte(hexDigits[c&15])
}

// UpstreamPath returns the path to send upstream for the matched path p:
// p itself, or its rewrite in escaped form, so that the upstream never
// receives a decoded form whose meaning differs from what was matched.
func (rt *Route) UpstreamPath(p Path) Path {
	if rt.rewrite == nil {
		return p
	}
	m := rt.rewrite(p.Match)
	esc := escapeMatch(m)
	// A rewrite may splice segments together ("/a" + "/../b"): normalize
	// again, keeping what was kept. It cannot fail: esc is canonical.
	if np, err := NormalizePath(esc, PathOptions{MergeSlashes: true, EncodedSlash: config.EncodedSlashKeep}); err == nil {
		return np
	}
	return Path{Match: m, Escaped: esc}
}
