package gatewayapi

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// policyCond returns the condition typ of policy key's ancestor gw.
func policyCond(t *testing.T, res Result, key, gw, typ string) *metav1.Condition {
	t.Helper()
	for _, a := range res.BackendTLSPolicies[key] {
		if string(*a.AncestorRef.Namespace)+"/"+string(a.AncestorRef.Name) != gw {
			continue
		}
		if *a.AncestorRef.Kind != "Gateway" || *a.AncestorRef.Group != Group || a.ControllerName != DefaultControllerName {
			t.Errorf("%s: ancestor %+v, controller %s", key, a.AncestorRef, a.ControllerName)
		}
		for i, c := range a.Conditions {
			if c.Type == typ {
				return &a.Conditions[i]
			}
		}
	}
	return nil
}

func gatewayCond(res Result, key, typ string) *metav1.Condition {
	for i, c := range res.Gateways[key].Conditions {
		if c.Type == typ {
			return &res.Gateways[key].Conditions[i]
		}
	}
	return nil
}

// TestBackendTLSConformance replays the status checks of the conformance
// tests BackendTLSPolicy, BackendTLSPolicySANValidation,
// BackendTLSPolicyConflictResolution,
// BackendTLSPolicyInvalidCACertificateRef, BackendTLSPolicyInvalidKind,
// BackendTLSPolicyObservedGenerationBump,
// GatewayTLSBackendClientCertificate and
// GatewayInvalidTLSBackendConfiguration on their own manifests
// (testdata/backendtls-conformance.yaml).
func TestBackendTLSConformance(t *testing.T) {
	data, err := os.ReadFile("testdata/backendtls-conformance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res := Translate(parseObjects(t, data).input(), Options{})
	const ns = "gateway-conformance-infra/"
	const same = ns + "same-namespace"
	type want struct {
		policy, gw, typ string
		ok              bool
		reason          string
	}
	acc := func(p, gw string) []want {
		return []want{{p, gw, "Accepted", true, "Accepted"}, {p, gw, "ResolvedRefs", true, "ResolvedRefs"}}
	}
	var wants []want
	for _, p := range []string{"normative-test", "host-mismatch", "cert-mismatch", "reconcile-test", // BackendTLSPolicy
		"san-dns", "san-dns-mismatch", "san-uri", "san-uri-mismatch", "multiple-sans", "multiple-mismatch-sans", // SANValidation
		"conflicted-without-section-name-1", "conflicted-with-section-name-1", "not-conflicted-with-section-name", "not-conflicted-without-section-name",
		"observed-generation-bump"} {
		wants = append(wants, acc(ns+p, same)...)
	}
	wants = append(wants, acc(ns+"normative-test", ns+"same-namespace-with-https-listener")...)
	wants = append(wants, acc(ns+"gateway-tls-backend-client-certificate-test", ns+"gateway-tls-backend-client-certificate")...)
	wants = append(wants,
		want{ns + "conflicted-without-section-name-2", same, "Accepted", false, "Conflicted"},
		want{ns + "conflicted-with-section-name-2", same, "Accepted", false, "Conflicted"},
		want{ns + "nonexistent-ca-certificate-ref", same, "Accepted", false, "NoValidCACertificate"},
		want{ns + "nonexistent-ca-certificate-ref", same, "ResolvedRefs", false, "InvalidCACertificateRef"},
		want{ns + "malformed-ca-certificate-ref", same, "Accepted", false, "NoValidCACertificate"},
		want{ns + "malformed-ca-certificate-ref", same, "ResolvedRefs", false, "InvalidCACertificateRef"},
		want{ns + "invalid-kind", same, "Accepted", false, "NoValidCACertificate"},
		want{ns + "invalid-kind", same, "ResolvedRefs", false, "InvalidKind"},
	)
	for _, w := range wants {
		c := policyCond(t, res, w.policy, w.gw, w.typ)
		switch {
		case c == nil:
			t.Errorf("%s at %s: no %s condition", w.policy, w.gw, w.typ)
		case (c.Status == metav1.ConditionTrue) != w.ok || c.Reason != w.reason:
			t.Errorf("%s at %s: %s=%s %s (%s), want %v %s", w.policy, w.gw, w.typ, c.Status, c.Reason, c.Message, w.ok, w.reason)
		}
	}
	// GatewayTLSBackendClientCertificate and
	// GatewayInvalidTLSBackendConfiguration: ResolvedRefs says whether the
	// client certificate resolved; the Gateway stays Accepted.
	for gw, reason := range map[string]string{
		"gateway-tls-backend-client-certificate":             "ResolvedRefs",
		"gateway-client-certificate-nonexistent-secret":      "InvalidClientCertificateRef",
		"gateway-client-certificate-unsupported-group":       "InvalidClientCertificateRef",
		"gateway-client-certificate-unsupported-kind":        "InvalidClientCertificateRef",
		"gateway-client-certificate-malformed-secret":        "InvalidClientCertificateRef",
		"gateway-client-certificate-missing-reference-grant": "RefNotPermitted",
	} {
		c := gatewayCond(res, ns+gw, "ResolvedRefs")
		if c == nil || c.Reason != reason || (c.Status == metav1.ConditionTrue) != (reason == "ResolvedRefs") {
			t.Errorf("Gateway %s: ResolvedRefs = %+v, want reason %s", gw, c, reason)
		}
		if a := gatewayCond(res, ns+gw, "Accepted"); a == nil || a.Status != metav1.ConditionTrue || a.Reason != "Accepted" {
			t.Errorf("Gateway %s: Accepted = %+v, want True Accepted", gw, a)
		}
	}
	// Routes stay Accepted with ResolvedRefs: the policy's references are
	// the policy's, not the route's.
	for key, parents := range res.RouteParents {
		for _, p := range parents {
			for _, c := range p.Conditions {
				if c.Status != metav1.ConditionTrue {
					t.Errorf("HTTPRoute %s: %s=%s %s: %s", key, c.Type, c.Status, c.Reason, c.Message)
				}
			}
		}
	}
	// The client certificate goes to the TLS backend of the Gateway that
	// names it, and to no other.
	for _, b := range res.Backends {
		hasCert := b.TLS != nil && b.TLS.CertPEM != nil
		if want := b.Kubernetes.Service == "tls-backend-with-client-cert-validation"; hasCert != want {
			t.Errorf("backend %s: client certificate %v, want %v", b.Name, hasCert, want)
		}
	}
}

// TestBackendTLSObservedGeneration: every ancestor condition carries the
// policy's generation (BackendTLSPolicyObservedGenerationBump).
func TestBackendTLSObservedGeneration(t *testing.T) {
	data, err := os.ReadFile("testdata/backendtls-conformance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	o := parseObjects(t, data)
	for _, p := range o.policies {
		if p.Name == "observed-generation-bump" {
			p.Generation = 7
			p.Spec.Validation.Hostname = "foo.example.com"
		}
	}
	res := Translate(o.input(), Options{})
	as := res.BackendTLSPolicies["gateway-conformance-infra/observed-generation-bump"]
	if len(as) != 1 {
		t.Fatalf("ancestors = %+v, want one", as)
	}
	for _, c := range as[0].Conditions {
		if c.ObservedGeneration != 7 {
			t.Errorf("%s observedGeneration = %d, want 7", c.Type, c.ObservedGeneration)
		}
	}
	i := slices.IndexFunc(res.Backends, func(b config.Backend) bool { return b.Kubernetes.Service == "observed-generation-bump-test" })
	if i < 0 || res.Backends[i].TLS.ServerName != "foo.example.com" {
		t.Errorf("backend TLS not updated: %+v", res.Backends)
	}
}

// indent makes PEM a YAML block scalar's body.
func indent(pem []byte, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(string(pem)), "\n", "\n"+pad)
}

const btlsHead = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flotilla}
spec: {controllerName: flotilla.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: flotilla
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {ports: [{name: https, port: 443}, {name: other, port: 8443}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: app, port: 443}]
---
`

// TestBackendTLSPolicyRules: each rule of the translation, and malformed
// policies, with the condition naming what is wrong.
func TestBackendTLSPolicyRules(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	good := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata:\n  ca.crt: |\n" + indent(ca.PEM, 4) + "\n---\n"
	policy := func(name, ts, target, validation string) string {
		meta := "{name: " + name + "}"
		if ts != "" {
			meta = "{name: " + name + ", creationTimestamp: \"" + ts + "\"}"
		}
		return "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: " + meta + "\nspec:\n  targetRefs: [" + target + "]\n  validation: " + validation + "\n---\n"
	}
	const svc = `{group: "", kind: Service, name: app}`
	const port = `{group: "", kind: Service, name: app, sectionName: https}`
	const caRef = `{hostname: app.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}`
	tests := []struct {
		name    string
		objs    string
		cond    map[string]string // policy name -> "Accepted=… Reason; ResolvedRefs=… Reason"
		msg     string            // in a condition message
		served  bool              // the backend is served over TLS
		sni     string
		sans    int
		noCerts bool
	}{
		{name: "valid", objs: good + policy("p", "", svc, caRef),
			cond: map[string]string{"p": "True Accepted; True ResolvedRefs"}, served: true, sni: "app.example.com"},
		// As for frontend validation: one reading of a CA ConfigMap.
		{name: "ca.crt in binaryData", objs: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\nbinaryData: {ca.crt: " + base64.StdEncoding.EncodeToString(ca.PEM) + "}\n---\n" + policy("p", "", svc, caRef),
			cond: map[string]string{"p": "True Accepted; True ResolvedRefs"}, served: true, sni: "app.example.com"},
		{name: "text after the certificates", objs: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata:\n  ca.crt: |\n" + indent(ca.PEM, 4) + "\n    -----BEGIN CERT\n---\n" + policy("p", "", svc, caRef),
			cond: map[string]string{"p": "False NoValidCACertificate; False InvalidCACertificateRef"}, msg: "ConfigMap default/ca key ca.crt: not PEM after 1 certificate(s)"},
		{name: "system CAs", objs: policy("p", "", svc, `{hostname: app.example.com, wellKnownCACertificates: System}`),
			cond: map[string]string{"p": "True Accepted; True ResolvedRefs"}, served: true, sni: "app.example.com", noCerts: true},
		{name: "unknown well-known set", objs: policy("p", "", svc, `{hostname: app.example.com, wellKnownCACertificates: Corporate}`),
			cond: map[string]string{"p": "False Invalid; True ResolvedRefs"}, msg: `wellKnownCACertificates: "Corporate" is not supported`},
		{name: "no CA at all", objs: policy("p", "", svc, `{hostname: app.example.com}`),
			cond: map[string]string{"p": "False Invalid; True ResolvedRefs"}, msg: "caCertificateRefs or wellKnownCACertificates is required"},
		{name: "bad PEM in the ConfigMap", objs: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata:\n  ca.crt: |\n    -----BEGIN CERTIFICATE-----\n    AAAA\n    -----END CERTIFICATE-----\n---\n" + policy("p", "", svc, caRef),
			cond: map[string]string{"p": "False NoValidCACertificate; False InvalidCACertificateRef"}, msg: "ConfigMap default/ca key ca.crt: certificate 1: x509: "},
		{name: "a key in ca.crt", objs: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata:\n  ca.crt: |\n    -----BEGIN PRIVATE KEY-----\n    AAAA\n    -----END PRIVATE KEY-----\n---\n" + policy("p", "", svc, caRef),
			cond: map[string]string{"p": "False NoValidCACertificate; False InvalidCACertificateRef"}, msg: "block 1 is a PRIVATE KEY, want CERTIFICATE"},
		{name: "empty ca.crt", objs: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {ca.crt: \"\"}\n---\n" + policy("p", "", svc, caRef),
			cond: map[string]string{"p": "False NoValidCACertificate; False InvalidCACertificateRef"}, msg: "key ca.crt: no PEM certificate"},
		{name: "unknown kind", objs: policy("p", "", svc, `{hostname: app.example.com, caCertificateRefs: [{group: "", kind: Secret, name: ca}]}`),
			cond: map[string]string{"p": "False NoValidCACertificate; False InvalidKind"}, msg: `kind Secret in group "" is not supported (core ConfigMaps are)`},
		{name: "one of two refs invalid: accepted, not served", objs: good + policy("p", "", svc, `{hostname: app.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}, {group: "", kind: ConfigMap, name: gone}]}`),
			cond: map[string]string{"p": "True Accepted; False InvalidCACertificateRef"}, msg: "caCertificateRefs[1]: ConfigMap default/gone not found"},
		{name: "bad SAN type", objs: good + policy("p", "", svc, `{hostname: app.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: Hostname, uri: "spiffe://x/y"}]}`),
			cond: map[string]string{"p": "False Invalid; True ResolvedRefs"}, msg: "subjectAltNames[0]: want type Hostname with hostname or URI with uri"},
		{name: "wildcard hostname", objs: good + policy("p", "", svc, strings.Replace(caRef, "app.example.com", `"*.example.com"`, 1)),
			cond: map[string]string{"p": "False Invalid; True ResolvedRefs"}, msg: `spec.validation: serverName: want a host name without port, got "*.example.com"`},
		{name: "relative URI SAN", objs: good + policy("p", "", svc, `{hostname: app.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: URI, uri: "/app"}]}`),
			cond: map[string]string{"p": "False Invalid; True ResolvedRefs"}, msg: `subjectAltNames[0].uri: want an absolute URI such as spiffe://example.com/id, got "/app"`},
		{name: "SANs", objs: good + policy("p", "", svc, `{hostname: app.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: Hostname, hostname: a.example.com}, {type: URI, uri: "spiffe://example.com/app"}]}`),
			cond: map[string]string{"p": "True Accepted; True ResolvedRefs"}, served: true, sni: "app.example.com", sans: 2},
		{name: "the oldest wins", objs: good + policy("b-old", "2026-01-01T00:00:00Z", svc, caRef) + policy("a-new", "2026-02-01T00:00:00Z", svc, strings.Replace(caRef, "app.example.com", "new.example.com", 1)),
			cond: map[string]string{"b-old": "True Accepted; True ResolvedRefs", "a-new": "False Conflicted; True ResolvedRefs"}, msg: "BackendTLSPolicy default/b-old, older, already targets Service app", served: true, sni: "app.example.com"},
		{name: "the port's policy beats the Service's", objs: good + policy("whole", "2026-01-01T00:00:00Z", svc, caRef) + policy("port", "2026-02-01T00:00:00Z", port, strings.Replace(caRef, "app.example.com", "port.example.com", 1)),
			cond: map[string]string{"whole": "True Accepted; True ResolvedRefs", "port": "True Accepted; True ResolvedRefs"}, served: true, sni: "port.example.com"},
		{name: "another port's policy", objs: good + policy("p", "", `{group: "", kind: Service, name: app, sectionName: other}`, caRef),
			cond: map[string]string{}},
		{name: "a broken policy on a Service none of our routes uses", objs: policy("p", "", `{group: "", kind: Service, name: unused}`, `{hostname: "*.x", caCertificateRefs: [{group: x, kind: Y, name: z}]}`),
			cond: map[string]string{}},
		{name: "a target of another kind", objs: good + policy("p", "", `{group: example.com, kind: Backend, name: app}`, caRef),
			cond: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Translate(parseObjects(t, []byte(btlsHead+tt.objs)).input(), Options{})
			if len(res.BackendTLSPolicies) != len(tt.cond) {
				t.Errorf("policies with status: %d, want %d", len(res.BackendTLSPolicies), len(tt.cond))
			}
			msgs := ""
			for name, want := range tt.cond {
				a := policyCond(t, res, "default/"+name, "default/gw", "Accepted")
				r := policyCond(t, res, "default/"+name, "default/gw", "ResolvedRefs")
				if a == nil || r == nil {
					t.Fatalf("%s: conditions missing: %+v", name, res.BackendTLSPolicies)
				}
				if got := fmt.Sprintf("%s %s; %s %s", a.Status, a.Reason, r.Status, r.Reason); got != want {
					t.Errorf("%s: %s (%s / %s), want %s", name, got, a.Message, r.Message, want)
				}
				msgs += a.Message + "\n" + r.Message + "\n"
			}
			if !strings.Contains(msgs, tt.msg) {
				t.Errorf("messages %q do not contain %q", msgs, tt.msg)
			}
			var b *config.Backend
			for i := range res.Backends {
				if res.Backends[i].Kubernetes.Port == "https" {
					b = &res.Backends[i]
				}
			}
			served := b != nil && b.TLS != nil
			if len(tt.cond) == 0 {
				for _, p := range res.Problems {
					if p.Kind == "BackendTLSPolicy" {
						t.Errorf("problem reported on a policy that is not ours: %s", p)
					}
				}
				if b == nil || b.TLS != nil || b.Protocol != "" {
					t.Errorf("backend %+v, want clear text", b)
				}
				return
			}
			if served != tt.served {
				t.Fatalf("served over TLS = %v, want %v (backends %+v)", served, tt.served, res.Backends)
			}
			if !served {
				if b != nil {
					t.Errorf("backend %s kept: a policy that cannot be honoured must never let requests go in clear text", b.Name)
				}
				if dr := res.Routes[0].DirectResponse; dr == nil || dr.Status != 500 {
					t.Errorf("route %+v, want a 500", res.Routes[0])
				}
				return
			}
			if b.Name != "gw.default.app.https" {
				t.Errorf("backend named %s, want gw.default.app.https: the name the admin API's weights know (package weights)", b.Name)
			}
			if b.Protocol != config.ProtocolHTTPS || b.TLS.ServerName != tt.sni || len(b.TLS.SubjectAltNames) != tt.sans || (b.TLS.CAPEM == nil) != tt.noCerts {
				t.Errorf("backend %s: protocol %s, TLS %+v", b.Name, b.Protocol, b.TLS)
			}
		})
	}
}

// tlsEcho is a TLS backend like the conformance suite's echo-basic with
// TLS: it answers with the SNI it was asked for and the common name of
// the client certificate, verified against clientCA, if one was sent.
type tlsEcho struct {
	srv *httptest.Server
}

func newTLSEcho(t *testing.T, cert certtest.Pair, clientCA *certtest.CA) *tlsEcho {
	e := &tlsEcho{}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			client = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "sni=%s client=%s", r.TLS.ServerName, client)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	e.srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError) // the handshakes the gateway rejects
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

// TestServeBackendTLS sends real requests through a real gateway, on the
// translation, to a real TLS backend: the conformance tests' requests
// (SNI from validation.hostname, the CA, the SANs, the Gateway's client
// certificate; a wrong host, CA or SAN fails with a 5xx).
func TestServeBackendTLS(t *testing.T) {
	ca, other := certtest.NewCA(t, "conformance CA"), certtest.NewCA(t, "mismatch CA")
	server := certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"abc.example.com", "spiffe://abc.example.com/test-identity", "other.example.com"}})
	client := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"flotilla-gateway"}})
	be := newTLSEcho(t, server, ca)

	var objs strings.Builder
	objs.WriteString(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flotilla}
spec: {controllerName: flotilla.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: flotilla
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mtls}
spec:
  gatewayClassName: flotilla
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: mtls.example.com}]
  tls: {backend: {clientCertificateRef: {group: "", kind: Secret, name: client}}}
---
apiVersion: v1
kind: Secret
metadata: {name: client}
type: kubernetes.io/tls
stringData:
  tls.crt: |
` + indent(client.CertPEM, 4) + `
  tls.key: |
` + indent(client.KeyPEM, 4) + `
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca}
data:
  ca.crt: |
` + indent(ca.PEM, 4) + `
---
apiVersion: v1
kind: ConfigMap
metadata: {name: mismatch-ca}
data:
  ca.crt: |
` + indent(other.PEM, 4) + `
---
apiVersion: v1
kind: ConfigMap
metadata: {name: bad-ca}
data: {ca.crt: "not a certificate"}
---
`)
	cases := []struct {
		path, validation string
		status           int
		body             string
	}{
		{"/ok", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}`, 200, "sni=abc.example.com client=none"},
		{"/other-sni", `{hostname: other.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}`, 200, "sni=other.example.com client=none"},
		{"/host-mismatch", `{hostname: mismatch.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}`, 502, ""},
		{"/cert-mismatch", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: mismatch-ca}]}`, 502, ""},
		{"/san-dns", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: Hostname, hostname: abc.example.com}]}`, 200, "sni=abc.example.com client=none"},
		{"/san-dns-mismatch", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: Hostname, hostname: dce.example.com}]}`, 502, ""},
		{"/san-uri", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: URI, uri: "spiffe://abc.example.com/test-identity"}]}`, 200, "sni=abc.example.com client=none"},
		{"/san-uri-mismatch", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: URI, uri: "spiffe://def.example.com/test-identity"}]}`, 502, ""},
		// SANs replace the hostname check: a SNI the certificate does not
		// name passes when a SAN matches.
		{"/san-not-sni", `{hostname: sni-only.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: URI, uri: "spiffe://abc.example.com/test-identity"}]}`, 200, "sni=sni-only.example.com client=none"},
		{"/multiple-sans-mismatch", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}], subjectAltNames: [{type: URI, uri: "spiffe://def.example.com/test-identity"}, {type: Hostname, hostname: def.example.com}]}`, 502, ""},
		// The SAN list still needs the CA.
		{"/san-wrong-ca", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: mismatch-ca}], subjectAltNames: [{type: Hostname, hostname: abc.example.com}]}`, 502, ""},
		{"/bad-ca", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: bad-ca}]}`, 500, ""},
		{"/mtls", `{hostname: abc.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}`, 200, "sni=abc.example.com client=flotilla-gateway"},
	}
	addr := map[string]string{}
	for i, c := range cases {
		name := fmt.Sprintf("svc%d", i)
		addr[name] = strings.TrimPrefix(be.srv.URL, "https://")
		parent := "gw"
		if c.path == "/mtls" {
			parent = "mtls"
		}
		fmt.Fprintf(&objs, `apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec: {ports: [{name: https, port: 443}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: %[1]s}
spec:
  targetRefs: [{group: "", kind: Service, name: %[1]s, sectionName: https}]
  validation: %[2]s
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %[1]s}
spec:
  parentRefs: [{name: %[3]s}]
  rules: [{matches: [{path: {type: Exact, value: %[4]s}}], backendRefs: [{name: %[1]s, port: 443}]}]
---
`, name, c.validation, parent, c.path)
	}
	res := Translate(parseObjects(t, []byte(objs.String())).input(), Options{})
	c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Routes: res.Routes}
	for _, b := range res.Backends {
		b.Kubernetes, b.Addresses = nil, []string{addr[b.Kubernetes.Service]}
		c.Backends = append(c.Backends, b)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	gw, err := gateway.New(c, gateway.Options{})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			req, err := http.NewRequest("GET", srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.path == "/mtls" {
				req.Host = "mtls.example.com"
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if resp.StatusCode != tc.status || tc.body != "" && body != tc.body {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.status, tc.body)
			}
		})
	}
}

// FuzzBackendTLSPolicy: whatever a BackendTLSPolicy and its ConfigMap say
// (the API server's validation aside), Translate never panics, the route
// stays Accepted, and what it emits is a valid config.
func FuzzBackendTLSPolicy(f *testing.F) {
	ca := certtest.NewCA(f, "ca")
	f.Add(`{targetRefs: [{group: "", kind: Service, name: app}], validation: {hostname: app.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}}`, string(ca.PEM))
	f.Add(`{targetRefs: [{group: "", kind: Service, name: app, sectionName: https}], validation: {hostname: "*.x", subjectAltNames: [{type: URI, uri: "::"}, {type: Hostname}]}}`, "garbage")
	f.Add(`{targetRefs: [{group: "", kind: Service, name: app}], validation: {hostname: "", wellKnownCACertificates: System, caCertificateRefs: [{kind: X, name: ""}]}}`, "")
	f.Fuzz(func(t *testing.T, spec, caPEM string) {
		var s gwv1.BackendTLSPolicySpec
		if err := sigsyaml.Unmarshal([]byte(spec), &s); err != nil {
			return
		}
		o := parseObjects(t, []byte(btlsHead))
		o.policies = []*gwv1.BackendTLSPolicy{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fuzz"}, Spec: s}}
		o.configMaps["default/ca"] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ca"}, Data: map[string]string{"ca.crt": caPEM}}
		res := Translate(o.input(), Options{})
		for _, p := range res.RouteParents["default/r"] {
			for _, c := range p.Conditions {
				if c.Status != metav1.ConditionTrue {
					t.Fatalf("the policy broke the route: %s %s: %s", c.Type, c.Reason, c.Message)
				}
			}
		}
		c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Backends: res.Backends, Routes: res.Routes}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("emitted an invalid config: %v\nspec: %s", err, spec)
		}
	})
}

// TestBackendTLSThroughListenerSet: a route attached to a Gateway through
// one of its ListenerSets (parentRef kind ListenerSet) is that Gateway's
// route: its TLS backends get the Gateway's backend client certificate,
// and the policy lists the Gateway among its ancestors.
func TestBackendTLSThroughListenerSet(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	client := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"flotilla-gateway"}})
	o := parseObjects(t, []byte(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: flotilla}
spec: {controllerName: flotilla.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mtls}
spec:
  gatewayClassName: flotilla
  allowedListeners: {namespaces: {from: Same}}
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: gw.example.com}]
  tls: {backend: {clientCertificateRef: {group: "", kind: Secret, name: client}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: more}
spec:
  parentRef: {name: mtls}
  listeners: [{name: extra, port: 80, protocol: HTTP, hostname: ls.example.com}]
---
apiVersion: v1
kind: Secret
metadata: {name: client}
type: kubernetes.io/tls
stringData:
  tls.crt: |
`+indent(client.CertPEM, 4)+`
  tls.key: |
`+indent(client.KeyPEM, 4)+`
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca}
data:
  ca.crt: |
`+indent(ca.PEM, 4)+`
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {ports: [{name: https, port: 443}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: "", kind: Service, name: app}]
  validation: {hostname: app.example.com, caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{kind: ListenerSet, name: more}]
  rules:
  - backendRefs: [{name: app, port: 443}]
`))
	res := Translate(o.input(), Options{})
	routeAccepted := false
	for _, p := range res.RouteParents["default/r"] {
		routeAccepted = meta.IsStatusConditionTrue(p.Conditions, "Accepted")
	}
	if !routeAccepted {
		t.Fatalf("route not accepted through the ListenerSet: %+v", res.RouteParents["default/r"])
	}
	if len(res.Backends) != 1 || res.Backends[0].TLS == nil {
		t.Fatalf("backends %+v, want one TLS backend", res.Backends)
	}
	if !bytes.Equal(res.Backends[0].TLS.CertPEM, client.CertPEM) {
		t.Errorf("the TLS backend of a route on the Gateway's ListenerSet has no client certificate (the Gateway's spec.tls.backend)")
	}
	anc := res.BackendTLSPolicies["default/p"]
	if len(anc) != 1 || anc[0].AncestorRef.Name != "mtls" {
		t.Errorf("policy ancestors %+v, want the Gateway mtls", anc)
	}
}
