package logging

import (
	"bytes"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		format, level string
		wantErr       string
	}{
		{"json", "info", ""},
		{"text", "debug", ""},
		{"JSON", "WARN", ""},
		{"xml", "info", `want "json" or "text", got "xml"`},
		{"json", "loud", `got "loud"`},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		l, err := New(&buf, tt.format, tt.level)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%q, %q) = %v, want error %q", tt.format, tt.level, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New(%q, %q) = %v", tt.format, tt.level, err)
		}
		l.Error("hello", "k", "v")
		if !strings.Contains(buf.String(), "hello") {
			t.Errorf("New(%q, %q) logger wrote %q", tt.format, tt.level, buf.String())
		}
	}
}
