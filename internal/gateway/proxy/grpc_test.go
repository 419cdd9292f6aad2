package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseGRPCTimeout(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"hours", "2H", 2 * time.Hour, true},
		{"minutes", "3M", 3 * time.Minute, true},
		{"seconds", "10S", 10 * time.Second, true},
		{"millis", "250m", 250 * time.Millisecond, true},
		{"micros", "7u", 7 * time.Microsecond, true},
		{"nanos", "99999999n", 99999999 * time.Nanosecond, true},
		{"zero", "0S", 0, true},
		{"eight digits of hours saturate", "99999999H", 1 << 62, true},
		{"empty", "", 0, false},
		{"unit only", "S", 0, false},
		{"no unit", "100", 0, false},
		{"nine digits", "123456789S", 0, false},
		{"unknown unit", "5s", 0, false},
		{"unknown unit d", "1d", 0, false},
		{"negative", "-5S", 0, false},
		{"plus", "+5S", 0, false},
		{"space", "5 S", 0, false},
		{"leading space", " 5S", 0, false},
		{"decimal", "1.5S", 0, false},
		{"Go duration", "5ms", 0, false},
		{"non-ASCII digit", "٣S", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGRPCTimeout(tt.in)
			if tt.ok && (err != nil || got != tt.want) {
				t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if !tt.ok && err != ErrBadGRPCTimeout {
				t.Errorf("parseGRPCTimeout(%q) = %v, %v; want ErrBadGRPCTimeout", tt.in, got, err)
			}
		})
	}
}

func FuzzParseGRPCTimeout(f *testing.F) {
	for _, s := range []string{"1S", "99999999H", "250m", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseGRPCTimeout(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("parseGRPCTimeout(%q) = %v, want non-negative", s, d)
		}
		// What the gateway sends upstream parses back to at least d.
		if back, err := parseGRPCTimeout(formatGRPCTimeout(d)); err != nil || back < d {
			t.Fatalf("format(%v) = %q parses to %v, %v", d, formatGRPCTimeout(d), back, err)
		}
	})
}

func TestFormatGRPCTimeout(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want string
	}{
		{time.Nanosecond, "1n"}, {0, "1n"}, {99999999, "99999999n"}, {100 * time.Millisecond, "100000u"},
		{30 * time.Second, "30000000u"}, {2 * time.Hour, "7200000m"}, {30 * 24 * time.Hour, "2592000S"},
	} {
		if got := formatGRPCTimeout(tt.in); got != tt.want {
			t.Errorf("formatGRPCTimeout(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		want bool
	}{
		{"application/grpc", true}, {"application/grpc+proto", true}, {"application/grpc+json", true},
		{"application/grpc;charset=utf-8", true}, {"application/grpc-web", false}, {"application/grpc-web+proto", false},
		{"application/grpcx", false}, {"application/json", false}, {"", false},
	} {
		r := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
		if tt.ct != "" {
			r.Header.Set("Content-Type", tt.ct)
		}
		if got := IsGRPC(r); got != tt.want {
			t.Errorf("IsGRPC(Content-Type %q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}

// TestGRPCErrorMapping: every error the gateway makes reaches a gRPC
// client as HTTP 200, trailers-only, with a gRPC status.
func TestGRPCErrorMapping(t *testing.T) {
	for _, tt := range []struct {
		status int
		code   string
		want   string
	}{
		{404, "no_route", "12"},             // UNIMPLEMENTED
		{405, "method_not_allowed", "12"},   // UNIMPLEMENTED
		{400, "bad_path", "13"},             // INTERNAL
		{400, "bad_grpc_timeout", "13"},     // INTERNAL, as grpc-go's server
		{413, "request_too_large", "8"},     // RESOURCE_EXHAUSTED
		{499, "client_closed_request", "1"}, // CANCELLED
		{502, "upstream_failure", "14"},     // UNAVAILABLE
		{502, "upstream_tls", "14"},         // UNAVAILABLE
		{503, "no_healthy_upstream", "14"},  // UNAVAILABLE
		{503, "upstream_overloaded", "14"},  // UNAVAILABLE
		{504, "upstream_timeout", "4"},      // DEADLINE_EXCEEDED
		{429, "rate_limited", "8"},          // RESOURCE_EXHAUSTED: a quota, which clients must not retry at once as they would UNAVAILABLE (Envoy: rate_limited_as_resource_exhausted)
		{401, "unauthenticated", "16"},      // UNAUTHENTICATED
		{403, "forbidden", "7"},             // PERMISSION_DENIED
		{418, "teapot", "2"},                // UNKNOWN
	} {
		r := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
		r.Header.Set("Content-Type", "application/grpc")
		w := httptest.NewRecorder()
		WriteRequestError(w, r, tt.status, tt.code, "rid-1")
		h := w.Result().Header
		if w.Code != 200 || h.Get("Content-Type") != "application/grpc" || h.Get("Grpc-Status") != tt.want || w.Body.Len() != 0 {
			t.Errorf("%d %s: HTTP %d %q grpc-status %q body %d bytes; want 200 application/grpc %s, no body",
				tt.status, tt.code, w.Code, h.Get("Content-Type"), h.Get("Grpc-Status"), w.Body.Len(), tt.want)
		}
		if m := h.Get("Grpc-Message"); !strings.HasPrefix(m, "flotilla gateway: "+tt.code) || !strings.Contains(m, "rid-1") {
			t.Errorf("%s: grpc-message %q, want the code and request ID", tt.code, m)
		}
		// Not gRPC: the JSON body, unchanged.
		r.Header.Set("Content-Type", "application/json")
		w = httptest.NewRecorder()
		WriteRequestError(w, r, tt.status, tt.code, "rid-1")
		if w.Code != tt.status || w.Result().Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s for JSON: %d %q, want %d application/json", tt.code, w.Code, w.Result().Header.Get("Content-Type"), tt.status)
		}
	}
}
