package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAccessLogLine(t *testing.T) {
	var buf bytes.Buffer
	a := newAccessLog(&buf, time.Hour)
	a.write(&entry{time: time.Unix(0, 0), requestID: "id", route: "r", backend: "b", method: "GET", host: "h",
		path: "/a\"b\\c\n\xff", proto: "HTTP/2.0", status: 502, bytes: 7, duration: 1500 * time.Microsecond, clientIP: "::1", userAgent: "ua",
		proxied: true, endpoint: "10.0.0.1:80", attempts: 2, traceparent: "tp", failure: "upstream_failure"})
	a.close()
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("line %q is not JSON: %v", buf.String(), err)
	}
	want := map[string]any{"time": "1970-01-01T00:00:00Z", "msg": "access", "request_id": "id", "route": "r", "backend": "b",
		"method": "GET", "host": "h", "path": "/a\"b\\c\n\ufffd", "proto": "HTTP/2.0", "status": 502.0, "bytes": 7.0, "duration_ms": 1.5,
		"client_ip": "::1", "user_agent": "ua", "endpoint": "10.0.0.1:80", "attempts": 2.0, "traceparent": "tp", "error": "upstream_failure"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("line has %d fields, want %d: %s", len(got), len(want), buf.String())
	}
}

// FuzzAppendJSONString checks that any string encodes as valid JSON that
// decodes back to it (invalid UTF-8 becoming U+FFFD, as encoding/json
// does).
func FuzzAppendJSONString(f *testing.F) {
	f.Add("plain")
	f.Add("\"\\\x00\x1f\u2028é\xff")
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: invalid JSON: %v", s, b, err)
		}
		if utf8.ValidString(s) {
			if got != s {
				t.Fatalf("round trip of %q = %q", s, got)
			}
			return
		}
		// Invalid bytes become U+FFFD; everything else survives.
		strip := func(x string) string { return strings.ReplaceAll(x, "\ufffd", "") }
		if strip(got) != strip(string(bytes.ToValidUTF8([]byte(s), nil))) {
			t.Fatalf("round trip of %q = %q", s, got)
		}
	})
}
