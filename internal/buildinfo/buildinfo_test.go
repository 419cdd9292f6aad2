package buildinfo

import "testing"

func TestColourOf(t *testing.T) {
	tests := []struct {
		name, version, want string
	}{
		{"v1", "v1", "blue"},
		{"v2", "v2", "green"},
		{"v3", "v3", "orange"},
		{"semver minor keeps major colour", "v2.4.1", "green"},
		{"no prefix", "3", "orange"},
		{"wraps past palette", "v7", "blue"},
		{"not a version", "latest", "grey"},
		{"zero", "v0", "grey"},
		{"empty", "", "grey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ColourOf(tt.version).Name; got != tt.want {
				t.Errorf("ColourOf(%q) = %q, want %q", tt.version, got, tt.want)
			}
		})
	}
}
