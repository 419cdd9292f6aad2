package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// freeRange finds n consecutive free loopback ports.
func freeRange(t *testing.T, n int) PortRange {
	t.Helper()
	for base := 42000; base < 60000; base += 97 {
		ok := true
		for p := base; p < base+n && ok; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			return PortRange{Low: int32(base), High: int32(base + n - 1)}
		}
	}
	t.Fatal("no free port range")
	return PortRange{}
}

// TestPerGatewayServices: with a port range, the Lease holder gives every
// Gateway a Service of its own (the publish Service's selector, one port
// per listener port, each to a local port of the range), the gateway
// serves each Gateway's routes on its own local ports only (two
// catch-all routes of two Gateways never mix), the status carries the
// Gateway's own address, and a deleted Gateway's Service and ports go.
func TestPerGatewayServices(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway", Labels: map[string]string{"app.kubernetes.io/name": "gateway"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	two := gatewayObj()
	two.Name = "edge2"
	two.Spec.Listeners = append(two.Spec.Listeners, gwv1.Listener{Name: "alt", Port: 8080, Protocol: gwv1.HTTPProtocolType})
	onTwo := routeObj("shop", "on-two", "", ref("b", 1))
	onTwo.Spec.ParentRefs[0].Name = "edge2"
	onTwo.Spec.Hostnames = nil
	onOne := routeObj("shop", "on-one", "", ref("a", 1))
	onOne.Spec.Hostnames = nil
	// The gateway's own pods, as the publish Service's EndpointSlice lists
	// them: one ready, one terminating.
	pubSlice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway-x", Labels: map[string]string{discoveryv1.LabelServiceName: "gateway"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)}},
			{Addresses: []string{"10.244.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: new(false), Serving: new(true), Terminating: new(true)}}}}
	rng := freeRange(t, 4)
	var dyn *httpserver.Dynamic
	h := startWith(t, append(append([]runtime.Object{pub, pubSlice}, a.objects()...), b.objects()...),
		[]runtime.Object{class(), gatewayObj(), two, onOne, onTwo}, perGateway(t, rng, &dyn))
	ctx := context.Background()
	svcs := h.core.CoreV1().Services("shop")
	var svc1, svc2 *corev1.Service
	eventually(t, "both Services created", func() error {
		var err error
		if svc1, err = svcs.Get(ctx, serviceName("shop", "edge"), metav1.GetOptions{}); err != nil {
			return err
		}
		svc2, err = svcs.Get(ctx, serviceName("shop", "edge2"), metav1.GetOptions{})
		return err
	})
	for _, s := range []*corev1.Service{svc1, svc2} {
		if len(s.Spec.Selector) != 0 || s.Labels[labelManaged] != managedByValue {
			t.Errorf("Service %s: selector %v labels %v; want no selector (its EndpointSlices are written)", s.Name, s.Spec.Selector, s.Labels)
		}
	}
	target := func(s *corev1.Service, port int32) int {
		for _, p := range s.Spec.Ports {
			if p.Port == port {
				return p.TargetPort.IntValue()
			}
		}
		return 0
	}
	p1, p2, p3 := target(svc1, 80), target(svc2, 80), target(svc2, 8080)
	got := []int{p1, p2, p3}
	slices.Sort(got)
	if got[0] < int(rng.Low) || got[2] > int(rng.High) || got[0] == got[1] || got[1] == got[2] {
		t.Fatalf("local ports %v: want three distinct ports of %v", got, rng)
	}
	get := func(port int) (string, error) {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/x")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, body), nil
	}
	for port, want := range map[int]string{p1: "200 a /x", p2: "200 b /x", p3: "200 b /x"} {
		eventually(t, fmt.Sprintf("port %d serves its Gateway's route", port), func() error {
			if got, err := get(port); err != nil || got != want {
				return fmt.Errorf("%q, %v; want %q", got, err, want)
			}
			return nil
		})
	}
	// Its EndpointSlice lists the gateway's pods with their conditions, on
	// the local ports.
	eventually(t, "Service edge2 has the gateway's pods as endpoints", func() error {
		es, err := h.core.DiscoveryV1().EndpointSlices("shop").Get(ctx, svc2.Name+"-ipv4", metav1.GetOptions{})
		if err != nil {
			return err
		}
		var got []string
		for _, e := range es.Endpoints {
			got = append(got, fmt.Sprintf("%s ready=%v terminating=%v", e.Addresses[0], *e.Conditions.Ready, *e.Conditions.Terminating))
		}
		var ports []string
		for _, p := range es.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", *p.Name, *p.Port))
		}
		want := []string{"10.244.0.7 ready=false terminating=true", "10.244.0.9 ready=true terminating=false"}
		wantPorts := []string{fmt.Sprintf("l80:%d", p2), fmt.Sprintf("l8080:%d", p3)}
		if !slices.Equal(got, want) || !slices.Equal(ports, wantPorts) || es.Labels[discoveryv1.LabelServiceName] != svc2.Name ||
			len(es.OwnerReferences) != 1 || es.OwnerReferences[0].Name != svc2.Name {
			return fmt.Errorf("endpoints %q ports %q labels %v owners %v; want %q on %q, owned by the Service", got, ports, es.Labels, es.OwnerReferences, want, wantPorts)
		}
		return nil
	})
	// The API server gives the Service its address; the status follows.
	svc1.Spec.ClusterIP = "10.96.7.7"
	if _, err := svcs.Update(ctx, svc1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Gateway edge has its Service's address", func() error {
		g, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != "10.96.7.7" {
			return fmt.Errorf("addresses %+v", g.Status.Addresses)
		}
		return nil
	})
	// edge2 goes: its Service is deleted and its ports close.
	if err := h.gw.GatewayV1().Gateways("shop").Delete(ctx, "edge2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "edge2's Service deleted and its ports closed", func() error {
		if _, err := svcs.Get(ctx, serviceName("shop", "edge2"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Service: %v", err)
		}
		if open := dyn.Ports(); !slices.Equal(open, []int{p1}) {
			return fmt.Errorf("open ports %v, want [%d]", open, p1)
		}
		return nil
	})
	if got, err := get(p1); err != nil || !strings.HasPrefix(got, "200 a") {
		t.Errorf("edge after edge2 left: %q, %v", got, err)
	}
}

// perGateway sets the options of per-Gateway listeners on loopback ports
// of rng, served by the gateway through a Dynamic listener (stored in
// *dyn), with the publish Service shop/gateway.
func perGateway(t *testing.T, rng PortRange, dyn **httpserver.Dynamic) func(*Options, *gateway.Gateway) {
	return func(o *Options, g *gateway.Gateway) {
		d := httpserver.NewDynamic("127.0.0.1", nil)
		*dyn = d
		srv := &http.Server{Handler: g.Handler()}
		go srv.Serve(d)
		t.Cleanup(func() { srv.Close() })
		o.PublishAddresses, o.PublishService, o.Ports = nil, "shop/gateway", &rng
		o.Listen = func(ls []gatewayapi.Listener) error {
			ports := map[int]bool{}
			for _, l := range ls {
				ports[int(l.Port)] = l.TLS
			}
			return d.Set(context.Background(), ports)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	for in, ok := range map[string]bool{"20000-20999": true, "20000-20000": true, "80-90": false, "20000": false, "a-b": false, "30000-20000": false, "20000-70000": false, "": false} {
		if _, err := ParsePortRange(in); (err == nil) != ok {
			t.Errorf("ParsePortRange(%q): %v, want ok %v", in, err, ok)
		}
	}
}

func TestServiceName(t *testing.T) {
	long := strings.Repeat("n", 70)
	for _, tt := range []struct{ ns, name string }{{"shop", "edge"}, {"a.b", "c.d"}, {long, long}} {
		got := serviceName(tt.ns, tt.name)
		if len(got) > 63 || strings.ContainsAny(got, ".") || got[0] < 'a' || got[len(got)-1] == '-' {
			t.Errorf("serviceName(%q, %q) = %q: not a DNS-1035 label", tt.ns, tt.name, got)
		}
	}
	for _, pair := range [][4]string{{long, long + "1", long, long + "2"}, {"a-b", "c", "a", "b-c"}, {"a", "b.c", "a", "b-c"}} {
		if serviceName(pair[0], pair[1]) == serviceName(pair[2], pair[3]) {
			t.Errorf("Gateways %s/%s and %s/%s get the same Service name", pair[0], pair[1], pair[2], pair[3])
		}
	}
}

// TestPerGatewaySliceOfAGoneFamily: when the gateway's pods lose an
// address family (the publish Service's IPv6 slice goes), the Gateway
// Service's slice of that family goes too, rather than keeping pod
// addresses that no longer serve (or serve another pod) for kube-proxy.
func TestPerGatewaySliceOfAGoneFamily(t *testing.T) {
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway", Labels: map[string]string{"app.kubernetes.io/name": "gateway"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	ready := discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)}
	v4 := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway-v4", Labels: map[string]string{discoveryv1.LabelServiceName: "gateway"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.9"}, Conditions: ready}}}
	v6 := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway-v6", Labels: map[string]string{discoveryv1.LabelServiceName: "gateway"}},
		AddressType: discoveryv1.AddressTypeIPv6, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"fd00::9"}, Conditions: ready}}}
	rng := freeRange(t, 2)
	var dyn *httpserver.Dynamic
	h := startWith(t, []runtime.Object{pub, v4, v6}, []runtime.Object{class(), gatewayObj()}, perGateway(t, rng, &dyn))
	ctx := context.Background()
	es := h.core.DiscoveryV1().EndpointSlices("shop")
	name := serviceName("shop", "edge")
	eventually(t, "both families' slices written", func() error {
		for _, f := range []string{"-ipv4", "-ipv6"} {
			if _, err := es.Get(ctx, name+f, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err := es.Delete(ctx, "gateway-v6", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the IPv6 slice of the Gateway's Service deleted", func() error {
		if s, err := es.Get(ctx, name+"-ipv6", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v): %+v", err, s)
		}
		if _, err := es.Get(ctx, name+"-ipv4", metav1.GetOptions{}); err != nil {
			return err
		}
		return nil
	})
}

// TestPerGatewaySliceRestored: a Gateway Service's EndpointSlice edited or
// deleted by someone else is put back, without waiting for the gateway's
// pods to change (the slices are watched, not remembered).
func TestPerGatewaySliceRestored(t *testing.T) {
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway", Labels: map[string]string{"app.kubernetes.io/name": "gateway"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	ready := discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)}
	v4 := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway-v4", Labels: map[string]string{discoveryv1.LabelServiceName: "gateway"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.9"}, Conditions: ready}}}
	rng := freeRange(t, 2)
	var dyn *httpserver.Dynamic
	h := startWith(t, []runtime.Object{pub, v4}, []runtime.Object{class(), gatewayObj()}, perGateway(t, rng, &dyn))
	ctx := context.Background()
	es := h.core.DiscoveryV1().EndpointSlices("shop")
	name := serviceName("shop", "edge") + "-ipv4"
	lists := func() error {
		s, err := es.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(s.Endpoints) != 1 || s.Endpoints[0].Addresses[0] != "10.244.0.9" {
			return fmt.Errorf("endpoints %+v, want the gateway pod 10.244.0.9", s.Endpoints)
		}
		return nil
	}
	eventually(t, "the slice written", lists)
	s, err := es.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoints[0].Addresses = []string{"10.244.0.66"}
	if _, err := es.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edited slice put back", lists)
	if err := es.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted slice put back", lists)
}
