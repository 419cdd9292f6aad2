package proxy

import (
	"encoding/hex"
	"math/rand/v2"
)

// RequestID returns the client's X-Request-Id when it is a safe token of
// 1..128 characters of [A-Za-z0-9._-], else a new random 32-hex-digit ID.
// Keeping the client's lets one ID follow a request through several hops.
func RequestID(in string) string {
	if validRequestID(in) {
		return in
	}
	var b [16]byte
	randomBytes(b[:])
	return hex.EncodeToString(b[:])
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Traceparent returns the W3C traceparent to send upstream: the client's
// trace ID and flags with a new parent ID (the gateway's hop), or a new
// trace when the header is absent or invalid.
func Traceparent(in string) string {
	var span [8]byte
	randomBytes(span[:])
	if traceID, flags, ok := parseTraceparent(in); ok {
		return "00-" + traceID + "-" + hex.EncodeToString(span[:]) + "-" + flags
	}
	var trace [16]byte
	randomBytes(trace[:])
	return "00-" + hex.EncodeToString(trace[:]) + "-" + hex.EncodeToString(span[:]) + "-00"
}

// parseTraceparent checks "version-traceid-parentid-flags" per W3C Trace
// Context: lower-case hex, trace and parent IDs not all zero, version ff
// invalid; a future version may have more fields after the flags.
func parseTraceparent(s string) (traceID, flags string, ok bool) {
	if len(s) < 55 || (len(s) > 55 && (s[0:2] == "00" || s[55] != '-')) {
		return "", "", false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' || s[0:2] == "ff" {
		return "", "", false
	}
	version, traceID, parent, flags := s[0:2], s[3:35], s[36:52], s[53:55]
	for _, f := range []string{version, traceID, parent, flags} {
		if !lowerHex(f) {
			return "", "", false
		}
	}
	if allZero(traceID) || allZero(parent) {
		return "", "", false
	}
	return traceID, flags, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// randomBytes fills b from the runtime's fast per-thread generator: IDs
// need to be unique, not secret.
func randomBytes(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
}
