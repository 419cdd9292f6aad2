package gatewayapi

import (
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// The Gateways of the conformance tests (sigs.k8s.io/gateway-api
// conformance/tests/*.yaml, v1.6.3), class name filled in.
const (
	infraNS    = "gateway-conformance-infra"
	confHeader = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flotilla}
spec: {controllerName: flotilla.dev/gateway-controller}
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v1, namespace: gateway-conformance-infra}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v2, namespace: gateway-conformance-infra}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: infra-backend-v3, namespace: gateway-conformance-infra}
spec: {ports: [{name: http, port: 8080}]}
---
`
	httpsListener = `
    protocol: HTTPS
    allowedRoutes: {namespaces: {from: Same}}
    tls: {certificateRefs: [{group: "", kind: Secret, name: tls-validity-checks-certificate, namespace: gateway-conformance-infra}]}`

	// gateway-with-clientcertificate-validation.yaml; MODE is replaced.
	clientValidationYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: client-validation-default, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: flotilla
  tls:
    frontend:
      default:
        validation:
          MODE
          caCertificateRefs: [{kind: ConfigMap, group: "", name: tls-validity-checks-ca-certificate}]
      perPort:
      - port: 8443
        tls:
          validation:
            MODE
            caCertificateRefs: [{kind: ConfigMap, group: "", name: tls-validity-checks-per-port-ca-certificate}]
  listeners:
  - name: https
    port: 443` + httpsListener + `
  - name: https-with-hostname
    port: 8443
    hostname: second-example.org` + httpsListener + `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: client-certificate-validation-https-test, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: client-validation-default}]
  hostnames: [example.org]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: client-certificate-validation-https-test-no-hostname, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: client-validation-default, sectionName: https-with-hostname}]
  rules: [{backendRefs: [{name: infra-backend-v2, port: 8080}]}]
`

	// gateway-with-invalid-clientcertificate-validation.yaml.
	invalidValidationYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gateway-with-invalid-client-cert-validation, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: flotilla
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{kind: ConfigMap, group: "", name: tls-validity-checks-ca-certificate}]
      perPort:
      - port: 7443
        tls: {validation: {caCertificateRefs: [{kind: ConfigMap, group: "", name: non-exisitng-cm}]}}
      - port: 8443
        tls: {validation: {caCertificateRefs: [{kind: Service, group: "", name: infra-backend-v2}]}}
      - port: 6443
        tls: {validation: {caCertificateRefs: [{kind: ConfigMap, group: "", name: web-backend-cm, namespace: gateway-conformance-web-backend}]}}
  listeners:
  - name: https
    port: 443` + httpsListener + `
  - name: https-unresolved
    port: 7443
    hostname: first-example.org` + httpsListener + `
  - name: https-invalid-kind
    port: 8443
    hostname: second-example.org` + httpsListener + `
  - name: https-grant-missing
    port: 6443
    hostname: fourth-example.org` + httpsListener + `
`

	// gateway-invalid-default-frontend-client-certificate-validation.yaml.
	invalidDefaultYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: invalid-default-client-validation-config, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: flotilla
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{kind: ConfigMap, group: "", name: does-not-exist}]
      perPort:
      - port: 80
        tls: {validation: {caCertificateRefs: [{kind: ConfigMap, group: "", name: tls-validity-checks-per-port-ca-certificate}]}}
  listeners:
  - name: https
    port: 443` + httpsListener + `
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes: {namespaces: {from: Same}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: invalid-default-client-validation-config, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: invalid-default-client-validation-config}]
  hostnames: [example.org]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
`

	// The base manifests' same-namespace-with-https-listener and the
	// routes of httproute-https-listener-detect-misdirected-requests.yaml.
	misdirectedYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: same-namespace-with-https-listener, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: flotilla
  listeners:
  - name: https
    port: 443` + httpsListener + `
  - name: https-with-hostname
    port: 443
    hostname: second-example.org` + httpsListener + `
  - name: https-with-wildcard-hostname
    port: 443
    hostname: "*.wildcard.org"` + httpsListener + `
  - name: https-with-hostname-matching-wildcard
    port: 443
    hostname: fourth-example.wildcard.org` + httpsListener + `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: https-listener-detect-misdirected-requests-test-1, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace-with-https-listener, sectionName: https}]
  hostnames: [example.org]
  rules: [{matches: [{path: {type: PathPrefix, value: /detect-misdirected-requests}}], backendRefs: [{name: infra-backend-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: https-listener-detect-misdirected-requests-test-2, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace-with-https-listener, sectionName: https-with-hostname}]
  rules: [{matches: [{path: {type: PathPrefix, value: /detect-misdirected-requests}}], backendRefs: [{name: infra-backend-v2, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: https-listener-detect-misdirected-requests-test-3, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace-with-https-listener, sectionName: https-with-wildcard-hostname}]
  rules: [{matches: [{path: {type: PathPrefix, value: /detect-misdirected-requests}}], backendRefs: [{name: infra-backend-v3, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: https-listener-detect-misdirected-requests-test-4, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace-with-https-listener, sectionName: https-with-hostname-matching-wildcard}]
  rules: [{matches: [{path: {type: PathPrefix, value: /detect-misdirected-requests}}], backendRefs: [{name: infra-backend-v1, port: 8080}]}]
`
)

// confPKI is the conformance suite's certificates: the server's (for
// every name the tests use), two client CAs and a client certificate of
// each.
type confPKI struct {
	server           certtest.Pair
	ca1, ca2         *certtest.CA
	client1, client2 certtest.Pair
	serverCA         *certtest.CA
}

func newConfPKI(t *testing.T) *confPKI {
	p := &confPKI{serverCA: certtest.NewCA(t, "server CA"), ca1: certtest.NewCA(t, "client CA"), ca2: certtest.NewCA(t, "per-port client CA")}
	p.server = certtest.Issue(t, p.serverCA, certtest.Leaf{Hosts: []string{"*.org", "*.wildcard.org", "localhost", "127.0.0.1"}})
	p.client1 = certtest.Issue(t, p.ca1, certtest.Leaf{Hosts: []string{"client"}, Client: true})
	p.client2 = certtest.Issue(t, p.ca2, certtest.Leaf{Hosts: []string{"per-port-client"}, Client: true})
	return p
}

// confInput is the objects of yaml with the suite's Secret and CA
// ConfigMaps (plus extra ConfigMaps), listener port p served on local
// port 20000+p in the per-Gateway mode.
func (p *confPKI) input(t *testing.T, yaml string, extra ...*corev1.ConfigMap) Input {
	t.Helper()
	o := parseObjects(t, []byte(confHeader+yaml))
	o.secrets[infraNS+"/tls-validity-checks-certificate"] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: infraNS, Name: "tls-validity-checks-certificate"},
		Data: map[string][]byte{corev1.TLSCertKey: p.server.CertPEM, corev1.TLSPrivateKeyKey: p.server.KeyPEM}}
	in := o.input()
	cms := map[string]*corev1.ConfigMap{}
	for _, cm := range append([]*corev1.ConfigMap{
		caConfigMap(infraNS, "tls-validity-checks-ca-certificate", string(p.ca1.PEM)),
		caConfigMap(infraNS, "tls-validity-checks-per-port-ca-certificate", string(p.ca2.PEM)),
		caConfigMap("gateway-conformance-web-backend", "web-backend-cm", string(p.ca1.PEM)),
	}, extra...) {
		cms[cm.Namespace+"/"+cm.Name] = cm
	}
	in.ConfigMaps = func(ns, name string) *corev1.ConfigMap { return cms[ns+"/"+name] }
	in.Ports = func(string, string) map[int32]int32 {
		return map[int32]int32{80: 20080, 443: 20443, 6443: 26443, 7443: 27443, 8443: 28443}
	}
	return in
}

func caConfigMap(ns, name, pem string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string]string{CACertKey: pem, "key.crt": "not read"}}
}

// wantCond is a condition as the conformance suite checks it: an empty
// reason is any reason.
type wantCond struct {
	typ    gwv1.ListenerConditionType
	status metav1.ConditionStatus
	reason string
}

func checkListener(t *testing.T, res Result, gw, listener string, want []wantCond) {
	t.Helper()
	st, ok := res.Gateways[infraNS+"/"+gw]
	if !ok {
		t.Fatalf("no status for Gateway %s", gw)
	}
	i := slices.IndexFunc(st.Listeners, func(l gwv1.ListenerStatus) bool { return string(l.Name) == listener })
	if i < 0 {
		t.Fatalf("Gateway %s: no status for listener %s", gw, listener)
	}
	for _, w := range want {
		j := slices.IndexFunc(st.Listeners[i].Conditions, func(c metav1.Condition) bool { return c.Type == string(w.typ) })
		if j < 0 {
			t.Errorf("listener %s: no %s condition", listener, w.typ)
			continue
		}
		c := st.Listeners[i].Conditions[j]
		if c.Status != w.status || w.reason != "" && c.Reason != w.reason {
			t.Errorf("listener %s: %s = %s/%s (%s), want %s/%s", listener, w.typ, c.Status, c.Reason, c.Message, w.status, w.reason)
		}
	}
}

func listenerOK() []wantCond {
	return []wantCond{{gwv1.ListenerConditionResolvedRefs, metav1.ConditionTrue, ""}, {gwv1.ListenerConditionAccepted, metav1.ConditionTrue, ""},
		{gwv1.ListenerConditionProgrammed, metav1.ConditionTrue, ""}}
}

func listenerBad(resolvedReason string) []wantCond {
	return []wantCond{{gwv1.ListenerConditionResolvedRefs, metav1.ConditionFalse, resolvedReason},
		{gwv1.ListenerConditionAccepted, metav1.ConditionFalse, string(gwv1.ListenerReasonNoValidCACertificate)},
		{gwv1.ListenerConditionProgrammed, metav1.ConditionFalse, ""}}
}

func routeAccepted(t *testing.T, res Result, name string) {
	t.Helper()
	ps := res.RouteParents[infraNS+"/"+name]
	if len(ps) == 0 {
		t.Fatalf("HTTPRoute %s: no parent status", name)
	}
	for _, p := range ps {
		for _, c := range p.Conditions {
			if c.Status != metav1.ConditionTrue {
				t.Errorf("HTTPRoute %s: %s = %s/%s (%s)", name, c.Type, c.Status, c.Reason, c.Message)
			}
		}
	}
}

// TestFrontendValidation replays GatewayFrontendClientCertificateValidation
// and ...InsecureFallback: both listeners accepted, the routes too, each
// local port asking for client certificates of its CA (default, then the
// 8443 override) in the mode asked for, and the Gateway condition of
// insecure fallback.
func TestFrontendValidation(t *testing.T) {
	p := newConfPKI(t)
	for _, tt := range []struct {
		name, mode, want string
	}{
		{"AllowValidOnly by default", "", config.ClientAuthRequire},
		{"AllowValidOnly", "mode: AllowValidOnly", config.ClientAuthRequire},
		{"AllowInsecureFallback", "mode: AllowInsecureFallback", config.ClientAuthInsecureFallback},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := Translate(p.input(t, strings.ReplaceAll(clientValidationYAML, "MODE", tt.mode)), Options{PerGateway: true})
			checkListener(t, res, "client-validation-default", "https", listenerOK())
			checkListener(t, res, "client-validation-default", "https-with-hostname", listenerOK())
			routeAccepted(t, res, "client-certificate-validation-https-test")
			routeAccepted(t, res, "client-certificate-validation-https-test-no-hostname")
			c := gatewayCond(res, infraNS+"/client-validation-default", string(gwv1.GatewayConditionInsecureFrontendValidationMode))
			if tt.want == config.ClientAuthInsecureFallback {
				if c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(gwv1.GatewayReasonConfigurationChanged) {
					t.Errorf("InsecureFrontendValidationMode = %+v, want True/ConfigurationChanged", c)
				}
			} else if c != nil {
				t.Errorf("InsecureFrontendValidationMode set without insecure fallback: %+v", c)
			}
			if len(res.TLSPorts) != 2 {
				t.Fatalf("TLSPorts = %+v, want the two listeners' local ports", res.TLSPorts)
			}
			for i, want := range []struct {
				port int
				ca   []byte
			}{{20443, p.ca1.PEM}, {28443, p.ca2.PEM}} {
				tp := res.TLSPorts[i]
				if tp.Port != want.port || tp.ClientAuth == nil || tp.ClientAuth.Mode != tt.want {
					t.Fatalf("TLSPorts[%d] = %+v, want port %d mode %s", i, tp, want.port, tt.want)
				}
				if got := res.Files[tp.ClientAuth.CAFile]; string(got) != string(want.ca) {
					t.Errorf("port %d: CA file %s holds %q, want its ConfigMap's CA", want.port, tp.ClientAuth.CAFile, got)
				}
			}
		})
	}
}

// TestFrontendValidationInvalid replays
// GatewayInvalidFrontendClientCertificateValidation: an invalid
// reference fails only the listeners of its port, each with its reason.
func TestFrontendValidationInvalid(t *testing.T) {
	p := newConfPKI(t)
	in := p.input(t, invalidValidationYAML)
	res := Translate(in, Options{PerGateway: true})
	const gw = "gateway-with-invalid-client-cert-validation"
	checkListener(t, res, gw, "https", listenerOK())
	checkListener(t, res, gw, "https-unresolved", listenerBad(string(gwv1.ListenerReasonInvalidCACertificateRef)))
	checkListener(t, res, gw, "https-invalid-kind", listenerBad(string(gwv1.ListenerReasonInvalidCACertificateKind)))
	checkListener(t, res, gw, "https-grant-missing", listenerBad(string(gwv1.ListenerReasonRefNotPermitted)))
	if c := gatewayCond(res, infraNS+"/"+gw, string(gwv1.GatewayConditionAccepted)); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(gwv1.GatewayReasonListenersNotValid) {
		t.Errorf("Gateway Accepted = %+v, want True/ListenersNotValid", c)
	}
	// Only the valid listener's port is opened and has a policy: the
	// others are not served at all.
	if !slices.Equal(res.Listeners, []Listener{{Port: 20443, TLS: true}}) {
		t.Errorf("Listeners = %+v, want only 20443", res.Listeners)
	}
	if len(res.TLSPorts) != 1 || res.TLSPorts[0].Port != 20443 {
		t.Errorf("TLSPorts = %+v, want only 20443", res.TLSPorts)
	}
	// With a ReferenceGrant the cross-namespace ConfigMap is allowed.
	grant := `
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: cm, namespace: gateway-conformance-web-backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: gateway-conformance-infra}]
  to: [{group: "", kind: ConfigMap}]
`
	res = Translate(p.input(t, invalidValidationYAML+grant), Options{PerGateway: true})
	checkListener(t, res, gw, "https-grant-missing", listenerOK())
	// A grant for Secrets only does not allow a ConfigMap.
	res = Translate(p.input(t, invalidValidationYAML+strings.ReplaceAll(grant, "kind: ConfigMap", "kind: Secret")), Options{PerGateway: true})
	checkListener(t, res, gw, "https-grant-missing", listenerBad(string(gwv1.ListenerReasonRefNotPermitted)))
}

// TestFrontendValidationInvalidDefault replays
// GatewayFrontendInvalidDefaultClientCertificateValidation: the invalid
// default fails the HTTPS listener, whose port is then not opened (the
// TLS request fails), and leaves the HTTP listener (its perPort entry is
// for HTTPS listeners only) serving.
func TestFrontendValidationInvalidDefault(t *testing.T) {
	p := newConfPKI(t)
	res := Translate(p.input(t, invalidDefaultYAML), Options{PerGateway: true})
	const gw = "invalid-default-client-validation-config"
	checkListener(t, res, gw, "http", listenerOK())
	checkListener(t, res, gw, "https", listenerBad(string(gwv1.ListenerReasonInvalidCACertificateRef)))
	if !slices.Equal(res.Listeners, []Listener{{Port: 20080}}) {
		t.Errorf("Listeners = %+v, want only the HTTP listener's 20080", res.Listeners)
	}
	routeAccepted(t, res, gw)
	if len(res.TLSPorts) != 0 {
		t.Errorf("TLSPorts = %+v, want none", res.TLSPorts)
	}
}

// TestFrontendCAConfigMapMalformed: a ConfigMap that is there but holds
// no usable CA fails its listeners with InvalidCACertificateRef and a
// message naming the ConfigMap and what is wrong.
func TestFrontendCAConfigMapMalformed(t *testing.T) {
	p := newConfPKI(t)
	good := string(p.ca1.PEM)
	key := "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBvY3mAGZ0Hn6F1lM1Q3Xv3Mxb5j0eXWx2fGqQzJ8m8m\n-----END PRIVATE KEY-----\n"
	for _, tt := range []struct {
		name string
		cm   *corev1.ConfigMap
		want string // in the message; "" = valid
	}{
		{"valid", caConfigMap(infraNS, "tls-validity-checks-ca-certificate", good), ""},
		{"valid, two CAs", caConfigMap(infraNS, "tls-validity-checks-ca-certificate", good+"\n"+string(p.ca2.PEM)), ""},
		{"valid in binaryData", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: infraNS, Name: "tls-validity-checks-ca-certificate"},
			BinaryData: map[string][]byte{CACertKey: []byte(good)}}, ""},
		{"no ca.crt key", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: infraNS, Name: "tls-validity-checks-ca-certificate"},
			Data: map[string]string{"tls.crt": good}}, "has no ca.crt key"},
		{"empty", caConfigMap(infraNS, "tls-validity-checks-ca-certificate", ""), "no PEM certificate"},
		{"not PEM", caConfigMap(infraNS, "tls-validity-checks-ca-certificate", "hello"), "not PEM after 0 certificate(s)"},
		{"garbage after a certificate", caConfigMap(infraNS, "tls-validity-checks-ca-certificate", good+"junk"), "not PEM after 1 certificate(s)"},
		{"private key", caConfigMap(infraNS, "tls-validity-checks-ca-certificate", key), "block 1 is a PRIVATE KEY, want CERTIFICATE"},
		{"bad DER", caConfigMap(infraNS, "tls-validity-checks-ca-certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "certificate 1:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := Translate(p.input(t, strings.ReplaceAll(clientValidationYAML, "MODE", ""), tt.cm), Options{PerGateway: true})
			if tt.want == "" {
				checkListener(t, res, "client-validation-default", "https", listenerOK())
				return
			}
			checkListener(t, res, "client-validation-default", "https", listenerBad(string(gwv1.ListenerReasonInvalidCACertificateRef)))
			checkListener(t, res, "client-validation-default", "https-with-hostname", listenerOK()) // its own CA
			st := res.Gateways[infraNS+"/client-validation-default"].Listeners[0]
			for _, c := range st.Conditions {
				if c.Type == string(gwv1.ListenerConditionResolvedRefs) {
					for _, w := range []string{"spec.tls.frontend.default.validation.caCertificateRefs[0]", "ConfigMap gateway-conformance-infra/tls-validity-checks-ca-certificate", tt.want} {
						if !strings.Contains(c.Message, w) {
							t.Errorf("message %q does not say %q", c.Message, w)
						}
					}
				}
			}
			if !slices.ContainsFunc(res.Problems, func(p Problem) bool {
				return p.Kind == "Gateway" && strings.Contains(p.Message, "tls-validity-checks-ca-certificate")
			}) {
				t.Errorf("no problem (Event) names the ConfigMap: %v", res.Problems)
			}
		})
	}
}

// TestFrontendValidationShared: in the shared mode a Gateway's validation
// cannot be applied to its listeners alone, so they are not accepted
// rather than served without it.
func TestFrontendValidationShared(t *testing.T) {
	p := newConfPKI(t)
	res := Translate(p.input(t, strings.ReplaceAll(clientValidationYAML, "MODE", "")), Options{})
	for _, l := range []string{"https", "https-with-hostname"} {
		checkListener(t, res, "client-validation-default", l, []wantCond{
			{gwv1.ListenerConditionAccepted, metav1.ConditionFalse, string(gwv1.ListenerReasonUnsupportedValue)},
			{gwv1.ListenerConditionProgrammed, metav1.ConditionFalse, ""}})
	}
	st := res.Gateways[infraNS+"/client-validation-default"]
	if msg := st.Listeners[0].Conditions[0].Message; !strings.Contains(msg, "--gateway-port-range") {
		t.Errorf("Accepted message %q does not say what is needed", msg)
	}
	if len(res.Routes) != 0 || len(res.TLSPorts) != 0 {
		t.Errorf("routes %d, TLSPorts %+v: want nothing served", len(res.Routes), res.TLSPorts)
	}
	// A validation that applies to no HTTPS listener changes nothing.
	res = Translate(p.input(t, strings.ReplaceAll(invalidDefaultYAML, "port: 443", "port: 8443\n    hostname: x.example")), Options{})
	checkListener(t, res, "invalid-default-client-validation-config", "http", listenerOK())
}

// TestMisdirectedHostnames: the listener host names of each HTTPS port go
// to tls.ports, per local port (per Gateway) or for the shared TLS port.
func TestMisdirectedHostnames(t *testing.T) {
	p := newConfPKI(t)
	want := []string{"", "second-example.org", "*.wildcard.org", "fourth-example.wildcard.org"}
	res := Translate(p.input(t, misdirectedYAML), Options{PerGateway: true})
	for _, l := range []string{"https", "https-with-hostname", "https-with-wildcard-hostname", "https-with-hostname-matching-wildcard"} {
		checkListener(t, res, "same-namespace-with-https-listener", l, listenerOK())
	}
	if len(res.TLSPorts) != 1 || res.TLSPorts[0].Port != 20443 || res.TLSPorts[0].ClientAuth != nil || !slices.Equal(res.TLSPorts[0].Hostnames, want) {
		t.Errorf("per Gateway: TLSPorts = %+v, want port 20443 with %q", res.TLSPorts, want)
	}
	res = Translate(p.input(t, misdirectedYAML), Options{})
	slices.Sort(want)
	if len(res.TLSPorts) != 1 || res.TLSPorts[0].Port != 0 || !slices.Equal(res.TLSPorts[0].Hostnames, want) {
		t.Errorf("shared: TLSPorts = %+v, want port 0 with %q", res.TLSPorts, want)
	}
	// One HTTPS listener: nothing to tell apart.
	res = Translate(p.input(t, strings.ReplaceAll(invalidDefaultYAML, "name: does-not-exist", "name: tls-validity-checks-ca-certificate")), Options{PerGateway: true})
	if len(res.TLSPorts) != 1 || len(res.TLSPorts[0].Hostnames) != 1 {
		t.Errorf("one listener: TLSPorts = %+v", res.TLSPorts)
	}
}

func TestFrontendSupportedFeatures(t *testing.T) {
	names := func(perGateway bool) []string {
		var out []string
		for _, f := range SupportedFeatures(perGateway) {
			out = append(out, string(f.Name))
		}
		return out
	}
	all := []string{"GatewayFrontendClientCertificateValidation", "GatewayFrontendClientCertificateValidationInsecureFallback", "GatewayHTTPSListenerDetectMisdirectedRequests"}
	for _, f := range all {
		if !slices.Contains(names(true), f) {
			t.Errorf("per Gateway: %s not supported", f)
		}
		if slices.Contains(names(false), f) {
			t.Errorf("shared: %s supported", f)
		}
	}
	if !slices.IsSorted(names(true)) {
		t.Error("not sorted")
	}
}

// FuzzParseCAs: whatever a ConfigMap holds, parseCAs does not panic, and
// what it accepts is only certificates crypto/x509 parses.
func FuzzParseCAs(f *testing.F) {
	ca := certtest.NewCA(f, "fuzz")
	f.Add(ca.PEM)
	f.Add(append(append([]byte{}, ca.PEM...), ca.PEM...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("junk"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := parseCAs(data)
		if err != nil {
			return
		}
		for rest := out; len(rest) > 0; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil || b.Type != "CERTIFICATE" {
				t.Fatalf("accepted output holds a non-certificate block")
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				t.Fatalf("accepted a certificate x509 does not parse: %v", err)
			}
		}
	})
}

// TestFrontendPerPortWithoutValidation: a perPort entry without a
// validation overrides the default: its port asks for no certificate.
func TestFrontendPerPortWithoutValidation(t *testing.T) {
	p := newConfPKI(t)
	yaml := strings.ReplaceAll(clientValidationYAML, "MODE", "")
	i := strings.Index(yaml, "        tls:\n          validation:\n")
	j := strings.Index(yaml, "  listeners:")
	yaml = yaml[:i] + "        tls: {}\n" + yaml[j:]
	res := Translate(p.input(t, yaml), Options{PerGateway: true})
	checkListener(t, res, "client-validation-default", "https-with-hostname", listenerOK())
	if len(res.TLSPorts) != 1 || res.TLSPorts[0].Port != 20443 || res.TLSPorts[0].ClientAuth == nil {
		t.Errorf("TLSPorts = %+v, want only 20443 with the default's CA", res.TLSPorts)
	}
}

// listenerSetValidationYAML: a Gateway whose spec.tls.frontend asks every
// HTTPS port for client certificates, and a ListenerSet adding an HTTPS
// listener on a port of its own (9443) with a route.
const listenerSetValidationYAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: validated, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: flotilla
  allowedListeners: {namespaces: {from: Same}}
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{kind: ConfigMap, group: "", name: tls-validity-checks-ca-certificate}]
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - name: https
    port: 443` + httpsListener + `
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: extra, namespace: gateway-conformance-infra}
spec:
  parentRef: {kind: Gateway, group: gateway.networking.k8s.io, name: validated}
  listeners:
  - name: https-extra
    port: 9443
    hostname: extra.example.org` + httpsListener + `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: extra-route, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{kind: ListenerSet, name: extra}]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
`

// TestFrontendValidationListenerSet: the Gateway's spec.tls.frontend
// applies to its ListenerSets' HTTPS listeners too (they are the
// Gateway's listeners, on its ports): a ListenerSet's HTTPS port asks for
// client certificates like the Gateway's own (per Gateway), and is not
// accepted in the shared mode, rather than served without the
// validation the Gateway asks for.
func TestFrontendValidationListenerSet(t *testing.T) {
	p := newConfPKI(t)
	in := p.input(t, listenerSetValidationYAML)
	ports := in.Ports
	in.Ports = func(ns, name string) map[int32]int32 {
		m := ports(ns, name)
		m[9443] = 29443
		return m
	}
	res := Translate(in, Options{PerGateway: true})
	for _, f := range []string{"listenerset " + infraNS + "/extra listener https-extra Accepted=True", "listenerset " + infraNS + "/extra listener https-extra Programmed=True"} {
		if !slices.Contains(facts(res), f) {
			t.Errorf("per Gateway: no %q", f)
		}
	}
	i := slices.IndexFunc(res.TLSPorts, func(tp config.TLSPort) bool { return tp.Port == 29443 })
	if i < 0 || res.TLSPorts[i].ClientAuth == nil || res.TLSPorts[i].ClientAuth.Mode != config.ClientAuthRequire {
		t.Fatalf("per Gateway: TLSPorts = %+v, want local port 29443 (the ListenerSet's) asking for client certificates", res.TLSPorts)
	}
	if got := res.Files[res.TLSPorts[i].ClientAuth.CAFile]; string(got) != string(p.ca1.PEM) {
		t.Errorf("port 29443: CA file holds %q, want the Gateway's default CA", got)
	}

	res = Translate(p.input(t, listenerSetValidationYAML), Options{})
	if f := "listenerset " + infraNS + "/extra listener https-extra Accepted=False " + string(gwv1.ListenerReasonUnsupportedValue); !slices.Contains(facts(res), f) {
		t.Errorf("shared: no %q in %q", f, facts(res))
	}
	if len(res.Routes) != 0 {
		t.Errorf("shared: %d routes served without the Gateway's client certificate validation", len(res.Routes))
	}
}
