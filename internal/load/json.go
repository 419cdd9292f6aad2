package load

import "encoding/json"

// MarshalJSON adds elapsed_seconds, since a time.Duration would encode as
// nanoseconds.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // without this method
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsed_seconds"`
	}{plain(s), s.Elapsed.Seconds()})
}

// MarshalJSON writes every latency in milliseconds: min_ms, mean_ms,
// p50_ms, p90_ms, p99_ms, p999_ms, max_ms.
func (l Latency) MarshalJSON() ([]byte, error) {
	return json.Marshal(l.jsonMillis())
}
