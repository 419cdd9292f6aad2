package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
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

// TestLivePeersThroughEndpointSlices wires the merge as `flotilla
// gateway --live-peers-service` does: two real gateways whose admin APIs
// listen on the same port of two loopback addresses (as pods share a
// port on their own IPs), the gateway Service's EndpointSlice in a fake
// API server naming both pods; replica a finds b there, leaves itself
// out, and its page counts both. When b leaves the slice it is no longer
// a peer.
func TestLivePeersThroughEndpointSlices(t *testing.T) {
	token := []byte("0123456789abcdef0123456789abcdef")
	var lnA, lnB net.Listener
	for range 20 { // a port free on both addresses
		a, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(a.Addr().(*net.TCPAddr).Port)))
		if err != nil {
			a.Close()
			continue
		}
		lnA, lnB = a, b
		break
	}
	if lnA == nil {
		t.Skip("no port free on both 127.0.0.1 and 127.0.0.2")
	}
	cfg, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: b, addresses: [\"127.0.0.1:1\"]}]\nroutes: [{name: r, backends: [{name: b}]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string, ln net.Listener) *gateway.Gateway {
		gw, err := gateway.New(cfg, gateway.Options{Registry: prometheus.NewRegistry(), Replica: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(gw.Close)
		srv := &http.Server{Handler: admin.Secure(gw.AdminHandler(), admin.Options{Token: token}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return gw
	}
	gwA := start("gw-a", lnA)
	start("gw-b", lnB)
	slice := func(ips ...string) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "gateway-x", Labels: map[string]string{discoveryv1.LabelServiceName: "gateway"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("http"), Port: ptrTo(int32(8080))}},
		}
		for i, ip := range ips {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: []string{"gw-a", "gw-b"}[i]}})
		}
		return es
	}
	client := fake.NewClientset(slice("127.0.0.1", "127.0.0.2"))
	disc := discovery.New(discovery.Options{Connect: func() (discovery.Client, string, error) {
		return discoverytest.Client{Interface: client}, "ns", nil
	}})
	defer disc.Close()
	src, stop, err := startLivePeers(liveFlags{peersService: "gateway", peersPort: "http"}, lnA.Addr().String(), token, "gw-a",
		func(string) string { return "" }, gwA, disc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	discoverytest.Eventually(t, "both replicas merged", func() error {
		s := src.LiveSnapshot()
		if !slices.Equal(s.Replicas, []string{"gw-a", "gw-b"}) || len(s.Missing) != 0 {
			return fmt.Errorf("replicas %v, missing %v", s.Replicas, s.Missing)
		}
		return nil
	})
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), slice("127.0.0.1"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "b no longer a peer", func() error {
		if s := src.LiveSnapshot(); !slices.Equal(s.Replicas, []string{"gw-a"}) || len(s.Missing) != 0 {
			return fmt.Errorf("replicas %v, missing %v", s.Replicas, s.Missing)
		}
		return nil
	})
}

func ptrTo[T any](v T) *T { return &v }
