package controller

import (
	"context"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwlistersv1 "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// listenerSetInformer watches ListenerSets (gateway.networking.k8s.io/v1,
// the standard channel from Gateway API v1.5). Without their CRD (older
// Gateway API CRDs) or without RBAC to read them (an older ClusterRole),
// an informer would never sync and hold every other kind back: the
// controller then runs without ListenerSets and says so once.
func (c *Controller) listenerSetInformer(ctx context.Context) cache.SharedIndexInformer {
	gw := c.opts.GatewayClient.V1
	if _, err := gw.ListenerSets("").List(ctx, metav1.ListOptions{Limit: 1}); apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		c.log.Warn("gateway API: ListenerSets are not served or not readable; running without them (install the v1.6.3 CRDs and the ClusterRole's listenersets rules)",
			slog.String("error", err.Error()))
		return nil
	}
	inf := kubeshared.NewInformer(&gwv1.ListenerSet{}, c.opts.GatewayClient, gw.ListenerSets("").List, gw.ListenerSets("").Watch)
	l := gwlistersv1.NewListenerSetLister(inf.GetIndexer())
	c.listenerSets = func() ([]*gwv1.ListenerSet, error) { return l.List(labels.Everything()) }
	return inf
}

// writeListenerSetStatus writes the status of the ListenerSets whose
// parent is one of our Gateways, where it differs from the API's.
func (c *Controller) writeListenerSetStatus(ctx context.Context, in gatewayapi.Input, res gatewayapi.Result, warn func(kind, key string, err error)) {
	for _, s := range in.ListenerSets {
		key := s.Namespace + "/" + s.Name
		want, ok := res.ListenerSets[key]
		if !ok {
			continue // another controller's, or nobody's
		}
		st := s.Status.DeepCopy()
		conds, changed := mergeConditions(st.Conditions, want.Conditions)
		st.Conditions = conds
		listeners, lchanged := mergeListeners(st.Listeners, want.Listeners, func(l *gwv1.ListenerEntryStatus) listenerView {
			return listenerView{string(l.Name), &l.Conditions, l.AttachedRoutes, l.SupportedKinds}
		})
		st.Listeners, changed = listeners, changed || lchanged
		if !changed {
			continue
		}
		up := s.DeepCopy()
		up.Status = *st
		_, err := c.opts.GatewayClient.V1.ListenerSets(s.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("ListenerSet", key, err)
	}
}
