package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
)

// Per-Gateway Services (Options.Ports). Every Gateway of ours gets a
// Service in its own namespace (where its owner looks for it, and where
// spec.infrastructure's labels and annotations belong): its ports are the
// Gateway's listener ports, each targeting a local port of Ports that
// every replica opens. It has no selector (it could not select pods of
// another namespace); its EndpointSlices (endpoints.go) list the gateway's
// pods, as the publish Service's do. Its address is the Gateway's. The
// Lease holder creates, updates and deletes them; every replica reads them
// (the Service informer) to know which local port serves which listener,
// so all replicas agree.
const (
	// annGateway names the Gateway ("namespace/name") a Service serves.
	annGateway = "gateway.flotilla.dev/gateway"
	// annKeys lists the label and annotation keys the controller put on
	// a Service ("label:k,annotation:k"), so that it removes those it no
	// longer wants and leaves other writers' alone.
	annKeys = "gateway.flotilla.dev/metadata-keys"
	// labelManaged marks the Services the controller owns.
	labelManaged   = "app.kubernetes.io/managed-by"
	managedByValue = "flotilla-gateway-api"
)

// PortRange is the local ports per-Gateway listeners are given.
type PortRange struct{ Low, High int32 }

// ParsePortRange parses "LOW-HIGH" (1024 < LOW <= HIGH <= 65535).
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	l, err1 := strconv.ParseInt(lo, 10, 32)
	h, err2 := strconv.ParseInt(hi, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("want LOW-HIGH, e.g. 20000-20999, got %q", s)
	}
	if l <= 1024 || h > 65535 || l > h {
		return PortRange{}, fmt.Errorf("want 1024 < LOW <= HIGH <= 65535, got %q", s)
	}
	return PortRange{Low: int32(l), High: int32(h)}, nil
}

func (r PortRange) contains(p int32) bool { return p >= r.Low && p <= r.High }

// serviceName is the per-Gateway Service's name: a DNS-1035 label made of
// the Gateway's namespace and name and, always, a digest of both, so that
// no two Gateways (ns "a-b" name "c", ns "a" name "b-c") share one.
func serviceName(ns, name string) string {
	s := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower("gw-"+ns+"-"+name))
	sum := sha256.Sum256([]byte(ns + "/" + name))
	return strings.TrimRight(s[:min(len(s), 54)], "-") + "-" + hex.EncodeToString(sum[:4])
}

// ownServices are our per-Gateway Services, by the Gateway they serve. A
// Service outside its Gateway's namespace (an earlier version made them in
// the gateway's) is not one: reconcileServices deletes it.
func (c *Controller) ownServices() map[string]*corev1.Service {
	out := map[string]*corev1.Service{}
	if c.opts.Ports == nil {
		return out
	}
	for _, s := range c.managed() {
		key := s.Annotations[annGateway]
		if ns, _, _ := strings.Cut(key, "/"); key != "" && ns == s.Namespace {
			out[key] = s
		}
	}
	return out
}

// portsOf maps each Gateway's listener ports to the local ports its
// Service targets; targets outside the range are ignored, so a Service
// edited by hand cannot make the gateway open any other port.
func (c *Controller) portsOf(svcs map[string]*corev1.Service) func(ns, name string) map[int32]int32 {
	return func(ns, name string) map[int32]int32 {
		s := svcs[ns+"/"+name]
		if s == nil {
			return nil
		}
		m := map[int32]int32{}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type == intstr.Int && c.opts.Ports.contains(p.TargetPort.IntVal) {
				m[p.Port] = p.TargetPort.IntVal
			}
		}
		return m
	}
}

// reconcileServices (Lease holder) makes our per-Gateway Services what
// the Gateways ask: one port per listener port (a port keeps its local
// port for as long as the listener exists; a new one gets the lowest free
// port of the range), and deletes those of Gateways that are gone.
func (c *Controller) reconcileServices(ctx context.Context, in gatewayapi.Input, res gatewayapi.Result, svcs map[string]*corev1.Service) {
	ns, pubName, _ := strings.Cut(c.opts.PublishService, "/")
	pub := c.services(ns, pubName)
	if pub == nil {
		c.log.Warn("gateway API: the publish Service is not there; per-Gateway Services wait for it", slog.String("service", c.opts.PublishService))
		return
	}
	// Ports given out but not yet seen in the informer's cache count as
	// used, so two syncs in a row never give one port to two Gateways.
	used := map[int32]bool{}
	for key, ports := range c.allocated {
		if !slices.ContainsFunc(in.Gateways, func(g *gwv1.Gateway) bool { return g.Namespace+"/"+g.Name == key }) {
			delete(c.allocated, key)
			continue
		}
		for _, t := range ports {
			used[t] = true
		}
	}
	for _, s := range svcs {
		for _, p := range s.Spec.Ports {
			used[p.TargetPort.IntVal] = true
		}
	}
	want := map[string]bool{}
	for _, g := range in.Gateways {
		key := g.Namespace + "/" + g.Name
		if _, ours := res.Gateways[key]; !ours {
			continue
		}
		want[key] = true
		old := svcs[key]
		have := c.portsOf(svcs)(g.Namespace, g.Name)
		if have == nil {
			have = map[int32]int32{}
		}
		if c.allocated[key] == nil {
			c.allocated[key] = map[int32]int32{}
		}
		var ports []corev1.ServicePort
		// The Gateway's own listener ports get local ports first: its
		// ListenerSets' never take the last free ones from them.
		own := listenerPorts(g, nil)
		order := append(own, slices.DeleteFunc(listenerPorts(g, res.ListenerSetPorts[key]), func(p int32) bool { return slices.Contains(own, p) })...)
		for _, lp := range order {
			target, ok := have[lp]
			if !ok {
				target, ok = c.allocated[key][lp]
			}
			if !ok {
				if target = c.freePort(used); target == 0 {
					c.log.Error("gateway API: no free port left in --gateway-port-range", slog.String("gateway", key))
					continue
				}
				used[target] = true
			}
			c.allocated[key][lp] = target
			ports = append(ports, corev1.ServicePort{Name: "l" + strconv.Itoa(int(lp)), Protocol: corev1.ProtocolTCP, Port: lp, TargetPort: intstr.FromInt32(target)})
		}
		if len(ports) == 0 {
			continue // a Service needs a port; the Gateway has none to serve
		}
		slices.SortFunc(ports, func(a, b corev1.ServicePort) int { return int(a.Port) - int(b.Port) })
		if svc := c.applyService(ctx, key, g, old, pub, ports); svc != nil {
			c.applyEndpoints(ctx, svc)
		}
	}
	for _, s := range c.managed() {
		key := s.Annotations[annGateway]
		if ns, _, _ := strings.Cut(key, "/"); !want[key] || ns != s.Namespace {
			err := c.opts.Client.Core.Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
			if err != nil && !apierrors.IsNotFound(err) {
				c.log.Warn("gateway API: Service of a deleted Gateway not deleted", slog.String("service", s.Name), slog.String("error", err.Error()))
			}
		}
	}
}

// listenerPorts are the distinct ports of g's HTTP and HTTPS listeners
// and of those its ListenerSets add (sets).
func listenerPorts(g *gwv1.Gateway, sets []int32) []int32 {
	out := slices.Clone(sets)
	for _, l := range g.Spec.Listeners {
		if (l.Protocol == gwv1.HTTPProtocolType || l.Protocol == gwv1.HTTPSProtocolType) && !slices.Contains(out, int32(l.Port)) {
			out = append(out, int32(l.Port))
		}
	}
	slices.Sort(out)
	return out
}

func (c *Controller) freePort(used map[int32]bool) int32 {
	for p := c.opts.Ports.Low; p <= c.opts.Ports.High; p++ {
		if !used[p] {
			return p
		}
	}
	return 0
}

// applyService creates or updates the Service of Gateway g (key) and
// returns it (nil when the API refused).
func (c *Controller) applyService(ctx context.Context, key string, g *gwv1.Gateway, old, pub *corev1.Service, ports []corev1.ServicePort) *corev1.Service {
	typ := pub.Spec.Type
	if typ == "" || typ == corev1.ServiceTypeNodePort {
		typ = corev1.ServiceTypeClusterIP // node ports are not ours to hand out
	}
	labels, annotations := serviceMeta(key, g, pub)
	annotations[annKeys] = metaKeys(labels, annotations)
	if old != nil {
		prevL, prevA := prevMetaKeys(old)
		labels, annotations = keepOthers(old.Labels, labels, prevL), keepOthers(old.Annotations, annotations, prevA)
	}
	svcs := c.opts.Client.Core.Services(g.Namespace)
	if old == nil {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: serviceName(g.Namespace, g.Name), Namespace: g.Namespace,
			Labels: labels, Annotations: annotations}, Spec: corev1.ServiceSpec{Type: typ, Ports: ports}}
		made, err := svcs.Create(ctx, s, metav1.CreateOptions{FieldManager: "flotilla-gateway-api"})
		if err != nil {
			if !apierrors.IsAlreadyExists(err) {
				c.log.Warn("gateway API: Service of a Gateway not created", slog.String("gateway", key), slog.String("error", err.Error()))
			}
			return nil
		}
		return made
	}
	if old.Spec.Type == typ && len(old.Spec.Selector) == 0 && portsEqual(old.Spec.Ports, ports) &&
		maps.Equal(old.Labels, labels) && maps.Equal(old.Annotations, annotations) {
		return old
	}
	up := old.DeepCopy()
	up.Spec.Type, up.Spec.Selector, up.Spec.Ports = typ, nil, ports
	up.Labels, up.Annotations = labels, annotations
	made, err := svcs.Update(ctx, up, metav1.UpdateOptions{FieldManager: "flotilla-gateway-api"})
	if err != nil {
		if apierrors.IsConflict(err) {
			c.kick()
			return nil
		}
		c.log.Warn("gateway API: Service of a Gateway not updated", slog.String("gateway", key), slog.String("error", err.Error()))
		return nil
	}
	return made
}

// metaKeys is annKeys' value for a Service given labels and annotations.
func metaKeys(labels, annotations map[string]string) string {
	var keys []string
	for k := range labels {
		keys = append(keys, "label:"+k)
	}
	for k := range annotations {
		if k != annKeys {
			keys = append(keys, "annotation:"+k)
		}
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// prevMetaKeys are the label and annotation keys the controller put on
// s; without annKeys (a Service of an earlier version) all of them.
func prevMetaKeys(s *corev1.Service) (labels, annotations map[string]bool) {
	labels, annotations = map[string]bool{}, map[string]bool{}
	v, ok := s.Annotations[annKeys]
	if !ok {
		for k := range s.Labels {
			labels[k] = true
		}
		for k := range s.Annotations {
			annotations[k] = true
		}
		return labels, annotations
	}
	for _, k := range strings.Split(v, ",") {
		if l, ok := strings.CutPrefix(k, "label:"); ok {
			labels[l] = true
		} else if a, ok := strings.CutPrefix(k, "annotation:"); ok {
			annotations[a] = true
		}
	}
	return labels, annotations
}

// keepOthers is want plus the keys of have that the controller did not
// put there (not in prev): another writer's.
func keepOthers(have, want map[string]string, prev map[string]bool) map[string]string {
	out := maps.Clone(want)
	for k, v := range have {
		if _, ok := out[k]; !ok && !prev[k] {
			out[k] = v
		}
	}
	return out
}

func portsEqual(a, b []corev1.ServicePort) bool {
	return slices.EqualFunc(a, b, func(x, y corev1.ServicePort) bool {
		return x.Name == y.Name && x.Port == y.Port && x.TargetPort == y.TargetPort && x.Protocol == y.Protocol
	})
}

// serviceMeta is the labels and annotations of Gateway g's Service: ours
// (managed-by, the Gateway it serves, Gateway API's gateway-name label),
// then the Gateway's spec.infrastructure labels and annotations, then the
// publish Service's labels; an earlier one wins a key. The Service is the
// controller's own: what is not listed here is removed on the next
// update, so a label or annotation taken out of spec.infrastructure goes.
func serviceMeta(key string, g *gwv1.Gateway, pub *corev1.Service) (labels, annotations map[string]string) {
	labels = map[string]string{labelManaged: managedByValue}
	if len(validation.IsValidLabelValue(g.Name)) == 0 {
		labels[gwv1.GatewayNameLabelKey] = g.Name
	}
	annotations = map[string]string{annGateway: key}
	put := func(m map[string]string, k, v string) {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	if inf := g.Spec.Infrastructure; inf != nil {
		for k, v := range inf.Labels {
			put(labels, string(k), string(v))
		}
		for k, v := range inf.Annotations {
			put(annotations, string(k), string(v))
		}
	}
	for k, v := range pub.Labels {
		put(labels, k, v)
	}
	return labels, annotations
}
