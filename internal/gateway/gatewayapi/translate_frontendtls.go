package gatewayapi

// Gateway spec.tls.frontend (client certificate validation) and the HTTPS
// listener host names the gateway needs to answer misdirected requests
// 421: both become the config's tls.ports, by local port.
//
// Client certificates are asked for per local port, in the TLS handshake,
// before any Host is known: in the per-Gateway mode (--gateway-port-range)
// every listener port of a Gateway is a local port of its own, so its
// policy is exactly the Gateway's for that port. In the shared mode every
// Gateway's HTTPS listeners share the --tls-addr port: a Gateway-scoped
// policy cannot be applied there without applying it to every other
// Gateway, so those listeners are not accepted (UnsupportedValue) rather
// than served without the validation asked for.

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// CACertKey is the ConfigMap key holding a frontend CA bundle (PEM).
const CACertKey = "ca.crt"

// frontendState is one Gateway's spec.tls.frontend as translated.
type frontendState struct {
	// byPort is the validation of the HTTPS listeners of each listener
	// port, computed once per port.
	byPort map[int32]*portValidation
	// insecure: a validation in effect allows insecure fallback.
	insecure bool
}

// portValidation is the client certificate validation of one listener
// port: none (nil ca), or a CA bundle and a mode; acc and res are why
// its listeners are not accepted or not resolved.
type portValidation struct {
	ca       []byte
	mode     string // config.ClientAuth mode
	acc, res *condFix
}

// condFix replaces a listener condition's status with False, this reason
// and message.
type condFix struct{ reason, msg string }

// conditions are the Gateway conditions spec.tls.frontend adds.
func (f frontendState) conditions(gen int64) []metav1.Condition {
	if !f.insecure {
		return nil
	}
	return []metav1.Condition{cond(string(gwv1.GatewayConditionInsecureFrontendValidationMode), true, string(gwv1.GatewayReasonConfigurationChanged),
		"spec.tls.frontend allows insecure fallback: connections without a valid client certificate are accepted", gen)}
}

// frontendFeatures are the conformance features of this file.
func frontendFeatures(perGateway bool) []string {
	if !perGateway {
		return nil
	}
	// Misdirected requests are answered 421 in both modes, but in the
	// shared one the listener a name selects is chosen among every
	// Gateway's listeners, which the conformance test does not expect.
	return []string{"GatewayFrontendClientCertificateValidation", "GatewayFrontendClientCertificateValidationInsecureFallback",
		"GatewayHTTPSListenerDetectMisdirectedRequests"}
}

// frontendTLS is the client certificate validation of HTTPS listener l of
// gs's Gateway: acc and res, when set, are why l is not accepted or its
// references are not resolved.
func (t *translator) frontendTLS(gs *gatewayState, l gwv1.Listener) (acc, res *condFix) {
	g := gs.g
	if g.Spec.TLS == nil || g.Spec.TLS.Frontend == nil {
		return nil, nil
	}
	port := int32(l.Port)
	if pv, ok := gs.frontend.byPort[port]; ok {
		return pv.acc, pv.res
	}
	if gs.frontend.byPort == nil {
		gs.frontend.byPort = map[int32]*portValidation{}
	}
	pv := t.portValidation(gs, port)
	gs.frontend.byPort[port] = pv
	return pv.acc, pv.res
}

func (t *translator) portValidation(gs *gatewayState, port int32) *portValidation {
	g := gs.g
	fr := g.Spec.TLS.Frontend
	v, field := fr.Default.Validation, "spec.tls.frontend.default.validation"
	for i, pp := range fr.PerPort {
		if int32(pp.Port) == port {
			v, field = pp.TLS.Validation, fmt.Sprintf("spec.tls.frontend.perPort[%d] (port %d).tls.validation", i, port)
			break
		}
	}
	pv := &portValidation{}
	if v == nil {
		return pv
	}
	if !t.opts.PerGateway {
		pv.acc = &condFix{string(gwv1.ListenerReasonUnsupportedValue), field + ": client certificate validation needs per-Gateway listeners (flotilla gateway --gateway-port-range): in the shared mode every Gateway's HTTPS listeners share one TLS port, so a Gateway's validation cannot apply to its listeners alone"}
		return pv
	}
	switch v.Mode {
	case "", gwv1.AllowValidOnly:
		pv.mode = config.ClientAuthRequire
	case gwv1.AllowInsecureFallback:
		pv.mode = config.ClientAuthInsecureFallback
	default:
		pv.acc = &condFix{string(gwv1.ListenerReasonUnsupportedValue), fmt.Sprintf("%s.mode: %s is not supported (AllowValidOnly and AllowInsecureFallback are)", field, v.Mode)}
		return pv
	}
	var bundle []byte
	for i, ref := range v.CACertificateRefs {
		pem, fix := t.caRef(g.Namespace, ref, fmt.Sprintf("%s.caCertificateRefs[%d]", field, i))
		if fix != nil {
			if pv.res == nil {
				pv.res = fix
			}
			continue
		}
		bundle = append(bundle, pem...)
	}
	if len(bundle) == 0 {
		msg := field + ": no valid CA certificate"
		if pv.res != nil {
			msg += ": " + pv.res.msg
		}
		pv.acc = &condFix{string(gwv1.ListenerReasonNoValidCACertificate), msg}
		return pv
	}
	pv.ca = bundle
	if pv.mode == config.ClientAuthInsecureFallback {
		gs.frontend.insecure = true
	}
	return pv
}

// caRef resolves one caCertificateRef of a Gateway in namespace ns to PEM
// CA certificates, or says why it cannot be.
func (t *translator) caRef(ns string, ref gwv1.ObjectReference, field string) ([]byte, *condFix) {
	if ref.Group != "" || ref.Kind != "ConfigMap" {
		return nil, &condFix{string(gwv1.ListenerReasonInvalidCACertificateKind), fmt.Sprintf("%s: kind %s in group %q is not supported (core ConfigMaps with a %s key are)", field, ref.Kind, ref.Group, CACertKey)}
	}
	refNS := ns
	if ref.Namespace != nil && *ref.Namespace != "" {
		refNS = string(*ref.Namespace)
	}
	if refNS != ns && !t.granted("Gateway", ns, "", "ConfigMap", refNS, string(ref.Name)) {
		return nil, &condFix{string(gwv1.ListenerReasonRefNotPermitted), fmt.Sprintf("%s: ConfigMap %s/%s is in another namespace and no ReferenceGrant there allows it", field, refNS, ref.Name)}
	}
	cm := t.in.ConfigMaps(refNS, string(ref.Name))
	if cm == nil {
		return nil, &condFix{string(gwv1.ListenerReasonInvalidCACertificateRef), fmt.Sprintf("%s: ConfigMap %s/%s not found", field, refNS, ref.Name)}
	}
	out, err := configMapCA(cm)
	if errors.Is(err, errNoCAKey) {
		return nil, &condFix{string(gwv1.ListenerReasonInvalidCACertificateRef), fmt.Sprintf("%s: ConfigMap %s/%s has no %s key", field, refNS, ref.Name, CACertKey)}
	}
	if err != nil {
		return nil, &condFix{string(gwv1.ListenerReasonInvalidCACertificateRef), fmt.Sprintf("%s: ConfigMap %s/%s key %s: %v", field, refNS, ref.Name, CACertKey, err)}
	}
	return out, nil
}

// errNoCAKey: a ConfigMap has no CACertKey.
var errNoCAKey = errors.New("no " + CACertKey + " key")

// configMapCA is the CA bundle of cm's CACertKey (in data, else in
// binaryData), checked and re-encoded by parseCAs: the one reading of a
// CA ConfigMap, for frontend validation and BackendTLSPolicies alike.
func configMapCA(cm *corev1.ConfigMap) ([]byte, error) {
	data, ok := cm.Data[CACertKey]
	if !ok {
		b, bok := cm.BinaryData[CACertKey]
		if !bok {
			return nil, errNoCAKey
		}
		data = string(b)
	}
	return parseCAs([]byte(data))
}

// parseCAs checks a PEM bundle: one or more CERTIFICATE blocks, each a
// certificate crypto/x509 parses (a CA, or a self-signed client
// certificate trusted as such), and nothing else but blank space. It
// returns the blocks re-encoded, so the gateway reads only what was
// checked.
func parseCAs(data []byte) ([]byte, error) {
	var out []byte
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if strings.TrimSpace(string(rest)) != "" {
				return nil, fmt.Errorf("not PEM after %d certificate(s)", n)
			}
			break
		}
		n++
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("block %d is a %s, want CERTIFICATE", n, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Errorf("certificate %d: %v", n, err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes})...)
	}
	if n == 0 {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return out, nil
}

// tlsPorts computes Result.TLSPorts: per Gateway, for each local port of
// its programmed HTTPS listeners, the client certificate validation and
// the listeners' host names; in the shared mode, the host names of every
// accepted HTTPS listener, for the --tls-addr port (port 0).
func (t *translator) tlsPorts() {
	shared := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(t.gateways)) {
		gs := t.gateways[k]
		if !gs.accepted {
			continue
		}
		byLocal := map[int32]*config.TLSPort{}
		var locals []int32
		for _, ls := range gs.listeners {
			if !ls.programmed || ls.l.Protocol != gwv1.HTTPSProtocolType {
				continue
			}
			h := hostname(ls.l.Hostname)
			if !t.opts.PerGateway {
				shared[h] = true
				continue
			}
			if ls.local == 0 {
				continue
			}
			tp := byLocal[ls.local]
			if tp == nil {
				tp = &config.TLSPort{Port: int(ls.local)}
				byLocal[ls.local] = tp
				locals = append(locals, ls.local)
				if pv := gs.frontend.byPort[int32(ls.l.Port)]; pv != nil && pv.ca != nil {
					file := path.Join("clientca", gs.g.Namespace, gs.g.Name, strconv.Itoa(int(ls.l.Port)), CACertKey)
					t.res.Files[file] = pv.ca
					tp.ClientAuth = &config.ClientAuth{CAFile: file, Mode: pv.mode}
				}
			}
			if !slices.Contains(tp.Hostnames, h) {
				tp.Hostnames = append(tp.Hostnames, h)
			}
		}
		for _, p := range locals {
			if tp := byLocal[p]; tp.ClientAuth != nil || len(tp.Hostnames) > 1 {
				t.res.TLSPorts = append(t.res.TLSPorts, *tp)
			}
		}
	}
	if len(shared) > 1 {
		t.res.TLSPorts = append(t.res.TLSPorts, config.TLSPort{Port: 0, Hostnames: slices.Sorted(maps.Keys(shared))})
	}
	slices.SortFunc(t.res.TLSPorts, func(a, b config.TLSPort) int { return a.Port - b.Port })
}
