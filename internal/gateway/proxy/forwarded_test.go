package proxy

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

func TestSetForwarded(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name   string
		in     http.Header
		host   string
		remote string
		req    route.Request
		want   http.Header
	}{
		{name: "IPv6 peer quoted in brackets, https", host: "a.test", remote: "[2001:db8::1]:5000",
			req: route.Request{Peer: v6, Scheme: "https"},
			want: http.Header{"X-Forwarded-For": {"2001:db8::1"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"a.test"},
				"Forwarded": {`for="[2001:db8::1]";host=a.test;proto=https`}}},
		{name: "host with port is quoted", host: "a.test:8080", remote: "192.0.2.1:1",
			req: route.Request{Peer: v4, Scheme: "http"},
			want: http.Header{"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.test:8080"},
				"Forwarded": {`for=192.0.2.1;host="a.test:8080";proto=http`}}},
		{name: "untrusted: client values dropped", host: "a.test", remote: "192.0.2.1:1",
			in:  http.Header{"X-Forwarded-For": {"6.6.6.6"}, "X-Forwarded-Proto": {"https"}, "Forwarded": {"for=6.6.6.6"}},
			req: route.Request{Peer: v4, Scheme: "http"},
			want: http.Header{"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.test"},
				"Forwarded": {"for=192.0.2.1;host=a.test;proto=http"}}},
		{name: "trusted: invalid proto not believed", host: "a.test", remote: "192.0.2.1:1",
			in:  http.Header{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"gopher"}},
			req: route.Request{Peer: v4, PeerTrusted: true, Scheme: "http"},
			want: http.Header{"X-Forwarded-For": {"198.51.100.1, 192.0.2.1"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"a.test"},
				"Forwarded": {"for=192.0.2.1;host=a.test;proto=http"}}},
		{name: "unknown peer", host: "", remote: "pipe",
			req:  route.Request{Scheme: "http"},
			want: http.Header{"X-Forwarded-For": {"unknown"}, "X-Forwarded-Proto": {"http"}, "Forwarded": {"for=unknown;proto=http"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := http.Header{}
			setForwarded(out, &http.Request{Header: tt.in, Host: tt.host, RemoteAddr: tt.remote}, &tt.req)
			if diff := cmp.Diff(tt.want, out); diff != "" {
				t.Errorf("setForwarded() (-want +got):\n%s", diff)
			}
		})
	}
}
