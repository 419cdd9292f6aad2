package kubeshared

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	typedcoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	typeddiscoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"
	typednetworkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Clients are the typed API clients the controllers use: Services,
// Secrets, Namespaces and Events (core/v1), IngressClasses and Ingresses
// (networking.k8s.io/v1), the Lease (coordination.k8s.io/v1) and the
// per-Gateway Services' EndpointSlices (discovery.k8s.io/v1).
//
// Not client-go's Clientset and its SharedInformerFactory: they link every
// API group's client, informer, lister and apply configuration into the
// binary (the gateway grew from 37 to 77 MB). NewClients builds these
// three from one rest.Config; tests fill them from a fake Clientset with
// ClientsOf.
type Clients struct {
	Core         typedcorev1.CoreV1Interface
	Networking   typednetworkingv1.NetworkingV1Interface
	Coordination typedcoordinationv1.CoordinationV1Interface
	Discovery    typeddiscoveryv1.DiscoveryV1Interface
	// NoWatchList: the server cannot stream the initial list in a watch
	// (a fake Clientset), so informers list, then watch.
	NoWatchList bool
}

// IsWatchListSemanticsUnSupported tells client-go's reflector whether it
// may use watch-list streaming; see NoWatchList.
func (c Clients) IsWatchListSemanticsUnSupported() bool { return c.NoWatchList }

// NewClients builds the Clients of the API server cfg points at.
func NewClients(cfg *rest.Config) (Clients, error) {
	core, err := typedcorev1.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("core/v1 client: %w", err)
	}
	networking, err := typednetworkingv1.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("networking.k8s.io/v1 client: %w", err)
	}
	coordination, err := typedcoordinationv1.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("coordination.k8s.io/v1 client: %w", err)
	}
	discovery, err := typeddiscoveryv1.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("discovery.k8s.io/v1 client: %w", err)
	}
	return Clients{Core: core, Networking: networking, Coordination: coordination, Discovery: discovery}, nil
}

// Clientset is the part of a client-go Clientset (a fake one in tests)
// that ClientsOf reads.
type Clientset interface {
	CoreV1() typedcorev1.CoreV1Interface
	NetworkingV1() typednetworkingv1.NetworkingV1Interface
	CoordinationV1() typedcoordinationv1.CoordinationV1Interface
	DiscoveryV1() typeddiscoveryv1.DiscoveryV1Interface
}

// ClientsOf returns the Clients of cs, e.g. a fake Clientset.
func ClientsOf(cs Clientset) Clients {
	c := Clients{Core: cs.CoreV1(), Networking: cs.NetworkingV1(), Coordination: cs.CoordinationV1(), Discovery: cs.DiscoveryV1()}
	if w, ok := cs.(interface{ IsWatchListSemanticsUnSupported() bool }); ok {
		c.NoWatchList = w.IsWatchListSemanticsUnSupported()
	}
	return c
}

// NewInformer returns an informer of the objects like obj that list and
// watch return, indexed by namespace (as client-go's generated informers
// are, so its listers work on it). client tells whether watch-list
// streaming may be used (IsWatchListSemanticsUnSupported); nil: it may.
func NewInformer[L runtime.Object](obj runtime.Object, client any,
	list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) cache.SharedIndexInformer {
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list(ctx, o)
		},
		WatchFuncWithContext: watchFn,
	}, client)
	return cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
