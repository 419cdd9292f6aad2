package gatewayapi

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ListenerSets (gateway.networking.k8s.io/v1, GEP-1713) add listeners to
// a Gateway that allows them (spec.allowedListeners, None by default).
// The Gateway is served as if it had the merged list of its own
// listeners followed by those of its accepted ListenerSets, oldest first,
// then by namespace/name, each in its spec order. A listener that
// conflicts with one earlier in that list (same port, another protocol;
// or same port, protocol and hostname) is not accepted: the earlier one
// keeps the port or hostname, so the Gateway's own listeners always win.
//
// Routes reach a ListenerSet's listeners only through a parentRef of kind
// ListenerSet (sectionName: one of its listener names); a parentRef to
// the Gateway reaches the Gateway's own listeners only.

// listenerSetState is one ListenerSet whose parent is one of our
// Gateways.
type listenerSetState struct {
	s  *gwv1.ListenerSet
	gs *gatewayState
	// accepted: attached to the Gateway with at least one valid listener;
	// otherwise reason and msg say why not.
	accepted    bool
	reason, msg string
	listeners   []*listenerState
}

// namespace is the namespace allowedRoutes' Same means for ls: its
// ListenerSet's for a ListenerSet's listener, the Gateway's otherwise.
func (ls *listenerState) namespace(g *gwv1.Gateway) string {
	if ls.owner != nil {
		return ls.owner.s.Namespace
	}
	return g.Namespace
}

// nameParts name ls within its Gateway: listener names are unique within
// a Gateway and within a ListenerSet, not across them.
func (ls *listenerState) nameParts() []string {
	if ls.owner != nil {
		return []string{"ls", ls.owner.s.Namespace, ls.owner.s.Name, string(ls.l.Name)}
	}
	return []string{string(ls.l.Name)}
}

// parent resolves a route's parentRef (its namespace defaulted to ns) to
// one of our Gateways and, for a parentRef of kind ListenerSet, the
// ListenerSet; a nil Gateway when the parent is not ours.
func (t *translator) parent(ref gwv1.ParentReference, ns string) (*gatewayState, *listenerSetState) {
	if ref.Group != nil && string(*ref.Group) != Group {
		return nil, nil
	}
	key := ns + "/" + string(ref.Name)
	switch {
	case ref.Kind == nil || *ref.Kind == "Gateway":
		return t.gateways[key], nil
	case *ref.Kind == "ListenerSet":
		if lss := t.listenerSets[key]; lss != nil {
			return lss.gs, lss
		}
	}
	return nil, nil
}

// mergeListenerSets attaches every ListenerSet whose parent is one of our
// Gateways, in precedence order, and appends the listeners of those
// accepted to their Gateway's.
func (t *translator) mergeListenerSets() {
	for _, s := range sortedByAge(t.in.ListenerSets) {
		ref := s.Spec.ParentRef
		if ref.Group != nil && string(*ref.Group) != Group || ref.Kind != nil && *ref.Kind != "Gateway" {
			continue // not a Gateway: nobody's we know
		}
		ns := s.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		gs := t.gateways[ns+"/"+string(ref.Name)]
		if gs == nil {
			continue // not ours: another controller's status to write
		}
		lss := &listenerSetState{s: s, gs: gs}
		t.listenerSets[s.Namespace+"/"+s.Name] = lss
		if ok, msg := t.allowsListenerSet(gs.g, s); !ok {
			lss.reason, lss.msg = string(gwv1.ListenerSetReasonNotAllowed), msg
		} else if !gs.accepted {
			lss.reason, lss.msg = string(gwv1.ListenerSetReasonParentNotAccepted), "the parent Gateway is not accepted"
		} else {
			t.listenerSetListeners(lss)
		}
		if lss.reason != "" {
			t.problem("ListenerSet", s, Error, "%s", lss.msg)
		}
	}
}

// allowsListenerSet applies Gateway g's spec.allowedListeners to s; false
// with the reason why not.
func (t *translator) allowsListenerSet(g *gwv1.Gateway, s *gwv1.ListenerSet) (bool, string) {
	from := gwv1.NamespacesFromNone
	var sel *metav1.LabelSelector
	if a := g.Spec.AllowedListeners; a != nil && a.Namespaces != nil {
		if a.Namespaces.From != nil {
			from = *a.Namespaces.From
		}
		sel = a.Namespaces.Selector
	}
	const field = "the parent Gateway's spec.allowedListeners.namespaces"
	switch from {
	case gwv1.NamespacesFromAll:
		return true, ""
	case gwv1.NamespacesFromSame:
		if s.Namespace == g.Namespace {
			return true, ""
		}
		return false, field + " allows ListenerSets of its own namespace only (from: Same)"
	case gwv1.NamespacesFromSelector:
		if sel == nil {
			return false, field + ".selector is required with from: Selector"
		}
		ls, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return false, fmt.Sprintf("%s.selector is not valid: %v", field, err)
		}
		n := t.in.Namespaces(s.Namespace)
		if n == nil || !ls.Matches(labels.Set(n.Labels)) {
			return false, fmt.Sprintf("%s.selector does not select namespace %s", field, s.Namespace)
		}
		return true, ""
	case gwv1.NamespacesFromNone:
		return false, field + " allows no ListenerSet (from: None, the default)"
	}
	return false, fmt.Sprintf("%s.from: %q is not one of All, Same, Selector, None", field, from)
}

// listenerSetListeners translates the listeners of an allowed
// ListenerSet; when one is valid, the ListenerSet is accepted and its
// listeners join its Gateway's.
func (t *translator) listenerSetListeners(lss *listenerSetState) {
	s, gs := lss.s, lss.gs
	gen := s.Generation
	var ports map[int32]int32
	if t.opts.PerGateway {
		ports = t.in.Ports(gs.g.Namespace, gs.g.Name)
	}
	valid := 0
	for i, e := range s.Spec.Listeners {
		l := gwv1.Listener(e)
		ls := &listenerState{l: l, owner: lss}
		field := fmt.Sprintf("spec.listeners[%d] (%s)", i, l.Name)
		accepted, aReason, aMsg := true, string(gwv1.ListenerEntryReasonAccepted), "Accepted"
		resolved, rReason, rMsg := true, string(gwv1.ListenerEntryReasonResolvedRefs), "ResolvedRefs"
		conflicted, cReason, cMsg := false, string(gwv1.ListenerReasonNoConflicts), "NoConflicts"
		if msg := badName(lss.listeners, l.Name); msg != "" {
			// Routes name listeners by name: an ambiguous one is refused.
			accepted, aReason, aMsg = false, string(gwv1.ListenerReasonUnsupportedValue), msg
		} else if reason, msg := conflict(gs.listeners, lss.listeners, l); reason != "" {
			// A conflicted listener is not accepted: the earlier one keeps
			// its port or hostname.
			conflicted, cReason, cMsg = true, reason, msg
			accepted, aReason, aMsg = false, reason, msg
		} else if msg := badHostname(l.Hostname); msg != "" {
			accepted, aReason, aMsg = false, string(gwv1.ListenerReasonUnsupportedValue), msg
		} else if l.Protocol != gwv1.HTTPProtocolType && l.Protocol != gwv1.HTTPSProtocolType {
			accepted, aReason, aMsg = false, string(gwv1.ListenerEntryReasonUnsupportedProtocol), fmt.Sprintf("protocol %s is not supported (HTTP and HTTPS are)", l.Protocol)
		} else if l.Protocol == gwv1.HTTPSProtocolType && t.opts.NoHTTPS {
			accepted, aReason, aMsg = false, string(gwv1.ListenerEntryReasonUnsupportedProtocol), "HTTPS needs the gateway's TLS listener (flotilla gateway --tls-addr)"
		}
		var bad []string
		ls.kinds, bad = routeKinds(l, accepted)
		if len(bad) > 0 {
			resolved, rReason, rMsg = false, string(gwv1.ListenerEntryReasonInvalidRouteKinds), fmt.Sprintf("route kinds %s are not supported (HTTPRoute is)", strings.Join(bad, ", "))
		}
		// Certificates are loaded for listeners that are otherwise valid
		// only, so that a ListenerSet that is not accepted loads none.
		if accepted && resolved && l.Protocol == gwv1.HTTPSProtocolType {
			if ok, reason, msg := t.listenerTLS("ListenerSet", s.Namespace, l, field); !ok {
				resolved, rReason, rMsg = false, reason, msg
			}
		}
		// The Gateway's spec.tls.frontend covers its ListenerSets' HTTPS
		// listeners too: never served without the validation it asks for.
		if accepted && l.Protocol == gwv1.HTTPSProtocolType {
			if acc, res := t.frontendTLS(gs, l); acc != nil || res != nil {
				if acc != nil {
					accepted, aReason, aMsg = false, acc.reason, acc.msg
				}
				if res != nil && resolved {
					resolved, rReason, rMsg = false, res.reason, res.msg
				}
			}
		}
		ls.programmed = accepted && resolved
		ls.valid = accepted && len(ls.kinds) > 0
		pReason, pMsg := string(gwv1.ListenerEntryReasonProgrammed), "Programmed"
		switch {
		case conflicted:
			pReason, pMsg = cReason, "not programmed: "+cMsg
		case !ls.programmed:
			pReason, pMsg = string(gwv1.ListenerEntryReasonInvalid), "not programmed: see the other conditions"
		case t.opts.PerGateway:
			if ls.local = ports[int32(l.Port)]; ls.local == 0 {
				ls.programmed, pReason, pMsg = false, string(gwv1.ListenerEntryReasonPending), "waiting for the Gateway's Service to map this port"
			}
		}
		if accepted && resolved {
			valid++
		}
		ls.conds = []metav1.Condition{
			cond(string(gwv1.ListenerEntryConditionAccepted), accepted, aReason, aMsg, gen),
			cond(string(gwv1.ListenerEntryConditionConflicted), conflicted, cReason, cMsg, gen),
			cond(string(gwv1.ListenerEntryConditionResolvedRefs), resolved, rReason, rMsg, gen),
			cond(string(gwv1.ListenerEntryConditionProgrammed), ls.programmed, pReason, pMsg, gen),
		}
		var said []string // a conflict is both Accepted=False and Conflicted=True: one problem
		for _, c := range ls.conds[:3] {
			bad := c.Status == metav1.ConditionFalse
			if c.Type == string(gwv1.ListenerEntryConditionConflicted) {
				bad = c.Status == metav1.ConditionTrue
			}
			if bad && !slices.Contains(said, c.Message) {
				said = append(said, c.Message)
				t.problem("ListenerSet", s, Warning, "%s: %s", field, c.Message)
			}
		}
		lss.listeners = append(lss.listeners, ls)
	}
	if valid == 0 {
		lss.reason, lss.msg = string(gwv1.ListenerSetReasonListenersNotValid), "no listener is valid: see their conditions"
		for _, ls := range lss.listeners {
			ls.valid, ls.programmed = false, false
		}
		return
	}
	lss.accepted = true
	gs.listeners = append(gs.listeners, lss.listeners...)
	key := gs.g.Namespace + "/" + gs.g.Name
	for _, ls := range lss.listeners {
		if !meta.IsStatusConditionTrue(ls.conds, string(gwv1.ListenerEntryConditionAccepted)) {
			continue
		}
		if t.res.ListenerSetPorts == nil {
			t.res.ListenerSetPorts = map[string][]int32{}
		}
		if p := int32(ls.l.Port); !slices.Contains(t.res.ListenerSetPorts[key], p) {
			t.res.ListenerSetPorts[key] = append(t.res.ListenerSetPorts[key], p)
			slices.Sort(t.res.ListenerSetPorts[key])
		}
		if ls.programmed && ls.local != 0 && !slices.ContainsFunc(t.res.Listeners, func(x Listener) bool { return x.Port == ls.local }) {
			t.res.Listeners = append(t.res.Listeners, Listener{Port: ls.local, TLS: ls.l.Protocol == gwv1.HTTPSProtocolType})
		}
	}
}

// conflict returns why l conflicts with a listener that holds its port
// before it: one of the merged list so far (the Gateway's, earlier
// ListenerSets') or an earlier one of its own ListenerSet (own). Only
// accepted listeners hold a port. Messages name no other object: a
// ListenerSet's author may not be allowed to read its siblings.
func conflict(merged, own []*listenerState, l gwv1.Listener) (reason, msg string) {
	for _, o := range slices.Concat(merged, own) {
		if o.l.Port != l.Port || !meta.IsStatusConditionTrue(o.conds, string(gwv1.ListenerConditionAccepted)) {
			continue
		}
		whose := "a listener of the Gateway"
		if o.owner != nil {
			whose = "a listener of an earlier ListenerSet"
			if len(own) > 0 && o.owner == own[0].owner {
				whose = "an earlier listener of this ListenerSet"
			}
		}
		if o.l.Protocol != l.Protocol {
			return string(gwv1.ListenerEntryReasonProtocolConflict), fmt.Sprintf("port %d is taken by %s with protocol %s", l.Port, whose, o.l.Protocol)
		}
		if hostname(o.l.Hostname) == hostname(l.Hostname) {
			h := hostname(l.Hostname)
			if h == "" {
				h = "(none: any host)"
			}
			return string(gwv1.ListenerEntryReasonHostnameConflict), fmt.Sprintf("hostname %s on port %d is taken by %s", h, l.Port, whose)
		}
	}
	return "", ""
}

// routeKinds are the route kinds l supports, and those it names that are
// not supported. An unaccepted listener with no kinds named supports none.
func routeKinds(l gwv1.Listener, accepted bool) (kinds []gwv1.RouteGroupKind, bad []string) {
	kinds = []gwv1.RouteGroupKind{}
	if l.AllowedRoutes == nil || len(l.AllowedRoutes.Kinds) == 0 {
		if accepted {
			kinds = append(kinds, httpRouteKind())
		}
		return kinds, nil
	}
	for _, k := range l.AllowedRoutes.Kinds {
		if (k.Group == nil || string(*k.Group) == Group) && k.Kind == "HTTPRoute" {
			kinds = append(kinds, httpRouteKind())
		} else {
			bad = append(bad, string(k.Kind))
		}
	}
	return kinds, bad
}

// listenerSetStatus writes the status of every ListenerSet whose parent
// is ours, once routes have attached, and the Gateways' count of attached
// ListenerSets.
func (t *translator) listenerSetStatus() {
	count := map[*gatewayState]int32{}
	for key, lss := range t.listenerSets {
		gen := lss.s.Generation
		var st gwv1.ListenerSetStatus
		someInvalid, programmed, pending := false, false, false
		for _, ls := range lss.listeners {
			st.Listeners = append(st.Listeners, gwv1.ListenerEntryStatus{Name: ls.l.Name, SupportedKinds: ls.kinds, AttachedRoutes: ls.attached, Conditions: ls.conds})
			switch {
			case ls.programmed:
				programmed = true
			case meta.IsStatusConditionTrue(ls.conds, string(gwv1.ListenerEntryConditionAccepted)) && meta.IsStatusConditionTrue(ls.conds, string(gwv1.ListenerEntryConditionResolvedRefs)):
				pending = true
			default:
				someInvalid = true
			}
		}
		accepted, programmedC := string(gwv1.ListenerSetConditionAccepted), string(gwv1.ListenerSetConditionProgrammed)
		switch {
		case !lss.accepted:
			st.Conditions = []metav1.Condition{cond(accepted, false, lss.reason, lss.msg, gen), cond(programmedC, false, lss.reason, lss.msg, gen)}
		default:
			count[lss.gs]++
			a := cond(accepted, true, string(gwv1.ListenerSetReasonAccepted), "Accepted", gen)
			if someInvalid {
				a = cond(accepted, true, string(gwv1.ListenerSetReasonListenersNotValid), "some listeners are not valid: see their conditions", gen)
			}
			p := cond(programmedC, true, string(gwv1.ListenerSetReasonProgrammed), "Programmed", gen)
			if !programmed && pending {
				p = cond(programmedC, false, string(gwv1.ListenerSetReasonPending), "waiting for the Gateway's Service to map the listeners' ports", gen)
			}
			st.Conditions = []metav1.Condition{a, p}
		}
		if t.res.ListenerSets == nil {
			t.res.ListenerSets = map[string]gwv1.ListenerSetStatus{}
		}
		t.res.ListenerSets[key] = st
	}
	for key, gs := range t.gateways {
		a := gs.g.Spec.AllowedListeners
		allows := a != nil && a.Namespaces != nil && a.Namespaces.From != nil && *a.Namespaces.From != gwv1.NamespacesFromNone
		if n := count[gs]; n > 0 || allows {
			st := t.res.Gateways[key]
			st.AttachedListenerSets = &n
			t.res.Gateways[key] = st
		}
	}
}

// badHostname says why a listener's hostname is not one Gateway API
// allows (a DNS-1123 subdomain, optionally "*." first; not an IP), the
// API server's validation aside; "" when it is fine or absent.
func badHostname(h *gwv1.Hostname) string {
	if h == nil || *h == "" {
		return ""
	}
	s := string(*h)
	errs := validation.IsDNS1123Subdomain(s)
	if strings.HasPrefix(s, "*.") {
		errs = validation.IsWildcardDNS1123Subdomain(s)
	}
	for _, label := range strings.Split(strings.TrimPrefix(s, "*."), ".") {
		if len(label) > validation.DNS1123LabelMaxLength {
			errs = append(errs, fmt.Sprintf("label %q is longer than %d characters", label, validation.DNS1123LabelMaxLength))
		}
	}
	if len(errs) > 0 {
		return fmt.Sprintf("hostname %q: %s", s, strings.Join(errs, "; "))
	}
	return ""
}

// badName says why name cannot name a listener of a ListenerSet whose
// earlier listeners are own (the API server's validation aside); "" when
// it can.
func badName(own []*listenerState, name gwv1.SectionName) string {
	if name == "" {
		return "name is required"
	}
	if slices.ContainsFunc(own, func(o *listenerState) bool { return o.l.Name == name }) {
		return fmt.Sprintf("name %q is used by an earlier listener of this ListenerSet", name)
	}
	return ""
}
