// Package controller runs the Ingress controller: client-go informers on
// IngressClasses, Ingresses, Services and Secrets; on every change the
// whole config fragment is recomputed (package ingress), the Secret
// material written to a private directory, and the gateway reloaded
// through its validated path (gateway.SetExtra). Problems become
// Kubernetes Events and log lines; served Ingresses get the gateway's
// address in status.loadBalancer, written by the leader only.
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
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersnetworkingv1 "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/ingress"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// Options configure a Controller.
type Options struct {
	// Client is the API clients (kubeshared.NewClients, or
	// kubeshared.ClientsOf a fake Clientset); required.
	Client kubeshared.Clients
	// Namespaces whose Ingresses, Services and Secrets are watched
	// (default: all).
	Namespaces []string
	// Translate selects the Ingresses served (class names).
	Translate ingress.Options
	// SecretDir receives TLS keys and htpasswd files from Secrets; created
	// with mode 0700 (required). Files the translation no longer needs are
	// removed.
	SecretDir string
	// Apply installs the fragment; gateway.SetExtra. Required.
	Apply func(*gateway.Extra) error
	// PublishService is "namespace/name" of the gateway's Service, whose
	// addresses go to the status of served Ingresses.
	PublishService string
	// PublishAddresses are IPs or host names written to the status
	// instead of PublishService's.
	PublishAddresses []string
	// Lease, when set, elects one replica to write status; without it
	// every replica writes the same status (idempotent: only on change).
	Lease *Lease
	// Logger (default: discard).
	Logger *slog.Logger
	// Debounce coalesces bursts of changes (default 100ms).
	Debounce time.Duration
}

// Lease names the coordination.k8s.io Lease of the status writers.
type Lease = kubeshared.Lease

// Controller is a running Ingress controller; see Run.
type Controller struct {
	opts     Options
	log      *slog.Logger
	recorder record.EventRecorder
	loop     *kubeshared.Loop

	classes   listersnetworkingv1.IngressClassLister
	ingresses []listersnetworkingv1.IngressLister
	services  []listerscorev1.ServiceLister
	secrets   []listerscorev1.SecretLister

	reported kubeshared.Reported
	lastErr  string
}

// Synced is closed once the first sync has applied the Ingresses listed
// at start-up: a gateway can wait for it before listening.
func (c *Controller) Synced() <-chan struct{} { return c.loop.Synced() }

// New builds a Controller; Run starts it.
func New(opts Options) (*Controller, error) {
	if opts.Client.Core == nil || opts.Client.Networking == nil || opts.Client.Coordination == nil || opts.Apply == nil || opts.SecretDir == "" {
		return nil, errors.New("ingress controller: Client, Apply and SecretDir are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := kubeshared.CheckPublish(opts.PublishService, opts.PublishAddresses); err != nil {
		return nil, err
	}
	if err := kubeshared.PrivateDir(opts.SecretDir); err != nil {
		return nil, fmt.Errorf("ingress secret dir: %w", err)
	}
	loop := &kubeshared.Loop{Name: "flotilla-ingress-status", Debounce: opts.Debounce, Lease: opts.Lease, Leases: opts.Client.Coordination, Log: opts.Logger}
	return &Controller{opts: opts, log: opts.Logger, loop: loop}, nil
}

// kick schedules a sync; bursts coalesce.
func (c *Controller) kick() { c.loop.Kick() }

// Run watches and syncs until ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	client := c.opts.Client
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.Core.Events("")})
	defer broadcaster.Shutdown()
	c.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "flotilla-gateway"})

	// One informer per kind (and namespace), as client-go's informer
	// factory would build them, without linking the factory.
	nw, core := client.Networking, client.Core
	ci := kubeshared.NewInformer(&networkingv1.IngressClass{}, client, nw.IngressClasses().List, nw.IngressClasses().Watch)
	c.classes = listersnetworkingv1.NewIngressClassLister(ci.GetIndexer())
	infs := []cache.SharedIndexInformer{ci}
	namespaces := c.opts.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		ii := kubeshared.NewInformer(&networkingv1.Ingress{}, client, nw.Ingresses(ns).List, nw.Ingresses(ns).Watch)
		si := kubeshared.NewInformer(&corev1.Service{}, client, core.Services(ns).List, core.Services(ns).Watch)
		se := kubeshared.NewInformer(&corev1.Secret{}, client, core.Secrets(ns).List, core.Secrets(ns).Watch)
		infs = append(infs, ii, si, se)
		c.ingresses = append(c.ingresses, listersnetworkingv1.NewIngressLister(ii.GetIndexer()))
		c.services = append(c.services, listerscorev1.NewServiceLister(si.GetIndexer()))
		c.secrets = append(c.secrets, listerscorev1.NewSecretLister(se.GetIndexer()))
	}
	c.log.Info("ingress controller starting", slog.String("class", c.opts.Translate.ClassName), slog.Any("namespaces", c.opts.Namespaces))
	return c.loop.Run(ctx, infs, c.sync)
}

// sync recomputes everything from the informers' caches.
func (c *Controller) sync(ctx context.Context) {
	in := ingress.Input{
		Services: func(ns, name string) *corev1.Service {
			for _, l := range c.services {
				if s, err := l.Services(ns).Get(name); err == nil {
					return s
				}
			}
			return nil
		},
		Secrets: func(ns, name string) *corev1.Secret {
			for _, l := range c.secrets {
				if s, err := l.Secrets(ns).Get(name); err == nil {
					return s
				}
			}
			return nil
		},
	}
	in.Classes, _ = c.classes.List(labels.Everything())
	byKey := map[string]*networkingv1.Ingress{}
	for _, l := range c.ingresses {
		ings, _ := l.List(labels.Everything())
		for _, ing := range ings {
			if _, dup := byKey[ing.Namespace+"/"+ing.Name]; !dup {
				byKey[ing.Namespace+"/"+ing.Name] = ing
				in.Ingresses = append(in.Ingresses, ing)
			}
		}
	}
	res := ingress.Translate(in, c.opts.Translate)
	if err := c.writeFiles(res.Files); err != nil {
		c.log.Error("ingress: cannot write Secret material; the last good config keeps serving", slog.String("error", err.Error()))
		return
	}
	x := &gateway.Extra{Backends: res.Backends, Routes: res.Routes, Certificates: res.Certificates}
	dir := c.opts.SecretDir
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, filepath.FromSlash(*p))
		}
	}
	for i := range x.Routes {
		if a := x.Routes[i].Auth; a != nil && a.Basic != nil {
			abs(&a.Basic.HtpasswdFile)
		}
	}
	for i := range x.Certificates {
		abs(&x.Certificates[i].CertFile)
		abs(&x.Certificates[i].KeyFile)
	}
	if err := c.opts.Apply(x); err != nil {
		// Each Ingress was validated alone; what fails here is their sum
		// with the file config (a name or TLS clash): say so once.
		if msg := err.Error(); msg != c.lastErr {
			c.lastErr = msg
			c.log.Error("ingress config rejected; the last good config keeps serving", slog.String("error", msg))
		}
	} else {
		c.lastErr = ""
		c.log.Debug("ingress config applied", slog.Int("routes", len(x.Routes)), slog.Int("served", len(res.Served)))
	}
	c.report(byKey, res.Problems)
	if c.loop.Leading() {
		c.writeStatus(ctx, byKey, res.Served, res.Ours)
	}
}

// report turns problems into Events and log lines, once per problem for
// as long as it lasts.
func (c *Controller) report(byKey map[string]*networkingv1.Ingress, problems []ingress.Problem) {
	for _, p := range problems {
		k := p.Namespace + "/" + p.Name
		msg := p.Message
		if p.Annotation != "" {
			msg = p.Annotation + ": " + msg
		}
		if !c.reported.Fresh(k, msg) {
			continue
		}
		level, reason := slog.LevelWarn, "IngressWarning"
		if p.Severity == ingress.Error {
			level, reason = slog.LevelError, "IngressRejected"
		}
		c.log.Log(context.Background(), level, "ingress problem", slog.String("ingress", k), slog.String("annotation", p.Annotation), slog.String("problem", p.Message))
		if ing := byKey[k]; ing != nil {
			c.recorder.Event(ing, corev1.EventTypeWarning, reason, msg)
		}
	}
	c.reported.Done()
}

// addresses returns what served Ingresses' status says.
func (c *Controller) addresses(ctx context.Context) ([]networkingv1.IngressLoadBalancerIngress, error) {
	addrs, err := kubeshared.PublishedAddresses(ctx, c.opts.Client.Core, c.opts.PublishService, c.opts.PublishAddresses)
	if err != nil || addrs == nil {
		return nil, err
	}
	out := []networkingv1.IngressLoadBalancerIngress{}
	for _, a := range addrs {
		if net.ParseIP(a) != nil {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: a})
		} else {
			out = append(out, networkingv1.IngressLoadBalancerIngress{Hostname: a})
		}
	}
	return out, nil
}

// writeStatus sets status.loadBalancer of the served Ingresses, and clears
// it from Ingresses of our class that are no longer served (an error left
// them out), only where it differs: replicas without a lease write the
// same thing.
func (c *Controller) writeStatus(ctx context.Context, byKey map[string]*networkingv1.Ingress, served, ours []string) {
	addrs, err := c.addresses(ctx)
	if err != nil {
		c.log.Warn("ingress status not written", slog.String("error", err.Error()))
		return
	}
	if addrs == nil {
		return
	}
	for _, k := range ours {
		ing := byKey[k]
		want := addrs
		if !slices.Contains(served, k) {
			want = nil
		}
		if ing == nil || equalLB(ing.Status.LoadBalancer.Ingress, want) {
			continue
		}
		up := ing.DeepCopy()
		up.Status.LoadBalancer.Ingress = want
		_, err := c.opts.Client.Networking.Ingresses(ing.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		switch {
		case apierrors.IsConflict(err):
			c.kick() // a newer object: the informer brings it, try again
		case err != nil:
			c.log.Warn("ingress status not written", slog.String("ingress", k), slog.String("error", err.Error()))
		}
	}
}

func equalLB(a, b []networkingv1.IngressLoadBalancerIngress) bool {
	return slices.EqualFunc(a, b, func(x, y networkingv1.IngressLoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname
	})
}

// writeFiles makes SecretDir hold exactly files.
func (c *Controller) writeFiles(files map[string][]byte) error {
	return kubeshared.WriteFiles(c.opts.SecretDir, files)
}
