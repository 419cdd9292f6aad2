package config

import (
	"slices"
	"strings"
	"testing"
)

// outlierConfig is a config whose only backend has the given outlier
// block (a YAML flow mapping, "" for none).
func outlierConfig(outlier string) []byte {
	b := `{name: web, addresses: ["127.0.0.1:8081"]}`
	if outlier != "" {
		b = `{name: web, addresses: ["127.0.0.1:8081"], outlier: ` + outlier + `}`
	}
	return []byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [" + b + "]\nroutes: [{name: r, backends: [{name: web}]}]\n")
}

func TestOutlierDefaults(t *testing.T) {
	tests := []struct {
		name        string
		outlier     string
		wantPercent int
		wantPanic   int
		wantCount   []int
	}{
		{"no block", "", 50, 50, nil},
		{"empty block", "{}", 50, 50, nil},
		{"zeros are kept: ejection and panic off", "{maxEjectionPercent: 0, panicThreshold: 0}", 0, 0, nil},
		{"set", "{maxEjectionPercent: 10, panicThreshold: 30, countStatuses: [502, 503, 504]}", 10, 30, []int{502, 503, 504}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(outlierConfig(tt.outlier))
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			o := c.Backends[0].Outlier
			if *o.MaxEjectionPercent != tt.wantPercent || *o.PanicThreshold != tt.wantPanic || !slices.Equal(o.CountStatuses, tt.wantCount) {
				t.Errorf("outlier = {maxEjectionPercent: %d, panicThreshold: %d, countStatuses: %v}, want {%d, %d, %v}",
					*o.MaxEjectionPercent, *o.PanicThreshold, o.CountStatuses, tt.wantPercent, tt.wantPanic, tt.wantCount)
			}
		})
	}
}

func TestOutlierValidation(t *testing.T) {
	tests := []struct {
		outlier string
		want    []string // every problem, by its YAML path and message
	}{
		{"{countStatuses: [200]}", []string{"backends[0].outlier.countStatuses[0]: must be 400..599, got 200"}},
		{"{countStatuses: [503, 600, 399]}", []string{
			"backends[0].outlier.countStatuses[1]: must be 400..599, got 600",
			"backends[0].outlier.countStatuses[2]: must be 400..599, got 399"}},
		{"{maxEjectionPercent: 101}", []string{"backends[0].outlier.maxEjectionPercent: must be 0..100, got 101"}},
		{"{maxEjectionPercent: -1}", []string{"backends[0].outlier.maxEjectionPercent: must be 0..100, got -1"}},
		{"{panicThreshold: 150}", []string{"backends[0].outlier.panicThreshold: must be 0..100, got 150"}},
		{"{panicThreshold: -5, maxEjectionPercent: 200}", []string{
			"backends[0].outlier.maxEjectionPercent: must be 0..100, got 200",
			"backends[0].outlier.panicThreshold: must be 0..100, got -5"}},
		// The decoder names the line of a value of the wrong type.
		{"{countStatuses: 503}", []string{"line 3: cannot unmarshal", "503"}},
		{"{maxEjectionPercent: 50%}", []string{"line 3: cannot unmarshal", "`50%` into an integer"}},
		{"{panicThreshold: half}", []string{"line 3: cannot unmarshal", "`half` into an integer"}},
		{"{countStatus: [503]}", []string{`unknown field "countStatus"`}},
	}
	for _, tt := range tests {
		t.Run(tt.outlier, func(t *testing.T) {
			_, err := Parse(outlierConfig(tt.outlier))
			if err == nil {
				t.Fatalf("Parse(outlier: %s) = nil error, want %q", tt.outlier, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(outlier: %s) error = %q, want it to contain %q", tt.outlier, err, w)
				}
			}
		})
	}
}
