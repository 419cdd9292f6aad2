package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway/backend"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
)

func ptr[T any](v T) *T { return &v }

// endpointSlice is the slice the EndpointSlice controller would write for
// one pod of service at addr (an httptest server's 127.0.0.1:port): one
// slice per pod, since each test server has its own port.
func endpointSlice(t testing.TB, ns, name, service, addr, cond string) *discoveryv1.EndpointSlice {
	t.Helper()
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	c := map[string]discoveryv1.EndpointConditions{
		"ready":               {Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
		"not-ready":           {Ready: ptr(false), Serving: ptr(false), Terminating: ptr(false)},
		"terminating-serving": {Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)},
	}[cond]
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(port))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: c}},
	}
}

func fakeDiscovery(t testing.TB, client kubernetes.Interface) *discovery.Watcher {
	t.Helper()
	w := discovery.New(discovery.Options{Connect: func() (discovery.Client, string, error) { return discoverytest.Client{Interface: client}, "shop", nil }})
	t.Cleanup(w.Close)
	return w
}

// onlyTo sends n requests and returns nil when every one was answered by
// want ("" : every one got 503).
func onlyTo(t *testing.T, f *fixture, n int, want string) error {
	t.Helper()
	for range n {
		resp, body := f.do(t, "GET", "shop.test", "/", nil, nil)
		got := body
		if resp.StatusCode == http.StatusServiceUnavailable {
			got = ""
		} else if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d %q", resp.StatusCode, body)
		}
		if got != want {
			return fmt.Errorf("answered by %q, want %q", got, want)
		}
	}
	return nil
}

// TestKubernetesDiscoveryDrain: a request goes only to ready endpoints;
// an endpoint that starts terminating gets no new requests while a ready
// one exists, and the request in flight to it finishes; terminating but
// serving endpoints take requests when none is ready; a Service without
// endpoints answers 503. Real HTTP servers are the pods, a fake clientset
// the API server.
func TestKubernetesDiscoveryDrain(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	a.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "a")
	}
	ctx := context.Background()
	client := fake.NewClientset(
		endpointSlice(t, "shop", "web-a", "web", a.addr(), "ready"),
		endpointSlice(t, "shop", "web-b", "web", b.addr(), "not-ready"))
	slices := client.DiscoveryV1().EndpointSlices("shop")
	f := start(t, `
backends: [{name: web, kubernetes: {service: web, port: http}}]
routes: [{name: all, backends: [{name: web}], retries: {attempts: 0}}]
`, Options{Endpoints: fakeDiscovery(t, client)})

	discoverytest.Eventually(t, "only the ready endpoint a", func() error { return onlyTo(t, f, 10, "a") })

	// A request in flight to a, then a starts terminating and b is ready.
	slow := make(chan error, 1)
	go func() {
		resp, err := f.srv.Client().Get(f.srv.URL + "/slow")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		slow <- err
	}()
	<-started
	if _, err := slices.Update(ctx, endpointSlice(t, "shop", "web-a", "web", a.addr(), "terminating-serving"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := slices.Update(ctx, endpointSlice(t, "shop", "web-b", "web", b.addr(), "ready"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "only the ready endpoint b", func() error { return onlyTo(t, f, 10, "b") })
	hits := a.hits.Load()
	if err := onlyTo(t, f, 50, "b"); err != nil {
		t.Fatalf("with b ready: %v", err)
	}
	if got := a.hits.Load(); got != hits {
		t.Errorf("the terminating endpoint got %d new requests while one was ready", got-hits)
	}
	snap := map[string]backend.EndpointState{}
	for _, e := range f.gw.state.Load().pools["web"].Snapshot() {
		snap[e.Addr] = e
	}
	if sa, sb := snap[a.addr()], snap[b.addr()]; len(snap) != 2 || !sa.Draining || sa.Available || sa.InFlight != 1 || sb.Draining || !sb.Available {
		t.Errorf("Snapshot() = %+v, want a draining, unavailable, 1 in flight; b available", snap)
	}
	if got := endpointsGauge(t, f, "web", "draining"); got != 1 {
		t.Errorf(`flotilla_gateway_backend_endpoints{backend="web",state="draining"} = %v, want 1`, got)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("the request in flight to the terminating endpoint: %v, want it to finish", err)
	}

	// b gone: the terminating endpoint serves rather than nobody.
	if err := slices.Delete(ctx, "web-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "the terminating endpoint when none is ready", func() error { return onlyTo(t, f, 10, "a") })
	if err := slices.Delete(ctx, "web-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "503 without endpoints", func() error { return onlyTo(t, f, 3, "") })
}

// listsOf counts the LIST calls made for EndpointSlices in ns: one per
// informer start.
func listsOf(client *fake.Clientset, ns string) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == "endpointslices" && a.GetNamespace() == ns {
			n++
		}
	}
	return n
}

// TestKubernetesDiscoveryAcrossReloads: a reload keeps a backend whose
// config is unchanged (its endpoints' state with it), a changed backend
// gets the endpoints at once from the shared informer, and the informer
// of a namespace is started once, stopped only when no backend uses it.
func TestKubernetesDiscoveryAcrossReloads(t *testing.T) {
	a, b, c := newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")
	client := fake.NewClientset(
		endpointSlice(t, "shop", "web-a", "web", a.addr(), "ready"),
		endpointSlice(t, "shop", "api-b", "api", b.addr(), "ready"),
		endpointSlice(t, "other", "web-c", "web", c.addr(), "ready"))
	yaml := func(route, apiPolicy, webNS string) string {
		return fmt.Sprintf(`
backends:
  - {name: web, kubernetes: {service: web, namespace: %q, port: http}}
  - {name: api, kubernetes: {service: api, port: http}, balance: {policy: %s}}
routes:
  - {name: %s, backends: [{name: web}]}
  - {name: api, match: {path: {value: /api}}, backends: [{name: api}]}
`, webNS, apiPolicy, route)
	}
	f := start(t, yaml("one", "round_robin", ""), Options{Endpoints: fakeDiscovery(t, client)})
	discoverytest.Eventually(t, "web on a", func() error { return onlyTo(t, f, 3, "a") })
	web := f.gw.state.Load().pools["web"]

	// Same backends, another route name; then api's policy changes.
	for _, cfg := range []string{yaml("two", "round_robin", ""), yaml("two", "least_request", "")} {
		if err := f.gw.Reload(mustParse(t, cfg)); err != nil {
			t.Fatal(err)
		}
		if f.gw.state.Load().pools["web"] != web {
			t.Error("a reload replaced an unchanged kubernetes backend")
		}
		api := f.gw.state.Load().pools["api"]
		if s := api.Snapshot(); len(s) != 1 || s[0].Addr != b.addr() {
			t.Errorf("api endpoints right after the reload = %+v, want %s: a new pool gets them from the shared informer", s, b.addr())
		}
	}
	if n := listsOf(client, "shop"); n != 1 {
		t.Errorf("EndpointSlices listed %d times in shop after reloads that keep the namespace, want 1", n)
	}

	// web moves to namespace other: a second informer; back again.
	if err := f.gw.Reload(mustParse(t, yaml("two", "least_request", "other"))); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "web on c", func() error { return onlyTo(t, f, 3, "c") })
	if n := listsOf(client, "other"); n != 1 {
		t.Errorf("EndpointSlices listed %d times in other, want 1", n)
	}
	if n := listsOf(client, "shop"); n != 1 {
		t.Errorf("EndpointSlices listed %d times in shop while api still uses it, want 1", n)
	}
}

func TestKubernetesBackendWithoutAPIClient(t *testing.T) {
	_, err := New(mustParse(t, `
backends: [{name: web, kubernetes: {service: web, port: http}}]
routes: [{name: all, backends: [{name: web}]}]
`), Options{})
	want := `backends[0].kubernetes (backend "web"): this gateway has no Kubernetes API client`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("New() error = %v, want it to contain %q", err, want)
	}
}

// endpointsGauge is the value of one flotilla_gateway_backend_endpoints
// series.
func endpointsGauge(t *testing.T, f *fixture, backend, state string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "flotilla_gateway_backend_endpoints" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["backend"] == backend && labels["state"] == state {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no flotilla_gateway_backend_endpoints{backend=%q,state=%q}", backend, state)
	return 0
}

// TestLiveVersionFromPodLabel: on Kubernetes a version is the answer's
// X-Flotilla-Version, else the pod's app.kubernetes.io/version label
// (read through discovery's pod metadata informer); each instance names its pod, and an instance's label follows the
// pod's.
func TestLiveVersionFromPodLabel(t *testing.T) {
	header, labelled, bare := versionServer(t, "v-header", 200), versionServer(t, "", 200), versionServer(t, "", 200)
	withPod := func(name, addr, pod string) *discoveryv1.EndpointSlice {
		es := endpointSlice(t, "shop", name, "web", addr, "ready")
		es.Endpoints[0].TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: pod}
		return es
	}
	podWith := func(name, version string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{}}}
		if version != "" {
			p.Labels[discovery.VersionLabel] = version
		}
		return p
	}
	client := fake.NewClientset(
		withPod("web-a", header, "pod-header"), withPod("web-b", labelled, "pod-labelled"), withPod("web-c", bare, "pod-bare"),
		podWith("pod-header", "label-loses"), podWith("pod-labelled", "1.0"), podWith("pod-bare", ""))
	w := discovery.New(discovery.Options{Pods: true, Connect: func() (discovery.Client, string, error) {
		return discoverytest.Client{Interface: client}, "shop", nil
	}})
	t.Cleanup(w.Close)
	f := start(t, `
backends: [{name: web, kubernetes: {service: web, port: http}}]
routes: [{name: all, backends: [{name: web}]}]
`, Options{Endpoints: w})
	w.SetTimeline(f.gw.LiveView())
	// bare's answers name no version and its pod no label: they count
	// under the version the backend answers with most (snapshot.go).
	want := map[string]string{header: "v-header/pod-header", labelled: "1.0/pod-labelled", bare: "v-header/pod-bare"}
	check := func(want map[string]string) error {
		f.gw.live.Tick(time.Now(), f.gw.routeInputs())
		got := map[string]string{}
		for _, svc := range f.gw.LiveSnapshot().Services {
			for _, v := range svc.Versions {
				for _, in := range v.Instances {
					got[in.Address] = v.Name + "/" + in.Pod
				}
			}
		}
		if !cmp.Equal(got, want) {
			b, _ := json.Marshal(f.gw.LiveSnapshot().Services)
			return fmt.Errorf("instances %v, want %v; %s", got, want, b)
		}
		return nil
	}
	discoverytest.Eventually(t, "versions before traffic", func() error {
		return check(map[string]string{header: "label-loses/pod-header", labelled: "1.0/pod-labelled", bare: "web/pod-bare"})
	})
	for range 30 {
		if resp, body := f.do(t, "GET", "any.test", "/", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d %q", resp.StatusCode, body)
		}
	}
	discoverytest.Eventually(t, "versions with traffic", func() error { return check(want) })
	if _, err := client.CoreV1().Pods("shop").Update(context.Background(), podWith("pod-labelled", "1.1"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want[labelled] = "1.1/pod-labelled"
	// The requests counted as 1.0 stay 1.0 in the window; with none
	// counted yet under the new label, the instance shows under both:
	// check that it is listed under 1.1 once the window has no 1.0.
	discoverytest.Eventually(t, "the label followed", func() error {
		f.gw.live.Tick(time.Now(), f.gw.routeInputs())
		for _, svc := range f.gw.LiveSnapshot().Services {
			for _, v := range svc.Versions {
				for _, in := range v.Instances {
					if in.Address == labelled && in.Version == "1.1" {
						return nil
					}
				}
			}
		}
		return fmt.Errorf("instance %s has no label 1.1 yet", labelled)
	})
}
