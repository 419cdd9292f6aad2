// Package discoverytest adapts client-go's fake Clientset to the
// discovery package's Client, for tests that drive real EndpointSlice
// objects through the informers.
package discoverytest

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// Client is a discovery.Client over a (fake) Clientset.
type Client struct{ kubernetes.Interface }

// ListEndpointSlices lists the slices of ns.
func (c Client) ListEndpointSlices(ctx context.Context, ns string, o metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	return c.DiscoveryV1().EndpointSlices(ns).List(ctx, o)
}

// WatchEndpointSlices watches the slices of ns.
func (c Client) WatchEndpointSlices(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
	return c.DiscoveryV1().EndpointSlices(ns).Watch(ctx, o)
}

// ListPodMetadata lists the pods of ns as PartialObjectMetadata, as the
// API server's metadata-only answer has them.
func (c Client) ListPodMetadata(ctx context.Context, ns string, o metav1.ListOptions) (*metav1.PartialObjectMetadataList, error) {
	l, err := c.CoreV1().Pods(ns).List(ctx, o)
	if err != nil {
		return nil, err
	}
	out := &metav1.PartialObjectMetadataList{ListMeta: l.ListMeta}
	for i := range l.Items {
		out.Items = append(out.Items, *podMeta(&l.Items[i]))
	}
	return out, nil
}

// WatchPodMetadata watches the pods of ns as PartialObjectMetadata.
func (c Client) WatchPodMetadata(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
	wi, err := c.CoreV1().Pods(ns).Watch(ctx, o)
	if err != nil {
		return nil, err
	}
	return watch.Filter(wi, func(e watch.Event) (watch.Event, bool) {
		if p, ok := e.Object.(*corev1.Pod); ok {
			e.Object = podMeta(p)
		}
		return e, true
	}), nil
}

func podMeta(p *corev1.Pod) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}, ObjectMeta: *p.ObjectMeta.DeepCopy()}
}

// ListReplicaSets lists the ReplicaSets of ns.
func (c Client) ListReplicaSets(ctx context.Context, ns string, o metav1.ListOptions) (*appsv1.ReplicaSetList, error) {
	return c.AppsV1().ReplicaSets(ns).List(ctx, o)
}

// WatchReplicaSets watches the ReplicaSets of ns.
func (c Client) WatchReplicaSets(ctx context.Context, ns string, o metav1.ListOptions) (watch.Interface, error) {
	return c.AppsV1().ReplicaSets(ns).Watch(ctx, o)
}

// IsWatchListSemanticsUnSupported: the fake lists, then watches.
func (c Client) IsWatchListSemanticsUnSupported() bool { return true }

// Eventually polls cond until it returns nil, for up to 30 s (a bound for
// a loaded machine, not a speed claim), and fails t with what and cond's
// last error when it never does.
func Eventually(t testing.TB, what string, cond func() error) {
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
		time.Sleep(10 * time.Millisecond)
	}
}
