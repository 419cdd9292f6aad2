package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// eventually polls cond until it returns nil, for up to 30 s: a bound for
// a loaded machine, not a speed claim.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// upstream is a real HTTP server named name, behind Service name in
// namespace shop with one EndpointSlice.
type upstream struct {
	name string
	srv  *httptest.Server
}

func newUpstream(t *testing.T, name string) *upstream {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return &upstream{name: name, srv: srv}
}

func (u *upstream) objects() []runtime.Object {
	host, portStr, _ := net.SplitHostPort(u.srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	return []runtime.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: u.name}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(int32(port))}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: u.name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: u.name}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(port))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}}},
	}
}

func class() *gwv1.GatewayClass {
	return &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "flotilla", Generation: 1}, Spec: gwv1.GatewayClassSpec{ControllerName: "flotilla.dev/gateway-controller"}}
}

func gatewayObj() *gwv1.Gateway {
	return &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge", Generation: 1}, Spec: gwv1.GatewaySpec{GatewayClassName: "flotilla",
		Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}}
}

func routeObj(ns, name, host string, refs ...gwv1.HTTPBackendRef) *gwv1.HTTPRoute {
	gwNS := gwv1.Namespace("shop")
	return &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1}, Spec: gwv1.HTTPRouteSpec{
		CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge", Namespace: &gwNS}}},
		Hostnames:       []gwv1.Hostname{gwv1.Hostname(host)},
		Rules:           []gwv1.HTTPRouteRule{{BackendRefs: refs}}}}
}

func ref(svc string, weight int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc), Port: new(gwv1.PortNumber(80))}, Weight: &weight}}
}

type harness struct {
	core *fake.Clientset
	gw   *gwfake.Clientset
	srv  *httptest.Server
}

// start runs a gateway with Kubernetes discovery and the Gateway API
// controller against fake API servers holding the objects.
func start(t *testing.T, coreObjs, gwObjs []runtime.Object) *harness {
	t.Helper()
	return startWith(t, coreObjs, gwObjs, nil)
}

// startWith is start with more options: setOpts is given the gateway.
func startWith(t *testing.T, coreObjs, gwObjs []runtime.Object, setOpts func(*Options, *gateway.Gateway)) *harness {
	t.Helper()
	core := fake.NewClientset(coreObjs...)
	// The simple tracker: v1.6.3's NewClientset (field-managed) answers
	// "no matches for gateway.networking.k8s.io/v1, Resource=gateways".
	// Objects are created through the typed v1 client, so they are filed
	// under the version the controller reads.
	gwc := gwfake.NewSimpleClientset() //nolint:staticcheck // see above
	requireRouteParents(gwc)
	for _, o := range gwObjs {
		var err error
		ctx := context.Background()
		switch o := o.(type) {
		case *gwv1.GatewayClass:
			_, err = gwc.GatewayV1().GatewayClasses().Create(ctx, o, metav1.CreateOptions{})
		case *gwv1.Gateway:
			_, err = gwc.GatewayV1().Gateways(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gwv1.HTTPRoute:
			_, err = gwc.GatewayV1().HTTPRoutes(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gwv1.ReferenceGrant:
			_, err = gwc.GatewayV1().ReferenceGrants(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gwv1.BackendTLSPolicy:
			_, err = gwc.GatewayV1().BackendTLSPolicies(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *gwv1.ListenerSet:
			_, err = gwc.GatewayV1().ListenerSets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("unknown object %T", o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	disc := discovery.New(discovery.Options{Connect: func() (discovery.Client, string, error) {
		return discoverytest.Client{Interface: core}, "shop", nil
	}})
	t.Cleanup(disc.Close)
	cfg, err := config.Parse([]byte("apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: healthz, match: {path: {type: Exact, value: /healthz}}, directResponse: {status: 200}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Endpoints: disc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	opts := Options{Client: kubeshared.ClientsOf(core), GatewayClient: GatewayClientOf(gwc), SecretDir: filepath.Join(t.TempDir(), "secrets"),
		Apply:            func(x *gateway.Extra) error { return g.SetExtraPart("gatewayapi", x) },
		PublishAddresses: []string{"203.0.113.7"}, Lease: &kubeshared.Lease{Namespace: "shop", Name: "gw-leader", Identity: "test"}, Debounce: 10 * time.Millisecond}
	if setOpts != nil {
		setOpts(&opts, g)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return &harness{core: core, gw: gwc, srv: srv}
}

func (h *harness) get(host, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
	req.Host = host
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func condition(cs []metav1.Condition, typ string) string {
	for _, c := range cs {
		if c.Type == typ {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}

// TestWeightedHTTPRouteThroughEndpointSlices: an HTTPRoute with weights
// 3:1 sends real requests to two real upstreams, found only through
// their EndpointSlices, in that proportion; the GatewayClass, Gateway and
// HTTPRoute get their status from the Lease holder; changing the weights
// in the HTTPRoute changes the split.
func TestWeightedHTTPRouteThroughEndpointSlices(t *testing.T) {
	stable, canary := newUpstream(t, "stable"), newUpstream(t, "canary")
	route := routeObj("shop", "app", "app.test", ref("stable", 3), ref("canary", 1))
	h := start(t, append(stable.objects(), canary.objects()...), []runtime.Object{class(), gatewayObj(), route})
	ctx := context.Background()

	eventually(t, "status written", func() error {
		gc, err := h.gw.GatewayV1().GatewayClasses().Get(ctx, "flotilla", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := condition(gc.Status.Conditions, "Accepted"); c != "True/Accepted" {
			return fmt.Errorf("GatewayClass Accepted = %q", c)
		}
		if !slices.ContainsFunc(gc.Status.SupportedFeatures, func(f gwv1.SupportedFeature) bool { return f.Name == "HTTPRoute" }) {
			return fmt.Errorf("GatewayClass supportedFeatures = %v, want HTTPRoute among them", gc.Status.SupportedFeatures)
		}
		g, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := condition(g.Status.Conditions, "Programmed"); c != "True/Programmed" {
			return fmt.Errorf("Gateway Programmed = %q", c)
		}
		if len(g.Status.Addresses) != 1 || g.Status.Addresses[0].Value != "203.0.113.7" {
			return fmt.Errorf("Gateway addresses = %v", g.Status.Addresses)
		}
		if len(g.Status.Listeners) != 1 || g.Status.Listeners[0].AttachedRoutes != 1 || condition(g.Status.Listeners[0].Conditions, "Programmed") != "True/Programmed" {
			return fmt.Errorf("listeners = %+v", g.Status.Listeners)
		}
		r, err := h.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(r.Status.Parents) != 1 || condition(r.Status.Parents[0].Conditions, "Accepted") != "True/Accepted" ||
			condition(r.Status.Parents[0].Conditions, "ResolvedRefs") != "True/ResolvedRefs" || r.Status.Parents[0].ControllerName != "flotilla.dev/gateway-controller" {
			return fmt.Errorf("HTTPRoute parents = %+v", r.Status.Parents)
		}
		if r.Status.Parents[0].Conditions[0].LastTransitionTime.IsZero() {
			return fmt.Errorf("HTTPRoute condition without lastTransitionTime")
		}
		return nil
	})
	split := func(n int) (map[string]int, error) {
		counts := map[string]int{}
		for range n {
			code, body, err := h.get("app.test", "/x")
			if err != nil || code != 200 {
				return nil, fmt.Errorf("GET = %d %q %v", code, body, err)
			}
			counts[strings.Fields(body)[0]]++
		}
		return counts, nil
	}
	eventually(t, "both upstreams reached", func() error {
		c, err := split(8)
		if err != nil || c["stable"] == 0 || c["canary"] == 0 {
			return fmt.Errorf("split %v %v", c, err)
		}
		return nil
	})
	// Smooth weighted round robin is deterministic: 400 requests give
	// 300:100, give or take what a reload (a new table) shifts.
	c, err := split(400)
	if err != nil {
		t.Fatal(err)
	}
	if c["stable"] < 295 || c["stable"] > 305 || c["stable"]+c["canary"] != 400 {
		t.Errorf("split of 400 with weights 3:1 = %v, want about 300:100", c)
	}
	if code, _, _ := h.get("other.test", "/x"); code != 404 {
		t.Errorf("GET other.test = %d, want 404: the route's hostnames only", code)
	}
	// Promote the canary: every replica reads the same HTTPRoute.
	up, err := h.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	up.Spec.Rules[0].BackendRefs = []gwv1.HTTPBackendRef{ref("stable", 0), ref("canary", 1)}
	if _, err := h.gw.GatewayV1().HTTPRoutes("shop").Update(ctx, up, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all traffic on the canary", func() error {
		c, err := split(20)
		if err != nil || c["canary"] != 20 {
			return fmt.Errorf("split %v %v", c, err)
		}
		return nil
	})
}

// TestRouteNotAllowedByListener: a route from a namespace the listener
// does not admit (allowedRoutes From Same) is not served, its status
// says NotAllowedByListeners, and a Warning Event names the problem; a
// missing backend Service gives ResolvedRefs BackendNotFound and 500.
func TestRouteNotAllowedByListener(t *testing.T) {
	stable := newUpstream(t, "stable")
	other := routeObj("other", "intruder", "intruder.test", ref("stable", 1))
	missing := routeObj("shop", "missing", "missing.test", ref("nosuch", 1))
	ok := routeObj("shop", "ok", "ok.test", ref("stable", 1))
	h := start(t, stable.objects(), []runtime.Object{class(), gatewayObj(), other, missing, ok})
	ctx := context.Background()
	eventually(t, "the allowed route is served", func() error {
		code, body, err := h.get("ok.test", "/")
		if err != nil || code != 200 || body != "stable /" {
			return fmt.Errorf("GET ok.test = %d %q %v", code, body, err)
		}
		return nil
	})
	if code, _, _ := h.get("intruder.test", "/"); code != 404 {
		t.Errorf("GET intruder.test = %d, want 404: not allowed by the listener", code)
	}
	if code, _, _ := h.get("missing.test", "/"); code != 500 {
		t.Errorf("GET missing.test = %d, want 500: the backend Service does not exist", code)
	}
	eventually(t, "status and events", func() error {
		r, err := h.gw.GatewayV1().HTTPRoutes("other").Get(ctx, "intruder", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(r.Status.Parents) != 1 || condition(r.Status.Parents[0].Conditions, "Accepted") != "False/NotAllowedByListeners" {
			return fmt.Errorf("intruder parents = %+v", r.Status.Parents)
		}
		m, err := h.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "missing", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(m.Status.Parents) != 1 || condition(m.Status.Parents[0].Conditions, "ResolvedRefs") != "False/BackendNotFound" {
			return fmt.Errorf("missing parents = %+v", m.Status.Parents)
		}
		evs, err := h.core.CoreV1().Events("other").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "HTTPRoute" && e.InvolvedObject.Name == "intruder" && e.Reason == "HTTPRouteWarning" && strings.Contains(e.Message, "allowedRoutes") {
				return nil
			}
		}
		return fmt.Errorf("no Warning Event on other/intruder naming allowedRoutes among %d events", len(evs.Items))
	})
	g, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := g.Status.Listeners[0].AttachedRoutes; n != 2 {
		t.Errorf("attachedRoutes = %d, want 2 (ok and missing; not the intruder)", n)
	}
}

// TestOnlyTheLeaseHolderWritesStatus: while another replica holds the
// Lease, this one serves the routes but writes no status.
func TestOnlyTheLeaseHolderWritesStatus(t *testing.T) {
	stable := newUpstream(t, "stable")
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gw-leader"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: new("other-replica"), LeaseDurationSeconds: new(int32(3600)), AcquireTime: &now, RenewTime: &now}}
	core := fake.NewClientset(append(stable.objects(), lease)...)
	gwc := gwfake.NewSimpleClientset() //nolint:staticcheck // see start
	ctx := context.Background()
	if _, err := gwc.GatewayV1().GatewayClasses().Create(ctx, class(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gwc.GatewayV1().Gateways("shop").Create(ctx, gatewayObj(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gwc.GatewayV1().HTTPRoutes("shop").Create(ctx, routeObj("shop", "app", "app.test", ref("stable", 1)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var applied []string
	var mu sync.Mutex
	c, err := New(Options{Client: kubeshared.ClientsOf(core), GatewayClient: GatewayClientOf(gwc), SecretDir: filepath.Join(t.TempDir(), "s"),
		Apply: func(x *gateway.Extra) error {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range x.Routes {
				applied = append(applied, r.Name)
			}
			return nil
		},
		Lease: &kubeshared.Lease{Namespace: "shop", Name: "gw-leader", Identity: "me"}, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(runCtx) })
	defer func() { cancel(); wg.Wait() }()
	<-c.Synced() // the first sync is done: routes applied, status decided
	mu.Lock()
	got := slices.Clone(applied)
	mu.Unlock()
	if !slices.Contains(got, "gw.shop.app.0.0") {
		t.Errorf("applied routes %v, want gw.shop.app.0.0: every replica serves", got)
	}
	r, err := gwc.GatewayV1().HTTPRoutes("shop").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Status.Parents) != 0 {
		t.Errorf("status written by a replica without the Lease: %+v", r.Status.Parents)
	}
}

// TestStaleRouteParentRemoved: an HTTPRoute whose Gateway is gone loses our
// entry in status.parents, and keeps another controller's. Found on the
// cluster (TestGatewayAPI): the write of a nil list was rejected
// (requireRouteParents), so the stale entry stayed, rewritten in vain on
// every sync.
func TestStaleRouteParentRemoved(t *testing.T) {
	ctx := context.Background()
	orphan := routeObj("shop", "orphan", "orphan.test", ref("stable", 1))
	orphan.Status.Parents = []gwv1.RouteParentStatus{{ParentRef: orphan.Spec.ParentRefs[0], ControllerName: "flotilla.dev/gateway-controller",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.Now()}}}}
	other := gwv1.RouteParentStatus{ParentRef: gwv1.ParentReference{Name: "theirs"}, ControllerName: "example.com/other",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.Now()}}}
	both := routeObj("shop", "both", "both.test", ref("stable", 1))
	both.Status.Parents = append([]gwv1.RouteParentStatus{other}, orphan.Status.Parents...)
	stable := newUpstream(t, "stable")
	// No Gateway: both routes' parentRef names a Gateway that is gone.
	h := start(t, stable.objects(), []runtime.Object{class(), orphan, both})
	eventually(t, "our stale parent entries removed", func() error {
		for name, want := range map[string]int{"orphan": 0, "both": 1} {
			r, err := h.gw.GatewayV1().HTTPRoutes("shop").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(r.Status.Parents) != want || want == 1 && r.Status.Parents[0].ControllerName != other.ControllerName {
				return fmt.Errorf("%s: parents %+v, want %d (another controller's kept)", name, r.Status.Parents, want)
			}
		}
		return nil
	})
}

// requireRouteParents gives the fake the CRD's rule a real API server
// enforces: status.parents of an HTTPRoute is required, so a status write
// with a nil list (JSON null) is rejected with "status.parents: Required
// value", as TestGatewayAPI saw on the cluster.
func requireRouteParents(gwc *gwfake.Clientset) {
	gwc.PrependReactor("update", "httproutes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u, ok := a.(k8stesting.UpdateAction)
		if !ok || u.GetSubresource() != "status" {
			return false, nil, nil
		}
		if r := u.GetObject().(*gwv1.HTTPRoute); r.Status.Parents == nil {
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}, r.Name,
				field.ErrorList{field.Required(field.NewPath("status", "parents"), "")})
		}
		return false, nil, nil
	})
}
