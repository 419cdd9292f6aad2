package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// The response fields of draft-ietf-httpapi-ratelimit-headers-11 (May
// 2026; the syntax is unchanged since -08): two structured-field Lists whose
// items are a policy name (sf-string) with parameters.
//
//	RateLimit-Policy: "api";q=100;w=60
//	RateLimit: "api";r=42;t=25
//
// q is the quota (Requests), w its window in seconds (Per), r the requests
// still admitted now (Remaining) and t the seconds until the quota is
// whole again (Reset, rounded up). A Burst other than Requests is the
// vendor parameter flotilla-burst on the policy (the draft asks
// implementation parameters to carry a vendor prefix).
const (
	PolicyHeader    = "RateLimit-Policy"
	RateLimitHeader = "RateLimit"
)

// SetHeaders appends the item of limit name (lim, decision d) to the
// RateLimit-Policy and RateLimit fields of h, one list per field whatever
// the number of limits, and when d refuses, sets Retry-After to d's
// RetryAfter in whole seconds rounded up (at least 1; the larger value
// wins when several limits refuse).
func SetHeaders(h http.Header, name string, lim Limit, d Decision) {
	b := make([]byte, 0, 64)
	b = appendSFString(b, name)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(lim.Requests), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, ceilSeconds(lim.Per), 10)
	if lim.Burst != lim.Requests {
		b = append(b, ";flotilla-burst="...)
		b = strconv.AppendInt(b, int64(lim.Burst), 10)
	}
	appendItem(h, PolicyHeader, string(b))

	b = appendSFString(b[:0], name)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(max(d.Remaining, 0)), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(d.Reset), 10)
	appendItem(h, RateLimitHeader, string(b))

	if !d.Allowed {
		s := max(ceilSeconds(d.RetryAfter), 1)
		if old, err := strconv.ParseInt(h.Get("Retry-After"), 10, 64); err == nil && old > s {
			return
		}
		h.Set("Retry-After", strconv.FormatInt(s, 10))
	}
}

// appendItem adds item to the list in field k, on the field's one line.
func appendItem(h http.Header, k, item string) {
	k = http.CanonicalHeaderKey(k)
	if v := h[k]; len(v) > 0 && v[0] != "" {
		v[0] += ", " + item
		return
	}
	h[k] = []string{item}
}

// ceilSeconds is d in whole seconds, rounded up; 0 for d <= 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// appendSFString appends s as a structured-field String (RFC 9651 §4.1.6):
// quoted, with \ and " escaped; a byte outside printable ASCII, which the
// type cannot carry, becomes '?'. (Limit names are config tokens, so this
// only guards against a change elsewhere.)
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
