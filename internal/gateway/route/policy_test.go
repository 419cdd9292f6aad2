package route

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

func TestIPPolicyAdmits(t *testing.T) {
	many := []string{"2001:db8:ffff::/48"}
	for i := range 40 {
		many = append(many, fmt.Sprintf("198.51.%d.0/24", i*3))
	}
	many = append(many, "198.51.0.0/16") // covers the /24s
	for _, tc := range []struct {
		name        string
		allow, deny []string
		addr        string
		want        bool
	}{
		{"allow list admits a member", []string{"10.0.0.0/8"}, nil, "10.1.2.3", true},
		{"allow list refuses the rest", []string{"10.0.0.0/8"}, nil, "11.0.0.1", false},
		{"single address is /32", []string{"192.0.2.7"}, nil, "192.0.2.7", true},
		{"single address is only itself", []string{"192.0.2.7"}, nil, "192.0.2.8", false},
		{"deny wins over allow", []string{"10.0.0.0/8"}, []string{"10.0.0.1"}, "10.0.0.1", false},
		{"deny only admits the rest", nil, []string{"10.0.0.0/8"}, "192.0.2.1", true},
		{"deny only refuses members", nil, []string{"10.0.0.0/8"}, "10.9.9.9", false},
		{"IPv4-mapped client is IPv4", []string{"10.0.0.0/8"}, nil, "::ffff:10.0.0.1", true},
		{"IPv4-mapped entry is IPv4", []string{"::ffff:10.0.0.0/104"}, nil, "10.0.0.1", true},
		{"mapped deny applies to IPv4", nil, []string{"::ffff:10.0.0.1"}, "10.0.0.1", false},
		{"IPv6 allow", []string{"2001:db8::/32"}, nil, "2001:db8::1", true},
		{"IPv6 outside", []string{"2001:db8::/32"}, nil, "2001:db9::1", false},
		{"IPv4 list does not hold IPv6", []string{"0.0.0.0/0"}, nil, "::1", false},
		{"IPv6 list does not hold IPv4", []string{"::/0"}, nil, "127.0.0.1", false},
		{"unknown address refused by an allow list", []string{"0.0.0.0/0", "::/0"}, nil, "", false},
		{"unknown address passes a deny list", nil, []string{"0.0.0.0/0"}, "", true},
		{"long list: covered /24", many, nil, "198.51.3.9", true},
		{"long list: within the /16", many, nil, "198.51.200.1", true},
		{"long list: outside", many, nil, "198.52.0.1", false},
		{"long list: IPv6", many, nil, "2001:db8:ffff::9", true},
		{"long list: before all", many, nil, "1.1.1.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := compileIPRules(&config.IPRules{Allow: tc.allow, Deny: tc.deny})
			var a netip.Addr
			if tc.addr != "" {
				a = netip.MustParseAddr(tc.addr)
			}
			if got := p.admits(a); got != tc.want {
				t.Errorf("admits(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

func TestPrefixSetDropsCovered(t *testing.T) {
	s := newPrefixSet([]string{"10.1.0.0/16", "10.0.0.0/8", "10.0.0.0/8", "10.2.3.4", "192.0.2.0/24", "2001:db8::/32", "2001:db8:1::/48"})
	if len(s.v4) != 2 || len(s.v6) != 1 || s.v4[0] != (v4Range{10 << 24, 10<<24 | 1<<24 - 1}) {
		t.Errorf("prefixSet = %v %v, want 10/8, 192.0.2/24 and 2001:db8::/32", s.v4, s.v6)
	}
}

// TestPrefixSetMatchesScan compares the binary search with a scan of
// every entry over many addresses.
func TestPrefixSetMatchesScan(t *testing.T) {
	var entries []string
	var prefixes []netip.Prefix
	for i := range 300 {
		e := fmt.Sprintf("10.%d.%d.0/%d", i%17, (i*37)%256, 16+i%13)
		entries = append(entries, e)
		p, _ := config.ParseIPEntry(e)
		prefixes = append(prefixes, p)
	}
	s := newPrefixSet(entries)
	for i := range 20000 {
		a := netip.AddrFrom4([4]byte{10, byte(i % 19), byte(i * 7), byte(i * 13)})
		want := false
		for _, p := range prefixes {
			want = want || p.Contains(a)
		}
		if got := s.contains(a); got != want {
			t.Fatalf("contains(%s) = %v, want %v", a, got, want)
		}
	}
}

func TestPrefixSetMatchesScanIPv6(t *testing.T) {
	var entries []string
	var prefixes []netip.Prefix
	for i := range 300 {
		e := fmt.Sprintf("2001:db8:%x:%x::/%d", i%17, (i*37)%4096, 40+i%30)
		entries = append(entries, e)
		p, _ := config.ParseIPEntry(e)
		prefixes = append(prefixes, p)
	}
	s := newPrefixSet(entries)
	for i := range 20000 {
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8:%x:%x::%x", i%19, (i*7)%4096, i))
		want := false
		for _, p := range prefixes {
			want = want || p.Contains(a)
		}
		if got := s.contains(a); got != want {
			t.Fatalf("contains(%s) = %v, want %v", a, got, want)
		}
	}
}

func BenchmarkIPPolicy(b *testing.B) {
	for _, n := range []int{1, 8, 1000} {
		var allow []string
		for i := range n {
			allow = append(allow, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), fmt.Sprintf("2001:db8:%x::/48", i))
		}
		p := compileIPRules(&config.IPRules{Allow: allow, Deny: []string{"10.0.0.1", "2001:db8::1"}})
		for _, a := range []netip.Addr{netip.MustParseAddr("10.0.5.9"), netip.MustParseAddr("2001:db8:5::9")} {
			b.Run(fmt.Sprintf("allow-%d/%s", n, a), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p.admits(a)
				}
			})
		}
	}
}

func TestCORSOriginMatch(t *testing.T) {
	for _, tc := range []struct {
		allow  []string
		origin string
		want   bool
	}{
		{[]string{"https://app.example.com"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "HTTPS://APP.example.com", true},
		{[]string{"https://app.example.com"}, "http://app.example.com", false},
		{[]string{"https://app.example.com"}, "https://app.example.com:8443", false},
		{[]string{"https://app.example.com:443"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "https://app.example.com.evil.test", false},
		{[]string{"https://app.example.com"}, "null", false},
		{[]string{"https://*.example.com"}, "https://a.example.com", true},
		{[]string{"https://*.example.com"}, "https://a.b.example.com", true},
		{[]string{"https://*.example.com"}, "https://example.com", false},
		{[]string{"https://*.example.com"}, "https://.example.com", false},
		{[]string{"https://*.example.com"}, "https://a..example.com", false},
		{[]string{"https://*.example.com"}, "https://evilexample.com", false},
		{[]string{"https://*.example.com"}, "https://evil.test/.example.com", false},
		{[]string{"https://*.example.com"}, "https://evil.test#.example.com", false},
		{[]string{"https://*.example.com"}, "https://u@a.example.com", false},
		{[]string{"https://*.example.com"}, "http://a.example.com", false},
		{[]string{"https://*.example.com"}, "https://a.example.com:8443", false},
		{[]string{"https://*.example.com:8443"}, "https://a.example.com:8443", true},
		{[]string{"https://*.example.com"}, "a.example.com", false},
		{[]string{"https://*.example.com"}, "", false},
		{[]string{"*"}, "null", true},
		{[]string{"*"}, "https://anything.test", true},
	} {
		c := &config.CORS{AllowOrigins: tc.allow}
		if got := compileCORS(c, nil).allows(tc.origin); got != tc.want {
			t.Errorf("allowOrigins %q: allows(%q) = %v, want %v", tc.allow, tc.origin, got, tc.want)
		}
	}
}

// FuzzOriginPattern: any pattern ParseOrigin accepts compiles, and an
// origin it matches is one a browser could send for it: same scheme, the
// pattern's host or a subdomain of its wildcard. Malformed patterns are
// refused, never panic.
func FuzzOriginPattern(f *testing.F) {
	for _, s := range []string{"*", "https://*.example.com", "http://a.test:8080", "https://[::1]:1", "https://*.", "null", "://", "https://a/b"} {
		f.Add(s, "https://a.example.com")
	}
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		o, err := config.ParseOrigin(pattern)
		if err != nil {
			return
		}
		p := compileCORS(&config.CORS{AllowOrigins: []string{pattern}}, nil)
		if !p.allows(origin) || o.Any {
			return
		}
		lo := []byte(origin)
		for i, c := range lo {
			if c >= 'A' && c <= 'Z' {
				lo[i] = c + 'a' - 'A'
			}
		}
		want := o.Scheme + "://"
		if len(lo) < len(want) || string(lo[:len(want)]) != want {
			t.Fatalf("pattern %q allowed %q: another scheme", pattern, origin)
		}
		rest := string(lo[len(want):])
		if o.Port != "" {
			rest = rest[:len(rest)-len(o.Port)-1]
		}
		if !o.Wildcard && rest != o.Host || o.Wildcard && !dnsLabels(rest[:len(rest)-len(o.Host)]) {
			t.Fatalf("pattern %q allowed %q", pattern, origin)
		}
	})
}

// TestPreflightMatchesCORSRoute: a preflight OPTIONS reaches a cors route
// whose methods leave OPTIONS out; a plain OPTIONS, or a preflight to a
// route without cors, still gets 405.
func TestPreflightMatchesCORSRoute(t *testing.T) {
	tb := table(t, `
- {name: api, match: {path: {value: /api}, methods: [GET, POST]}, backends: [{name: b}], cors: {allowOrigins: ["https://app.test"]}}
- {name: plain, match: {path: {value: /plain}, methods: [GET]}, backends: [{name: b}]}
`)
	for _, tc := range []struct {
		name, path string
		headers    map[string]string
		want       string // route name, "" for none
	}{
		{"preflight", "/api", map[string]string{"Origin": "https://app.test", "Access-Control-Request-Method": "POST"}, "api"},
		{"preflight from another origin still matches (the filter answers)", "/api", map[string]string{"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"}, "api"},
		{"OPTIONS without Access-Control-Request-Method", "/api", map[string]string{"Origin": "https://app.test"}, ""},
		{"OPTIONS without Origin", "/api", map[string]string{"Access-Control-Request-Method": "POST"}, ""},
		{"no cors on the route", "/plain", map[string]string{"Origin": "https://app.test", "Access-Control-Request-Method": "GET"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodOptions, tc.path, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got := ""
			if rt := tb.Match(r, tc.path); rt != nil {
				got = rt.Name
			}
			if got != tc.want {
				t.Errorf("Match() = %q, want %q", got, tc.want)
			}
			if tc.want == "" && tb.Allow(r, tc.path) == "" {
				t.Errorf("Allow() = \"\", want the route's methods (405)")
			}
		})
	}
}
