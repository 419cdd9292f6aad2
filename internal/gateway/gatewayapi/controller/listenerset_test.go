package controller

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// TestListenerSetThroughController: with per-Gateway listeners, a
// ListenerSet the Gateway allows adds a listener on a port the Gateway
// does not have; the Gateway's Service gets that port, real requests on
// both ports reach the route attached to the ListenerSet, and the Lease
// holder writes the ListenerSet's status, the Gateway's
// attachedListenerSets and the route's parent of kind ListenerSet. A
// ListenerSet of a namespace the Gateway does not allow is NotAllowed,
// with a Warning Event on it.
func TestListenerSetThroughController(t *testing.T) {
	a := newUpstream(t, "a")
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	gw := gatewayObj()
	gw.Spec.Listeners[0].Hostname = new(gwv1.Hostname("gw.test"))
	same := gwv1.NamespacesFromSame
	gw.Spec.AllowedListeners = &gwv1.AllowedListeners{Namespaces: &gwv1.ListenerNamespaces{From: &same}}
	set := func(ns, name string) *gwv1.ListenerSet {
		return &gwv1.ListenerSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1}, Spec: gwv1.ListenerSetSpec{
			ParentRef: gwv1.ParentGatewayReference{Name: "edge", Namespace: new(gwv1.Namespace("shop"))},
			Listeners: []gwv1.ListenerEntry{
				{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: new(gwv1.Hostname("ls.test"))},
				{Name: "alt", Port: 8080, Protocol: gwv1.HTTPProtocolType, Hostname: new(gwv1.Hostname("alt.test"))},
			}}}
	}
	more, denied := set("shop", "more"), set("other", "denied")
	route := routeObj("shop", "on-set", "", ref("a", 1))
	route.Spec.Hostnames = nil
	route.Spec.ParentRefs = []gwv1.ParentReference{{Kind: new(gwv1.Kind("ListenerSet")), Name: "more"}}
	rng := freeRange(t, 4)
	var dyn *httpserver.Dynamic
	h := startWith(t, append([]runtime.Object{pub}, a.objects()...), []runtime.Object{class(), gw, more, denied, route}, perGateway(t, rng, &dyn))
	ctx := context.Background()
	var svc *corev1.Service
	local := map[int32]int{}
	eventually(t, "the Gateway's Service has the ListenerSet's port", func() error {
		var err error
		if svc, err = h.core.CoreV1().Services("shop").Get(ctx, serviceName("shop", "edge"), metav1.GetOptions{}); err != nil {
			return err
		}
		for _, p := range svc.Spec.Ports {
			local[p.Port] = p.TargetPort.IntValue()
		}
		if local[80] == 0 || local[8080] == 0 {
			return fmt.Errorf("ports %+v, want 80 and 8080", svc.Spec.Ports)
		}
		return nil
	})
	get := func(port int, host string) (string, error) {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/x", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, body), nil
	}
	for _, c := range []struct {
		port int
		host string
		want string
	}{
		{local[80], "ls.test", "200 a /x"},
		{local[8080], "alt.test", "200 a /x"},
	} {
		eventually(t, fmt.Sprintf("%s on local port %d", c.host, c.port), func() error {
			if got, err := get(c.port, c.host); err != nil || got != c.want {
				return fmt.Errorf("%q, %v; want %q", got, err, c.want)
			}
			return nil
		})
	}
	// The Gateway's own listener has no route: the ListenerSet's route
	// is not served on its hostname.
	if got, err := get(local[80], "gw.test"); err != nil || got[:3] != "404" {
		t.Errorf("gw.test: %q, %v; want 404", got, err)
	}
	eventually(t, "status", func() error {
		ls, err := h.gw.GatewayV1().ListenerSets("shop").Get(ctx, "more", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if condition(ls.Status.Conditions, "Accepted") != "True/Accepted" || condition(ls.Status.Conditions, "Programmed") != "True/Programmed" {
			return fmt.Errorf("ListenerSet conditions %+v", ls.Status.Conditions)
		}
		if len(ls.Status.Listeners) != 2 || ls.Status.Listeners[0].AttachedRoutes != 1 || ls.Status.Listeners[1].AttachedRoutes != 1 {
			return fmt.Errorf("ListenerSet listeners %+v", ls.Status.Listeners)
		}
		d, err := h.gw.GatewayV1().ListenerSets("other").Get(ctx, "denied", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if condition(d.Status.Conditions, "Accepted") != "False/NotAllowed" || condition(d.Status.Conditions, "Programmed") != "False/NotAllowed" {
			return fmt.Errorf("denied conditions %+v", d.Status.Conditions)
		}
		g, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if g.Status.AttachedListenerSets == nil || *g.Status.AttachedListenerSets != 1 || len(g.Status.Listeners) != 1 {
			return fmt.Errorf("Gateway attachedListenerSets %v, listeners %d", g.Status.AttachedListenerSets, len(g.Status.Listeners))
		}
		r, err := h.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "on-set", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(r.Status.Parents) != 1 || r.Status.Parents[0].ParentRef.Kind == nil || *r.Status.Parents[0].ParentRef.Kind != "ListenerSet" ||
			condition(r.Status.Parents[0].Conditions, "Accepted") != "True/Accepted" {
			return fmt.Errorf("route parents %+v", r.Status.Parents)
		}
		evs, err := h.core.CoreV1().Events("other").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "ListenerSet" && e.InvolvedObject.Name == "denied" && e.Reason == "ListenerSetRejected" {
				return nil
			}
		}
		return fmt.Errorf("no ListenerSetRejected Event on other/denied among %d events", len(evs.Items))
	})
}

// TestListenerSetPortsAfterTheGateways: local ports go to the Gateway's
// own listener ports before its ListenerSets' (whatever the port
// numbers), so ListenerSets that take the range's last free ports never
// leave the Gateway's own listeners without one.
func TestListenerSetPortsAfterTheGateways(t *testing.T) {
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	gw := gatewayObj()
	gw.Spec.Listeners[0].Port = 9000
	same := gwv1.NamespacesFromSame
	gw.Spec.AllowedListeners = &gwv1.AllowedListeners{Namespaces: &gwv1.ListenerNamespaces{From: &same}}
	set := &gwv1.ListenerSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "more", Generation: 1}, Spec: gwv1.ListenerSetSpec{
		ParentRef: gwv1.ParentGatewayReference{Name: "edge", Namespace: new(gwv1.Namespace("shop"))},
		Listeners: []gwv1.ListenerEntry{{Name: "low", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: new(gwv1.Hostname("ls.test"))}}}}
	rng := freeRange(t, 1) // one local port for two listener ports
	var dyn *httpserver.Dynamic
	h := startWith(t, []runtime.Object{pub}, []runtime.Object{class(), gw, set}, perGateway(t, rng, &dyn))
	ctx := context.Background()
	eventually(t, "the Gateway's own listener port has the local port", func() error {
		svc, err := h.core.CoreV1().Services("shop").Get(ctx, serviceName("shop", "edge"), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9000 || svc.Spec.Ports[0].TargetPort.IntValue() != int(rng.Low) {
			return fmt.Errorf("ports %+v, want 9000 on %d only", svc.Spec.Ports, rng.Low)
		}
		return nil
	})
}
