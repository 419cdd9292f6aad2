package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// maxRelErr is the promised bound on a quantile's error: half a bucket.
const maxRelErr = 1.0 / (2 * subCount)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1e3, 1e6, 1e9, 1e12, math.MaxInt64, math.MaxUint64} {
		i := bucketOf(v)
		low, width := bucketRange(i)
		if v < low || v-low >= width {
			t.Errorf("bucketOf(%d) = %d covering [%d, %d+%d), want it to hold %d", v, i, low, low, width, v)
		}
		if i >= nBuckets {
			t.Errorf("bucketOf(%d) = %d, want < %d", v, i, nBuckets)
		}
	}
}

func FuzzBucket(f *testing.F) {
	f.Add(uint64(0))
	f.Add(uint64(300))
	f.Add(uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, v uint64) {
		i := bucketOf(v)
		if i < 0 || i >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of 0..%d", v, i, nBuckets-1)
		}
		low, width := bucketRange(i)
		if v < low || v-low >= width {
			t.Fatalf("bucketOf(%d) = %d covering [%d, +%d)", v, i, low, width)
		}
		if low >= 2*subCount && float64(width)/float64(low) > 1.0/subCount {
			t.Fatalf("bucket %d: width %d is more than 1/%d of %d", i, width, subCount, low)
		}
		if i > 0 {
			if plow, pw := bucketRange(i - 1); plow+pw != low {
				t.Fatalf("bucket %d starts at %d, but bucket %d ends at %d", i, low, i-1, plow+pw)
			}
		}
	})
}

// TestQuantile compares the histogram with exact nearest-rank quantiles of
// the same samples.
func TestQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"constant", func() time.Duration { return 1234567 }},
		{"uniform 0-10ms", func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) }},
		{"exponential 2ms", func() time.Duration { return time.Duration(rng.ExpFloat64() * 2e6) }},
		{"bimodal", func() time.Duration {
			if rng.IntN(100) < 3 {
				return 2*time.Second + time.Duration(rng.Int64N(1e8))
			}
			return 300*time.Microsecond + time.Duration(rng.Int64N(1e5))
		}},
		{"tiny", func() time.Duration { return time.Duration(rng.Int64N(300)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			samples := make([]time.Duration, 10001)
			for i := range samples {
				samples[i] = tt.gen()
				h.record(samples[i])
			}
			slices.Sort(samples)
			for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999, 1} {
				want := samples[int(math.Ceil(q*float64(len(samples))))-1]
				got := h.quantile(q)
				if diff := math.Abs(float64(got - want)); diff > maxRelErr*float64(want)+1 {
					t.Errorf("quantile(%v) = %v, want %v within %.2f%%", q, got, want, 100*maxRelErr)
				}
			}
			if h.min != samples[0] || h.max != samples[len(samples)-1] {
				t.Errorf("min, max = %v, %v; want %v, %v", h.min, h.max, samples[0], samples[len(samples)-1])
			}
			var sum time.Duration
			for _, s := range samples {
				sum += s
			}
			if want := sum / time.Duration(len(samples)); h.mean() != want {
				t.Errorf("mean() = %v, want %v", h.mean(), want)
			}
		})
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	if a != all {
		t.Errorf("merge of two halves differs from recording all: n %d vs %d, p99 %v vs %v", a.n, all.n, a.quantile(.99), all.quantile(.99))
	}
	var empty histogram
	if got := empty.quantile(.5); got != 0 {
		t.Errorf("empty quantile(.5) = %v, want 0", got)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	d := time.Duration(0)
	for b.Loop() {
		d += 7919
		h.record(d % (50 * time.Millisecond))
	}
}
