package kubeshared

import "testing"

// TestReported: a problem is fresh in the first sync that has it, not in
// the syncs after while it lasts, and fresh again once it went and came
// back; problems of other objects are apart.
func TestReported(t *testing.T) {
	var r Reported
	steps := []struct {
		problems [][2]string
		fresh    []bool
	}{
		{[][2]string{{"a", "x"}, {"b", "x"}}, []bool{true, true}},
		{[][2]string{{"a", "x"}, {"b", "x"}}, []bool{false, false}},
		{[][2]string{{"a", "x"}, {"a", "y"}}, []bool{false, true}},
		{nil, nil},
		{[][2]string{{"a", "x"}}, []bool{true}},
	}
	for i, s := range steps {
		for j, p := range s.problems {
			if got := r.Fresh(p[0], p[1]); got != s.fresh[j] {
				t.Errorf("sync %d: Fresh(%q, %q) = %v, want %v", i, p[0], p[1], got, s.fresh[j])
			}
		}
		r.Done()
	}
}
