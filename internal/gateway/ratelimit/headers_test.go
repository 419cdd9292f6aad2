package ratelimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSetHeaders(t *testing.T) {
	ms := time.Millisecond
	type call struct {
		name string
		lim  Limit
		d    Decision
	}
	tests := []struct {
		name  string
		calls []call
		want  http.Header
	}{
		{
			name: "allowed",
			calls: []call{{"api", Limit{Requests: 100, Per: time.Minute, Burst: 100},
				Decision{Allowed: true, Remaining: 42, Reset: 34800 * ms}}},
			want: http.Header{
				"Ratelimit-Policy": {`"api";q=100;w=60`},
				"Ratelimit":        {`"api";r=42;t=35`},
			},
		},
		{
			name: "refused: Retry-After rounded up",
			calls: []call{{"api", Limit{Requests: 10, Per: time.Second, Burst: 10},
				Decision{Remaining: 0, RetryAfter: 1100 * ms, Reset: 2 * time.Second}}},
			want: http.Header{
				"Ratelimit-Policy": {`"api";q=10;w=1`},
				"Ratelimit":        {`"api";r=0;t=2`},
				"Retry-After":      {"2"},
			},
		},
		{
			name: "refused: Retry-After at least 1",
			calls: []call{{"api", Limit{Requests: 1000, Per: time.Second, Burst: 1000},
				Decision{RetryAfter: time.Millisecond, Reset: 1 * time.Millisecond}}},
			want: http.Header{
				"Ratelimit-Policy": {`"api";q=1000;w=1`},
				"Ratelimit":        {`"api";r=0;t=1`},
				"Retry-After":      {"1"},
			},
		},
		{
			name: "burst other than requests is a vendor parameter",
			calls: []call{{"login", Limit{Requests: 5, Per: time.Hour, Burst: 2},
				Decision{Allowed: true, Remaining: 1, Reset: 12 * time.Minute}}},
			want: http.Header{
				"Ratelimit-Policy": {`"login";q=5;w=3600;flotilla-burst=2`},
				"Ratelimit":        {`"login";r=1;t=720`},
			},
		},
		{
			name: "full bucket resets now",
			calls: []call{{"api", Limit{Requests: 1, Per: time.Second, Burst: 1},
				Decision{Allowed: true, Remaining: 0, Reset: 0}}},
			want: http.Header{
				"Ratelimit-Policy": {`"api";q=1;w=1`},
				"Ratelimit":        {`"api";r=0;t=0`},
			},
		},
		{
			name: "two limits: one list each, the larger Retry-After",
			calls: []call{
				{"burst", Limit{Requests: 10, Per: time.Second, Burst: 10}, Decision{RetryAfter: 300 * ms, Reset: time.Second}},
				{"daily", Limit{Requests: 1000, Per: 24 * time.Hour, Burst: 1000}, Decision{RetryAfter: 90 * time.Second, Reset: time.Hour}},
				{"other", Limit{Requests: 1, Per: time.Second, Burst: 1}, Decision{RetryAfter: 500 * ms, Reset: time.Second}},
			},
			want: http.Header{
				"Ratelimit-Policy": {`"burst";q=10;w=1, "daily";q=1000;w=86400, "other";q=1;w=1`},
				"Ratelimit":        {`"burst";r=0;t=1, "daily";r=0;t=3600, "other";r=0;t=1`},
				"Retry-After":      {"90"},
			},
		},
		{
			name: "name escaped as an sf-string",
			calls: []call{{"a\"b\\c\nd", Limit{Requests: 1, Per: time.Second, Burst: 1},
				Decision{Allowed: true}}},
			want: http.Header{
				"Ratelimit-Policy": {`"a\"b\\c?d";q=1;w=1`},
				"Ratelimit":        {`"a\"b\\c?d";r=0;t=0`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, c := range tt.calls {
				SetHeaders(h, c.name, c.lim, c.d)
			}
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("SetHeaders() header (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSetHeadersMatchesLocal ties the fields to a real decision: after a
// burst of 3 at a 3-per-minute limit, the next request is refused for 20 s.
func TestSetHeadersMatchesLocal(t *testing.T) {
	l := NewLocal(10)
	lim := Limit{Requests: 3, Per: time.Minute, Burst: 3}
	var d Decision
	for range 4 {
		d = l.Allow("k", lim, t0)
	}
	h := http.Header{}
	SetHeaders(h, "api", lim, d)
	want := http.Header{
		"Ratelimit-Policy": {`"api";q=3;w=60`},
		"Ratelimit":        {`"api";r=0;t=60`},
		"Retry-After":      {"20"},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
}

// FuzzSetHeaders: whatever the name, each field is one sf-string item of
// printable ASCII whose unescaped value is the name (bytes it cannot
// carry replaced), followed by the parameters.
func FuzzSetHeaders(f *testing.F) {
	for _, s := range []string{"api", "", `a"b`, `\`, "tab\there", "é", "a, b;q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		h := http.Header{}
		SetHeaders(h, name, Limit{Requests: 1, Per: time.Second, Burst: 1}, Decision{Allowed: true})
		v := h.Get(PolicyHeader)
		if len(v) < 2 || v[0] != '"' {
			t.Fatalf("RateLimit-Policy = %q, want a quoted name first", v)
		}
		var got []byte
		i := 1
		for ; i < len(v) && v[i] != '"'; i++ {
			c := v[i]
			if c < 0x20 || c > 0x7e {
				t.Fatalf("RateLimit-Policy = %q holds byte %#x", v, c)
			}
			if c == '\\' {
				i++
				if i == len(v) || (v[i] != '"' && v[i] != '\\') {
					t.Fatalf("RateLimit-Policy = %q: bad escape", v)
				}
				c = v[i]
			}
			got = append(got, c)
		}
		if rest := v[min(i+1, len(v)):]; rest != ";q=1;w=1" {
			t.Fatalf("RateLimit-Policy = %q: after the name %q, want %q", v, rest, ";q=1;w=1")
		}
		want := []byte(name)
		for j, c := range want {
			if c < 0x20 || c > 0x7e {
				want[j] = '?'
			}
		}
		if string(got) != string(want) {
			t.Fatalf("name %q came out as %q, want %q", name, got, want)
		}
	})
}
