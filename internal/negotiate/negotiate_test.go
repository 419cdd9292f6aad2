package negotiate

import (
	"net/http/httptest"
	"testing"
)

func TestOf(t *testing.T) {
	const chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
	tests := []struct {
		name, ua, accept string
		want             Format
	}{
		{"curl", "curl/8.5.0", "*/*", Text},
		{"wget", "Wget/1.21.3", "*/*", Text},
		{"httpie", "HTTPie/3.2.2", "application/json, */*;q=0.5", JSON},
		{"httpie default accept", "HTTPie/3.2.2", "*/*", Text},
		{"lynx", "Lynx/2.9.0dev.12 libwww-FM/2.14", "text/html, text/plain, */*;q=0.01", Text},
		{"links", "Links (2.28; Linux x86_64; text)", "*/*", Text},
		{"chrome", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120", chrome, HTML},
		{"firefox", "Mozilla/5.0 Firefox/121.0", "text/html,application/xhtml+xml,*/*;q=0.8", HTML},
		{"curl asking for json", "curl/8.5.0", "application/json", JSON},
		{"json preferred over html", "Mozilla/5.0", "text/html;q=0.5, application/json", JSON},
		{"html preferred over json", "Mozilla/5.0", "text/html, application/json;q=0.5", HTML},
		{"json refused with q=0", "curl/8", "application/json;q=0", Text},
		{"no headers", "", "", Text},
		{"malformed accept", "Mozilla/5.0", ";;;,text/html;q=zz,", Text},
		{"malformed q is zero", "", "application/json;q=2", Text},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("User-Agent", tt.ua)
			r.Header.Set("Accept", tt.accept)
			if got := Of(r); got != tt.want {
				t.Errorf("Of(ua=%q, accept=%q) = %v, want %v", tt.ua, tt.accept, got, tt.want)
			}
		})
	}
}

func FuzzOf(f *testing.F) {
	f.Add("curl/8", "*/*")
	f.Add("Mozilla/5.0", "text/html;q=0.9,application/json;q=0.95")
	f.Fuzz(func(t *testing.T, ua, accept string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("User-Agent", ua)
		r.Header.Set("Accept", accept)
		if f := Of(r); f < Text || f > JSON {
			t.Fatalf("Of() = %d, out of range", f)
		}
	})
}
