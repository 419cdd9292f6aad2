// Package liveview is the live view's data: per-version and per-instance
// request statistics recorded on the request path with atomic counters
// (Recorder), sampled once a second into a rolling history (Collector),
// a timeline of events (Timeline), and the snapshot the web page shows
// (Snapshot), which merges across gateway replicas (Merge). It imports
// only the standard library: the gateway fills it, package liveui serves
// it, and neither is known here.
package liveview

import (
	"encoding/json"
	"fmt"
	"math"
)

// bounds are the buckets' upper bounds in microseconds, roughly 1-1.5-2-3-5-7.5
// per decade from 100 µs to 30 s; the last bucket is everything slower.
// Fixed buckets make recording one add and merging a sum, at the price of
// quantiles exact only to a bucket (interpolated within it).
var bounds = [...]int64{
	100, 150, 200, 300, 500, 750,
	1_000, 1_500, 2_000, 3_000, 5_000, 7_500,
	10_000, 15_000, 20_000, 30_000, 50_000, 75_000,
	100_000, 150_000, 200_000, 300_000, 500_000, 750_000,
	1_000_000, 1_500_000, 2_000_000, 3_000_000, 5_000_000, 10_000_000, 30_000_000,
}

// NumBuckets is the number of latency buckets (the last is unbounded).
const NumBuckets = len(bounds) + 1

// BucketBoundsMs returns the buckets' upper bounds in milliseconds, the
// last one +Inf.
func BucketBoundsMs() []float64 {
	out := make([]float64, NumBuckets)
	for i, b := range bounds {
		out[i] = float64(b) / 1e3
	}
	out[NumBuckets-1] = math.Inf(1)
	return out
}

// bucketOf returns the bucket of a latency in microseconds: a binary
// search over 31 bounds, no allocation.
func bucketOf(us int64) int {
	lo, hi := 0, len(bounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bounds[m] < us {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Histogram counts requests by latency bucket. In JSON it is sparse: a
// list of [bucket, count] pairs for the buckets that are not zero.
type Histogram [NumBuckets]uint64

// Add adds o's counts to h.
func (h *Histogram) Add(o *Histogram) {
	for i := range h {
		h[i] += o[i]
	}
}

// Count is the number of requests counted.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// QuantileMs returns the q-quantile (0 < q ≤ 1) in milliseconds,
// interpolated linearly within its bucket; 0 when h is empty. A quantile
// in the last bucket is reported as its lower bound (30 s).
func (h *Histogram) QuantileMs(q float64) float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var seen float64
	for i, c := range h {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			var lo float64
			if i > 0 {
				lo = float64(bounds[i-1])
			}
			if i == len(bounds) {
				return lo / 1e3
			}
			hi := float64(bounds[i])
			return (lo + (hi-lo)*(rank-seen)/float64(c)) / 1e3
		}
		seen += float64(c)
	}
	return float64(bounds[len(bounds)-1]) / 1e3
}

// MarshalJSON writes the sparse form: [[bucket, count], ...].
func (h Histogram) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64)
	b = append(b, '[')
	first := true
	for i, c := range h {
		if c == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = fmt.Appendf(b, "[%d,%d]", i, c)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads the sparse form, refusing a bucket out of range.
func (h *Histogram) UnmarshalJSON(data []byte) error {
	var pairs [][]uint64
	if err := json.Unmarshal(data, &pairs); err != nil {
		return fmt.Errorf("histogram: want [[bucket, count], ...]: %w", err)
	}
	*h = Histogram{}
	for i, p := range pairs {
		if len(p) != 2 {
			return fmt.Errorf("histogram: entry %d: want [[bucket, count], ...], got %d numbers", i, len(p))
		}
		if p[0] >= uint64(NumBuckets) {
			return fmt.Errorf("histogram: bucket %d out of range 0..%d", p[0], NumBuckets-1)
		}
		h[p[0]] += p[1]
	}
	return nil
}
