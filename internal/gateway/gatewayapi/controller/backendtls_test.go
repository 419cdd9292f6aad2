package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8stesting "k8s.io/client-go/testing"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
)

// TestBackendTLSPolicyThroughTheController: a BackendTLSPolicy on a
// Service whose EndpointSlice leads to a real TLS upstream makes the
// gateway speak TLS to it with the policy's SNI and the ConfigMap's CA
// and the Gateway's client certificate; the Lease holder writes the
// policy's ancestor status through the status subresource; a ConfigMap
// changed to garbage flips the status to NoValidCACertificate and the
// requests to 500, and fixing it brings both back (the conformance
// test BackendTLSPolicy's reconcile case).
func TestBackendTLSPolicyThroughTheController(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	server := certtest.Issue(t, ca, certtest.Leaf{Hosts: []string{"abc.example.com"}})
	client := certtest.Issue(t, ca, certtest.Leaf{Client: true, Hosts: []string{"flotilla-gateway"}})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "sni=%s client=%s", r.TLS.ServerName, cn)
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	up.TLS = &tls.Config{Certificates: []tls.Certificate{server.TLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	up.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	up.StartTLS()
	t.Cleanup(up.Close)
	host, portStr, _ := net.SplitHostPort(up.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	coreObjs := []runtime.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "secure"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 80, TargetPort: intstr.FromInt32(int32(port))}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "secure-1", Labels: map[string]string{discoveryv1.LabelServiceName: "secure"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: new("https"), Port: new(int32(port))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ca"}, Data: map[string]string{"ca.crt": string(ca.PEM)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "client"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: client.CertPEM, corev1.TLSPrivateKeyKey: client.KeyPEM}},
	}
	g := gatewayObj()
	g.Spec.TLS = &gwv1.GatewayTLSConfig{Backend: &gwv1.GatewayBackendTLS{ClientCertificateRef: &gwv1.SecretObjectReference{Name: "client"}}}
	section := gwv1.SectionName("https")
	policy := &gwv1.BackendTLSPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "secure", Generation: 3},
		Spec: gwv1.BackendTLSPolicySpec{
			TargetRefs: []gwv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{Kind: "Service", Name: "secure"}, SectionName: &section}},
			Validation: gwv1.BackendTLSPolicyValidation{Hostname: "abc.example.com", CACertificateRefs: []gwv1.LocalObjectReference{{Kind: "ConfigMap", Name: "ca"}}}}}
	// Another controller's entry stays.
	policy.Status.Ancestors = []gwv1.PolicyAncestorStatus{{AncestorRef: gwv1.ParentReference{Name: "theirs"}, ControllerName: "example.com/other",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", LastTransitionTime: metav1.Now()}}}}
	h := start(t, coreObjs, []runtime.Object{class(), g, policy, routeObj("shop", "app", "app.test", ref("secure", 1))})
	ctx := context.Background()

	policyStatus := func(want string) func() error {
		return func() error {
			p, err := h.gw.GatewayV1().BackendTLSPolicies("shop").Get(ctx, "secure", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(p.Status.Ancestors) != 2 || p.Status.Ancestors[0].ControllerName != "example.com/other" {
				return fmt.Errorf("ancestors = %+v, want the other controller's and ours", p.Status.Ancestors)
			}
			a := p.Status.Ancestors[1]
			got := condition(a.Conditions, "Accepted") + " " + condition(a.Conditions, "ResolvedRefs")
			if a.AncestorRef.Name != "edge" || *a.AncestorRef.Namespace != "shop" || got != want {
				return fmt.Errorf("ancestor %v: %s, want %s", a.AncestorRef, got, want)
			}
			for _, c := range a.Conditions {
				if c.ObservedGeneration != 3 {
					return fmt.Errorf("%s observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
				}
			}
			return nil
		}
	}
	get := func(want int, body string) func() error {
		return func() error {
			code, b, err := h.get("app.test", "/x")
			if err != nil || code != want || body != "" && b != body {
				return fmt.Errorf("GET = %d %q %v, want %d %q", code, b, err, want, body)
			}
			return nil
		}
	}
	eventually(t, "policy accepted", policyStatus("True/Accepted True/ResolvedRefs"))
	eventually(t, "TLS with SNI and client certificate", get(200, "sni=abc.example.com client=flotilla-gateway"))
	eventually(t, "Gateway ResolvedRefs", func() error {
		gw, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c := condition(gw.Status.Conditions, "ResolvedRefs"); c != "True/ResolvedRefs" {
			return fmt.Errorf("Gateway ResolvedRefs = %q", c)
		}
		return nil
	})
	statusWrites := 0
	for _, a := range h.gw.Actions() {
		if a.GetVerb() == "update" && a.GetResource().Resource == "backendtlspolicies" {
			if a.(k8stesting.UpdateAction).GetSubresource() != "status" {
				t.Errorf("BackendTLSPolicy written without the status subresource: %v", a)
			}
			statusWrites++
		}
	}
	if statusWrites == 0 {
		t.Error("no BackendTLSPolicy status write seen")
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ca"}, Data: map[string]string{"ca.crt": "garbage"}}
	if _, err := h.core.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bad CA rejected", policyStatus("False/NoValidCACertificate False/InvalidCACertificateRef"))
	eventually(t, "requests fail, never unverified", get(500, ""))

	cm.Data["ca.crt"] = string(ca.PEM)
	if _, err := h.core.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CA fixed", policyStatus("True/Accepted True/ResolvedRefs"))
	eventually(t, "served again", get(200, "sni=abc.example.com client=flotilla-gateway"))
}
