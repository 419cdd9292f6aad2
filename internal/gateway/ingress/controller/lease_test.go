package controller

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// TestLeaseHandover: of two replicas only the Lease holder writes status;
// when it stops (and releases the Lease) the other takes over and writes
// the status of an Ingress created afterwards.
func TestLeaseHandover(t *testing.T) {
	client := fake.NewClientset(
		&networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "flotilla"}, Spec: networkingv1.IngressClassSpec{Controller: "flotilla.dev/ingress-controller"}},
		ingressObj("first", nil, "first.test", "/", "app"))
	ctx := context.Background()
	run := func(id, addr string) (stop func()) {
		c, err := New(Options{Client: kubeshared.ClientsOf(client), SecretDir: filepath.Join(t.TempDir(), id), Apply: func(*gateway.Extra) error { return nil },
			PublishAddresses: []string{addr}, Lease: &Lease{Namespace: "shop", Name: "lease", Identity: id}, Debounce: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			if err := c.Run(runCtx); err != nil {
				t.Errorf("Run(%s) = %v", id, err)
			}
		})
		return func() { cancel(); wg.Wait() }
	}
	holder := func() string {
		l, err := client.CoordinationV1().Leases("shop").Get(ctx, "lease", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	status := func(name string) string {
		ing, err := client.NetworkingV1().Ingresses("shop").Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(ing.Status.LoadBalancer.Ingress) == 0 {
			return ""
		}
		return ing.Status.LoadBalancer.Ingress[0].IP
	}
	stopA := run("a", "192.0.2.1")
	discoverytest.Eventually(t, "a holds the Lease and writes status", func() error {
		if h, s := holder(), status("first"); h != "a" || s != "192.0.2.1" {
			return fmt.Errorf("holder %q, status %q", h, s)
		}
		return nil
	})
	// b publishes another address, so what it writes is told apart.
	stopB := run("b", "192.0.2.2")
	defer stopB()
	// While a leads, b writes nothing: give b a sync, then look.
	if _, err := client.NetworkingV1().Ingresses("shop").Create(ctx, ingressObj("second", nil, "second.test", "/", "app"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "a writes the new Ingress's status", func() error {
		if s := status("second"); s != "192.0.2.1" {
			return fmt.Errorf("second status %q, want a's 192.0.2.1", s)
		}
		return nil
	})
	if s := status("first"); s != "192.0.2.1" {
		t.Errorf("first status %q while a leads, want 192.0.2.1", s)
	}
	stopA()
	discoverytest.Eventually(t, "b takes the Lease and writes its status", func() error {
		if h, s := holder(), status("first"); h != "b" || s != "192.0.2.2" {
			return fmt.Errorf("holder %q, first status %q", h, s)
		}
		return nil
	})
}
