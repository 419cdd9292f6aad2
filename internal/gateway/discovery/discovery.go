// Package discovery finds a Kubernetes Service's endpoints in its
// EndpointSlices (discovery.k8s.io/v1), watched through the API server
// with client-go informers: the gateway learns of a pod turning ready or
// terminating from the watch event, not from DNS answers cached for up
// to 30 s.
//
// One informer per namespace watches every slice labelled
// kubernetes.io/service-name; subscriptions (one per gateway backend)
// filter by Service and port. Config reloads subscribe and unsubscribe
// backends; an informer starts with the first subscription of its
// namespace and stops with the last, so a reload that keeps the
// namespaces keeps the watch. When the API server is unreachable the
// informer keeps its last state, so backends keep their last known
// endpoints; Collect reports it (flotilla_gateway_discovery_synced 0)
// and a log line says so.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Client is what discovery needs of the API server: listing and
// watching a namespace's EndpointSlices. NewClient makes one from a
// rest.Config. It is this small, and not client-go's Clientset, because
// the Clientset links every API group's types and clients into the
// binary (36 MB more); tests adapt a fake Clientset to it.
type Client interface {
	ListEndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error)
	WatchEndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

// Endpoint is one address of a Service port.
type Endpoint struct {
	// Addr is ip:port.
	Addr string
	// Host is the Service's cluster DNS name, <service>.<namespace>.svc:
	// what a TLS backend verifies the certificate against.
	Host string
	// Draining: the endpoint is terminating but still serving. It should
	// get new requests only while no endpoint of the Service is ready
	// (Kubernetes' rule); requests in flight to it finish.
	Draining bool
	// Pod is the pod behind the address (the endpoint's targetRef), ""
	// when the slice names none.
	Pod string
	// Version is the pod's app.kubernetes.io/version label, "" when it
	// has none or pods are not read (Options.Pods).
	Version string
}

// Key names what a subscription watches.
type Key struct {
	// Namespace of the Service ("": the namespace Options.Connect returns,
	// the gateway's own).
	Namespace string
	// Service name.
	Service string
	// Port is the name of the Service port, as the slices list it, or a
	// number: the endpoints' port (the Service's targetPort).
	Port string
}

// Options configure a Watcher.
type Options struct {
	// Connect returns the API client and the namespace of keys that name
	// none (the gateway's own). It is called on the first Subscribe; an
	// error is returned from Subscribe and Connect is tried again on the
	// next one.
	Connect func() (client Client, namespace string, err error)
	// Logger (default: discard).
	Logger *slog.Logger
	// Pods also watches, in each namespace watched, its pods' metadata
	// (labels and owners only) and its ReplicaSets, when the client is a
	// PodClient: Endpoint.Version from the pod's VersionLabel, and
	// rollouts of the Deployments behind subscribed Services in Timeline
	// (default false: EndpointSlices only; needs get, list and watch on
	// pods and replicasets).
	Pods bool
	// Timeline, when set, gets the live view's Kubernetes events: pods
	// behind subscribed Services turning ready, not ready or terminating
	// (from the EndpointSlices) and, with Pods, rollouts.
	Timeline Timeline
}

// Watcher watches EndpointSlices and feeds subscribers. Close stops it.
type Watcher struct {
	opts Options
	tl   atomic.Value // timelineBox

	mu     sync.Mutex // guards the fields below and every space's subs
	client Client
	ownNS  string
	spaces map[string]*space
	closed bool
}

// space is the informer of one namespace.
type space struct {
	ns       string
	informer cache.SharedIndexInformer
	subs     map[*sub]struct{} // Watcher.mu
	cancel   context.CancelFunc
	done     chan struct{}
	log      *slog.Logger

	stale   atomic.Bool // the watch failed and has not recovered
	staleRV atomic.Pointer[string]

	kube      *kube // Options.Pods; nil without
	podStates podStates
}

// sub is one subscription; deliveries to it are serialised by mu and
// each computes the endpoints afresh from the informer's store, so the
// last delivery always carries the latest state.
type sub struct {
	key     Key // namespace resolved
	fn      func([]Endpoint)
	mu      sync.Mutex
	stopped bool
	warned  string // the last problem logged, to log each once
}

const serviceIndex = "service"

// New returns a Watcher; nothing is watched until Subscribe.
func New(opts Options) *Watcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{opts: opts, spaces: map[string]*space{}}
	if opts.Timeline != nil {
		w.SetTimeline(opts.Timeline)
	}
	return w
}

// Subscribe calls fn with the endpoints of key's Service port now and
// after every change of its EndpointSlices, until stop is called. Calls
// are serialised and each carries the whole list, sorted by address; fn
// must not block. stop waits for a call in progress; after it returns fn
// is not called again.
func (w *Watcher) Subscribe(key Key, fn func([]Endpoint)) (stop func(), err error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, errors.New("kubernetes discovery: closed")
	}
	if w.client == nil {
		if w.opts.Connect == nil {
			w.mu.Unlock()
			return nil, errors.New("kubernetes discovery: no API client configured")
		}
		client, ns, err := w.opts.Connect()
		if err != nil {
			w.mu.Unlock()
			return nil, fmt.Errorf("kubernetes discovery: %w", err)
		}
		w.client, w.ownNS = client, ns
	}
	if key.Namespace == "" {
		key.Namespace = w.ownNS
	}
	sp := w.spaces[key.Namespace]
	if sp == nil {
		sp = w.start(key.Namespace)
		w.spaces[key.Namespace] = sp
	}
	s := &sub{key: key, fn: fn}
	sp.subs[s] = struct{}{}
	w.mu.Unlock()
	sp.deliver(s)
	return func() { w.unsubscribe(sp, s) }, nil
}

func (w *Watcher) unsubscribe(sp *space, s *sub) {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	w.mu.Lock()
	delete(sp.subs, s)
	last := len(sp.subs) == 0 && w.spaces[sp.ns] == sp
	if last {
		delete(w.spaces, sp.ns)
	}
	w.mu.Unlock()
	if last {
		sp.cancel()
		<-sp.done
		sp.log.Info("kubernetes discovery stopped: no backend uses the namespace any more")
	}
}

// start creates and runs the informer of ns. w.mu is held.
func (w *Watcher) start(ns string) *space {
	client := w.client
	// The reflector retries a watch refused by an API server that went
	// away (connection refused) on its own, without telling the error
	// handler: the watch calls themselves say whether it is reachable.
	var sp *space
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = discoveryv1.LabelServiceName // the label exists
			return client.ListEndpointSlices(ctx, ns, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = discoveryv1.LabelServiceName
			wi, err := client.WatchEndpointSlices(ctx, ns, o)
			if err != nil && ctx.Err() == nil {
				sp.failed(err)
			} else if err == nil {
				sp.reachable()
			}
			return wi, err
		},
	}, client)
	inf := cache.NewSharedIndexInformer(lw, &discoveryv1.EndpointSlice{}, 0,
		cache.Indexers{serviceIndex: func(obj any) ([]string, error) {
			if es, ok := obj.(*discoveryv1.EndpointSlice); ok && es.Labels[discoveryv1.LabelServiceName] != "" {
				return []string{es.Labels[discoveryv1.LabelServiceName]}, nil
			}
			return nil, nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	sp = &space{ns: ns, informer: inf, subs: map[*sub]struct{}{}, cancel: cancel, done: make(chan struct{}),
		log: w.opts.Logger.With(slog.String("namespace", ns))}
	// initial: obj comes with the first list (the timeline is told only
	// of changes after it).
	changed := func(obj any, initial bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		es, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return
		}
		sp.recovered()
		w.mu.Lock()
		var subs []*sub
		for s := range sp.subs {
			if s.key.Service == es.Labels[discoveryv1.LabelServiceName] {
				subs = append(subs, s)
			}
		}
		w.mu.Unlock()
		if len(subs) > 0 {
			_, present, _ := sp.informer.GetStore().Get(es)
			w.podEvents(sp, es, !present, initial)
		}
		for _, s := range subs {
			sp.deliver(s)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: changed,
		UpdateFunc: func(old, obj any) {
			if o, ok := old.(*discoveryv1.EndpointSlice); ok {
				if n, ok := obj.(*discoveryv1.EndpointSlice); ok && o.Labels[discoveryv1.LabelServiceName] != n.Labels[discoveryv1.LabelServiceName] {
					changed(old, false) // relabelled: its old Service lost it
				}
			}
			changed(obj, false)
		},
		DeleteFunc: func(obj any) { changed(obj, false) },
	})
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
		sp.failed(err)
		cache.DefaultWatchErrorHandler(ctx, r, err)
	})
	var wg sync.WaitGroup
	if pc, ok := client.(PodClient); ok && w.opts.Pods {
		w.startKube(ctx, &wg, sp, pc)
	}
	wg.Go(func() { inf.RunWithContext(ctx) })
	wg.Go(func() {
		// Recovery shows as a new resource version (an event, a bookmark
		// or a relist); events say so at once, this catches the quiet case.
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sp.recovered()
			}
		}
	})
	go func() {
		wg.Wait()
		close(sp.done)
	}()
	return sp
}

// failed records that the watch of sp failed: endpoints stay as last seen.
func (sp *space) failed(err error) {
	rv := sp.informer.LastSyncResourceVersion()
	sp.staleRV.Store(&rv)
	if !sp.stale.Swap(true) {
		sp.log.Warn("kubernetes discovery: the API server watch failed; serving the last known endpoints until it recovers",
			slog.String("error", err.Error()))
	}
}

// reachable clears the stale mark: the API server answered a watch.
func (sp *space) reachable() {
	if sp.stale.Swap(false) {
		sp.log.Info("kubernetes discovery: the API server watch recovered")
	}
}

// recovered clears the stale mark once the watch has made progress.
func (sp *space) recovered() {
	if !sp.stale.Load() {
		return
	}
	if rv := sp.staleRV.Load(); rv != nil && sp.informer.LastSyncResourceVersion() == *rv {
		return
	}
	if sp.stale.Swap(false) {
		sp.log.Info("kubernetes discovery: the API server watch recovered")
	}
}

// synced reports whether sp listed its slices and its watch is healthy.
func (sp *space) synced() bool { return sp.informer.HasSynced() && !sp.stale.Load() }

// deliver computes s's endpoints from the store and hands them over.
func (sp *space) deliver(s *sub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	objs, _ := sp.informer.GetIndexer().ByIndex(serviceIndex, s.key.Service)
	items := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok {
			items = append(items, es)
		}
	}
	eps, problem := Endpoints(items, s.key)
	if sp.kube != nil {
		sp.kube.addVersions(sp.ns, eps)
	}
	if problem != s.warned {
		if problem != "" {
			sp.log.Warn("kubernetes discovery: endpoints left out", slog.String("service", s.key.Service), slog.String("port", s.key.Port), slog.String("problem", problem))
		}
		s.warned = problem
	}
	s.fn(eps)
}

// Endpoints merges the slices of key's Service into its endpoints for
// key.Port, sorted by address, and says what it left out and why ("" when
// nothing). Per endpoint, the conditions decide (nil ready and serving
// count as true, nil terminating as false, as the API documents):
//   - ready: takes requests;
//   - serving and terminating: Draining (see Endpoint);
//   - otherwise left out.
//
// Only the first address of an endpoint is used (the API says they are
// fungible); FQDN slices are skipped. A slice without the port (by name,
// or a number no port of it has) contributes nothing.
func Endpoints(items []*discoveryv1.EndpointSlice, key Key) ([]Endpoint, string) {
	host := key.Service + "." + key.Namespace + ".svc"
	number, numErr := strconv.Atoi(key.Port)
	var out []Endpoint
	var missing []string
	for _, es := range items {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port := int32(0)
		for _, p := range es.Ports {
			if p.Port == nil {
				continue
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if numErr == nil && int(*p.Port) == number || numErr != nil && name == key.Port {
				port = *p.Port
				break
			}
		}
		if port == 0 {
			if len(es.Endpoints) > 0 {
				missing = append(missing, es.Name)
			}
			continue
		}
		for _, e := range es.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			c := e.Conditions
			ready := c.Ready == nil || *c.Ready
			serving := c.Serving == nil || *c.Serving
			terminating := c.Terminating != nil && *c.Terminating
			var draining bool
			switch {
			case ready && !terminating:
			case serving && terminating:
				draining = true
			default:
				continue
			}
			var pod string
			if r := e.TargetRef; r != nil && r.Kind == "Pod" && (r.Namespace == "" || r.Namespace == es.Namespace || es.Namespace == "") {
				pod = r.Name
			}
			out = append(out, Endpoint{Addr: net.JoinHostPort(e.Addresses[0], strconv.Itoa(int(port))), Host: host, Draining: draining, Pod: pod})
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if c := strings.Compare(a.Addr, b.Addr); c != 0 {
			return c
		}
		return boolCompare(a.Draining, b.Draining)
	})
	var problem string
	if len(missing) > 0 {
		slices.Sort(missing)
		problem = fmt.Sprintf("EndpointSlices %s have no port %q", strings.Join(missing, ", "), key.Port)
	}
	return out, problem
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

// WaitSynced waits until every namespace watched has listed its slices,
// or ctx is done.
func (w *Watcher) WaitSynced(ctx context.Context) error {
	w.mu.Lock()
	var syncs []cache.InformerSynced
	var names []string
	for ns, sp := range w.spaces {
		syncs = append(syncs, sp.informer.HasSynced)
		names = append(names, ns)
	}
	w.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		slices.Sort(names)
		return fmt.Errorf("kubernetes discovery: EndpointSlices of namespaces %s not listed yet: %w", strings.Join(names, ", "), context.Cause(ctx))
	}
	return nil
}

// Close stops every informer and waits for them. Subscribers are not
// called again.
func (w *Watcher) Close() {
	w.mu.Lock()
	w.closed = true
	spaces := w.spaces
	w.spaces = map[string]*space{}
	for _, sp := range spaces {
		for s := range sp.subs {
			s.mu.Lock()
			s.stopped = true
			s.mu.Unlock()
		}
	}
	w.mu.Unlock()
	for _, sp := range spaces {
		sp.cancel()
		<-sp.done
	}
}

var syncedDesc = prometheus.NewDesc("flotilla_gateway_discovery_synced",
	"1 when the namespace's EndpointSlices are listed and watched; 0 before the first list and while the API server watch fails (backends keep their last known endpoints).",
	[]string{"namespace"}, nil)

// Describe implements prometheus.Collector.
func (w *Watcher) Describe(ch chan<- *prometheus.Desc) { ch <- syncedDesc }

// Collect implements prometheus.Collector: one
// flotilla_gateway_discovery_synced per namespace watched.
func (w *Watcher) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ns, sp := range w.spaces {
		v := 0.0
		if sp.synced() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(syncedDesc, prometheus.GaugeValue, v, ns)
	}
}
