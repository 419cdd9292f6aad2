package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/livepeers"
)

func TestLiveFlagsValidate(t *testing.T) {
	tests := []struct {
		name             string
		f                liveFlags
		adminAddr, token string
		want             []string
	}{
		{name: "off", f: liveFlags{}, adminAddr: "127.0.0.1:9901"},
		{name: "ok", f: liveFlags{peersService: "gateway", peersPort: "http"}, adminAddr: ":9901", token: "/t"},
		{name: "loopback admin", f: liveFlags{peersService: "gateway", peersPort: "http"}, adminAddr: "127.0.0.1:9901", token: "/t",
			want: []string{`--live-peers-service (FLOTILLA_LIVE_PEERS_SERVICE): peers fetch each other on the admin port: --admin-addr "127.0.0.1:9901" must not be loopback`}},
		{name: "no token, no port", f: liveFlags{peersService: "gateway"}, adminAddr: ":9901",
			want: []string{"--admin-token-file is required", "--live-peers-port (FLOTILLA_LIVE_PEERS_PORT): required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errors.Join(tt.f.validate(tt.adminAddr, tt.token)...)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("validate() = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestPeers: the gateway Service's endpoints, this replica left out (by
// pod name, else by address), each at the admin port, once per address.
func TestPeers(t *testing.T) {
	eps := []discovery.Endpoint{
		{Addr: "10.0.0.1:8080", Pod: "gw-a"},
		{Addr: "10.0.0.2:8080", Pod: "gw-b", Draining: true},
		{Addr: "10.0.0.3:8080"},
		{Addr: "10.0.0.3:8080"},
		{Addr: "[fd00::4]:8080", Pod: "gw-d"},
		{Addr: "not an address"},
	}
	got := Peers(eps, "gw-a", "", "9901")
	want := []livepeers.Peer{{Name: "gw-b", URL: "http://10.0.0.2:9901"}, {Name: "10.0.0.3", URL: "http://10.0.0.3:9901"}, {Name: "gw-d", URL: "http://[fd00::4]:9901"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Peers() (-want +got):\n%s", diff)
	}
	if got := Peers(eps[:3], "", "10.0.0.3", "9901"); len(got) != 2 || got[1].Name != "gw-b" {
		t.Errorf("Peers(self by POD_IP) = %v, want gw-a and gw-b", got)
	}
}
