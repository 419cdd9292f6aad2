package balance

import (
	"fmt"
	"math"
	"testing"
)

type eps struct {
	addrs    []string
	inflight []int64
}

func (e *eps) Len() int             { return len(e.addrs) }
func (e *eps) Addr(i int) string    { return e.addrs[i] }
func (e *eps) InFlight(i int) int64 { return e.inflight[i] }

func newEps(n int) *eps {
	e := &eps{}
	for i := range n {
		e.addrs = append(e.addrs, fmt.Sprintf("10.0.0.%d:8080", i+1))
		e.inflight = append(e.inflight, 0)
	}
	return e
}

func TestEmpty(t *testing.T) {
	for _, p := range []Picker{&RoundRobin{}, &LeastRequest{}, &Random{}, &ConsistentHash{}} {
		if got := p.Pick(newEps(0), "k"); got != -1 {
			t.Errorf("%T.Pick(empty) = %d, want -1", p, got)
		}
	}
}

func TestRoundRobinInTurn(t *testing.T) {
	var p RoundRobin
	e := newEps(3)
	var got []int
	for range 7 {
		got = append(got, p.Pick(e, ""))
	}
	if fmt.Sprint(got) != "[0 1 2 0 1 2 0]" {
		t.Errorf("Pick() sequence = %v, want [0 1 2 0 1 2 0]", got)
	}
}

// chiSquareUniform fails t when counts are not plausibly uniform
// (p < 0.001 for up to 10 categories).
func chiSquareUniform(t *testing.T, counts []int) {
	t.Helper()
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	chi := 0.0
	for _, c := range counts {
		chi += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	if chi > 30 {
		t.Errorf("counts %v not uniform: chi² = %.1f", counts, chi)
	}
}

func TestRandomUniform(t *testing.T) {
	p := &Random{Rand: Seeded(1)}
	e := newEps(5)
	counts := make([]int, 5)
	for range 50000 {
		counts[p.Pick(e, "")]++
	}
	chiSquareUniform(t, counts)
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	p := &LeastRequest{Rand: Seeded(2)}
	e := newEps(4)
	e.inflight = []int64{10, 0, 10, 10}
	counts := make([]int, 4)
	for range 10000 {
		counts[p.Pick(e, "")]++
	}
	// Endpoint 1 is in every pair it appears in: 1 - (3/4 * 2/3) = 1/2.
	if share := float64(counts[1]) / 10000; math.Abs(share-0.5) > 0.02 {
		t.Errorf("idle endpoint share = %.3f, want ≈ 0.5 (counts %v)", share, counts)
	}
	e.inflight = []int64{0, 0, 0, 0}
	counts = make([]int, 4)
	for range 40000 {
		counts[p.Pick(e, "")]++
	}
	chiSquareUniform(t, counts)
}

func TestConsistentHashStableAndMinimalReshuffle(t *testing.T) {
	p := &ConsistentHash{}
	e := newEps(5)
	const keys = 10000
	before := make([]string, keys)
	counts := make([]int, 5)
	for k := range keys {
		i := p.Pick(e, fmt.Sprint("user-", k))
		before[k] = e.addrs[i]
		counts[i]++
		if again := p.Pick(e, fmt.Sprint("user-", k)); again != i {
			t.Fatalf("Pick() not stable for key %d: %d then %d", k, i, again)
		}
	}
	chiSquareUniform(t, counts)
	// Remove the third endpoint: only its keys may move.
	removed := e.addrs[2]
	e.addrs = append(e.addrs[:2:2], e.addrs[3:]...)
	e.inflight = e.inflight[:4]
	moved := 0
	for k := range keys {
		after := e.addrs[p.Pick(e, fmt.Sprint("user-", k))]
		if after != before[k] {
			moved++
			if before[k] != removed {
				t.Fatalf("key %d moved from %s to %s though its endpoint stayed", k, before[k], after)
			}
		}
	}
	if moved != counts[2] {
		t.Errorf("moved %d keys, want exactly the %d of the removed endpoint", moved, counts[2])
	}
}

func TestConsistentHashNoKeyIsRoundRobin(t *testing.T) {
	p := &ConsistentHash{}
	e := newEps(2)
	if a, b := p.Pick(e, ""), p.Pick(e, ""); a == b {
		t.Errorf("Pick() without key = %d, %d, want alternating", a, b)
	}
}

func TestSmoothWeighted(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		n       int
		want    string
	}{
		{"nginx example", []int{5, 1, 1}, 7, "[0 0 1 0 2 0 0]"},
		{"canary 90/10 interleaves", []int{9, 1}, 10, "[0 0 0 0 0 1 0 0 0 0]"},
		{"zero weight never picked", []int{0, 3}, 3, "[1 1 1]"},
		{"all zero", []int{0, 0}, 2, "[-1 -1]"},
		{"single", []int{7}, 2, "[0 0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSmoothWeighted(tt.weights)
			var got []int
			for range tt.n {
				got = append(got, s.Next(nil))
			}
			if fmt.Sprint(got) != tt.want {
				t.Errorf("Next() sequence = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestSmoothWeightedExactSplitAndExclusion(t *testing.T) {
	s := NewSmoothWeighted([]int{90, 10})
	counts := make([]int, 2)
	for range 10000 {
		counts[s.Next(nil)]++
	}
	if counts[0] != 9000 || counts[1] != 1000 {
		t.Errorf("split = %v, want exactly [9000 1000]", counts)
	}
	onlyFirst := func(i int) bool { return i == 0 }
	for range 10 {
		if got := s.Next(onlyFirst); got != 0 {
			t.Fatalf("Next(excluding 1) = %d, want 0", got)
		}
	}
	if got := s.Next(func(int) bool { return false }); got != -1 {
		t.Errorf("Next(excluding all) = %d, want -1", got)
	}
}

func BenchmarkPick(b *testing.B) {
	e := newEps(8)
	for _, p := range []Picker{&RoundRobin{}, &LeastRequest{}, &Random{}, &ConsistentHash{}} {
		b.Run(fmt.Sprintf("%T", p)[len("*balance."):], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Pick(e, "session-1234")
			}
		})
	}
	b.Run("SmoothWeighted", func(b *testing.B) {
		s := NewSmoothWeighted([]int{90, 10})
		b.ReportAllocs()
		for b.Loop() {
			s.Next(nil)
		}
	})
}
