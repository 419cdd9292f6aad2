package gatewayapi

// TLS to backends (GEP-1897, BackendTLSPolicy; GEP-3155, the Gateway's
// backend client certificate):
//   - A BackendTLSPolicy targets Services (sectionName: a port's name);
//     every backendRef to a targeted port becomes a backend of protocol
//     https (h2 for an h2c port) whose SNI is validation.hostname, whose
//     CAs are the ca.crt of the caCertificateRefs ConfigMaps (or the
//     system's with wellKnownCACertificates: System) and whose name check
//     is subjectAltNames when given, else the hostname.
//   - A policy naming the port beats one naming the whole Service; among
//     policies with the same target the oldest wins (then
//     namespace/name), the others are Conflicted.
//   - A policy that cannot be honoured (a CA reference unresolved or
//     malformed, an unknown wellKnownCACertificates) never lets requests
//     go in clear text or unverified: the backendRef is left out, so its
//     rule answers 500.
//   - A Gateway's spec.tls.backend.clientCertificateRef is the client
//     certificate of every TLS backend of its routes; its ResolvedRefs
//     condition says whether the Secret resolved.
//
// Status: per policy, one ancestor status per Gateway of ours whose
// routes use a Service it targets, with Accepted and ResolvedRefs.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// maxAncestors is the CRD's cap on status.ancestors.
const maxAncestors = 16

// policyTarget is a Service, or one port of it (section = the port's
// name).
type policyTarget struct {
	ns, name, section string
}

// svcKey is a Service.
type svcKey struct{ ns, name string }

// policyState is one BackendTLSPolicy as translated.
type policyState struct {
	p *gwv1.BackendTLSPolicy
	// conflicted: an older policy holds one of its targets.
	conflicted bool
	conflict   string
	// accepted/resolved with their reasons; usable: both, so the policy
	// may be applied.
	accepted, resolved bool
	aReason, aMsg      string
	rReason, rMsg      string
	tls                config.BackendTLS
	// problems are reported once the policy is known to be ours (it has
	// an ancestor of ours): another implementation's policies are not
	// our business.
	problems []Problem
}

func (ps *policyState) problem(sev Severity, format string, args ...any) {
	ps.problems = append(ps.problems, Problem{Kind: "BackendTLSPolicy", Namespace: ps.p.Namespace, Name: ps.p.Name, Severity: sev, Message: fmt.Sprintf(format, args...)})
}

// backendTLSState is the translation's view of the policies.
type backendTLSState struct {
	policies []*policyState
	claims   map[policyTarget]*policyState
	// used is, by Service, the gateways (namespace/name) of the routes
	// using each of its ports (by port name, "" for an unnamed port).
	used map[svcKey]map[string]map[string]bool
}

// clientCert is a Gateway's backend client certificate.
type clientCert struct {
	ns, name  string
	cert, key []byte
}

// indexBackendTLS resolves every policy and decides conflicts: called
// once the Gateways are translated, before the routes.
func (t *translator) indexBackendTLS() {
	st := &backendTLSState{claims: map[policyTarget]*policyState{}, used: map[svcKey]map[string]map[string]bool{}}
	t.btls = st
	for _, p := range sortedByAge(t.in.BackendTLSPolicies) {
		ps := t.resolvePolicy(p)
		st.policies = append(st.policies, ps)
		for _, tr := range p.Spec.TargetRefs {
			if tr.Group != "" || tr.Kind != "Service" {
				continue // nothing of ours to apply it to; no ancestor either
			}
			k := policyTarget{ns: p.Namespace, name: string(tr.Name)}
			if tr.SectionName != nil {
				k.section = string(*tr.SectionName)
			}
			if old := st.claims[k]; old != nil && old != ps {
				if !ps.conflicted {
					ps.conflicted = true
					ps.conflict = fmt.Sprintf("BackendTLSPolicy %s/%s, older, already targets %s", old.p.Namespace, old.p.Name, targetString(k))
				}
				continue
			}
			st.claims[k] = ps
		}
		if ps.conflicted {
			// A conflicted policy applies nowhere: none of its targets
			// gets half of it.
			for k, v := range st.claims {
				if v == ps {
					delete(st.claims, k)
				}
			}
			ps.problem(Warning, "not applied: %s", ps.conflict)
		}
	}
}

func targetString(k policyTarget) string {
	s := "Service " + k.name
	if k.section != "" {
		s += " port " + k.section
	}
	return s
}

// resolvePolicy checks a policy's validation block and reads its CAs.
func (t *translator) resolvePolicy(p *gwv1.BackendTLSPolicy) *policyState {
	ps := &policyState{p: p, accepted: true, resolved: true,
		aReason: string(gwv1.PolicyReasonAccepted), aMsg: "Accepted",
		rReason: string(gwv1.BackendTLSPolicyReasonResolvedRefs), rMsg: "ResolvedRefs"}
	v := p.Spec.Validation
	ps.tls.ServerName = string(v.Hostname)
	fail := func(reason, msg string) {
		if ps.accepted {
			ps.accepted, ps.aReason, ps.aMsg = false, reason, msg
		}
		ps.problem(Error, "%s", msg)
	}
	unresolved := func(reason, msg string) {
		if ps.resolved {
			ps.resolved, ps.rReason, ps.rMsg = false, reason, msg
		}
		ps.problem(Error, "%s", msg)
	}
	for i, san := range v.SubjectAltNames {
		f := fmt.Sprintf("spec.validation.subjectAltNames[%d]", i)
		switch {
		case san.Type == gwv1.HostnameSubjectAltNameType && san.Hostname != "":
			ps.tls.SubjectAltNames = append(ps.tls.SubjectAltNames, config.SubjectAltName{Hostname: string(san.Hostname)})
		case san.Type == gwv1.URISubjectAltNameType && san.URI != "":
			ps.tls.SubjectAltNames = append(ps.tls.SubjectAltNames, config.SubjectAltName{URI: string(san.URI)})
		default:
			fail(string(gwv1.PolicyReasonInvalid), fmt.Sprintf("%s: want type Hostname with hostname or URI with uri", f))
		}
	}
	if v.Hostname == "" {
		fail(string(gwv1.PolicyReasonInvalid), "spec.validation.hostname is required")
	} else if err := probeTLS(ps.tls); err != nil {
		// What the API server's validation lets through but the gateway
		// cannot use (a wildcard hostname): the policy, not the routes
		// of its Services, is refused.
		fail(string(gwv1.PolicyReasonInvalid), "spec.validation: "+err.Error())
	}
	switch {
	case len(v.CACertificateRefs) > 0 && v.WellKnownCACertificates != nil && *v.WellKnownCACertificates != "":
		fail(string(gwv1.PolicyReasonInvalid), "spec.validation: caCertificateRefs and wellKnownCACertificates are exclusive")
	case v.WellKnownCACertificates != nil && *v.WellKnownCACertificates != "":
		if *v.WellKnownCACertificates != gwv1.WellKnownCACertificatesSystem {
			fail(string(gwv1.PolicyReasonInvalid), fmt.Sprintf("spec.validation.wellKnownCACertificates: %q is not supported (System is)", *v.WellKnownCACertificates))
		}
		// System: the gateway's system roots, the config's default.
	case len(v.CACertificateRefs) == 0:
		fail(string(gwv1.PolicyReasonInvalid), "spec.validation: caCertificateRefs or wellKnownCACertificates is required")
	default:
		var bundle bytes.Buffer
		valid := 0
		for i, ref := range v.CACertificateRefs {
			f := fmt.Sprintf("spec.validation.caCertificateRefs[%d]", i)
			if ref.Group != "" || ref.Kind != "ConfigMap" {
				unresolved(string(gwv1.BackendTLSPolicyReasonInvalidKind), fmt.Sprintf("%s: kind %s in group %q is not supported (core ConfigMaps are)", f, ref.Kind, ref.Group))
				continue
			}
			cm := t.in.ConfigMaps(p.Namespace, string(ref.Name))
			if cm == nil {
				unresolved(string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Sprintf("%s: ConfigMap %s/%s not found", f, p.Namespace, ref.Name))
				continue
			}
			ca, err := configMapCA(cm)
			if errors.Is(err, errNoCAKey) {
				unresolved(string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Sprintf("%s: ConfigMap %s/%s has no key %s", f, p.Namespace, ref.Name, CACertKey))
				continue
			}
			if err != nil {
				unresolved(string(gwv1.BackendTLSPolicyReasonInvalidCACertificateRef), fmt.Sprintf("%s: ConfigMap %s/%s key %s: %v", f, p.Namespace, ref.Name, CACertKey, err))
				continue
			}
			valid++
			bundle.Write(ca)
		}
		if valid == 0 { // the problem is reported above
			ps.accepted, ps.aReason, ps.aMsg = false, string(gwv1.BackendTLSPolicyReasonNoValidCACertificate), "no valid CA certificate: "+ps.rMsg
		}
		ps.tls.CAPEM = bundle.Bytes()
	}
	return ps
}

// probeTLS validates bt's server name and SANs as the gateway's config
// will, the messages naming the config fields (serverName: the policy's
// hostname).
func probeTLS(bt config.BackendTLS) error {
	c := config.Config{APIVersion: config.APIVersion, Kind: config.Kind,
		Backends: []config.Backend{{Name: "probe", Addresses: []string{"probe.invalid:443"}, Protocol: config.ProtocolHTTPS, TLS: &bt}},
		Routes:   []config.Route{{Name: "probe", Backends: []config.BackendRef{{Name: "probe"}}}}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return errors.New(strings.ReplaceAll(strings.ReplaceAll(err.Error(), "backends[0].tls.", ""), "\n", "; "))
	}
	return nil
}

// applyBackendTLS gives b, the backend of Service svc's port number port,
// the TLS of the policy that targets it, with the client certificate of
// the route's Gateway; false when a policy targets it but cannot be
// honoured (the backendRef is then left out: no request goes unverified).
func (t *translator) applyBackendTLS(rs *routeState, svc *corev1.Service, port int32, b *config.Backend) bool {
	st := t.btls
	if st == nil {
		return true
	}
	portName := ""
	for _, sp := range svc.Spec.Ports {
		if sp.Port == port {
			portName = sp.Name
		}
	}
	sk := svcKey{svc.Namespace, svc.Name}
	gws := t.routeGateways(rs.r)
	if st.used[sk] == nil {
		st.used[sk] = map[string]map[string]bool{}
	}
	if st.used[sk][portName] == nil {
		st.used[sk][portName] = map[string]bool{}
	}
	for _, gs := range gws {
		st.used[sk][portName][gs.g.Namespace+"/"+gs.g.Name] = true
	}
	// The port's policy, else the whole Service's.
	ps := st.claims[policyTarget{ns: svc.Namespace, name: svc.Name, section: portName}]
	if ps == nil {
		ps = st.claims[policyTarget{ns: svc.Namespace, name: svc.Name}]
	}
	if ps == nil {
		return true
	}
	if !ps.accepted || !ps.resolved {
		why := ps.rMsg
		if !ps.accepted {
			why = ps.aMsg
		}
		t.problem("HTTPRoute", rs.r, Warning, "Service %s/%s: BackendTLSPolicy %s/%s cannot be honoured, so no request goes to it (the rule answers 500 without other backends): %s",
			svc.Namespace, svc.Name, ps.p.Namespace, ps.p.Name, why)
		return false
	}
	bt := ps.tls
	bt.SubjectAltNames = slices.Clone(bt.SubjectAltNames)
	// The client certificate of the route's Gateways; one only, the
	// first parentRef's, when they differ.
	var cc *clientCert
	for _, gs := range gws {
		if gs.clientCert == nil {
			continue
		}
		if cc == nil {
			cc = gs.clientCert
		} else if cc.ns != gs.clientCert.ns || cc.name != gs.clientCert.name {
			t.problem("HTTPRoute", rs.r, Warning, "Service %s/%s: the route's Gateways have different backend client certificates; Secret %s/%s is used", svc.Namespace, svc.Name, cc.ns, cc.name)
			break
		}
	}
	// The backend keeps its name (the admin API's weights find it by
	// it, package weights), but for a client certificate, which differs
	// by Gateway.
	if cc != nil {
		bt.CertPEM, bt.KeyPEM = cc.cert, cc.key
		b.Name = kubeshared.ShortName(b.Name, "cert", cc.ns, cc.name)
	}
	if b.Protocol == config.ProtocolH2C {
		b.Protocol = config.ProtocolH2 // HTTP/2, now over TLS
	} else {
		b.Protocol = config.ProtocolHTTPS
	}
	b.TLS = &bt
	return true
}

// routeGateways are the Gateways of ours route r names as parents,
// directly or through one of their ListenerSets (t.parent), in
// parentRefs order.
func (t *translator) routeGateways(r *gwv1.HTTPRoute) []*gatewayState {
	var out []*gatewayState
	for _, ref := range r.Spec.ParentRefs {
		ns := r.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		if gs, _ := t.parent(ref, ns); gs != nil && !slices.Contains(out, gs) {
			out = append(out, gs)
		}
	}
	return out
}

// backendTLSStatus computes every policy's ancestor statuses: called once
// the routes are translated.
func (t *translator) backendTLSStatus() {
	st := t.btls
	for _, ps := range st.policies {
		p := ps.p
		anc := map[string]bool{}
		for _, tr := range p.Spec.TargetRefs {
			if tr.Group != "" || tr.Kind != "Service" {
				continue
			}
			for port, gws := range st.used[svcKey{p.Namespace, string(tr.Name)}] {
				if tr.SectionName == nil || string(*tr.SectionName) == port {
					maps.Copy(anc, gws)
				}
			}
		}
		if len(anc) == 0 {
			continue
		}
		t.res.Problems = append(t.res.Problems, ps.problems...)
		accepted := cond(string(gwv1.PolicyConditionAccepted), ps.accepted, ps.aReason, ps.aMsg, p.Generation)
		if ps.conflicted {
			accepted = cond(string(gwv1.PolicyConditionAccepted), false, string(gwv1.PolicyReasonConflicted), ps.conflict, p.Generation)
		}
		resolved := cond(string(gwv1.BackendTLSPolicyConditionResolvedRefs), ps.resolved, ps.rReason, ps.rMsg, p.Generation)
		keys := slices.Sorted(maps.Keys(anc))
		if len(keys) > maxAncestors {
			t.problem("BackendTLSPolicy", p, Warning, "used through %d Gateways; status lists the first %d", len(keys), maxAncestors)
			keys = keys[:maxAncestors]
		}
		for _, k := range keys {
			gs := t.gateways[k]
			ns := gwv1.Namespace(gs.g.Namespace)
			g, kind := gwv1.Group(Group), gwv1.Kind("Gateway")
			t.res.BackendTLSPolicies[p.Namespace+"/"+p.Name] = append(t.res.BackendTLSPolicies[p.Namespace+"/"+p.Name], gwv1.PolicyAncestorStatus{
				AncestorRef:    gwv1.ParentReference{Group: &g, Kind: &kind, Namespace: &ns, Name: gwv1.ObjectName(gs.g.Name)},
				ControllerName: gwv1.GatewayController(t.opts.ControllerName),
				Conditions:     []metav1.Condition{accepted, resolved},
			})
		}
	}
}

// gatewayBackendTLS resolves a Gateway's spec.tls.backend: its client
// certificate and the Gateway's ResolvedRefs condition (only set when a
// clientCertificateRef is given). An unresolved reference leaves the
// Gateway accepted and its TLS backends without a client certificate.
func (t *translator) gatewayBackendTLS(gs *gatewayState) {
	g := gs.g
	if g.Spec.TLS == nil || g.Spec.TLS.Backend == nil || g.Spec.TLS.Backend.ClientCertificateRef == nil {
		return
	}
	ref := g.Spec.TLS.Backend.ClientCertificateRef
	const f = "spec.tls.backend.clientCertificateRef"
	ok, reason, msg := func() (bool, string, string) {
		if ref.Group != nil && *ref.Group != "" || ref.Kind != nil && *ref.Kind != "Secret" {
			k := "Secret"
			if ref.Kind != nil {
				k = string(*ref.Kind)
			}
			grp := ""
			if ref.Group != nil {
				grp = string(*ref.Group)
			}
			return false, string(gwv1.GatewayReasonInvalidClientCertificateRef), fmt.Sprintf("%s: kind %s in group %q is not supported (core Secrets are)", f, k, grp)
		}
		ns := g.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		if ns != g.Namespace && !t.granted("Gateway", g.Namespace, "", "Secret", ns, string(ref.Name)) {
			return false, string(gwv1.GatewayReasonRefNotPermitted), fmt.Sprintf("%s: Secret %s/%s is in another namespace and no ReferenceGrant there allows it", f, ns, ref.Name)
		}
		s := t.in.Secrets(ns, string(ref.Name))
		if s == nil {
			return false, string(gwv1.GatewayReasonInvalidClientCertificateRef), fmt.Sprintf("%s: Secret %s/%s not found", f, ns, ref.Name)
		}
		crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(crt, key); err != nil {
			return false, string(gwv1.GatewayReasonInvalidClientCertificateRef), fmt.Sprintf("%s: Secret %s/%s has no valid tls.crt and tls.key: %v", f, ns, ref.Name, err)
		}
		gs.clientCert = &clientCert{ns: ns, name: string(ref.Name), cert: crt, key: key}
		return true, string(gwv1.GatewayReasonResolvedRefs), "ResolvedRefs"
	}()
	if !ok {
		t.problem("Gateway", g, Warning, "%s; TLS backends get no client certificate", msg)
	}
	gs.conds = append(gs.conds, cond(string(gwv1.GatewayConditionResolvedRefs), ok, reason, msg, g.Generation))
}
