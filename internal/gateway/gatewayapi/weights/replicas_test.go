package weights_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi/controller"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi/weights"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// upstreamObjects is a real HTTP server answering name, behind Service
// name in namespace shop with one EndpointSlice.
func upstreamObjects(t *testing.T, name string) []runtime.Object {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
	t.Cleanup(srv.Close)
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	return []runtime.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(int32(port))}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(port))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}}},
	}
}

// replica is one gateway with its Gateway API controller and weight
// writer, as `flotilla gateway --gateway-class flotilla` wires them.
type replica struct {
	gw    *gateway.Gateway
	srv   *httptest.Server // the data plane
	admin *httptest.Server // the admin API
}

func startReplica(t *testing.T, core *fake.Clientset, gwc *gwfake.Clientset, id string) *replica {
	t.Helper()
	disc := discovery.New(discovery.Options{Connect: func() (discovery.Client, string, error) {
		return discoverytest.Client{Interface: core}, "shop", nil
	}})
	t.Cleanup(disc.Close)
	// A route of the config file next to the HTTPRoute's: its weights stay
	// local to the replica.
	cfg, err := config.Parse([]byte(`apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends:
  - {name: a, kubernetes: {service: blue, port: http}}
  - {name: b, kubernetes: {service: green, port: http}}
routes:
  - name: file
    match: {path: {type: Prefix, value: /file}}
    backends: [{name: a, weight: 100}, {name: b, weight: 0}]
  # A file route whose name looks like a translated one: still local.
  - name: gw.file
    match: {path: {type: Prefix, value: /gwfile}}
    backends: [{name: a, weight: 100}, {name: b, weight: 0}]
`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Endpoints: disc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	gc := controller.GatewayClientOf(gwc)
	c, err := controller.New(controller.Options{Client: kubeshared.ClientsOf(core), GatewayClient: gc, SecretDir: filepath.Join(t.TempDir(), "secrets"),
		Apply:            func(x *gateway.Extra) error { return g.SetExtraPart(weights.ExtraPart, x) },
		PublishAddresses: []string{"203.0.113.7"}, Lease: &kubeshared.Lease{Namespace: "shop", Name: "gw-leader", Identity: id}, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ww, err := weights.New(weights.Options{Local: g, Routes: gc.V1, Services: core.CoreV1()})
	if err != nil {
		t.Fatal(err)
	}
	g.SetWeightWriter(ww)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	r := &replica{gw: g, srv: httptest.NewServer(g.Handler()), admin: httptest.NewServer(g.AdminHandler())}
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.admin.Close)
	return r
}

// answers returns the upstreams that answered n requests to path.
func (r *replica) answers(path string, n int) (map[string]int, error) {
	got := map[string]int{}
	for range n {
		resp, err := r.srv.Client().Get(r.srv.URL + path)
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[fmt.Sprintf("%d %s", resp.StatusCode, b)]++
	}
	return got, nil
}

func put(t *testing.T, r *replica, route, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", r.admin.URL+"/routes/"+route+"/weights", strings.NewReader(body))
	resp, err := r.admin.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(admin.WrittenToHeader), string(b)
}

func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a bound for a loaded machine, not a speed claim
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

// TestFlipThroughOneReplica: two replicas watch one API server; a
// blue/green flip PUT to one replica's admin API is written to the
// HTTPRoute, and both replicas then send everything to green. A route of
// the config file is still swapped in the one replica asked.
func TestFlipThroughOneReplica(t *testing.T) {
	objs := append(upstreamObjects(t, "blue"), upstreamObjects(t, "green")...)
	core := fake.NewClientset(objs...)
	gwc := gwfake.NewSimpleClientset() //nolint:staticcheck // the field-managed NewClientset does not know v1 kinds (see controller_test.go)
	ctx := context.Background()
	blueW, greenW := int32(100), int32(0)
	port := gwv1.PortNumber(80)
	for _, err := range []error{
		func() error {
			_, err := gwc.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "flotilla"},
				Spec: gwv1.GatewayClassSpec{ControllerName: "flotilla.dev/gateway-controller"}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := gwc.GatewayV1().Gateways("shop").Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"},
				Spec: gwv1.GatewaySpec{GatewayClassName: "flotilla", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}}, metav1.CreateOptions{})
			return err
		}(),
		func() error {
			_, err := gwc.GatewayV1().HTTPRoutes("shop").Create(ctx, &gwv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "demo", ResourceVersion: "1"},
				Spec: gwv1.HTTPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "edge"}}},
					Rules: []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "blue", Port: &port}, Weight: &blueW}},
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "green", Port: &port}, Weight: &greenW}},
					}}}}}, metav1.CreateOptions{})
			return err
		}(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	replicas := []*replica{startReplica(t, core, gwc, "a"), startReplica(t, core, gwc, "b")}
	const route, blue, green = "gw.shop.demo.0.0", "gw.shop.blue.http", "gw.shop.green.http"
	waitAll := func(path, want string) {
		t.Helper()
		for i, r := range replicas {
			eventually(t, fmt.Sprintf("replica %d: %s answered by %s only", i, path, want), func() error {
				got, err := r.answers(path, 20)
				if err != nil {
					return err
				}
				if !maps.Equal(got, map[string]int{"200 " + want: 20}) {
					return fmt.Errorf("answers %v", got)
				}
				return nil
			})
		}
	}
	waitAll("/", "blue")

	code, where, body := put(t, replicas[0], route, fmt.Sprintf(`{%q: 0, %q: 100}`, blue, green))
	if code != http.StatusOK || !strings.HasPrefix(where, "HTTPRoute shop/demo spec.rules[0]") {
		t.Fatalf("PUT /routes/%s/weights = %d %q (%s), want 200 written to HTTPRoute shop/demo spec.rules[0]", route, code, where, body)
	}
	waitAll("/", "green")
	for i, r := range replicas {
		if w, err := r.gw.Weights(route); err != nil || !maps.Equal(w, map[string]int{blue: 0, green: 100}) {
			t.Errorf("replica %d: Weights(%s) = %v, %v; want blue 0, green 100", i, route, w, err)
		}
	}

	// The file's route: local to the replica asked.
	code, where, body = put(t, replicas[1], "file", `{"a": 0, "b": 100}`)
	if code != http.StatusOK || where != "local" {
		t.Fatalf("PUT /routes/file/weights = %d %q (%s), want 200 written local", code, where, body)
	}
	if got, err := replicas[1].answers("/file", 10); err != nil || !maps.Equal(got, map[string]int{"200 green": 10}) {
		t.Errorf("replica 1 after the local flip: /file answers %v, %v; want green only", got, err)
	}
	if got, err := replicas[0].answers("/file", 10); err != nil || !maps.Equal(got, map[string]int{"200 blue": 10}) {
		t.Errorf("replica 0 (not asked): /file answers %v, %v; want blue only", got, err)
	}

	code, where, body = put(t, replicas[0], "gw.file", `{"a": 0, "b": 100}`)
	if code != http.StatusOK || where != "local" {
		t.Fatalf("PUT /routes/gw.file/weights = %d %q (%s), want 200 written local (a route of the file)", code, where, body)
	}

	// Refusals through the admin API: status codes of the contract.
	for _, c := range []struct {
		route, body string
		want        int
	}{
		{"gw.shop.nope.0.0", `{"x": 1}`, http.StatusNotFound},
		{route, `{"gw.shop.red.http": 1}`, http.StatusUnprocessableEntity},
		{route, fmt.Sprintf(`{%q: 0, %q: 0}`, blue, green), http.StatusUnprocessableEntity},
	} {
		if code, where, body := put(t, replicas[0], c.route, c.body); code != c.want || where != "" {
			t.Errorf("PUT /routes/%s/weights %s = %d (written to %q) %s, want %d", c.route, c.body, code, where, body, c.want)
		}
	}
}
