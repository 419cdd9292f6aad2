package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

// podSlice is slice() with each endpoint's targetRef the pod named in
// pods (same order).
func podSlice(name, service string, pods []string, eps ...ep) *discoveryv1.EndpointSlice {
	es := slice("ns", name, service, map[string]int32{"http": 8080}, eps...)
	for i := range es.Endpoints {
		es.Endpoints[i].TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: pods[i]}
	}
	return es
}

func owner(kind, name string) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, Controller: ptr(true)}}
}

func pod(name, version, rs string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"app": "demo"},
		Annotations: map[string]string{"big": strings.Repeat("x", 1000)}, OwnerReferences: owner("ReplicaSet", rs)}}
	if version != "" {
		p.Labels[VersionLabel] = version
	}
	return p
}

func replicaSet(name, deployment, revision string, n int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, OwnerReferences: owner("Deployment", deployment),
		Annotations: map[string]string{revisionAnnotation: revision}}, Spec: appsv1.ReplicaSetSpec{Replicas: ptr(n)}}
}

// timeline records the events discovery reports.
type timeline struct {
	mu     sync.Mutex
	events []liveview.Event
}

func (tl *timeline) Event(e liveview.Event) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, e)
}

func (tl *timeline) list() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []string
	for _, e := range tl.events {
		out = append(out, e.Kind+": "+e.Message)
	}
	return out
}

func (tl *timeline) waitFor(t *testing.T, want ...string) {
	t.Helper()
	discoverytest.Eventually(t, "timeline", func() error {
		if got := tl.list(); !cmp.Equal(got, want) {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

// versions records the last endpoints as addr=pod@version.
type versions struct {
	mu   sync.Mutex
	last string
}

func (v *versions) fn(eps []Endpoint) {
	var parts []string
	for _, e := range eps {
		parts = append(parts, e.Addr+"="+e.Pod+"@"+e.Version)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.last = strings.Join(parts, ",")
}

func (v *versions) waitFor(t *testing.T, want string) {
	t.Helper()
	discoverytest.Eventually(t, "endpoints with versions", func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.last != want {
			return fmt.Errorf("got %q, want %q", v.last, want)
		}
		return nil
	})
}

// TestPodVersionsAndTimeline drives pods, ReplicaSets and EndpointSlices
// through the fake API server: an endpoint's version is its pod's
// app.kubernetes.io/version label (and follows it), the pods behind the
// Service turning ready or terminating and the rollouts of its
// Deployments reach the timeline, the first list does not, and
// ReplicaSets of other Deployments never do.
func TestPodVersionsAndTimeline(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(
		podSlice("demo-a", "demo", []string{"demo-1"}, ep{"10.0.0.1", "ready"}),
		pod("demo-1", "v1", "demo-rs1"), pod("other-1", "v9", "other-rs1"),
		replicaSet("demo-rs1", "demo", "1", 1), replicaSet("other-rs1", "other", "1", 1),
	)
	tl := &timeline{}
	w := New(Options{Pods: true, Timeline: tl,
		Connect: func() (Client, string, error) { return discoverytest.Client{Interface: client}, "ns", nil }})
	defer w.Close()
	var demo versions
	stop, err := w.Subscribe(Key{Service: "demo", Port: "http"}, demo.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	demo.waitFor(t, "10.0.0.1:8080=demo-1@v1")

	pods, sets, slices := client.CoreV1().Pods("ns"), client.AppsV1().ReplicaSets("ns"), client.DiscoveryV1().EndpointSlices("ns")
	relabelled := pod("demo-1", "v1.1", "demo-rs1")
	if _, err := pods.Update(ctx, relabelled, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	demo.waitFor(t, "10.0.0.1:8080=demo-1@v1.1")

	// A rollout: other's first, which must not show; then demo's new
	// ReplicaSet, scaled up; its pod turns ready, the old one terminates.
	if _, err := sets.Create(ctx, replicaSet("other-rs2", "other", "2", 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sets.Create(ctx, replicaSet("demo-rs2", "demo", "2", 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tl.waitFor(t, "rollout: Deployment ns/demo: new ReplicaSet demo-rs2 (revision 2), 0 replicas")
	if _, err := sets.Update(ctx, replicaSet("demo-rs2", "demo", "2", 1), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, pod("demo-2", "", "demo-rs2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := slices.Update(ctx, podSlice("demo-a", "demo", []string{"demo-1", "demo-2"}, ep{"10.0.0.1", "ready"}, ep{"10.0.0.2", "not-ready"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := slices.Update(ctx, podSlice("demo-a", "demo", []string{"demo-1", "demo-2"}, ep{"10.0.0.1", "ready"}, ep{"10.0.0.2", "ready"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	demo.waitFor(t, "10.0.0.1:8080=demo-1@v1.1,10.0.0.2:8080=demo-2@")
	if _, err := slices.Update(ctx, podSlice("demo-a", "demo", []string{"demo-1", "demo-2"}, ep{"10.0.0.1", "terminating-serving"}, ep{"10.0.0.2", "ready"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	tl.waitFor(t,
		"rollout: Deployment ns/demo: new ReplicaSet demo-rs2 (revision 2), 0 replicas",
		"rollout: Deployment ns/demo: ReplicaSet demo-rs2 (revision 2) scaled 0 → 1",
		"pod-ready: pod ns/demo-2 (10.0.0.2, Service demo) ready",
		"pod-terminating: pod ns/demo-1 (10.0.0.1, Service demo) terminating",
	)
	// The informers keep metadata only: no annotations but the revision,
	// no pod templates.
	w.mu.Lock()
	sp := w.spaces["ns"]
	w.mu.Unlock()
	for _, o := range sp.kube.pods.GetStore().List() {
		if m := o.(*metav1.PartialObjectMetadata); len(m.Annotations) > 0 || len(m.ManagedFields) > 0 {
			t.Errorf("pod %s kept annotations %v", m.Name, m.Annotations)
		}
	}
}

// TestPodsForbidden: without RBAC on pods and replicasets the endpoints
// still arrive and are synced, without versions; a warning says what is
// missing.
func TestPodsForbidden(t *testing.T) {
	client := fake.NewClientset(podSlice("demo-a", "demo", []string{"demo-1"}, ep{"10.0.0.1", "ready"}), pod("demo-1", "v1", "rs"))
	for _, res := range []string{"pods", "replicasets"} {
		client.PrependReactor("list", res, func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: res}, "", fmt.Errorf("RBAC: access denied"))
		})
	}
	logs := &syncBuffer{}
	w := New(Options{Pods: true, Timeline: &timeline{}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Connect: func() (Client, string, error) { return discoverytest.Client{Interface: client}, "ns", nil }})
	defer w.Close()
	var demo versions
	stop, err := w.Subscribe(Key{Service: "demo", Port: "http"}, demo.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := w.WaitSynced(context.Background()); err != nil {
		t.Fatal(err)
	}
	demo.waitFor(t, "10.0.0.1:8080=demo-1@")
	discoverytest.Eventually(t, "warnings", func() error {
		for _, want := range []string{"cannot list and watch pods", "cannot list and watch replicasets"} {
			if !strings.Contains(logs.String(), want) {
				return fmt.Errorf("log %q lacks %q", logs.String(), want)
			}
		}
		return nil
	})
	if v := syncedMetric(t, w)(); v != 1 {
		t.Errorf("synced = %v, want 1: pods are not the endpoints", v)
	}
	// Refused once, not asked again and again: the informers stop.
	w.mu.Lock()
	sp := w.spaces["ns"]
	w.mu.Unlock()
	discoverytest.Eventually(t, "pod and ReplicaSet informers stopped", func() error {
		if !sp.kube.pods.IsStopped() || !sp.kube.rs.IsStopped() {
			return fmt.Errorf("pods stopped %v, replicasets stopped %v", sp.kube.pods.IsStopped(), sp.kube.rs.IsStopped())
		}
		return nil
	})
	lists := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "list" && a.GetResource().Resource == "pods" {
				n++
			}
		}
		return n
	}
	before := lists()
	if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), podSlice("demo-a", "demo", []string{"demo-1"}, ep{"10.0.0.2", "ready"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	demo.waitFor(t, "10.0.0.2:8080=demo-1@")
	if n := lists(); n != before || n != 1 {
		t.Errorf("pods listed %d times, want once", n)
	}
	if c := strings.Count(logs.String(), "cannot list and watch pods"); c != 1 {
		t.Errorf("%d warnings for pods, want 1", c)
	}
}

// TestPodEventsWithoutPods: with Timeline but not Pods, the pods'
// readiness still comes from the slices; nothing is watched but them.
func TestPodEventsWithoutPods(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(podSlice("demo-a", "demo", []string{"demo-1"}, ep{"10.0.0.1", "ready"}))
	tl := &timeline{}
	w := New(Options{Timeline: tl, Connect: func() (Client, string, error) { return discoverytest.Client{Interface: client}, "ns", nil }})
	defer w.Close()
	var demo versions
	stop, err := w.Subscribe(Key{Service: "demo", Port: "http"}, demo.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	slices := client.DiscoveryV1().EndpointSlices("ns")
	if _, err := slices.Update(ctx, podSlice("demo-a", "demo", []string{"demo-1"}, ep{"10.0.0.1", "not-ready"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	tl.waitFor(t, "pod-not-ready: pod ns/demo-1 (10.0.0.1, Service demo) not ready")
	if err := slices.Delete(ctx, "demo-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	sp := w.spaces["ns"]
	w.mu.Unlock()
	discoverytest.Eventually(t, "the deleted slice's pods forgotten", func() error {
		sp.podStates.mu.Lock()
		defer sp.podStates.mu.Unlock()
		if len(sp.podStates.bySlice) != 0 {
			return fmt.Errorf("pod states %v", sp.podStates.bySlice)
		}
		return nil
	})
	if sp.kube != nil {
		t.Error("pod and ReplicaSet informers started without Options.Pods")
	}
	for _, a := range client.Actions() {
		if r := a.GetResource().Resource; r != "endpointslices" {
			t.Errorf("action on %s: want only endpointslices", r)
		}
	}
}
