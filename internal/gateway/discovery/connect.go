package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// serviceAccountNamespace is where Kubernetes mounts the pod's namespace
// with its service account token.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Connect returns an Options.Connect that builds a client from kubeconfig
// when it is set, else from the pod's service account (in cluster), else
// from $KUBECONFIG or ~/.kube/config (a developer's machine). The
// namespace of backends that name none is $POD_NAMESPACE, else the
// service account's namespace, else the kubeconfig context's, else
// "default". getenv is os.Getenv in production.
func Connect(kubeconfig string, getenv func(string) string) func() (Client, string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	return func() (Client, string, error) {
		cfg, ns, err := RESTConfig(kubeconfig, getenv)
		if err != nil {
			return nil, "", err
		}
		client, err := NewClient(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("API client: %w", err)
		}
		return client, ns, nil
	}
}

// RESTConfig returns the API server's client configuration and the
// gateway's namespace, found as Connect describes.
func RESTConfig(kubeconfig string, getenv func(string) string) (*rest.Config, string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, ns, err := restConfig(kubeconfig, getenv)
	if v := getenv("POD_NAMESPACE"); err == nil && v != "" {
		ns = v
	}
	return cfg, ns, err
}

func restConfig(kubeconfig string, getenv func(string) string) (*rest.Config, string, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err == nil {
			ns := "default"
			if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
				ns = strings.TrimSpace(string(b))
			}
			return cfg, ns, nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, "", fmt.Errorf("in-cluster config: %w", err)
		}
		if getenv("KUBECONFIG") == "" {
			home, _ := os.UserHomeDir()
			if _, err := os.Stat(filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)); home == "" || err != nil {
				return nil, "", errors.New("not running in a cluster (no KUBERNETES_SERVICE_HOST, or no service account token) and no kubeconfig: pass --kubeconfig (FLOTILLA_KUBECONFIG) or set KUBECONFIG")
			}
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, ~/.kube/config
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return cfg, ns, nil
}

// restClient is a Client over a REST client that knows only the
// discovery.k8s.io/v1 types.
type restClient struct {
	rc     *rest.RESTClient
	params runtime.ParameterCodec
	apps   *rest.RESTClient   // apps/v1: ReplicaSets
	meta   metadata.Interface // pods' metadata only
}

var podsResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// NewClient returns a Client for the API server cfg points at. It speaks
// protobuf, as kube-proxy does for slices: smaller and cheaper to decode
// than JSON.
func NewClient(cfg *rest.Config) (Client, error) {
	s := runtime.NewScheme()
	if err := discoveryv1.AddToScheme(s); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"}) // Status, for errors
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &discoveryv1.SchemeGroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(s).WithoutConversion()
	c.UserAgent = "flotilla-gateway"
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	if err := appsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	a := rest.CopyConfig(c)
	a.GroupVersion = &appsv1.SchemeGroupVersion
	apps, err := rest.RESTClientFor(a)
	if err != nil {
		return nil, err
	}
	// Pods as PartialObjectMetadata: the API server sends names, labels
	// and owners, not specs and statuses, so the informer stays small.
	m := metadata.ConfigFor(cfg)
	m.UserAgent = "flotilla-gateway"
	meta, err := metadata.NewForConfig(m)
	if err != nil {
		return nil, err
	}
	return &restClient{rc: rc, params: runtime.NewParameterCodec(s), apps: apps, meta: meta}, nil
}

func (c *restClient) ListPodMetadata(ctx context.Context, ns string, opts metav1.ListOptions) (*metav1.PartialObjectMetadataList, error) {
	return c.meta.Resource(podsResource).Namespace(ns).List(ctx, opts)
}

func (c *restClient) WatchPodMetadata(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	return c.meta.Resource(podsResource).Namespace(ns).Watch(ctx, opts)
}

func (c *restClient) ListReplicaSets(ctx context.Context, ns string, opts metav1.ListOptions) (*appsv1.ReplicaSetList, error) {
	out := &appsv1.ReplicaSetList{}
	err := c.apps.Get().Namespace(ns).Resource("replicasets").VersionedParams(&opts, c.params).Do(ctx).Into(out)
	return out, err
}

func (c *restClient) WatchReplicaSets(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.apps.Get().Namespace(ns).Resource("replicasets").VersionedParams(&opts, c.params).Watch(ctx)
}

var _ PodClient = (*restClient)(nil)

func (c *restClient) ListEndpointSlices(ctx context.Context, ns string, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	out := &discoveryv1.EndpointSliceList{}
	err := c.rc.Get().Namespace(ns).Resource("endpointslices").VersionedParams(&opts, c.params).Do(ctx).Into(out)
	return out, err
}

func (c *restClient) WatchEndpointSlices(ctx context.Context, ns string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Namespace(ns).Resource("endpointslices").VersionedParams(&opts, c.params).Watch(ctx)
}
