package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

// PodClient is what Options.Pods needs beyond Client: the metadata of a
// namespace's pods (PartialObjectMetadata: names, labels, owners, no spec
// or status) and its ReplicaSets. NewClient's client implements it; a
// Client that does not gets no versions and no rollout events.
type PodClient interface {
	ListPodMetadata(ctx context.Context, namespace string, opts metav1.ListOptions) (*metav1.PartialObjectMetadataList, error)
	WatchPodMetadata(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
	ListReplicaSets(ctx context.Context, namespace string, opts metav1.ListOptions) (*appsv1.ReplicaSetList, error)
	WatchReplicaSets(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

// Timeline receives Kubernetes events for the live view (the gateway's
// *liveview.Collector).
type Timeline interface {
	Event(liveview.Event)
}

// VersionLabel is the pod label a version is read from when the answer
// names none.
const VersionLabel = "app.kubernetes.io/version"

// Event kinds discovery adds to the live view's timeline.
const (
	KindRollout        = "rollout"
	KindPodReady       = "pod-ready"
	KindPodNotReady    = "pod-not-ready"
	KindPodTerminating = "pod-terminating"
)

// maxDeployments bounds the Deployments a namespace remembers as backing
// a subscribed Service.
const maxDeployments = 1024

// kube is the pod and ReplicaSet informers of one namespace, and what the
// timeline was last told about its pods.
type kube struct {
	pods, rs cache.SharedIndexInformer
	kick     chan struct{} // a pod's version changed: deliver again

	mu          sync.Mutex
	deployments map[string]bool // Deployments seen backing a subscribed Service
}

// podStates is what the timeline was last told of the pods behind each
// EndpointSlice of subscribed Services: a slice's entry is replaced on
// every change and dropped with the slice, so it holds the pods the
// slices hold now, no more.
type podStates struct {
	mu      sync.Mutex
	bySlice map[string]map[string]podState // slice name → pod name → state
}

type podState struct{ ready, terminating bool }

// stripPod keeps of a pod's metadata what the live view reads: name,
// labels, owners, deletion (managed fields and annotations can be most
// of it).
func stripPod(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.ManagedFields, m.Annotations = nil, nil
	}
	return obj, nil
}

// stripReplicaSet drops the pod template and managed fields: the live
// view reads the replica counts, the owner and the revision.
func stripReplicaSet(obj any) (any, error) {
	if rs, ok := obj.(*appsv1.ReplicaSet); ok {
		rs.ManagedFields = nil
		rs.Spec.Template = corev1.PodTemplateSpec{}
		rev := rs.Annotations[revisionAnnotation]
		rs.Annotations = nil
		if rev != "" {
			rs.Annotations = map[string]string{revisionAnnotation: rev}
		}
	}
	return obj, nil
}

const revisionAnnotation = "deployment.kubernetes.io/revision"

// startKube starts the pod and ReplicaSet informers of sp on ctx, in wg.
// w.mu is held.
func (w *Watcher) startKube(ctx context.Context, wg *sync.WaitGroup, sp *space, pc PodClient) {
	ns := sp.ns
	k := &kube{kick: make(chan struct{}, 1), deployments: map[string]bool{}}
	// Forbidden (no RBAC for the live view in this namespace) stops that
	// informer, with one warning, rather than retrying and logging
	// forever: the endpoints do not depend on it. Granting the Role
	// takes effect at the next start of the namespace's watch (a
	// restart).
	podsCtx, stopPods := context.WithCancel(ctx)
	rsCtx, stopRS := context.WithCancel(ctx)
	onError := func(what string, stop context.CancelFunc) func(context.Context, *cache.Reflector, error) {
		var once sync.Once
		return func(ctx context.Context, r *cache.Reflector, err error) {
			if apierrors.IsForbidden(err) {
				once.Do(func() {
					sp.log.Warn("live view: cannot list and watch "+what+" in this namespace (the gateway-liveview Role); versions from pod labels and rollout events left out", slog.String("error", err.Error()))
					stop()
				})
				return
			}
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}
	}
	k.pods = cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return pc.ListPodMetadata(ctx, ns, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return pc.WatchPodMetadata(ctx, ns, o)
		},
	}, pc), &metav1.PartialObjectMetadata{}, 0, cache.Indexers{})
	_ = k.pods.SetTransform(stripPod)
	_ = k.pods.SetWatchErrorHandlerWithContext(onError("pods", stopPods))
	kick := func() {
		select {
		case k.kick <- struct{}{}:
		default:
		}
	}
	_, _ = k.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		// Only a label changes what subscribers get: a pod without one
		// (most, outside the backends) needs no delivery.
		AddFunc: func(obj any) {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok && m.Labels[VersionLabel] != "" {
				kick()
			}
		},
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*metav1.PartialObjectMetadata)
			n, ok2 := obj.(*metav1.PartialObjectMetadata)
			if ok1 && ok2 && o.Labels[VersionLabel] != n.Labels[VersionLabel] {
				kick()
			}
		},
	})
	k.rs = cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return pc.ListReplicaSets(ctx, ns, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return pc.WatchReplicaSets(ctx, ns, o)
		},
	}, pc), &appsv1.ReplicaSet{}, 0, cache.Indexers{})
	_ = k.rs.SetTransform(stripReplicaSet)
	_ = k.rs.SetWatchErrorHandlerWithContext(onError("replicasets", stopRS))
	_, _ = k.rs.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if rs, ok := obj.(*appsv1.ReplicaSet); ok && !initial {
				w.replicaSetEvent(sp, nil, rs)
			}
		},
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*appsv1.ReplicaSet)
			n, ok2 := obj.(*appsv1.ReplicaSet)
			if ok1 && ok2 && replicas(o) != replicas(n) {
				w.replicaSetEvent(sp, o, n)
			}
		},
	})
	sp.kube = k
	wg.Go(func() { k.pods.RunWithContext(podsCtx) })
	wg.Go(func() { k.rs.RunWithContext(rsCtx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-k.kick:
			}
			w.mu.Lock()
			subs := make([]*sub, 0, len(sp.subs))
			for s := range sp.subs {
				subs = append(subs, s)
			}
			w.mu.Unlock()
			for _, s := range subs {
				sp.deliver(s)
			}
		}
	})
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

// addVersions sets each endpoint's Version from its pod's label.
func (k *kube) addVersions(ns string, eps []Endpoint) {
	store := k.pods.GetStore()
	for i := range eps {
		if eps[i].Pod == "" {
			continue
		}
		if obj, ok, _ := store.GetByKey(ns + "/" + eps[i].Pod); ok {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				v := m.Labels[VersionLabel]
				if len(v) > liveview.MaxVersionLen {
					v = v[:liveview.MaxVersionLen]
				}
				eps[i].Version = v
			}
		}
	}
}

// controller returns the name of obj's controller of kind, "" if none.
func controller(refs []metav1.OwnerReference, kind string) string {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller && r.Kind == kind {
			return r.Name
		}
	}
	return ""
}

// backingDeployments notes the Deployments whose pods are behind the
// subscribed Services' endpoints (pod → ReplicaSet → Deployment), and
// returns every one noted so far: a rollout's new ReplicaSet has no pod
// behind a Service yet, its Deployment's old one does.
func (w *Watcher) backingDeployments(sp *space) map[string]bool {
	w.mu.Lock()
	services := map[string]bool{}
	for s := range sp.subs {
		services[s.key.Service] = true
	}
	w.mu.Unlock()
	k := sp.kube
	pods, sets := k.pods.GetStore(), k.rs.GetStore()
	found := map[string]bool{}
	for svc := range services {
		objs, _ := sp.informer.GetIndexer().ByIndex(serviceIndex, svc)
		for _, o := range objs {
			es, ok := o.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			for _, e := range es.Endpoints {
				if e.TargetRef == nil || e.TargetRef.Kind != "Pod" {
					continue
				}
				po, ok, _ := pods.GetByKey(sp.ns + "/" + e.TargetRef.Name)
				if !ok {
					continue
				}
				rsName := controller(po.(*metav1.PartialObjectMetadata).OwnerReferences, "ReplicaSet")
				if rsName == "" {
					continue
				}
				if ro, ok, _ := sets.GetByKey(sp.ns + "/" + rsName); ok {
					if d := controller(ro.(*appsv1.ReplicaSet).OwnerReferences, "Deployment"); d != "" {
						found[d] = true
					}
				}
			}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for d := range found {
		if len(k.deployments) < maxDeployments {
			k.deployments[d] = true
		}
	}
	out := make(map[string]bool, len(k.deployments))
	for d := range k.deployments {
		out[d] = true
	}
	return out
}

// replicaSetEvent tells the timeline of a ReplicaSet of a backing
// Deployment created (old nil) or scaled.
func (w *Watcher) replicaSetEvent(sp *space, old, rs *appsv1.ReplicaSet) {
	tl := w.timeline()
	if tl == nil {
		return
	}
	d := controller(rs.OwnerReferences, "Deployment")
	if d == "" || !w.backingDeployments(sp)[d] {
		return
	}
	rev := ""
	if r := rs.Annotations[revisionAnnotation]; r != "" {
		rev = " (revision " + r + ")"
	}
	msg := fmt.Sprintf("Deployment %s/%s: new ReplicaSet %s%s, %d replicas", sp.ns, d, rs.Name, rev, replicas(rs))
	if old != nil {
		msg = fmt.Sprintf("Deployment %s/%s: ReplicaSet %s%s scaled %d → %d", sp.ns, d, rs.Name, rev, replicas(old), replicas(rs))
	}
	tl.Event(liveview.Event{Kind: KindRollout, Message: msg})
}

// podEvents tells the timeline of the pods behind es (a slice of a
// subscribed Service) that turned ready, not ready or terminating since
// the slices last said; nothing for the first list (initial). gone: es
// was deleted, its pods are forgotten.
func (w *Watcher) podEvents(sp *space, es *discoveryv1.EndpointSlice, gone, initial bool) {
	tl := w.timeline()
	if tl == nil {
		return
	}
	ps := &sp.podStates
	ps.mu.Lock()
	defer ps.mu.Unlock()
	prev := ps.bySlice[es.Name]
	delete(ps.bySlice, es.Name)
	if gone {
		return
	}
	quiet := initial
	cur := map[string]podState{}
	for _, e := range es.Endpoints {
		if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || len(e.Addresses) == 0 {
			continue
		}
		name := e.TargetRef.Name
		c := e.Conditions
		st := podState{ready: c.Ready == nil || *c.Ready, terminating: c.Terminating != nil && *c.Terminating}
		cur[name] = st
		old, seen := prev[name]
		for _, other := range ps.bySlice { // moved between slices of its Service
			if seen {
				break
			}
			old, seen = other[name]
		}
		if quiet || seen && old == st {
			continue
		}
		where := fmt.Sprintf("pod %s/%s (%s, Service %s)", sp.ns, name, e.Addresses[0], es.Labels[discoveryv1.LabelServiceName])
		switch {
		case st.terminating && !old.terminating:
			tl.Event(liveview.Event{Kind: KindPodTerminating, Instance: e.Addresses[0], Message: where + " terminating"})
		case st.terminating:
		case st.ready && (!seen || !old.ready):
			tl.Event(liveview.Event{Kind: KindPodReady, Instance: e.Addresses[0], Message: where + " ready"})
		case !st.ready && seen && old.ready:
			tl.Event(liveview.Event{Kind: KindPodNotReady, Instance: e.Addresses[0], Message: where + " not ready"})
		}
	}
	if ps.bySlice == nil {
		ps.bySlice = map[string]map[string]podState{}
	}
	ps.bySlice[es.Name] = cur
}

type timelineBox struct{ Timeline }

// SetTimeline sets (or replaces) Options.Timeline: the gateway's
// collector exists only once the gateway, which needs the Watcher, does.
func (w *Watcher) SetTimeline(t Timeline) { w.tl.Store(timelineBox{t}) }

func (w *Watcher) timeline() Timeline {
	if b, ok := w.tl.Load().(timelineBox); ok {
		return b.Timeline
	}
	return nil
}
