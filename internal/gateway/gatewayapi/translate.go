// Package gatewayapi translates Gateway API v1 objects (GatewayClass,
// Gateway, HTTPRoute, ReferenceGrant; sigs.k8s.io/gateway-api) into a
// fragment of the gateway's routing config: routes, backends found through
// EndpointSlices (backends[].kubernetes) and TLS certificates, and computes
// the status every object of our class should carry.
//
// Pure data in, pure data out, like package ingress: the controller
// (gatewayapi/controller) lists the objects, writes the Secret material,
// applies the fragment through the gateway's validated reload and writes
// the status this package computes.
//
// Listeners, in one of two modes (see docs/gateway-api.md):
//   - shared (the default): the gateway process has one clear-text
//     listener (--addr) and one TLS listener (--tls-addr). Every HTTP
//     listener of every Gateway of our class is served on the first, every
//     HTTPS listener on the second, whatever port the listener names: the
//     port is the one clients reach through the gateway's Service.
//   - per Gateway (Options.PerGateway): every Gateway has a Service of its
//     own (its address), whose ports are its listeners' ports, each mapped
//     to a local port of the gateway process (Input.Ports). Routes match
//     only on the local ports of the listeners they are attached to, so
//     Gateways and listeners are isolated from each other; Result.Listeners
//     are the local ports to open.
//
// Precedence is the route engine's (package route), which orders routes
// as Gateway API orders rules: host specificity, Exact path, longest
// prefix, method, most headers, most query parameters; ties go to the
// oldest HTTPRoute, then namespace/name, then rule and match order, which
// Translate gives as the order of the routes it emits.
package gatewayapi

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// Defaults of Options.
const (
	DefaultControllerName = "flotilla.dev/gateway-controller"
	// Group is the Gateway API group.
	Group = gwv1.GroupName
)

// Options select which objects are ours.
type Options struct {
	// ControllerName is the GatewayClass spec.controllerName served
	// (default "flotilla.dev/gateway-controller").
	ControllerName string
	// ClassName, when set, serves only the GatewayClass of that name (its
	// controllerName must still be ours); empty: every class whose
	// controllerName is ours.
	ClassName string
	// NoHTTPS says the gateway serves no TLS listener: HTTPS listeners are
	// not Accepted (UnsupportedProtocol).
	NoHTTPS bool
	// PerGateway gives every Gateway its own address and listeners:
	// Input.Ports maps them to local ports.
	PerGateway bool
}

func (o *Options) setDefaults() {
	if o.ControllerName == "" {
		o.ControllerName = DefaultControllerName
	}
}

// Input is everything the translation reads.
type Input struct {
	Classes  []*gwv1.GatewayClass
	Gateways []*gwv1.Gateway
	Routes   []*gwv1.HTTPRoute
	Grants   []*gwv1.ReferenceGrant
	// ListenerSets add listeners to the Gateways that allow them
	// (translate_listenerset.go).
	ListenerSets []*gwv1.ListenerSet
	// Services resolves backendRefs; nil when the Service does not exist.
	Services func(namespace, name string) *corev1.Service
	// Secrets resolves certificateRefs; nil when the Secret does not exist.
	Secrets func(namespace, name string) *corev1.Secret
	// Namespaces gives a namespace's labels for allowedRoutes selectors;
	// nil when it is unknown (no namespace matches a selector then).
	Namespaces func(name string) *corev1.Namespace
	// Ports, with Options.PerGateway, maps a Gateway's listener ports to
	// the gateway process's local ports (its Service's targetPorts); nil
	// or a missing port while the Service is not there yet.
	Ports func(namespace, name string) map[int32]int32
	// BackendTLSPolicies configure TLS to Services (translate_backendtls.go).
	BackendTLSPolicies []*gwv1.BackendTLSPolicy
	// ConfigMaps resolves the caCertificateRefs of BackendTLSPolicies and
	// of Gateways' spec.tls.frontend; nil when it does not exist.
	ConfigMaps func(namespace, name string) *corev1.ConfigMap
}

// Listener is a local port the gateway process serves, with
// Options.PerGateway.
type Listener struct {
	Port int32
	TLS  bool
}

// Severity of a Problem.
type Severity string

// Severities: a Warning leaves the object served without what the
// problem names; an Error leaves it (or the listener, or the rule) out.
const (
	Warning Severity = "Warning"
	Error   Severity = "Error"
)

// Problem is one thing wrong with one object: a Kubernetes Event on it
// and a log line.
type Problem struct {
	// Kind is GatewayClass, Gateway, ListenerSet or HTTPRoute.
	Kind            string
	Namespace, Name string
	Severity        Severity
	Message         string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s %s/%s: %s", p.Severity, p.Kind, p.Namespace, p.Name, p.Message)
}

// Result is the translation.
type Result struct {
	// Backends, Routes and Certificates are the config fragment; names
	// start with "gw.". Certificate file names are relative to the
	// controller's secret directory.
	Backends     []config.Backend
	Routes       []config.Route
	Certificates []config.Certificate
	// Listeners are the local ports to serve (Options.PerGateway), by port.
	Listeners []Listener
	// TLSPorts are the client certificate policies and HTTPS listener
	// host names by local port (translate_frontendtls.go).
	TLSPorts []config.TLSPort
	// Files is the Secret material by relative file name; secret.
	Files map[string][]byte
	// Problems of every object.
	Problems []Problem
	// ClassConditions are the conditions of our GatewayClasses, by name.
	ClassConditions map[string][]metav1.Condition
	// Gateways is the status of our Gateways, by namespace/name, without
	// addresses (the controller knows those).
	Gateways map[string]gwv1.GatewayStatus
	// RouteParents is, by HTTPRoute namespace/name, the parent statuses
	// of its parentRefs to our Gateways; HTTPRoutes with none are absent.
	RouteParents map[string][]gwv1.RouteParentStatus
	// BackendTLSPolicies is, by BackendTLSPolicy namespace/name, its
	// ancestor statuses for our Gateways; policies with none are absent.
	BackendTLSPolicies map[string][]gwv1.PolicyAncestorStatus
	// ListenerSets is the status of the ListenerSets whose parent is one
	// of our Gateways, by namespace/name.
	ListenerSets map[string]gwv1.ListenerSetStatus
	// ListenerSetPorts are, by Gateway namespace/name, the ports of the
	// HTTP and HTTPS listeners its accepted ListenerSets add (the
	// per-Gateway Service serves them too).
	ListenerSetPorts map[string][]int32
}

// Translate computes the fragment and the status for in. It never fails
// as a whole: what is wrong is in Result.Problems and the conditions.
func Translate(in Input, opts Options) Result {
	opts.setDefaults()
	if in.Services == nil {
		in.Services = func(string, string) *corev1.Service { return nil }
	}
	if in.Secrets == nil {
		in.Secrets = func(string, string) *corev1.Secret { return nil }
	}
	if in.Namespaces == nil {
		in.Namespaces = func(string) *corev1.Namespace { return nil }
	}
	if in.Ports == nil {
		in.Ports = func(string, string) map[int32]int32 { return nil }
	}
	if in.ConfigMaps == nil {
		in.ConfigMaps = func(string, string) *corev1.ConfigMap { return nil }
	}
	t := &translator{in: in, opts: opts, res: Result{Files: map[string][]byte{}, ClassConditions: map[string][]metav1.Condition{},
		Gateways: map[string]gwv1.GatewayStatus{}, RouteParents: map[string][]gwv1.RouteParentStatus{}, BackendTLSPolicies: map[string][]gwv1.PolicyAncestorStatus{}},
		backends: map[string]bool{}, gateways: map[string]*gatewayState{}, listenerSets: map[string]*listenerSetState{}}
	classes := map[string]*gwv1.GatewayClass{}
	for _, c := range in.Classes {
		if string(c.Spec.ControllerName) != opts.ControllerName || opts.ClassName != "" && c.Name != opts.ClassName {
			continue
		}
		classes[c.Name] = c
		t.res.ClassConditions[c.Name] = []metav1.Condition{cond(string(gwv1.GatewayClassConditionStatusAccepted), true, string(gwv1.GatewayClassReasonAccepted), "Accepted by "+opts.ControllerName, c.Generation)}
	}
	gws := sortedByAge(in.Gateways)
	for _, g := range gws {
		if classes[string(g.Spec.GatewayClassName)] == nil {
			continue
		}
		t.gateway(g)
	}
	t.indexBackendTLS()
	t.mergeListenerSets()
	for _, r := range sortedByAge(in.Routes) {
		t.route(r)
	}
	t.backendTLSStatus()
	for _, k := range slices.Sorted(maps.Keys(t.gateways)) {
		t.res.Gateways[k] = t.gateways[k].status()
		if opts.PerGateway {
			t.isolate(t.gateways[k])
		}
	}
	t.listenerSetStatus()
	slices.SortFunc(t.res.Listeners, func(a, b Listener) int { return cmp.Compare(a.Port, b.Port) })
	t.tlsPorts()
	return t.res
}

// sortedByAge orders objects oldest first, then by namespace/name: the
// spec's tie-break, stable whatever order the informer lists them in.
func sortedByAge[T metav1.Object](objs []T) []T {
	out := slices.Clone(objs)
	slices.SortFunc(out, func(a, b T) int {
		at, bt := a.GetCreationTimestamp(), b.GetCreationTimestamp()
		return cmp.Or(at.Compare(bt.Time), strings.Compare(a.GetNamespace(), b.GetNamespace()), strings.Compare(a.GetName(), b.GetName()))
	})
	return out
}

func cond(typ string, ok bool, reason, msg string, gen int64) metav1.Condition {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen}
}

type translator struct {
	in       Input
	opts     Options
	res      Result
	backends map[string]bool
	gateways map[string]*gatewayState // namespace/name
	btls     *backendTLSState
	// listenerSets are the ListenerSets whose parent is ours, by
	// namespace/name.
	listenerSets map[string]*listenerSetState
}

// listenerState is one listener as translated.
type listenerState struct {
	l     gwv1.Listener
	kinds []gwv1.RouteGroupKind
	valid bool // Accepted, not conflicted: routes may attach
	// programmed: valid and its references resolved.
	programmed bool
	conds      []metav1.Condition
	attached   int32
	// local is the gateway's local port serving it (PerGateway; 0 while
	// the Gateway's Service has none).
	local int32
	// owner is the ListenerSet the listener comes from; nil for the
	// Gateway's own.
	owner *listenerSetState
}

type gatewayState struct {
	g         *gwv1.Gateway
	listeners []*listenerState
	accepted  bool
	reason    string
	msg       string
	// someInvalid: a listener is not accepted, conflicted or unresolved.
	someInvalid bool
	// pending: a listener waits for its local port (PerGateway).
	pending bool
	// clientCert is spec.tls.backend's client certificate, resolved; conds
	// are further conditions (ResolvedRefs of spec.tls.backend).
	clientCert *clientCert
	conds      []metav1.Condition
	// frontend is spec.tls.frontend as translated
	// (translate_frontendtls.go).
	frontend frontendState
}

func (gs *gatewayState) status() gwv1.GatewayStatus {
	gen := gs.g.Generation
	var st gwv1.GatewayStatus
	programmed := false
	for _, ls := range gs.listeners {
		if ls.owner != nil {
			continue // in the ListenerSet's status
		}
		if ls.programmed {
			programmed = true
		}
		conds := ls.conds
		if !gs.accepted {
			// Nothing of a Gateway that is not accepted is served.
			conds = slices.Clone(conds)
			for i, c := range conds {
				if c.Type == string(gwv1.ListenerConditionProgrammed) && c.Status == metav1.ConditionTrue {
					conds[i] = cond(c.Type, false, string(gwv1.ListenerReasonInvalid), "the Gateway is not accepted: "+gs.msg, gen)
				}
			}
		}
		st.Listeners = append(st.Listeners, gwv1.ListenerStatus{Name: ls.l.Name, SupportedKinds: ls.kinds, AttachedRoutes: ls.attached, Conditions: conds})
	}
	switch {
	case gs.accepted && gs.someInvalid:
		// The spec: accepted with at least one valid listener, the reason
		// saying that others are not.
		st.Conditions = append(st.Conditions, cond(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonListenersNotValid), "some listeners are not valid: see their conditions", gen))
	case gs.accepted:
		st.Conditions = append(st.Conditions, cond(string(gwv1.GatewayConditionAccepted), true, string(gwv1.GatewayReasonAccepted), "Accepted", gen))
	default:
		st.Conditions = append(st.Conditions, cond(string(gwv1.GatewayConditionAccepted), false, gs.reason, gs.msg, gen))
	}
	st.Conditions = append(st.Conditions, gs.frontend.conditions(gen)...)
	if gs.accepted && programmed {
		st.Conditions = append(st.Conditions, cond(string(gwv1.GatewayConditionProgrammed), true, string(gwv1.GatewayReasonProgrammed), "Programmed", gen))
	} else if gs.accepted && gs.pending {
		st.Conditions = append(st.Conditions, cond(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonPending), "waiting for the Gateway's Service", gen))
	} else {
		st.Conditions = append(st.Conditions, cond(string(gwv1.GatewayConditionProgrammed), false, string(gwv1.GatewayReasonInvalid), "no listener is programmed", gen))
	}
	st.Conditions = append(st.Conditions, gs.conds...)
	return st
}

func (t *translator) problem(kind string, o metav1.Object, sev Severity, format string, args ...any) {
	t.res.Problems = append(t.res.Problems, Problem{Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName(), Severity: sev, Message: fmt.Sprintf(format, args...)})
}

func httpRouteKind() gwv1.RouteGroupKind {
	g := gwv1.Group(Group)
	return gwv1.RouteGroupKind{Group: &g, Kind: "HTTPRoute"}
}

// gateway translates one Gateway of our class: listeners and their TLS.
func (t *translator) gateway(g *gwv1.Gateway) {
	gs := &gatewayState{g: g, accepted: true}
	t.gateways[g.Namespace+"/"+g.Name] = gs
	gen := g.Generation
	// An address asked for without a value ("an IP, any") is what the
	// gateway gives anyway: its Service's. A given value is not: the
	// address is the Service's, not chosen here.
	for i, a := range g.Spec.Addresses {
		if a.Value != "" || a.Type != nil && *a.Type != gwv1.IPAddressType {
			gs.accepted, gs.reason, gs.msg = false, string(gwv1.GatewayReasonUnsupportedAddress), fmt.Sprintf("spec.addresses[%d]: only an IPAddress without a value is supported: the gateway's address is its Service's", i)
			t.problem("Gateway", g, Error, "%s", gs.msg)
			break
		}
	}
	t.gatewayBackendTLS(gs)
	if msg := parametersRef(g); msg != "" {
		gs.accepted, gs.reason, gs.msg = false, string(gwv1.GatewayReasonInvalidParameters), msg
		t.problem("Gateway", g, Error, "%s", gs.msg)
	}
	// Conflicts: the gateway serves HTTP and HTTPS on its own two
	// listeners, so listeners conflict by port across protocols and by
	// hostname within one protocol and port.
	type pk struct {
		port int32
		host string
	}
	protoByPort := map[int32]gwv1.ProtocolType{}
	hostCount := map[pk]int{}
	for _, l := range g.Spec.Listeners {
		if p, ok := protoByPort[int32(l.Port)]; !ok || p == l.Protocol {
			protoByPort[int32(l.Port)] = l.Protocol
		} else {
			protoByPort[int32(l.Port)] = "conflict"
		}
		hostCount[pk{int32(l.Port), hostname(l.Hostname)}]++
	}
	anyValid := false
	ports := t.in.Ports(g.Namespace, g.Name)
	for i, l := range g.Spec.Listeners {
		ls := &listenerState{l: l, valid: true}
		gs.listeners = append(gs.listeners, ls)
		field := fmt.Sprintf("spec.listeners[%d] (%s)", i, l.Name)
		accepted, aReason, aMsg := true, string(gwv1.ListenerReasonAccepted), "Accepted"
		resolved, rReason, rMsg := true, string(gwv1.ListenerReasonResolvedRefs), "ResolvedRefs"
		conflicted, cReason, cMsg := false, string(gwv1.ListenerReasonNoConflicts), "NoConflicts"
		switch {
		case l.Protocol != gwv1.HTTPProtocolType && l.Protocol != gwv1.HTTPSProtocolType:
			accepted, aReason, aMsg = false, string(gwv1.ListenerReasonUnsupportedProtocol), fmt.Sprintf("protocol %s is not supported (HTTP and HTTPS are)", l.Protocol)
		case l.Protocol == gwv1.HTTPSProtocolType && t.opts.NoHTTPS:
			accepted, aReason, aMsg = false, string(gwv1.ListenerReasonUnsupportedProtocol), "HTTPS needs the gateway's TLS listener (flotilla gateway --tls-addr)"
		}
		// Route kinds.
		if l.AllowedRoutes != nil && len(l.AllowedRoutes.Kinds) > 0 {
			var bad []string
			for _, k := range l.AllowedRoutes.Kinds {
				if (k.Group == nil || string(*k.Group) == Group) && k.Kind == "HTTPRoute" {
					ls.kinds = append(ls.kinds, httpRouteKind())
				} else {
					bad = append(bad, string(k.Kind))
				}
			}
			if len(bad) > 0 {
				resolved, rReason, rMsg = false, string(gwv1.ListenerReasonInvalidRouteKinds), fmt.Sprintf("route kinds %s are not supported (HTTPRoute is)", strings.Join(bad, ", "))
			}
		} else if accepted {
			ls.kinds = []gwv1.RouteGroupKind{httpRouteKind()}
		}
		if ls.kinds == nil {
			ls.kinds = []gwv1.RouteGroupKind{}
		}
		if accepted && l.Protocol == gwv1.HTTPSProtocolType {
			if ok, reason, msg := t.listenerTLS("Gateway", g.Namespace, l, field); !ok && resolved {
				resolved, rReason, rMsg = false, reason, msg
			}
			if acc, res := t.frontendTLS(gs, l); acc != nil || res != nil {
				if acc != nil {
					accepted, aReason, aMsg = false, acc.reason, acc.msg
				}
				if res != nil && resolved {
					resolved, rReason, rMsg = false, res.reason, res.msg
				}
			}
		}
		if protoByPort[int32(l.Port)] == "conflict" {
			conflicted, cReason, cMsg = true, string(gwv1.ListenerReasonProtocolConflict), fmt.Sprintf("port %d has listeners of different protocols", l.Port)
		} else if hostCount[pk{int32(l.Port), hostname(l.Hostname)}] > 1 {
			conflicted, cReason, cMsg = true, string(gwv1.ListenerReasonHostnameConflict), fmt.Sprintf("another listener on port %d has hostname %q", l.Port, hostname(l.Hostname))
		}
		programmed := accepted && !conflicted && resolved
		ls.valid = accepted && !conflicted && len(ls.kinds) > 0
		pReason, pMsg := string(gwv1.ListenerReasonProgrammed), "Programmed"
		if !programmed {
			pReason, pMsg = string(gwv1.ListenerReasonInvalid), "not programmed: see the other conditions"
		} else if t.opts.PerGateway {
			if ls.local = ports[int32(l.Port)]; ls.local == 0 {
				programmed, pReason, pMsg = false, string(gwv1.ListenerReasonPending), "waiting for the Gateway's Service to map this port"
				gs.pending = true
			} else if !slices.ContainsFunc(t.res.Listeners, func(x Listener) bool { return x.Port == ls.local }) {
				t.res.Listeners = append(t.res.Listeners, Listener{Port: ls.local, TLS: l.Protocol == gwv1.HTTPSProtocolType})
			}
		}
		ls.conds = []metav1.Condition{
			cond(string(gwv1.ListenerConditionAccepted), accepted, aReason, aMsg, gen),
			cond(string(gwv1.ListenerConditionConflicted), conflicted, cReason, cMsg, gen),
			cond(string(gwv1.ListenerConditionResolvedRefs), resolved, rReason, rMsg, gen),
			cond(string(gwv1.ListenerConditionProgrammed), programmed, pReason, pMsg, gen),
		}
		for _, c := range ls.conds {
			bad := c.Status == metav1.ConditionFalse
			if c.Type == string(gwv1.ListenerConditionConflicted) {
				bad = c.Status == metav1.ConditionTrue
			}
			if bad && c.Type != string(gwv1.ListenerConditionProgrammed) {
				t.problem("Gateway", g, Warning, "%s: %s", field, c.Message)
			}
		}
		if ls.valid {
			anyValid = true
		}
		ls.programmed = programmed
		if !programmed && pReason != string(gwv1.ListenerReasonPending) {
			gs.someInvalid = true
		}
	}
	if gs.accepted && !anyValid && len(g.Spec.Listeners) > 0 {
		gs.accepted, gs.reason, gs.msg = false, string(gwv1.GatewayReasonListenersNotValid), "no listener is valid"
	}
}

func hostname(h *gwv1.Hostname) string {
	if h == nil {
		return ""
	}
	return strings.ToLower(string(*h))
}

// listenerTLS resolves an HTTPS listener's certificateRefs into
// certificates; false with the ResolvedRefs reason when one cannot be.
// fromKind objects of namespace fromNS (a Gateway's, a ListenerSet's) need
// a ReferenceGrant for a Secret of another namespace.
func (t *translator) listenerTLS(fromKind, fromNS string, l gwv1.Listener, field string) (bool, string, string) {
	if l.TLS == nil || len(l.TLS.CertificateRefs) == 0 {
		return false, string(gwv1.ListenerReasonInvalidCertificateRef), "an HTTPS listener needs tls.certificateRefs"
	}
	if l.TLS.Mode != nil && *l.TLS.Mode != gwv1.TLSModeTerminate {
		return false, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("tls.mode %s is not supported on HTTPS listeners (Terminate is)", *l.TLS.Mode)
	}
	for i, ref := range l.TLS.CertificateRefs {
		rf := fmt.Sprintf("tls.certificateRefs[%d]", i)
		if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Secret" {
			return false, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("%s: only core Secrets are supported", rf)
		}
		ns := fromNS
		if ref.Namespace != nil && string(*ref.Namespace) != "" {
			ns = string(*ref.Namespace)
		}
		if ns != fromNS && !t.granted(fromKind, fromNS, "", "Secret", ns, string(ref.Name)) {
			return false, string(gwv1.ListenerReasonRefNotPermitted), fmt.Sprintf("%s: Secret %s/%s is in another namespace and no ReferenceGrant there allows it", rf, ns, ref.Name)
		}
		s := t.in.Secrets(ns, string(ref.Name))
		if s == nil {
			return false, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("%s: Secret %s/%s not found", rf, ns, ref.Name)
		}
		crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(crt, key); err != nil {
			return false, string(gwv1.ListenerReasonInvalidCertificateRef), fmt.Sprintf("%s: Secret %s/%s has no valid tls.crt and tls.key: %v", rf, ns, ref.Name, err)
		}
		dir := path.Join("tls", ns, string(ref.Name))
		t.res.Files[dir+"/tls.crt"], t.res.Files[dir+"/tls.key"] = crt, key
		c := config.Certificate{CertFile: dir + "/tls.crt", KeyFile: dir + "/tls.key"}
		if !slices.Contains(t.res.Certificates, c) {
			t.res.Certificates = append(t.res.Certificates, c)
		}
	}
	return true, "", ""
}

// granted reports whether a ReferenceGrant in toNS lets fromKind objects
// of fromNS refer to toKind (core group when toGroup is "") named name.
func (t *translator) granted(fromKind, fromNS, toGroup, toKind, toNS, name string) bool {
	for _, rg := range t.in.Grants {
		if rg.Namespace != toNS {
			continue
		}
		from := slices.ContainsFunc(rg.Spec.From, func(f gwv1.ReferenceGrantFrom) bool {
			return string(f.Group) == Group && string(f.Kind) == fromKind && string(f.Namespace) == fromNS
		})
		to := slices.ContainsFunc(rg.Spec.To, func(x gwv1.ReferenceGrantTo) bool {
			return string(x.Group) == toGroup && string(x.Kind) == toKind && (x.Name == nil || string(*x.Name) == "" || string(*x.Name) == name)
		})
		if from && to {
			return true
		}
	}
	return false
}

// routeState is one HTTPRoute being translated.
type routeState struct {
	r   *gwv1.HTTPRoute
	key string
	// att are the hosts the accepted attachments serve, by entry.
	att      map[entry]*hostSet
	accepted bool
}

// entry is where a route is served: a scheme ("http" for HTTP listeners,
// "https" for HTTPS ones) in the shared mode, a local port per Gateway.
type entry struct {
	scheme string
	port   int32
	// listener is the port of the Gateway's listener (per Gateway).
	listener int32
}

// hostSet is the hosts a route serves on listeners of one protocol.
type hostSet struct {
	hosts   []string // nil with any
	anyHost bool
}

func (h *hostSet) equal(o *hostSet) bool {
	if h.anyHost || o.anyHost {
		return h.anyHost == o.anyHost
	}
	a, b := slices.Clone(h.hosts), slices.Clone(o.hosts)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// route translates one HTTPRoute: its parents' acceptance, then its rules
// for the hosts the accepted listeners allow.
func (t *translator) route(r *gwv1.HTTPRoute) {
	rs := &routeState{r: r, key: r.Namespace + "/" + r.Name, att: map[entry]*hostSet{}}
	type parent struct {
		ref    gwv1.ParentReference
		status gwv1.RouteParentStatus
	}
	var parents []parent
	for _, ref := range r.Spec.ParentRefs {
		ns := r.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		gs, owner := t.parent(ref, ns)
		if gs == nil {
			continue // not ours: another controller's status to write
		}
		ok, reason, msg := t.attach(rs, gs, owner, ref)
		parents = append(parents, parent{ref: ref, status: gwv1.RouteParentStatus{ParentRef: ref, ControllerName: gwv1.GatewayController(t.opts.ControllerName),
			Conditions: []metav1.Condition{cond(string(gwv1.RouteConditionAccepted), ok, reason, msg, r.Generation)}}})
		if !ok {
			t.problem("HTTPRoute", r, Warning, "parent %s/%s: %s", ns, ref.Name, msg)
		}
	}
	if len(parents) == 0 {
		return
	}
	resolved, rReason, rMsg := true, string(gwv1.RouteReasonResolvedRefs), "ResolvedRefs"
	onRef := func(reason, msg string) {
		if resolved {
			resolved, rReason, rMsg = false, reason, msg
		}
		t.problem("HTTPRoute", r, Warning, "%s", msg)
	}
	// Rules are translated even when no parent accepted the route, for
	// ResolvedRefs; they are served only when one did.
	routes, backends, invalid := t.rules(rs, onRef)
	if invalid != "" {
		t.problem("HTTPRoute", r, Error, "%s", invalid)
	}
	for i := range parents {
		c := cond(string(gwv1.RouteConditionResolvedRefs), resolved, rReason, rMsg, r.Generation)
		st := &parents[i].status
		if invalid != "" && st.Conditions[0].Status == metav1.ConditionTrue {
			st.Conditions[0] = cond(string(gwv1.RouteConditionAccepted), false, string(gwv1.RouteReasonUnsupportedValue), invalid, r.Generation)
		}
		st.Conditions = append(st.Conditions, c)
		t.res.RouteParents[rs.key] = append(t.res.RouteParents[rs.key], *st)
	}
	if !rs.accepted || invalid != "" {
		return
	}
	if t.opts.PerGateway {
		t.res.Routes = append(t.res.Routes, byPort(rs, routes)...)
	} else {
		t.res.Routes = append(t.res.Routes, byScheme(rs, routes)...)
	}
	for _, b := range backends {
		if !t.backends[b.Name] {
			t.backends[b.Name] = true
			t.res.Backends = append(t.res.Backends, b)
		}
	}
}

// byScheme gives each of routes the hosts of its attachments in the
// shared mode, one route per scheme when they differ.
func byScheme(rs *routeState, routes []config.Route) []config.Route {
	var out []config.Route
	// A route attached to HTTP and HTTPS listeners with the same hosts is
	// one route for both schemes; otherwise one per scheme, so that a
	// route of an HTTPS listener is never served in clear text (nor an
	// HTTP listener's redirect to HTTPS answered over HTTPS).
	plain, secure := rs.att[entry{scheme: "http"}], rs.att[entry{scheme: "https"}]
	for _, rc := range routes {
		switch {
		case plain != nil && secure != nil && plain.equal(secure):
			rc.Match.Hosts = plain.hosts
			out = append(out, rc)
		case plain != nil && secure != nil:
			for _, v := range []struct {
				scheme string
				hs     *hostSet
			}{{"http", plain}, {"https", secure}} {
				c := cloneRoute(rc)
				c.Name = kubeshared.ShortName(rc.Name, v.scheme)
				c.Match.Scheme, c.Match.Hosts = v.scheme, v.hs.hosts
				out = append(out, c)
			}
		case plain != nil:
			rc.Match.Scheme, rc.Match.Hosts = "http", plain.hosts
			out = append(out, rc)
		case secure != nil:
			rc.Match.Scheme, rc.Match.Hosts = "https", secure.hosts
			out = append(out, rc)
		}
	}
	return out
}

// shadowed reports whether host h, which listener ls serves, is matched by
// a more specific listener on the same local port.
func shadowed(gs *gatewayState, ls *listenerState, h string) bool {
	lh := hostname(ls.l.Hostname)
	return slices.ContainsFunc(gs.listeners, func(o *listenerState) bool {
		oh := hostname(o.l.Hostname)
		if o == ls || !o.programmed || o.local != ls.local || oh == "" || oh == lh {
			return false
		}
		matches := oh == h || strings.HasPrefix(oh, "*.") && !strings.HasPrefix(h, "*.") && covers(oh, h)
		moreSpecific := lh == "" || strings.HasPrefix(lh, "*.") && (!strings.HasPrefix(oh, "*.") || len(oh) > len(lh))
		return matches && moreSpecific
	})
}

// isolate keeps listeners of one port apart (GEP-1713's listener
// isolation): a request whose host a listener's hostname matches is that
// listener's alone, even when none of its routes matches the path, so
// it must not fall through to the routes of a less specific listener on
// the same port. A 404 route for that hostname, emitted last, ranks above
// every route of the less specific hostnames (host specificity comes
// first) and below, or after, every route of its own listener.
func (t *translator) isolate(gs *gatewayState) {
	for _, ls := range gs.listeners {
		h := hostname(ls.l.Hostname)
		if !ls.programmed || ls.local == 0 || h == "" {
			continue
		}
		shadows := slices.ContainsFunc(gs.listeners, func(o *listenerState) bool {
			oh := hostname(o.l.Hostname)
			return o != ls && o.programmed && o.local == ls.local && (oh == "" || oh != h && strings.HasPrefix(oh, "*.") && covers(oh, h))
		})
		if !shadows {
			continue
		}
		t.res.Routes = append(t.res.Routes, config.Route{
			Name:           kubeshared.ShortName(append([]string{"gw-isolate", gs.g.Namespace, gs.g.Name}, ls.nameParts()...)...),
			Match:          config.Match{Hosts: []string{h}, Ports: []int{int(ls.local)}},
			DirectResponse: &config.DirectResponse{Status: 404, Body: "not found\n"},
		})
	}
}

// byPort gives each of routes the local ports its attachments are served
// on: one copy per set of ports with the same hosts (named ….l<i>), or,
// for a redirect that keeps the listener's port, one per port (….p<i>);
// weights.RuleOf knows these names.
func byPort(rs *routeState, routes []config.Route) []config.Route {
	type group struct {
		hs    *hostSet
		ports []int
	}
	var groups []*group
	keys := slices.SortedFunc(maps.Keys(rs.att), func(a, b entry) int { return cmp.Compare(a.port, b.port) })
	for _, e := range keys {
		hs := rs.att[e]
		i := slices.IndexFunc(groups, func(g *group) bool { return g.hs.equal(hs) })
		if i < 0 {
			groups = append(groups, &group{hs: hs})
			i = len(groups) - 1
		}
		groups[i].ports = append(groups[i].ports, int(e.port))
	}
	var out []config.Route
	for _, rc := range routes {
		if rd := rc.Redirect; rd != nil && rd.Scheme == "" && rd.Port == 0 {
			// The redirect keeps the port of the listener it came in on:
			// one route per local port.
			for i, e := range keys {
				c := cloneRoute(rc)
				if len(keys) > 1 {
					c.Name = kubeshared.ShortName(rc.Name, "p"+strconv.Itoa(i))
				}
				c.Match.Ports, c.Match.Hosts, c.Redirect.ListenerPort = []int{int(e.port)}, rs.att[e].hosts, int(e.listener)
				out = append(out, c)
			}
			continue
		}
		for i, g := range groups {
			c := cloneRoute(rc)
			if len(groups) > 1 {
				c.Name = kubeshared.ShortName(rc.Name, "l"+strconv.Itoa(i))
			}
			c.Match.Ports, c.Match.Hosts = g.ports, g.hs.hosts
			out = append(out, c)
		}
	}
	return out
}

// attach decides whether ref (to the Gateway gs) accepts the route, and
// adds the hosts it may serve there to rs.
// owner is the ListenerSet ref names; nil for the Gateway's own listeners.
func (t *translator) attach(rs *routeState, gs *gatewayState, owner *listenerSetState, ref gwv1.ParentReference) (bool, string, string) {
	r := rs.r
	if owner != nil && !owner.accepted {
		return false, string(gwv1.RouteReasonNotAllowedByListeners), "the ListenerSet is not accepted: " + owner.msg
	}
	var candidates []*listenerState
	for _, ls := range gs.listeners {
		if ls.owner != owner {
			continue // a Gateway parentRef never reaches a ListenerSet's listeners, nor the reverse
		}
		if ref.SectionName != nil && *ref.SectionName != ls.l.Name {
			continue
		}
		if ref.Port != nil && *ref.Port != ls.l.Port {
			continue
		}
		candidates = append(candidates, ls)
	}
	if len(candidates) == 0 {
		if owner != nil {
			return false, string(gwv1.RouteReasonNoMatchingParent), "no listener of the ListenerSet matches the parentRef's sectionName and port"
		}
		return false, string(gwv1.RouteReasonNoMatchingParent), "no listener of the Gateway matches the parentRef's sectionName and port"
	}
	if !gs.accepted {
		return false, string(gwv1.RouteReasonNotAllowedByListeners), "the Gateway is not accepted: " + gs.msg
	}
	var allowed []*listenerState
	for _, ls := range candidates {
		if ls.valid && t.allows(gs.g, ls, r) {
			allowed = append(allowed, ls)
		}
	}
	if len(allowed) == 0 {
		return false, string(gwv1.RouteReasonNotAllowedByListeners), "no listener the parentRef names allows this route (allowedRoutes: namespaces or kinds, or the listener is invalid)"
	}
	matched := false
	for _, ls := range allowed {
		hosts, all := intersect(hostname(ls.l.Hostname), r.Spec.Hostnames)
		if !all && len(hosts) == 0 {
			continue
		}
		matched = true
		ls.attached++
		e := entry{scheme: "http"}
		if ls.l.Protocol == gwv1.HTTPSProtocolType {
			e.scheme = "https"
		}
		if t.opts.PerGateway {
			if ls.local == 0 {
				continue // attached, served once the Service maps the port
			}
			e = entry{port: ls.local, listener: int32(ls.l.Port)}
			// Listener isolation: the hosts a more specific listener of
			// the same port matches are that listener's alone.
			hosts = slices.DeleteFunc(hosts, func(h string) bool { return shadowed(gs, ls, h) })
			if !all && len(hosts) == 0 {
				continue
			}
		}
		hs := rs.att[e]
		if hs == nil {
			hs = &hostSet{}
			rs.att[e] = hs
		}
		if all {
			hs.anyHost, hs.hosts = true, nil
		}
		for _, h := range hosts {
			if !hs.anyHost && !slices.Contains(hs.hosts, h) {
				hs.hosts = append(hs.hosts, h)
			}
		}
	}
	if !matched {
		return false, string(gwv1.RouteReasonNoMatchingListenerHostname), "no hostname of the route matches a hostname of the listeners it may attach to"
	}
	rs.accepted = true
	return true, string(gwv1.RouteReasonAccepted), "Accepted"
}

// allows applies a listener's allowedRoutes to route r.
func (t *translator) allows(g *gwv1.Gateway, ls *listenerState, r *gwv1.HTTPRoute) bool {
	if !slices.ContainsFunc(ls.kinds, func(k gwv1.RouteGroupKind) bool { return k.Kind == "HTTPRoute" }) {
		return false
	}
	from := gwv1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if a := ls.l.AllowedRoutes; a != nil && a.Namespaces != nil {
		if a.Namespaces.From != nil {
			from = *a.Namespaces.From
		}
		sel = a.Namespaces.Selector
	}
	switch from {
	case gwv1.NamespacesFromAll:
		return true
	case gwv1.NamespacesFromSame:
		return r.Namespace == ls.namespace(g)
	case gwv1.NamespacesFromSelector:
		if sel == nil {
			return false
		}
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false
		}
		ns := t.in.Namespaces(r.Namespace)
		return ns != nil && s.Matches(labels.Set(ns.Labels))
	}
	return false
}

// intersect returns the hosts a route with hostnames serves on a listener
// with hostname lh ("" = any): all is true when neither restricts the
// host. A listener's wildcard keeps the route's more specific names; a
// route's wildcard under a listener's exact name gives that name.
func intersect(lh string, hostnames []gwv1.Hostname) (hosts []string, all bool) {
	if len(hostnames) == 0 {
		if lh == "" {
			return nil, true
		}
		return []string{lh}, false
	}
	for _, h := range hostnames {
		rh := strings.ToLower(string(h))
		var out string
		switch {
		case lh == "":
			out = rh
		case rh == lh:
			out = rh
		case strings.HasPrefix(lh, "*.") && covers(lh, rh):
			out = rh
		case strings.HasPrefix(rh, "*.") && covers(rh, lh):
			out = lh
		}
		if out != "" && !slices.Contains(hosts, out) {
			hosts = append(hosts, out)
		}
	}
	return hosts, false
}

// covers reports whether wildcard w ("*.example.com") covers h (an exact
// name or a narrower wildcard): one or more labels in place of '*'.
func covers(w, h string) bool {
	suffix := w[1:] // ".example.com"
	return len(h) > len(suffix) && strings.HasSuffix(h, suffix)
}

// rules translates the rules of rs into routes and the backends they use.
// onRef reports an unresolved reference (ResolvedRefs False); invalid is
// non-empty when the route cannot be served at all (Accepted False).
func (t *translator) rules(rs *routeState, onRef func(reason, msg string)) (routes []config.Route, backends []config.Backend, invalid string) {
	r := rs.r
	addBackend := func(b config.Backend) {
		if !slices.ContainsFunc(backends, func(x config.Backend) bool { return x.Name == b.Name }) {
			backends = append(backends, b)
		}
	}
	for i, rule := range r.Spec.Rules {
		field := fmt.Sprintf("spec.rules[%d]", i)
		var base config.Route
		fail500 := "" // a filter that cannot be honoured: the rule answers 500
		for j, f := range rule.Filters {
			ff := fmt.Sprintf("%s.filters[%d]", field, j)
			msg := t.filter(rs, &base, f, ff, addBackend, onRef)
			if msg != "" && fail500 == "" {
				fail500 = msg
			}
		}
		var refs []config.BackendRef
		var lost []string // unresolved backendRefs with weight
		if base.Redirect == nil {
			for j, br := range rule.BackendRefs {
				bf := fmt.Sprintf("%s.backendRefs[%d]", field, j)
				ops, msg := backendFilters(br.Filters, bf)
				if msg != "" && fail500 == "" {
					fail500 = msg
				}
				b, ok := t.backend(rs, br.BackendObjectReference, bf, onRef)
				w := 1
				if br.Weight != nil {
					w = int(*br.Weight)
				}
				if !ok {
					if w > 0 {
						lost = append(lost, bf)
					}
					continue
				}
				addBackend(b)
				refs = append(refs, config.BackendRef{Name: b.Name, Weight: &w, RequestHeaders: ops})
			}
		}
		if len(lost) > 0 && total(refs) > 0 {
			t.problem("HTTPRoute", r, Warning, "%s: their share of the traffic goes to the rule's other backends (the spec's 500 for that share is not implemented)", strings.Join(lost, ", "))
		}
		refs, lossy := scaleWeights(refs)
		if lossy {
			t.problem("HTTPRoute", r, Warning, "%s.backendRefs: weights scaled to 0..100 keeping their ratio as closely as possible", field)
		}
		switch {
		case fail500 != "":
			t.problem("HTTPRoute", r, Warning, "%s; the rule answers 500", fail500)
			base = config.Route{DirectResponse: &config.DirectResponse{Status: 500, Body: "filter not supported\n"}}
		case base.Redirect != nil:
		case len(refs) == 0 || total(refs) == 0:
			// No backend to send to: the spec's 500.
			base.Rewrite, base.Mirror, base.Mirrors, base.RequestHeaders = nil, nil, nil, nil
			base.DirectResponse = &config.DirectResponse{Status: 500, Body: "no backend\n"}
		default:
			base.Backends = refs
		}
		if rule.Timeouts != nil && rule.Timeouts.Request != nil {
			d, err := parseDuration(string(*rule.Timeouts.Request))
			if err != nil {
				return nil, nil, fmt.Sprintf("%s.timeouts.request: %v", field, err)
			}
			base.Timeout = d // 0: the gateway's default (the spec's "no timeout" is not offered)
		}
		if msg := retryPolicy(&base, rule, field); msg != "" {
			return nil, nil, msg
		}
		if rule.SessionPersistence != nil {
			t.problem("HTTPRoute", r, Warning, "%s: sessionPersistence is not supported", field)
		}
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gwv1.HTTPRouteMatch{{}}
		}
		for j, m := range matches {
			rc := cloneRoute(base)
			rc.Name = kubeshared.ShortName("gw", r.Namespace, r.Name, strconv.Itoa(i), strconv.Itoa(j))
			mf := fmt.Sprintf("%s.matches[%d]", field, j)
			if msg := match(&rc, m, mf); msg != "" {
				return nil, nil, msg
			}
			if rw := rc.Rewrite; rw != nil && rw.Path != nil && rw.Path.Type == config.RewriteReplacePrefix && rc.Match.Path.Type != config.PathPrefix {
				return nil, nil, mf + ": URLRewrite ReplacePrefixMatch needs a PathPrefix match"
			}
			if rd := rc.Redirect; rd != nil && rd.ReplacePrefix != "" && rc.Match.Path.Type != config.PathPrefix {
				return nil, nil, mf + ": RequestRedirect ReplacePrefixMatch needs a PathPrefix match"
			}
			routes = append(routes, rc)
		}
	}
	if msg := check(routes, backends); msg != "" {
		return nil, nil, msg
	}
	return routes, backends, ""
}

func total(refs []config.BackendRef) int {
	n := 0
	for _, r := range refs {
		n += *r.Weight
	}
	return n
}

// scaleWeights maps the refs' Gateway API weights onto the config's
// 0..100 (kubeshared.ScaleWeights).
func scaleWeights(refs []config.BackendRef) ([]config.BackendRef, bool) {
	ws := make([]int, len(refs))
	for i, r := range refs {
		ws[i] = *r.Weight
	}
	ws, lossy := kubeshared.ScaleWeights(ws)
	for i := range refs {
		refs[i].Weight = &ws[i]
	}
	return refs, lossy
}

// parseDuration parses a Gateway API duration (GEP-2257: "1h", "10s",
// "500ms", combinations).
func parseDuration(s string) (time.Duration, error) {
	if s == "" || strings.ContainsAny(s, ".-+ ") {
		return 0, fmt.Errorf("want a duration such as 10s or 1m30s, got %q", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 10s or 1m30s, got %q", s)
	}
	return d, nil
}

// filter applies one rule filter to rc; a non-empty result is why the
// rule must answer 500 instead (a filter that cannot be honoured is never
// skipped).
func (t *translator) filter(rs *routeState, rc *config.Route, f gwv1.HTTPRouteFilter, field string, addBackend func(config.Backend), onRef func(string, string)) string {
	switch f.Type {
	case gwv1.HTTPRouteFilterRequestHeaderModifier:
		if f.RequestHeaderModifier != nil {
			rc.RequestHeaders = headerOps(f.RequestHeaderModifier)
		}
	case gwv1.HTTPRouteFilterResponseHeaderModifier:
		if f.ResponseHeaderModifier != nil {
			rc.ResponseHeaders = headerOps(f.ResponseHeaderModifier)
		}
	case gwv1.HTTPRouteFilterRequestRedirect:
		rr := f.RequestRedirect
		if rr == nil {
			return field + ": requestRedirect is required"
		}
		rd := &config.Redirect{StatusCode: 302}
		if rr.Scheme != nil {
			rd.Scheme = *rr.Scheme
		}
		if rr.Hostname != nil {
			rd.Host = string(*rr.Hostname)
		}
		if rr.Port != nil {
			rd.Port = int(*rr.Port)
		}
		if rr.StatusCode != nil {
			rd.StatusCode = *rr.StatusCode
		}
		if p := rr.Path; p != nil {
			switch {
			case p.Type == gwv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
				rd.Path = *p.ReplaceFullPath
			case p.Type == gwv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil:
				rd.ReplacePrefix = *p.ReplacePrefixMatch
			default:
				return field + ".requestRedirect.path: want ReplaceFullPath or ReplacePrefixMatch with its value"
			}
		}
		rc.Redirect = rd
	case gwv1.HTTPRouteFilterURLRewrite:
		u := f.URLRewrite
		if u == nil {
			return field + ": urlRewrite is required"
		}
		rw := &config.Rewrite{}
		if u.Hostname != nil {
			rw.Host = string(*u.Hostname)
		}
		if p := u.Path; p != nil {
			switch {
			case p.Type == gwv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
				rw.Path = &config.PathRewrite{Type: config.RewriteReplaceFull, Value: *p.ReplaceFullPath}
			case p.Type == gwv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil:
				rw.Path = &config.PathRewrite{Type: config.RewriteReplacePrefix, Value: *p.ReplacePrefixMatch}
			default:
				return field + ".urlRewrite.path: want ReplaceFullPath or ReplacePrefixMatch with its value"
			}
		}
		rc.Rewrite = rw
	case gwv1.HTTPRouteFilterCORS:
		if f.CORS == nil {
			return field + ": cors is required"
		}
		rc.CORS = corsPolicy(f.CORS)
	case gwv1.HTTPRouteFilterRequestMirror:
		m := f.RequestMirror
		if m == nil {
			return field + ": requestMirror is required"
		}
		b, ok := t.backend(rs, m.BackendRef, field+".requestMirror.backendRef", onRef)
		if !ok {
			return "" // nothing mirrored; ResolvedRefs says why
		}
		addBackend(b)
		mc := &config.Mirror{Backend: b.Name}
		switch {
		case m.Percent != nil:
			p := float64(*m.Percent)
			mc.Percent = &p
		case m.Fraction != nil:
			den := int32(100)
			if m.Fraction.Denominator != nil {
				den = *m.Fraction.Denominator
			}
			if den <= 0 || m.Fraction.Numerator < 0 || m.Fraction.Numerator > den {
				return field + ".requestMirror.fraction: want 0 <= numerator <= denominator, denominator > 0"
			}
			p := float64(m.Fraction.Numerator) * 100 / float64(den)
			mc.Percent = &p
		}
		switch { // one mirror stays mirror; more become mirrors
		case rc.Mirror == nil && len(rc.Mirrors) == 0:
			rc.Mirror = mc
		case rc.Mirror != nil:
			rc.Mirrors, rc.Mirror = []config.Mirror{*rc.Mirror, *mc}, nil
		default:
			rc.Mirrors = append(rc.Mirrors, *mc)
		}
	default:
		return fmt.Sprintf("%s: filter type %s is not supported", field, f.Type)
	}
	return ""
}

func headerOps(h *gwv1.HTTPHeaderFilter) *config.HeaderOps {
	ops := &config.HeaderOps{Remove: slices.Clone(h.Remove)}
	for _, x := range h.Set {
		if ops.Set == nil {
			ops.Set = map[string]string{}
		}
		ops.Set[string(x.Name)] = x.Value
	}
	for _, x := range h.Add {
		if ops.Add == nil {
			ops.Add = map[string]string{}
		}
		ops.Add[string(x.Name)] = x.Value
	}
	return ops
}

// backend resolves a backendRef to a config backend; false (after
// reporting why through onRef) when it cannot be.
func (t *translator) backend(rs *routeState, ref gwv1.BackendObjectReference, field string, onRef func(string, string)) (config.Backend, bool) {
	r := rs.r
	if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Service" {
		g, k := "", "Service"
		if ref.Group != nil {
			g = string(*ref.Group)
		}
		if ref.Kind != nil {
			k = string(*ref.Kind)
		}
		onRef(string(gwv1.RouteReasonInvalidKind), fmt.Sprintf("%s: kind %s in group %q is not supported (core Services are)", field, k, g))
		return config.Backend{}, false
	}
	ns := r.Namespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	if ns != r.Namespace && !t.granted("HTTPRoute", r.Namespace, "", "Service", ns, string(ref.Name)) {
		onRef(string(gwv1.RouteReasonRefNotPermitted), fmt.Sprintf("%s: Service %s/%s is in another namespace and no ReferenceGrant there allows it", field, ns, ref.Name))
		return config.Backend{}, false
	}
	if ref.Port == nil {
		onRef(string(gwv1.RouteReasonUnsupportedValue), fmt.Sprintf("%s: port is required for a Service", field))
		return config.Backend{}, false
	}
	svc := t.in.Services(ns, string(ref.Name))
	if svc == nil {
		onRef(string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("%s: Service %s/%s not found", field, ns, ref.Name))
		return config.Backend{}, false
	}
	port := kubeshared.ServicePortKey(svc, int32(*ref.Port))
	if port == "" {
		onRef(string(gwv1.RouteReasonBackendNotFound), fmt.Sprintf("%s: Service %s/%s has no port %d usable by number (give the port a name)", field, ns, ref.Name, *ref.Port))
		return config.Backend{}, false
	}
	proto := ""
	for _, sp := range svc.Spec.Ports {
		if sp.Port == int32(*ref.Port) && sp.AppProtocol != nil && *sp.AppProtocol == "kubernetes.io/h2c" {
			proto = config.ProtocolH2C
		}
	}
	parts := []string{"gw", ns, string(ref.Name), port}
	if proto != "" {
		parts = append(parts, proto)
	}
	b := config.Backend{Name: kubeshared.ShortName(parts...), Kubernetes: &config.KubernetesService{Service: string(ref.Name), Namespace: ns, Port: port}, Protocol: proto}
	if !t.applyBackendTLS(rs, svc, int32(*ref.Port), &b) {
		return config.Backend{}, false // its BackendTLSPolicy cannot be honoured: never in clear text
	}
	return b, true
}

// match sets rc's match from m; a non-empty result says what is invalid.
func match(rc *config.Route, m gwv1.HTTPRouteMatch, field string) string {
	pm := &config.PathMatch{Type: config.PathPrefix, Value: "/"}
	if p := m.Path; p != nil {
		if p.Value != nil {
			pm.Value = *p.Value
		}
		typ := gwv1.PathMatchPathPrefix
		if p.Type != nil {
			typ = *p.Type
		}
		switch typ {
		case gwv1.PathMatchExact:
			pm.Type = config.PathExact
		case gwv1.PathMatchPathPrefix:
			pm.Type = config.PathPrefix
		case gwv1.PathMatchRegularExpression:
			pm.Type = config.PathRegex
		default:
			return fmt.Sprintf("%s.path.type: %s is not supported", field, typ)
		}
	}
	rc.Match.Path = pm
	if m.Method != nil {
		rc.Match.Methods = []string{string(*m.Method)}
		rc.Match.MethodsAs404 = true // a method is a match like any other: 404, not 405
	}
	seen := map[string]bool{}
	for k, h := range m.Headers {
		name := strings.ToLower(string(h.Name))
		if seen[name] {
			continue // the spec: the first match of a name wins
		}
		seen[name] = true
		vm := config.ValueMatch{Name: string(h.Name), Type: config.MatchExact, Value: h.Value}
		if h.Type != nil && *h.Type == gwv1.HeaderMatchRegularExpression {
			vm.Type = config.MatchRegex
		} else if h.Type != nil && *h.Type != gwv1.HeaderMatchExact {
			return fmt.Sprintf("%s.headers[%d].type: %s is not supported", field, k, *h.Type)
		}
		rc.Match.Headers = append(rc.Match.Headers, vm)
	}
	seen = map[string]bool{}
	for k, q := range m.QueryParams {
		if seen[string(q.Name)] {
			continue
		}
		seen[string(q.Name)] = true
		vm := config.ValueMatch{Name: string(q.Name), Type: config.MatchExact, Value: q.Value}
		if q.Type != nil && *q.Type == gwv1.QueryParamMatchRegularExpression {
			vm.Type = config.MatchRegex
		} else if q.Type != nil && *q.Type != gwv1.QueryParamMatchExact {
			return fmt.Sprintf("%s.queryParams[%d].type: %s is not supported", field, k, *q.Type)
		}
		rc.Match.Query = append(rc.Match.Query, vm)
	}
	return ""
}

func cloneRoute(r config.Route) config.Route {
	r.Backends = slices.Clone(r.Backends)
	if r.Redirect != nil {
		rd := *r.Redirect
		r.Redirect = &rd
	}
	if r.Rewrite != nil {
		rw := *r.Rewrite
		if rw.Path != nil {
			p := *rw.Path
			rw.Path = &p
		}
		r.Rewrite = &rw
	}
	if r.Mirror != nil {
		m := *r.Mirror
		r.Mirror = &m
	}
	r.Mirrors = slices.Clone(r.Mirrors)
	if r.Retries != nil {
		rt := *r.Retries
		r.Retries = &rt
	}
	return r
}

// check validates one HTTPRoute's routes and backends as the gateway will,
// alone, so that a value no request could match fails this route, not
// the reload of every other one.
func check(routes []config.Route, backends []config.Backend) string {
	if len(routes) == 0 {
		return ""
	}
	c := config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Backends: slices.Clone(backends)}
	for _, r := range routes {
		r = cloneRoute(r)
		if r.Match.Path != nil {
			pm := *r.Match.Path
			r.Match.Path = &pm
		}
		c.Routes = append(c.Routes, r)
	}
	c.SetDefaults()
	err := c.Validate()
	if err == nil {
		_, err = route.CompileWith(&c, route.Options{Policies: func(*config.Route) ([]route.Filter, error) { return nil, nil }})
	}
	if err != nil {
		return "the translated config is not valid: " + strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return ""
}

// SupportedFeatures are the conformance features (sigs.k8s.io/gateway-api
// pkg/features) this translation implements, sorted, as the controller
// writes them to status.supportedFeatures of our GatewayClasses (GEP-2162):
// the conformance suite reads them when it is not told which to test.
func SupportedFeatures(perGateway bool) []gwv1.SupportedFeature {
	names := []string{
		"Gateway", "HTTPRoute", "ReferenceGrant", "ListenerSet",
		"HTTPRouteQueryParamMatching", "HTTPRouteMethodMatching",
		"HTTPRouteResponseHeaderModification",
		"HTTPRoutePortRedirect", "HTTPRouteSchemeRedirect", "HTTPRoutePathRedirect",
		"HTTPRoute303RedirectStatusCode", "HTTPRoute307RedirectStatusCode", "HTTPRoute308RedirectStatusCode",
		"HTTPRouteHostRewrite", "HTTPRoutePathRewrite",
		"HTTPRouteRequestMirror", "HTTPRouteRequestPercentageMirror",
		"HTTPRouteBackendProtocolH2C", "HTTPRouteBackendProtocolWebSocket",
		"HTTPRouteRequestTimeout", "HTTPRouteNamedRouteRule",
		// Not HTTPRouteRetry: rules[].retry is an experimental-channel
		// field, which the standard-channel CRDs (what the cluster scripts
		// and the chart install) prune; it is translated when present
		// (retries.retryOn, TestServeRetry).
		"HTTPRouteCORS", "HTTPRouteBackendTimeout",
		"HTTPRouteBackendRequestHeaderModification", "HTTPRouteRequestMultipleMirrors",
		// translate_backendtls.go.
		"BackendTLSPolicy", "BackendTLSPolicySANValidation", "GatewayBackendClientCertificate",
	}
	names = append(names, frontendFeatures(perGateway)...)
	if perGateway {
		// Listeners on their own local ports: isolated by port and by
		// Gateway. In the shared mode, listeners of every port share the
		// gateway's one clear-text listener (docs/gateway-api.md).
		names = append(names, "GatewayPort8080", "GatewayHTTPListenerIsolation", "HTTPRouteParentRefPort", "HTTPRouteDestinationPortMatching",
			"GatewayAddressEmpty",
			// Its Service, in the Gateway's namespace, carries
			// spec.infrastructure (controller/services.go).
			"GatewayInfrastructure")
	}
	slices.Sort(names)
	out := make([]gwv1.SupportedFeature, len(names))
	for i, n := range names {
		out[i] = gwv1.SupportedFeature{Name: gwv1.FeatureName(n)}
	}
	return out
}
