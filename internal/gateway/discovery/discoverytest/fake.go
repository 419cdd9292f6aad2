// Package discoverytest adapts client-go's fake Clientset to the
// discovery package's Client, for tests that drive real EndpointSlice
// objects through the informers.
package discoverytest

import (
	"context"
	"testing"
	"time"

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
