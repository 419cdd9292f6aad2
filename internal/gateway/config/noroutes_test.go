package config

import (
	"strings"
	"testing"
)

// TestValidateNoRoutes: a config without routes is refused unless the
// caller adds routes of its own (an Ingress controller); every other
// problem is still reported.
func TestValidateNoRoutes(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		opts    ValidateOptions
		want    string // "" for valid
		notWant string
	}{
		{name: "no routes", yaml: "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\n", want: "routes: want at least one route"},
		{name: "no routes, allowed", yaml: "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\n", opts: ValidateOptions{AllowNoRoutes: true}},
		{name: "empty routes list, allowed", yaml: "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: []\n", opts: ValidateOptions{AllowNoRoutes: true}},
		{
			name:    "allowed, other problems still reported",
			yaml:    "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends:\n  - name: b\n    addresses: [nohost]\n",
			opts:    ValidateOptions{AllowNoRoutes: true},
			want:    "backends[0].addresses[0]",
			notWant: "want at least one route",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFileWith("/etc/gateway.yaml", []byte(tt.yaml), tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ParseFileWith(%+v) = %v, want nil", tt.opts, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ParseFileWith(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
			case tt.notWant != "" && err != nil && strings.Contains(err.Error(), tt.notWant):
				t.Errorf("ParseFileWith(%+v) = %v, want no %q", tt.opts, err, tt.notWant)
			}
		})
	}
}
