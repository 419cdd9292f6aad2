package controller

import (
	"context"
	"log/slog"
	"slices"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwlistersv1 "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// backendTLSInformer watches BackendTLSPolicies and sets c.policies (their
// caCertificateRefs are read through configMapInformer's cache). A cluster
// without the BackendTLSPolicy CRD (Gateway API before v1.4's standard
// channel) is served without it: an informer on a resource the server
// does not have would never sync and would hold every other sync back.
func (c *Controller) backendTLSInformer(ctx context.Context) cache.SharedIndexInformer {
	c.policies = func() ([]*gwv1.BackendTLSPolicy, error) { return nil, nil }
	gw, gc := c.opts.GatewayClient.V1, c.opts.GatewayClient
	if _, err := gw.BackendTLSPolicies("").List(ctx, metav1.ListOptions{Limit: 1}); apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		// Served without BackendTLSPolicies: no Service gets TLS, and
		// no policy status is written.
		c.log.Warn("gateway API: BackendTLSPolicies off until the gateway restarts with the CRD (gateway.networking.k8s.io/v1) installed and list/watch on backendtlspolicies granted",
			slog.String("error", err.Error()))
		return nil
	}
	pi := kubeshared.NewInformer(&gwv1.BackendTLSPolicy{}, gc, gw.BackendTLSPolicies("").List, gw.BackendTLSPolicies("").Watch)
	pl := gwlistersv1.NewBackendTLSPolicyLister(pi.GetIndexer())
	c.policies = func() ([]*gwv1.BackendTLSPolicy, error) { return pl.List(labels.Everything()) }
	return pi
}

// backendTLSInput adds the policies and ConfigMaps to in.
func (c *Controller) backendTLSInput(in *gatewayapi.Input) {
	in.BackendTLSPolicies, _ = c.policies()
	in.ConfigMaps = c.configMaps
}

// policyObjects adds the policies to the objects Events are recorded on.
func policyObjects(objs map[string]runtime.Object, in gatewayapi.Input) {
	for _, p := range in.BackendTLSPolicies {
		objs["BackendTLSPolicy/"+p.Namespace+"/"+p.Name] = p
	}
}

// writePolicyStatus writes status.ancestors of the BackendTLSPolicies
// where ours differ from the API's, keeping other controllers' entries
// (the list is shared, at most 16).
func (c *Controller) writePolicyStatus(ctx context.Context, in gatewayapi.Input, res gatewayapi.Result, warn func(kind, key string, err error)) {
	gw := c.opts.GatewayClient.V1
	ours := gwv1.GatewayController(c.opts.Translate.ControllerName)
	if ours == "" {
		ours = gatewayapi.DefaultControllerName
	}
	for _, p := range in.BackendTLSPolicies {
		key := p.Namespace + "/" + p.Name
		want := res.BackendTLSPolicies[key]
		ancestors := []gwv1.PolicyAncestorStatus{}
		changed, oursBefore := false, 0
		for _, a := range p.Status.Ancestors {
			if a.ControllerName != ours {
				ancestors = append(ancestors, a)
			} else {
				oursBefore++
			}
		}
		if room := 16 - len(ancestors); len(want) > room {
			c.log.Warn("gateway API: BackendTLSPolicy status full; some Gateways left out", slog.String("object", "BackendTLSPolicy/"+key))
			want = want[:max(room, 0)]
		}
		for _, w := range want {
			var old []metav1.Condition
			if i := slices.IndexFunc(p.Status.Ancestors, func(a gwv1.PolicyAncestorStatus) bool {
				return a.ControllerName == ours && apiequality.Semantic.DeepEqual(a.AncestorRef, w.AncestorRef)
			}); i >= 0 {
				old = p.Status.Ancestors[i].Conditions
			} else {
				changed = true
			}
			conds, cchanged := mergeConditions(old, w.Conditions)
			changed = changed || cchanged
			w.Conditions = conds
			ancestors = append(ancestors, w)
		}
		if oursBefore != len(want) {
			changed = true
		}
		if !changed {
			continue
		}
		up := p.DeepCopy()
		up.Status.Ancestors = ancestors
		_, err := gw.BackendTLSPolicies(p.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("BackendTLSPolicy", key, err)
	}
}
