package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
)

// ep is an endpoint of a test slice: its IP and conditions ("ready",
// "not-ready", "terminating-serving", "terminating", "unknown": all nil).
type ep struct{ ip, cond string }

func ptr[T any](v T) *T { return &v }

// slice builds an EndpointSlice of service in ns with ports (name → port;
// "" is an unnamed port).
func slice(ns, name, service string, ports map[string]int32, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for n, p := range ports {
		port := discoveryv1.EndpointPort{Port: ptr(p)}
		if n != "" {
			port.Name = ptr(n)
		}
		es.Ports = append(es.Ports, port)
	}
	for _, e := range eps {
		var c discoveryv1.EndpointConditions
		switch e.cond {
		case "ready":
			c = discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)}
		case "not-ready":
			c = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(false), Terminating: ptr(false)}
		case "terminating-serving":
			c = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}
		case "terminating":
			c = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(false), Terminating: ptr(true)}
		case "unknown":
		default:
			panic("unknown condition " + e.cond)
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: c})
	}
	return es
}

func TestEndpoints(t *testing.T) {
	http := map[string]int32{"http": 8080}
	key := Key{Namespace: "ns", Service: "web", Port: "http"}
	tests := []struct {
		name    string
		slices  []*discoveryv1.EndpointSlice
		key     Key
		want    string // "addr" or "addr(draining)", comma-separated
		problem string
	}{
		{"none", nil, key, "", ""},
		{"ready", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", http, ep{"10.0.0.2", "ready"}, ep{"10.0.0.1", "ready"})}, key, "10.0.0.1:8080,10.0.0.2:8080", ""},
		{"nil conditions are ready", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", http, ep{"10.0.0.1", "unknown"})}, key, "10.0.0.1:8080", ""},
		{"not ready left out", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", http, ep{"10.0.0.1", "ready"}, ep{"10.0.0.2", "not-ready"})}, key, "10.0.0.1:8080", ""},
		{"terminating and serving drains", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", http, ep{"10.0.0.1", "ready"}, ep{"10.0.0.2", "terminating-serving"})}, key, "10.0.0.1:8080,10.0.0.2:8080(draining)", ""},
		{"terminating, not serving, left out", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", http, ep{"10.0.0.1", "terminating"})}, key, "", ""},
		{"multiple slices merged", []*discoveryv1.EndpointSlice{
			slice("ns", "a", "web", http, ep{"10.0.0.3", "ready"}),
			slice("ns", "b", "web", http, ep{"10.0.0.1", "ready"}, ep{"10.0.0.2", "terminating-serving"}),
		}, key, "10.0.0.1:8080,10.0.0.2:8080(draining),10.0.0.3:8080", ""},
		{"port by number", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", map[string]int32{"http": 8080, "metrics": 9090}, ep{"10.0.0.1", "ready"})},
			Key{Namespace: "ns", Service: "web", Port: "9090"}, "10.0.0.1:9090", ""},
		{"port by name among several", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", map[string]int32{"http": 8080, "grpc": 9000}, ep{"10.0.0.1", "ready"})},
			Key{Namespace: "ns", Service: "web", Port: "grpc"}, "10.0.0.1:9000", ""},
		{"port resolved per slice", []*discoveryv1.EndpointSlice{
			slice("ns", "a", "web", map[string]int32{"http": 8080}, ep{"10.0.0.1", "ready"}),
			slice("ns", "b", "web", map[string]int32{"http": 8081}, ep{"10.0.0.2", "ready"}),
		}, key, "10.0.0.1:8080,10.0.0.2:8081", ""},
		{"named port missing", []*discoveryv1.EndpointSlice{
			slice("ns", "a", "web", map[string]int32{"web": 8080}, ep{"10.0.0.1", "ready"}),
			slice("ns", "b", "web", http, ep{"10.0.0.2", "ready"}),
		}, key, "10.0.0.2:8080", `EndpointSlices a have no port "http"`},
		{"unnamed port does not match a name", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", map[string]int32{"": 8080}, ep{"10.0.0.1", "ready"})},
			key, "", `EndpointSlices a have no port "http"`},
		{"unnamed port matches its number", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", map[string]int32{"": 8080}, ep{"10.0.0.1", "ready"})},
			Key{Namespace: "ns", Service: "web", Port: "8080"}, "10.0.0.1:8080", ""},
		{"numbered port missing", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", http, ep{"10.0.0.1", "ready"})},
			Key{Namespace: "ns", Service: "web", Port: "80"}, "", `EndpointSlices a have no port "80"`},
		{"empty slice without the port is no problem", []*discoveryv1.EndpointSlice{slice("ns", "a", "web", nil)}, key, "", ""},
		{"listed in two slices", []*discoveryv1.EndpointSlice{
			slice("ns", "a", "web", http, ep{"10.0.0.1", "ready"}),
			slice("ns", "b", "web", http, ep{"10.0.0.1", "ready"}),
		}, key, "10.0.0.1:8080,10.0.0.1:8080", ""},
		{"IPv6", []*discoveryv1.EndpointSlice{func() *discoveryv1.EndpointSlice {
			es := slice("ns", "a", "web", http, ep{"fd00::1", "ready"})
			es.AddressType = discoveryv1.AddressTypeIPv6
			return es
		}()}, key, "[fd00::1]:8080", ""},
		{"FQDN skipped", []*discoveryv1.EndpointSlice{func() *discoveryv1.EndpointSlice {
			es := slice("ns", "a", "web", http, ep{"db.example.com", "ready"})
			es.AddressType = discoveryv1.AddressTypeFQDN
			return es
		}()}, key, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eps, problem := Endpoints(tt.slices, tt.key)
			if got := format(eps); got != tt.want {
				t.Errorf("Endpoints() = %s, want %s", got, tt.want)
			}
			if problem != tt.problem {
				t.Errorf("Endpoints() problem = %q, want %q", problem, tt.problem)
			}
			for _, e := range eps {
				if e.Host != "web.ns.svc" {
					t.Errorf("Endpoint.Host = %q, want web.ns.svc", e.Host)
				}
			}
		})
	}
}

func format(eps []Endpoint) string {
	var out []string
	for _, e := range eps {
		s := e.Addr
		if e.Draining {
			s += "(draining)"
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// recorder keeps the last endpoints a subscription got.
type recorder struct {
	mu    sync.Mutex
	last  string
	calls int
}

func (r *recorder) fn(eps []Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = format(eps)
	r.calls++
}

func (r *recorder) get() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func waitFor(t *testing.T, r *recorder, want string) {
	t.Helper()
	discoverytest.Eventually(t, "endpoints", func() error {
		if got := r.get(); got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

func newWatcher(t *testing.T, client kubernetes.Interface) *Watcher {
	t.Helper()
	w := New(Options{Connect: func() (Client, string, error) { return discoverytest.Client{Interface: client}, "ns", nil }})
	t.Cleanup(w.Close)
	return w
}

// TestWatcherFollowsSlices drives real EndpointSlice objects through the
// fake API server and the informer: each change reaches the subscriber.
func TestWatcherFollowsSlices(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	http := map[string]int32{"http": 8080}
	client := fake.NewClientset(slice("ns", "web-a", "web", http, ep{"10.0.0.1", "not-ready"}))
	w := newWatcher(t, client)
	var web, other, elsewhere recorder
	stop, err := w.Subscribe(Key{Service: "web", Port: "http"}, web.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	stopOther, _ := w.Subscribe(Key{Service: "other", Port: "http"}, other.fn)
	defer stopOther()
	stopElsewhere, _ := w.Subscribe(Key{Namespace: "ns2", Service: "web", Port: "http"}, elsewhere.fn)
	defer stopElsewhere()
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	slices := client.DiscoveryV1().EndpointSlices("ns")
	steps := []struct {
		name   string
		change func() error
		want   string
	}{
		{"not ready", func() error { return nil }, ""},
		{"ready", func() error {
			_, err := slices.Update(ctx, slice("ns", "web-a", "web", http, ep{"10.0.0.1", "ready"}), metav1.UpdateOptions{})
			return err
		}, "10.0.0.1:8080"},
		{"added in a second slice", func() error {
			_, err := slices.Create(ctx, slice("ns", "web-b", "web", http, ep{"10.0.0.2", "ready"}), metav1.CreateOptions{})
			return err
		}, "10.0.0.1:8080,10.0.0.2:8080"},
		{"terminating and serving", func() error {
			_, err := slices.Update(ctx, slice("ns", "web-a", "web", http, ep{"10.0.0.1", "terminating-serving"}), metav1.UpdateOptions{})
			return err
		}, "10.0.0.1:8080(draining),10.0.0.2:8080"},
		{"terminating, no longer serving", func() error {
			_, err := slices.Update(ctx, slice("ns", "web-a", "web", http, ep{"10.0.0.1", "terminating"}), metav1.UpdateOptions{})
			return err
		}, "10.0.0.2:8080"},
		{"named port missing from a slice", func() error {
			_, err := slices.Update(ctx, slice("ns", "web-a", "web", map[string]int32{"web": 8080}, ep{"10.0.0.3", "ready"}), metav1.UpdateOptions{})
			return err
		}, "10.0.0.2:8080"},
		{"slice deleted", func() error { return slices.Delete(ctx, "web-b", metav1.DeleteOptions{}) }, ""},
		{"not ready again", func() error {
			_, err := slices.Update(ctx, slice("ns", "web-a", "web", http, ep{"10.0.0.3", "not-ready"}), metav1.UpdateOptions{})
			return err
		}, ""},
		{"ready after all", func() error {
			_, err := slices.Update(ctx, slice("ns", "web-a", "web", http, ep{"10.0.0.3", "ready"}), metav1.UpdateOptions{})
			return err
		}, "10.0.0.3:8080"},
	}
	for _, s := range steps {
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		t.Logf("step %s", s.name)
		waitFor(t, &web, s.want)
	}
	if other.get() != "" || elsewhere.get() != "" {
		t.Errorf("other Service = %q, other namespace = %q; want neither to see web's slices", other.get(), elsewhere.get())
	}
	// A slice of another Service, and one in another namespace.
	if _, err := slices.Create(ctx, slice("ns", "other-a", "other", http, ep{"10.0.1.1", "ready"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices("ns2").Create(ctx, slice("ns2", "web-a", "web", http, ep{"10.0.2.1", "ready"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &other, "10.0.1.1:8080")
	waitFor(t, &elsewhere, "10.0.2.1:8080")
	if got := web.get(); got != "10.0.0.3:8080" {
		t.Errorf("web = %q after other Services changed", got)
	}
}

// TestSubscribeSeesExistingSlices: a subscription made after the
// informer synced (a config reload adding a backend) gets the current
// endpoints at once, from the shared informer.
func TestSubscribeSeesExistingSlices(t *testing.T) {
	http := map[string]int32{"http": 8080}
	client := fake.NewClientset(
		slice("ns", "web-a", "web", http, ep{"10.0.0.1", "ready"}),
		slice("ns", "api-a", "api", http, ep{"10.0.0.9", "ready"}))
	w := newWatcher(t, client)
	var first, second recorder
	stop, _ := w.Subscribe(Key{Service: "web", Port: "http"}, first.fn)
	defer stop()
	if err := w.WaitSynced(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &first, "10.0.0.1:8080")
	sp := w.spaces["ns"]
	stop2, _ := w.Subscribe(Key{Service: "api", Port: "http"}, second.fn)
	if got := second.get(); got != "10.0.0.9:8080" {
		t.Errorf("a new subscription got %q at once, want 10.0.0.9:8080", got)
	}
	if w.spaces["ns"] != sp {
		t.Error("a new subscription in a watched namespace started another informer")
	}
	stop2()
	if w.spaces["ns"] != sp {
		t.Error("the informer stopped while a subscription remains")
	}
	stop()
	if len(w.spaces) != 0 {
		t.Errorf("watched namespaces after every subscription stopped: %d, want 0", len(w.spaces))
	}
	// Not called after stop.
	first.mu.Lock()
	n := first.calls
	first.mu.Unlock()
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Create(context.Background(), slice("ns", "web-b", "web", http, ep{"10.0.0.2", "ready"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a negative: nothing to wait for
	first.mu.Lock()
	defer first.mu.Unlock()
	if first.calls != n {
		t.Error("called after stop")
	}
}

func TestSubscribeConnectError(t *testing.T) {
	calls := 0
	w := New(Options{Connect: func() (Client, string, error) {
		calls++
		return nil, "", errors.New("no kubeconfig")
	}})
	defer w.Close()
	for range 2 {
		_, err := w.Subscribe(Key{Service: "web", Port: "http"}, func([]Endpoint) {})
		if err == nil || !strings.Contains(err.Error(), "kubernetes discovery: no kubeconfig") {
			t.Errorf("Subscribe() error = %v, want the Connect error", err)
		}
	}
	if calls != 2 {
		t.Errorf("Connect calls = %d, want 2: a failure is retried on the next Subscribe", calls)
	}
	if _, err := New(Options{}).Subscribe(Key{Service: "web", Port: "http"}, func([]Endpoint) {}); err == nil {
		t.Error("Subscribe() without Connect: error = nil")
	}
}

func TestNamespaceFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := dir + "/config"
	const cfg = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: from-context}}]
current-context: x
`
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"kubeconfig context", nil, "from-context"},
		{"POD_NAMESPACE wins", map[string]string{"POD_NAMESPACE": "mine"}, "mine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", "") // never in cluster here
			_, ns, err := Connect(kubeconfig, func(k string) string { return tt.env[k] })()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ns); diff != "" {
				t.Errorf("namespace (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConnectOutsideClusterWithoutKubeconfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("HOME", t.TempDir()) // no ~/.kube/config
	_, _, err := Connect("", func(string) string { return "" })()
	if err == nil || !strings.Contains(err.Error(), "pass --kubeconfig (FLOTILLA_KUBECONFIG) or set KUBECONFIG") {
		t.Errorf("Connect() error = %v, want one saying how to point at a cluster", err)
	}
}

// TestWatchFailureKeepsEndpoints: while the API server's watch fails the
// subscribers keep the endpoints last listed, the synced metric is 0 and a
// log line says so; once the watch works again and makes progress, the
// metric is 1 again and changes flow.
func TestWatchFailureKeepsEndpoints(t *testing.T) {
	http := map[string]int32{"http": 8080}
	client := fake.NewClientset(slice("ns", "web-a", "web", http, ep{"10.0.0.1", "ready"}))
	var failing atomic.Bool
	failing.Store(true)
	client.PrependWatchReactor("endpointslices", func(k8stesting.Action) (bool, watch.Interface, error) {
		if failing.Load() {
			return true, nil, errors.New("connection reset by peer")
		}
		return false, nil, nil
	})
	var logs syncBuffer
	w := New(Options{Connect: func() (Client, string, error) { return discoverytest.Client{Interface: client}, "ns", nil },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer w.Close()
	synced := syncedMetric(t, w)
	var web recorder
	stop, err := w.Subscribe(Key{Service: "web", Port: "http"}, web.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitFor(t, &web, "10.0.0.1:8080")
	discoverytest.Eventually(t, "the synced metric at 0 while the watch fails", func() error {
		if v := synced(); v != 0 {
			return fmt.Errorf("flotilla_gateway_discovery_synced = %v", v)
		}
		if !strings.Contains(logs.String(), "serving the last known endpoints") {
			return errors.New("no log line")
		}
		return nil
	})
	if got := web.get(); got != "10.0.0.1:8080" {
		t.Errorf("endpoints while the watch fails = %q, want the last known", got)
	}
	failing.Store(false)
	es := slice("ns", "web-b", "web", http, ep{"10.0.0.2", "ready"})
	es.ResourceVersion = "7" // the fake API server keeps no versions: progress shows as this one
	discoverytest.Eventually(t, "the watch back", func() error {
		// Created until the informer, watching again, sees it.
		if _, err := client.DiscoveryV1().EndpointSlices("ns").Get(context.Background(), "web-b", metav1.GetOptions{}); err != nil {
			if _, err := client.DiscoveryV1().EndpointSlices("ns").Create(context.Background(), es, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		if got := web.get(); got != "10.0.0.1:8080,10.0.0.2:8080" {
			return fmt.Errorf("endpoints %q", got)
		}
		return nil
	})
	discoverytest.Eventually(t, "the synced metric back at 1", func() error {
		if v := synced(); v != 1 {
			return fmt.Errorf("flotilla_gateway_discovery_synced = %v", v)
		}
		return nil
	})
	if !strings.Contains(logs.String(), "the API server watch recovered") {
		t.Errorf("logs = %s, want the recovery", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAPIServerGoneMidWatch: the API server goes away while the watch is
// open (the watch ends, new ones are refused: the reflector retries those
// by itself, without its error handler); the synced metric turns 0 and
// the endpoints stay; when watches are accepted again it turns 1.
func TestAPIServerGoneMidWatch(t *testing.T) {
	http := map[string]int32{"http": 8080}
	client := fake.NewClientset(slice("ns", "web-a", "web", http, ep{"10.0.0.1", "ready"}))
	var refusing atomic.Bool
	var open atomic.Pointer[watch.FakeWatcher]
	client.PrependWatchReactor("endpointslices", func(k8stesting.Action) (bool, watch.Interface, error) {
		if refusing.Load() {
			return true, nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		}
		fw := watch.NewFake()
		open.Store(fw)
		return true, fw, nil
	})
	w := New(Options{Connect: func() (Client, string, error) { return discoverytest.Client{Interface: client}, "ns", nil }})
	defer w.Close()
	synced := syncedMetric(t, w)
	var web recorder
	stop, err := w.Subscribe(Key{Service: "web", Port: "http"}, web.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitFor(t, &web, "10.0.0.1:8080")
	discoverytest.Eventually(t, "synced 1 with the watch open", func() error {
		if v := synced(); v != 1 || open.Load() == nil {
			return fmt.Errorf("synced %v", v)
		}
		return nil
	})
	refusing.Store(true)
	open.Load().Stop() // the API server's process is gone
	discoverytest.Eventually(t, "synced 0 while watches are refused", func() error {
		if v := synced(); v != 0 {
			return fmt.Errorf("flotilla_gateway_discovery_synced = %v", v)
		}
		return nil
	})
	if got := web.get(); got != "10.0.0.1:8080" {
		t.Errorf("endpoints while the API server is away = %q, want the last known", got)
	}
	refusing.Store(false)
	discoverytest.Eventually(t, "synced 1 once a watch is accepted again", func() error {
		if v := synced(); v != 1 {
			return fmt.Errorf("flotilla_gateway_discovery_synced = %v", v)
		}
		return nil
	})
}

// syncedMetric returns a reader of w's flotilla_gateway_discovery_synced
// (one namespace watched; -1 before it is).
func syncedMetric(t *testing.T, w *Watcher) func() float64 {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(w)
	return func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Error(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				return m.GetGauge().GetValue()
			}
		}
		return -1
	}
}
