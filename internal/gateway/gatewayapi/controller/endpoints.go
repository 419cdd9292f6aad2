package controller

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// The per-Gateway Services have no selector: their EndpointSlices are
// written here, one per address family, listing the gateway's pods as
// the publish Service's EndpointSlices do (with their ready, serving and
// terminating conditions, so kube-proxy drains a terminating replica as
// it would behind the publish Service), each port the local port its
// listener port targets. They are owned by their Service: deleting it
// deletes them.

// managedBy is the EndpointSlices' endpointslice.kubernetes.io/managed-by:
// not the EndpointSlice controller's, which leaves them alone.
const managedBy = "gateway.flotilla.dev"

// gatewayPodsInformer watches the publish Service's EndpointSlices (the
// gateway's own namespace: the Role the gateway has for discovery) and
// sets c.gatewayPods.
func (c *Controller) gatewayPodsInformer() cache.SharedIndexInformer {
	ns, name, _ := strings.Cut(c.opts.PublishService, "/")
	inf := c.sliceInformer(ns, discoveryv1.LabelServiceName+"="+name)
	c.gatewayPods = func() []*discoveryv1.EndpointSlice {
		var out []*discoveryv1.EndpointSlice
		for _, o := range inf.GetStore().List() {
			// The selector again: never our own slices, whatever a
			// watch delivered (feeding them back would grow them).
			if s := o.(*discoveryv1.EndpointSlice); s.Namespace == ns && s.Labels[discoveryv1.LabelServiceName] == name &&
				s.Labels[discoveryv1.LabelManagedBy] != managedBy {
				out = append(out, s)
			}
		}
		return out
	}
	return inf
}

// sliceInformer watches the EndpointSlices of namespace ns (all: "")
// that label selector sel selects.
func (c *Controller) sliceInformer(ns, sel string) cache.SharedIndexInformer {
	es := c.opts.Client.Discovery.EndpointSlices(ns)
	return kubeshared.NewInformer(&discoveryv1.EndpointSlice{}, c.opts.Client,
		func(ctx context.Context, o metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
			o.LabelSelector = sel
			return es.List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return es.Watch(ctx, o)
		})
}

// endpointSlices are the EndpointSlices svc should have: one per address
// family of the gateway's pods.
func (c *Controller) endpointSlices(svc *corev1.Service) []*discoveryv1.EndpointSlice {
	byType := map[discoveryv1.AddressType][]discoveryv1.Endpoint{}
	for _, s := range c.gatewayPods() {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, e := range s.Endpoints {
			byType[s.AddressType] = append(byType[s.AddressType], discoveryv1.Endpoint{Addresses: e.Addresses,
				Conditions: e.Conditions, NodeName: e.NodeName, Zone: e.Zone, TargetRef: e.TargetRef})
		}
	}
	tcp := corev1.ProtocolTCP
	var ports []discoveryv1.EndpointPort
	for _, p := range svc.Spec.Ports {
		ports = append(ports, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.TargetPort.IntVal, Protocol: &tcp})
	}
	var out []*discoveryv1.EndpointSlice
	for _, typ := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
		eps := byType[typ]
		if len(eps) == 0 && (typ == discoveryv1.AddressTypeIPv6 || len(byType) > 0) {
			continue // an empty IPv4 slice only when there is none at all
		}
		slices.SortFunc(eps, func(a, b discoveryv1.Endpoint) int { return cmp.Compare(a.Addresses[0], b.Addresses[0]) })
		out = append(out, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: svc.Name + "-" + strings.ToLower(string(typ)), Namespace: svc.Namespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: managedBy,
					labelManaged: managedByValue},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}},
			},
			AddressType: typ, Endpoints: eps, Ports: ports,
		})
	}
	return out
}

// ownSlicesInformer watches the EndpointSlices written here (managed-by
// gateway.flotilla.dev, every namespace) and sets c.ownSlice: one edited
// or deleted by someone else is put back at the next sync, and an
// unchanged one costs no request.
func (c *Controller) ownSlicesInformer() cache.SharedIndexInformer {
	inf := c.sliceInformer(metav1.NamespaceAll, discoveryv1.LabelManagedBy+"="+managedBy)
	c.ownSlice = func(ns, name string) *discoveryv1.EndpointSlice {
		o, ok, _ := inf.GetStore().GetByKey(ns + "/" + name)
		if s, _ := o.(*discoveryv1.EndpointSlice); ok && s != nil && s.Labels[discoveryv1.LabelManagedBy] == managedBy {
			return s
		}
		return nil
	}
	return inf
}

// applyEndpoints (Lease holder) makes svc's EndpointSlices what
// endpointSlices says, compared with the informer's copies. A write that
// meets a newer copy (a conflict, or a slice that exists but lost our
// label) kicks another sync, which sees it.
func (c *Controller) applyEndpoints(ctx context.Context, svc *corev1.Service) {
	api := c.opts.Client.Discovery.EndpointSlices(svc.Namespace)
	wanted := c.endpointSlices(svc)
	// A family the pods no longer have: its slice goes, rather than keep
	// addresses that no longer serve.
	for _, typ := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
		name := svc.Name + "-" + strings.ToLower(string(typ))
		if slices.ContainsFunc(wanted, func(es *discoveryv1.EndpointSlice) bool { return es.AddressType == typ }) ||
			c.ownSlice(svc.Namespace, name) == nil {
			continue
		}
		if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			c.log.Warn("gateway API: EndpointSlice of a Gateway's Service not deleted", slog.String("endpointslice", svc.Namespace+"/"+name), slog.String("error", err.Error()))
		}
	}
	for _, want := range wanted {
		key := want.Namespace + "/" + want.Name
		have := c.ownSlice(want.Namespace, want.Name)
		if have != nil && have.AddressType == want.AddressType && apiequality.Semantic.DeepEqual(have.Endpoints, want.Endpoints) &&
			apiequality.Semantic.DeepEqual(have.Ports, want.Ports) && apiequality.Semantic.DeepEqual(have.Labels, want.Labels) &&
			apiequality.Semantic.DeepEqual(have.OwnerReferences, want.OwnerReferences) {
			continue
		}
		var err error
		if have == nil {
			_, err = api.Create(ctx, want, metav1.CreateOptions{FieldManager: "flotilla-gateway-api"})
			if apierrors.IsAlreadyExists(err) {
				// Ours without our label (or the informer is behind):
				// take it back.
				have, err = api.Get(ctx, want.Name, metav1.GetOptions{})
			}
		}
		if have != nil && err == nil {
			if have.AddressType != want.AddressType {
				// addressType is immutable: replaced at the next sync.
				err = api.Delete(ctx, want.Name, metav1.DeleteOptions{})
				c.kick()
			} else {
				want.ResourceVersion = have.ResourceVersion
				_, err = api.Update(ctx, want, metav1.UpdateOptions{FieldManager: "flotilla-gateway-api"})
			}
		}
		switch {
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			c.kick() // the informer brings the newer copy
		case err != nil:
			c.log.Warn("gateway API: EndpointSlice of a Gateway's Service not written", slog.String("endpointslice", key), slog.String("error", err.Error()))
		}
	}
}
