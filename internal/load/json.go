package load

import (
	"encoding/json"
	"net/url"
	"time"
)

// MarshalJSON adds elapsed_seconds, since a time.Duration would encode as
// nanoseconds, and hides a password in the URL.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // without this method
	s.URL = redact(s.URL)
	return json.Marshal(struct {
		plain
		ElapsedSeconds float64 `json:"elapsed_seconds"`
	}{plain(s), s.Elapsed.Seconds()})
}

// redact replaces the password of a URL's user:pass@ with "xxxxx", so
// that reports can be shared.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // Validate rejected it already; nothing parsed to hide
	}
	return u.Redacted()
}

// MarshalJSON adds first_seconds: when the failure came first.
func (e ErrorSample) MarshalJSON() ([]byte, error) {
	type plain ErrorSample
	return json.Marshal(struct {
		plain
		FirstSeconds float64 `json:"first_seconds"`
	}{plain(e), e.First.Seconds()})
}

// MarshalJSON writes every latency in milliseconds: min_ms, mean_ms,
// p50_ms, p90_ms, p99_ms, p999_ms, max_ms.
func (l Latency) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return json.Marshal(struct {
		Min  float64 `json:"min_ms"`
		Mean float64 `json:"mean_ms"`
		P50  float64 `json:"p50_ms"`
		P90  float64 `json:"p90_ms"`
		P99  float64 `json:"p99_ms"`
		P999 float64 `json:"p999_ms"`
		Max  float64 `json:"max_ms"`
	}{ms(l.Min), ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max)})
}
