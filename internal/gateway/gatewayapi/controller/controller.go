// Package controller runs the Gateway API controller: client-go informers
// on GatewayClasses, Gateways, HTTPRoutes and ReferenceGrants (the typed
// clientset of sigs.k8s.io/gateway-api) and on Services, Secrets and
// Namespaces (BackendTLSPolicies and ConfigMaps: backendtls.go); on every
// change the whole config fragment is recomputed (package gatewayapi),
// the Secret material written to a private directory, and the gateway
// reloaded through its validated path. Problems become Kubernetes Events
// and log lines; the status of GatewayClasses, Gateways, HTTPRoutes and
// BackendTLSPolicies is written by the Lease holder only.
//
// Level-triggered like the Ingress controller, with which it shares
// package kubeshared: status is recomputed from every object on every
// sync and written only where it differs from what the API holds.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwscheme "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/scheme"
	gwtypedv1 "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/typed/apis/v1"
	gwlistersv1 "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// Options configure a Controller.
type Options struct {
	// Client is the core API clients (Services, Secrets, Namespaces,
	// Events, the Lease): kubeshared.NewClients, or kubeshared.ClientsOf a
	// fake Clientset; required.
	Client kubeshared.Clients
	// GatewayClient is the Gateway API client: NewGatewayClient, or
	// GatewayClientOf a fake Clientset; required.
	GatewayClient GatewayClient
	// Translate selects what is ours (controller and class name).
	Translate gatewayapi.Options
	// SecretDir receives TLS keys from Secrets; created with mode 0700
	// (required). Files no longer needed are removed.
	SecretDir string
	// Apply installs the fragment, e.g. gateway.SetExtraPart("gatewayapi", x).
	Apply func(*gateway.Extra) error
	// PublishService is "namespace/name" of the gateway's Service, whose
	// addresses go to status.addresses of our Gateways.
	PublishService string
	// PublishAddresses are IPs or host names written instead.
	PublishAddresses []string
	// Ports, when set, gives every Gateway its own Service and listeners
	// (services.go) on local ports of this range; PublishService is then
	// required (its namespace, selector and type are the Services'), and
	// Listen.
	Ports *PortRange
	// Listen is given the local ports to serve after each applied sync
	// (with Ports).
	Listen func([]gatewayapi.Listener) error
	// Lease, when set, elects one replica to write status; without it
	// every replica writes the same status (only on change).
	Lease *kubeshared.Lease
	// Logger (default: discard).
	Logger *slog.Logger
	// Debounce coalesces bursts of changes (default 100ms).
	Debounce time.Duration
}

// GatewayClient is the gateway.networking.k8s.io/v1 client, which serves
// every kind the controller reads (ReferenceGrant included). Not the
// versioned Clientset of sigs.k8s.io/gateway-api and its informer
// factory: they link every version's client, informer and apply
// configuration into the binary.
type GatewayClient struct {
	V1 gwtypedv1.GatewayV1Interface
	// NoWatchList: the server cannot stream the initial list in a watch
	// (a fake Clientset), so informers list, then watch.
	NoWatchList bool
}

// IsWatchListSemanticsUnSupported tells client-go's reflector whether it
// may use watch-list streaming; see NoWatchList.
func (c GatewayClient) IsWatchListSemanticsUnSupported() bool { return c.NoWatchList }

// NewGatewayClient builds the GatewayClient of the API server cfg points
// at.
func NewGatewayClient(cfg *rest.Config) (GatewayClient, error) {
	v1, err := gwtypedv1.NewForConfig(cfg)
	if err != nil {
		return GatewayClient{}, fmt.Errorf("gateway.networking.k8s.io/v1 client: %w", err)
	}
	return GatewayClient{V1: v1}, nil
}

// GatewayClientOf returns the GatewayClient of cs, e.g. a fake Clientset
// of sigs.k8s.io/gateway-api.
func GatewayClientOf(cs interface {
	GatewayV1() gwtypedv1.GatewayV1Interface
}) GatewayClient {
	c := GatewayClient{V1: cs.GatewayV1()}
	if w, ok := cs.(interface{ IsWatchListSemanticsUnSupported() bool }); ok {
		c.NoWatchList = w.IsWatchListSemanticsUnSupported()
	}
	return c
}

// Controller is a running Gateway API controller; see Run.
type Controller struct {
	opts     Options
	log      *slog.Logger
	recorder record.EventRecorder
	loop     *kubeshared.Loop

	classes      func() ([]*gwv1.GatewayClass, error)
	gateways     func() ([]*gwv1.Gateway, error)
	routes       func() ([]*gwv1.HTTPRoute, error)
	grants       func() ([]*gwv1.ReferenceGrant, error)
	listenerSets func() ([]*gwv1.ListenerSet, error) // listenerset.go
	services     func(ns, name string) *corev1.Service
	managed      func() []*corev1.Service // the per-Gateway Services, every namespace
	gatewayPods  func() []*discoveryv1.EndpointSlice
	secrets      func(ns, name string) *corev1.Secret
	namespaces   func(name string) *corev1.Namespace
	policies     func() ([]*gwv1.BackendTLSPolicy, error) // backendtls.go
	configMaps   func(ns, name string) *corev1.ConfigMap

	reported kubeshared.Reported
	lastErr  string
	// allocated are the local ports given to each Gateway's listener
	// ports (services.go), by Gateway namespace/name; the sync loop's.
	allocated map[string]map[int32]int32
	// ownSlice is a per-Gateway EndpointSlice as the API has it, nil
	// when there is none (endpoints.go).
	ownSlice func(ns, name string) *discoveryv1.EndpointSlice
}

// Synced is closed once the first sync has applied the objects listed at
// start-up.
func (c *Controller) Synced() <-chan struct{} { return c.loop.Synced() }

// New builds a Controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if opts.Client.Core == nil || opts.Client.Coordination == nil || opts.GatewayClient.V1 == nil || opts.Apply == nil || opts.SecretDir == "" {
		return nil, errors.New("gateway API controller: Client, GatewayClient, Apply and SecretDir are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := kubeshared.CheckPublish(opts.PublishService, opts.PublishAddresses); err != nil {
		return nil, err
	}
	if opts.Ports != nil && (opts.PublishService == "" || opts.Listen == nil) {
		return nil, errors.New("gateway API controller: per-Gateway listeners (Ports) need PublishService and Listen")
	}
	opts.Translate.PerGateway = opts.Ports != nil
	if err := kubeshared.PrivateDir(opts.SecretDir); err != nil {
		return nil, fmt.Errorf("gateway API secret dir: %w", err)
	}
	loop := &kubeshared.Loop{Name: "flotilla-gateway-api-status", Debounce: opts.Debounce, Lease: opts.Lease, Leases: opts.Client.Coordination, Log: opts.Logger}
	return &Controller{opts: opts, log: opts.Logger, loop: loop, allocated: map[string]map[int32]int32{}}, nil
}

func (c *Controller) kick() { c.loop.Kick() }

// eventScheme knows the core and Gateway API kinds, for Event references.
func eventScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = gwscheme.AddToScheme(s)
	return s
}

// Run watches and syncs until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.opts.Client.Core.Events("")})
	defer broadcaster.Shutdown()
	c.recorder = broadcaster.NewRecorder(eventScheme(), corev1.EventSource{Component: "flotilla-gateway"})

	// One informer per kind, as the informer factories would build them,
	// without linking the factories.
	gw, core, kc := c.opts.GatewayClient.V1, c.opts.Client.Core, c.opts.Client
	gc := c.opts.GatewayClient
	gci := kubeshared.NewInformer(&gwv1.GatewayClass{}, gc, gw.GatewayClasses().List, gw.GatewayClasses().Watch)
	gi := kubeshared.NewInformer(&gwv1.Gateway{}, gc, gw.Gateways("").List, gw.Gateways("").Watch)
	ri := kubeshared.NewInformer(&gwv1.HTTPRoute{}, gc, gw.HTTPRoutes("").List, gw.HTTPRoutes("").Watch)
	rgi := kubeshared.NewInformer(&gwv1.ReferenceGrant{}, gc, gw.ReferenceGrants("").List, gw.ReferenceGrants("").Watch)
	si := kubeshared.NewInformer(&corev1.Service{}, kc, core.Services("").List, core.Services("").Watch)
	se := kubeshared.NewInformer(&corev1.Secret{}, kc, core.Secrets("").List, core.Secrets("").Watch)
	ni := kubeshared.NewInformer(&corev1.Namespace{}, kc, core.Namespaces().List, core.Namespaces().Watch)
	gcl, gl, rl, rgl := gwlistersv1.NewGatewayClassLister(gci.GetIndexer()), gwlistersv1.NewGatewayLister(gi.GetIndexer()),
		gwlistersv1.NewHTTPRouteLister(ri.GetIndexer()), gwlistersv1.NewReferenceGrantLister(rgi.GetIndexer())
	sl, sel, nl := listerscorev1.NewServiceLister(si.GetIndexer()), listerscorev1.NewSecretLister(se.GetIndexer()), listerscorev1.NewNamespaceLister(ni.GetIndexer())
	c.classes = func() ([]*gwv1.GatewayClass, error) { return gcl.List(labels.Everything()) }
	c.gateways = func() ([]*gwv1.Gateway, error) { return gl.List(labels.Everything()) }
	c.routes = func() ([]*gwv1.HTTPRoute, error) { return rl.List(labels.Everything()) }
	c.grants = func() ([]*gwv1.ReferenceGrant, error) { return rgl.List(labels.Everything()) }
	c.services = func(ns, name string) *corev1.Service { s, _ := sl.Services(ns).Get(name); return s }
	c.managed = func() []*corev1.Service {
		l, _ := sl.List(labels.SelectorFromSet(labels.Set{labelManaged: managedByValue}))
		return l
	}
	c.secrets = func(ns, name string) *corev1.Secret { s, _ := sel.Secrets(ns).Get(name); return s }
	c.namespaces = func(name string) *corev1.Namespace { n, _ := nl.Get(name); return n }
	infs := []cache.SharedIndexInformer{gci, gi, ri, rgi, si, se, ni}
	if lsi := c.listenerSetInformer(ctx); lsi != nil {
		infs = append(infs, lsi)
	}
	if c.opts.Ports != nil {
		infs = append(infs, c.gatewayPodsInformer(), c.ownSlicesInformer())
	}
	c.log.Info("gateway API controller starting", slog.String("controllerName", c.opts.Translate.ControllerName), slog.String("class", c.opts.Translate.ClassName))
	for _, inf := range []cache.SharedIndexInformer{c.backendTLSInformer(ctx), c.configMapInformer(ctx)} {
		if inf != nil {
			infs = append(infs, inf)
		}
	}
	return c.loop.Run(ctx, infs, c.sync)
}

// sync recomputes everything from the informers' caches.
func (c *Controller) sync(ctx context.Context) {
	svcs := c.ownServices()
	in := gatewayapi.Input{Services: c.services, Secrets: c.secrets, Namespaces: c.namespaces, Ports: c.portsOf(svcs)}
	in.Classes, _ = c.classes()
	in.Gateways, _ = c.gateways()
	in.Routes, _ = c.routes()
	in.Grants, _ = c.grants()
	c.backendTLSInput(&in)
	if c.listenerSets != nil {
		in.ListenerSets, _ = c.listenerSets()
	}
	res := gatewayapi.Translate(in, c.opts.Translate)
	if err := kubeshared.WriteFiles(c.opts.SecretDir, res.Files); err != nil {
		c.log.Error("gateway API: cannot write Secret material; the last good config keeps serving", slog.String("error", err.Error()))
		return
	}
	x := &gateway.Extra{Backends: res.Backends, Routes: res.Routes, Certificates: res.Certificates}
	x.TLSPorts = c.tlsPorts(res.TLSPorts)
	for i := range x.Certificates {
		for _, p := range []*string{&x.Certificates[i].CertFile, &x.Certificates[i].KeyFile} {
			if !filepath.IsAbs(*p) {
				*p = filepath.Join(c.opts.SecretDir, filepath.FromSlash(*p))
			}
		}
	}
	if err := c.opts.Apply(x); err != nil {
		if msg := err.Error(); msg != c.lastErr {
			c.lastErr = msg
			c.log.Error("gateway API config rejected; the last good config keeps serving", slog.String("error", msg))
		}
	} else {
		c.lastErr = ""
		c.log.Debug("gateway API config applied", slog.Int("routes", len(x.Routes)))
		if c.opts.Listen != nil {
			if err := c.opts.Listen(res.Listeners); err != nil {
				c.log.Error("gateway API: listeners not all open", slog.String("error", err.Error()))
			}
		}
	}
	c.report(in, res.Problems)
	if c.loop.Leading() {
		if c.opts.Ports != nil {
			c.reconcileServices(ctx, in, res, svcs)
		}
		c.writeStatus(ctx, in, res, svcs)
	}
}

// report turns problems into Events and log lines, once per problem for
// as long as it lasts.
func (c *Controller) report(in gatewayapi.Input, problems []gatewayapi.Problem) {
	objs := map[string]runtime.Object{}
	for _, g := range in.Gateways {
		objs["Gateway/"+g.Namespace+"/"+g.Name] = g
	}
	for _, r := range in.Routes {
		objs["HTTPRoute/"+r.Namespace+"/"+r.Name] = r
	}
	policyObjects(objs, in)
	for _, s := range in.ListenerSets {
		objs["ListenerSet/"+s.Namespace+"/"+s.Name] = s
	}
	for _, p := range problems {
		k := p.Kind + "/" + p.Namespace + "/" + p.Name
		if !c.reported.Fresh(k, p.Message) {
			continue
		}
		level, reason := slog.LevelWarn, p.Kind+"Warning"
		if p.Severity == gatewayapi.Error {
			level, reason = slog.LevelError, p.Kind+"Rejected"
		}
		c.log.Log(context.Background(), level, "gateway API problem", slog.String("object", k), slog.String("problem", p.Message))
		if o := objs[k]; o != nil {
			c.recorder.Event(o, corev1.EventTypeWarning, reason, p.Message)
		}
	}
	c.reported.Done()
}

// listenerView is what mergeListeners compares of a Gateway's or a
// ListenerSet's listener status.
type listenerView struct {
	name     string
	conds    *[]metav1.Condition
	attached int32
	kinds    []gwv1.RouteGroupKind
}

// mergeListeners returns the wanted listener statuses with the conditions
// of the current ones of the same name merged in (mergeConditions keeps
// their transition times), and whether anything differs.
func mergeListeners[L any](cur, want []L, view func(*L) listenerView) ([]L, bool) {
	changed := len(cur) != len(want)
	out := make([]L, 0, len(want))
	for _, wl := range want {
		w := view(&wl)
		var old *listenerView
		for i := range cur {
			if v := view(&cur[i]); v.name == w.name {
				old = &v
				break
			}
		}
		var oldConds []metav1.Condition
		if old != nil {
			oldConds = *old.conds
		}
		conds, cchanged := mergeConditions(oldConds, *w.conds)
		if old == nil || cchanged || old.attached != w.attached || !apiequality.Semantic.DeepEqual(old.kinds, w.kinds) {
			changed = true
		}
		*w.conds = conds
		out = append(out, wl)
	}
	return out, changed
}

// mergeConditions returns want with the LastTransitionTime of old's
// conditions of the same type and status kept (meta.SetStatusCondition's
// rule), and whether the result differs from old.
func mergeConditions(old, want []metav1.Condition) ([]metav1.Condition, bool) {
	out := slices.Clone(old)
	changed := len(old) != len(want)
	for _, w := range want {
		if meta.SetStatusCondition(&out, w) {
			changed = true
		}
	}
	// Drop conditions of types we no longer set.
	out = slices.DeleteFunc(out, func(c metav1.Condition) bool {
		return !slices.ContainsFunc(want, func(w metav1.Condition) bool { return w.Type == c.Type })
	})
	return out, changed
}

// writeStatus writes the status of our GatewayClasses, Gateways and
// HTTPRoutes where it differs from the API's.
func (c *Controller) writeStatus(ctx context.Context, in gatewayapi.Input, res gatewayapi.Result, svcs map[string]*corev1.Service) {
	gw := c.opts.GatewayClient.V1
	warn := func(kind, key string, err error) {
		switch {
		case err == nil:
		case apierrors.IsConflict(err):
			c.kick() // a newer object: the informer brings it
		default:
			c.log.Warn("gateway API status not written", slog.String("object", kind+"/"+key), slog.String("error", err.Error()))
		}
	}
	for _, gc := range in.Classes {
		want, ok := res.ClassConditions[gc.Name]
		if !ok {
			continue
		}
		conds, changed := mergeConditions(gc.Status.Conditions, want)
		features := gatewayapi.SupportedFeatures(c.opts.Ports != nil)
		if !apiequality.Semantic.DeepEqual(gc.Status.SupportedFeatures, features) {
			changed = true
		}
		if !changed {
			continue
		}
		up := gc.DeepCopy()
		up.Status.Conditions = conds
		up.Status.SupportedFeatures = features
		_, err := gw.GatewayClasses().UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("GatewayClass", gc.Name, err)
	}
	statusAddrs := func(published []string) []gwv1.GatewayStatusAddress {
		var out []gwv1.GatewayStatusAddress
		for _, a := range published {
			t := gwv1.HostnameAddressType
			if net.ParseIP(a) != nil {
				t = gwv1.IPAddressType
			}
			out = append(out, gwv1.GatewayStatusAddress{Type: &t, Value: a})
		}
		return out
	}
	var shared []gwv1.GatewayStatusAddress
	if c.opts.Ports == nil {
		published, err := kubeshared.PublishedAddresses(ctx, c.opts.Client.Core, c.opts.PublishService, c.opts.PublishAddresses)
		if err != nil {
			c.log.Warn("gateway API: addresses not known", slog.String("error", err.Error()))
		}
		shared = statusAddrs(published)
	}
	for _, g := range in.Gateways {
		key := g.Namespace + "/" + g.Name
		want, ok := res.Gateways[key]
		if !ok {
			continue
		}
		addrs := shared
		if c.opts.Ports != nil && svcs[key] != nil {
			addrs = statusAddrs(kubeshared.ServiceAddresses(svcs[key]))
		}
		st := g.Status.DeepCopy()
		conds, changed := mergeConditions(st.Conditions, want.Conditions)
		st.Conditions = conds
		if !apiequality.Semantic.DeepEqual(st.Addresses, addrs) && !(len(st.Addresses) == 0 && len(addrs) == 0) {
			st.Addresses, changed = addrs, true
		}
		listeners, lchanged := mergeListeners(st.Listeners, want.Listeners, func(l *gwv1.ListenerStatus) listenerView {
			return listenerView{string(l.Name), &l.Conditions, l.AttachedRoutes, l.SupportedKinds}
		})
		st.Listeners, changed = listeners, changed || lchanged
		if a, b := st.AttachedListenerSets, want.AttachedListenerSets; (a == nil) != (b == nil) || a != nil && *a != *b {
			st.AttachedListenerSets, changed = b, true
		}
		if !changed {
			continue
		}
		up := g.DeepCopy()
		up.Status = *st
		_, err := gw.Gateways(g.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("Gateway", key, err)
	}
	ours := gwv1.GatewayController(c.opts.Translate.ControllerName)
	if ours == "" {
		ours = gatewayapi.DefaultControllerName
	}
	for _, r := range in.Routes {
		key := r.Namespace + "/" + r.Name
		want := res.RouteParents[key]
		// Never nil: status.parents is required by the CRD, so a nil list
		// (JSON null) is rejected with "status.parents: Required value"
		// and our stale entry (the Gateway deleted, the parentRef moved
		// to another class) would stay forever. Empty means attached to
		// no Gateway.
		parents := []gwv1.RouteParentStatus{}
		changed := false
		for _, p := range r.Status.Parents {
			if p.ControllerName != ours {
				parents = append(parents, p) // another controller's
			}
		}
		for _, w := range want {
			var old []metav1.Condition
			if i := slices.IndexFunc(r.Status.Parents, func(p gwv1.RouteParentStatus) bool {
				return p.ControllerName == ours && apiequality.Semantic.DeepEqual(p.ParentRef, w.ParentRef)
			}); i >= 0 {
				old = r.Status.Parents[i].Conditions
			} else {
				changed = true
			}
			conds, cchanged := mergeConditions(old, w.Conditions)
			changed = changed || cchanged
			w.Conditions = conds
			parents = append(parents, w)
		}
		oursBefore := 0
		for _, p := range r.Status.Parents {
			if p.ControllerName == ours {
				oursBefore++
			}
		}
		if oursBefore != len(want) {
			changed = true
		}
		if !changed {
			continue
		}
		up := r.DeepCopy()
		up.Status.Parents = parents
		_, err := gw.HTTPRoutes(r.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		warn("HTTPRoute", key, err)
	}
	c.writePolicyStatus(ctx, in, res, warn)
	c.writeListenerSetStatus(ctx, in, res, warn)
}
