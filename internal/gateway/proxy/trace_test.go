package proxy

import (
	"regexp"
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	for in, keep := range map[string]bool{
		"abc-123_x.y": true, "": false, "has space": false, strings.Repeat("a", 128): true,
		strings.Repeat("a", 129): false, "quote\"": false, "new\nline": false,
	} {
		got := RequestID(in)
		if keep && got != in || !keep && !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(got) {
			t.Errorf("RequestID(%q) = %q, keep %v", in, got, keep)
		}
	}
	if a, b := RequestID(""), RequestID(""); a == b {
		t.Error("RequestID() twice gave the same ID")
	}
}

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		in        string
		wantTrace string
		ok        bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		trace, _, ok := parseTraceparent(tt.in)
		if ok != tt.ok || trace != tt.wantTrace {
			t.Errorf("parseTraceparent(%q) = %q, %v; want %q, %v", tt.in, trace, ok, tt.wantTrace, tt.ok)
		}
	}
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// FuzzTraceparent checks that whatever a client sends, the gateway sends
// a valid traceparent upstream, keeping a valid one's trace ID.
func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, in string) {
		out := Traceparent(in)
		if !traceparentRE.MatchString(out) {
			t.Fatalf("Traceparent(%q) = %q, not valid", in, out)
		}
		if trace, _, ok := parseTraceparent(in); ok && out[3:35] != trace {
			t.Fatalf("Traceparent(%q) = %q lost the trace ID", in, out)
		}
	})
}

func BenchmarkIDs(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		RequestID("")
		Traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	}
}
