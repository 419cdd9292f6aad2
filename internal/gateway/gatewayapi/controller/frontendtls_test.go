package controller

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/certtest"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// TestFrontendCAFromConfigMap: a Gateway's spec.tls.frontend CA comes
// from a ConfigMap watched by the controller: the applied config asks
// for client certificates of that CA on the listener's local port (the CA
// file in the secret directory), a changed ConfigMap changes the file,
// and a deleted one fails the listener with InvalidCACertificateRef.
func TestFrontendCAFromConfigMap(t *testing.T) {
	ca1, ca2 := certtest.NewCA(t, "one"), certtest.NewCA(t, "two")
	server := certtest.Issue(t, certtest.NewCA(t, "server"), certtest.Leaf{Hosts: []string{"app.test"}})
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: server.CertPEM, corev1.TLSPrivateKeyKey: server.KeyPEM}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "client-ca"}, Data: map[string]string{"ca.crt": string(ca1.PEM)}}
	g := gatewayObj()
	g.Spec.Listeners = []gwv1.Listener{{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType,
		TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "cert"}}}}}
	g.Spec.TLS = &gwv1.GatewayTLSConfig{Frontend: &gwv1.FrontendTLSConfig{Default: gwv1.TLSConfig{Validation: &gwv1.FrontendTLSValidation{
		CACertificateRefs: []gwv1.ObjectReference{{Kind: "ConfigMap", Name: "client-ca"}}}}}}

	var mu sync.Mutex
	var last *gateway.Extra
	var dyn *httpserver.Dynamic
	rng := freeRange(t, 2)
	h := startWith(t, []runtime.Object{pub, secret, cm}, []runtime.Object{class(), g}, func(o *Options, gw *gateway.Gateway) {
		perGateway(t, rng, &dyn)(o, gw)
		apply := o.Apply
		o.Apply = func(x *gateway.Extra) error {
			mu.Lock()
			last = x
			mu.Unlock()
			return apply(x)
		}
	})
	caOnPort := func(want []byte) error {
		mu.Lock()
		x := last
		mu.Unlock()
		if x == nil || len(x.TLSPorts) != 1 || x.TLSPorts[0].ClientAuth == nil {
			return fmt.Errorf("TLSPorts %+v", x)
		}
		a := x.TLSPorts[0].ClientAuth
		if a.Mode != config.ClientAuthRequire || !filepath.IsAbs(a.CAFile) || x.TLSPorts[0].Port < int(rng.Low) || x.TLSPorts[0].Port > int(rng.High) {
			return fmt.Errorf("port %d clientAuth %+v", x.TLSPorts[0].Port, a)
		}
		got, err := os.ReadFile(a.CAFile)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("CA file holds another CA")
		}
		return nil
	}
	eventually(t, "the ConfigMap's CA on the listener's port", func() error { return caOnPort(ca1.PEM) })

	ctx := context.Background()
	cm.Data["ca.crt"] = string(ca2.PEM)
	if _, err := h.core.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the changed CA", func() error { return caOnPort(ca2.PEM) })

	if err := h.core.CoreV1().ConfigMaps("shop").Delete(ctx, "client-ca", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the listener fails without its ConfigMap", func() error {
		gw, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(gw.Status.Listeners) != 1 {
			return fmt.Errorf("listeners %+v", gw.Status.Listeners)
		}
		cs := gw.Status.Listeners[0].Conditions
		if got := condition(cs, "ResolvedRefs"); got != "False/InvalidCACertificateRef" {
			return fmt.Errorf("ResolvedRefs %s", got)
		}
		if got := condition(cs, "Accepted"); got != "False/NoValidCACertificate" {
			return fmt.Errorf("Accepted %s", got)
		}
		for _, c := range cs {
			if c.Type == "ResolvedRefs" && !strings.Contains(c.Message, "ConfigMap shop/client-ca not found") {
				return fmt.Errorf("message %q", c.Message)
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(last.TLSPorts) != 0 {
		t.Errorf("TLSPorts %+v after the CA went: want the port gone with its listener", last.TLSPorts)
	}
}

// TestStripConfigMap: the cluster-wide ConfigMap informer holds only the
// CA key of each ConfigMap (Data or BinaryData), not the rest of its data,
// annotations or managed fields.
func TestStripConfigMap(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for _, tt := range []struct {
		name       string
		cm         *corev1.ConfigMap
		data       map[string]string
		binaryData map[string][]byte
	}{
		{"other data only", &corev1.ConfigMap{Data: map[string]string{"app.yaml": big}, BinaryData: map[string][]byte{"blob": []byte(big)}}, nil, nil},
		{"ca.crt and more", &corev1.ConfigMap{Data: map[string]string{"ca.crt": "PEM", "app.yaml": big}}, map[string]string{"ca.crt": "PEM"}, nil},
		{"ca.crt as binary data", &corev1.ConfigMap{BinaryData: map[string][]byte{"ca.crt": []byte("PEM"), "blob": []byte(big)}}, nil, map[string][]byte{"ca.crt": []byte("PEM")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cm.ObjectMeta = metav1.ObjectMeta{Namespace: "ns", Name: "cm", ResourceVersion: "7", UID: "u",
				Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": big},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}
			got, err := stripConfigMap(tt.cm)
			if err != nil {
				t.Fatal(err)
			}
			cm := got.(*corev1.ConfigMap)
			if cm.Namespace != "ns" || cm.Name != "cm" || cm.ResourceVersion != "7" || cm.UID != "u" {
				t.Errorf("identity lost: %+v", cm.ObjectMeta)
			}
			if len(cm.Annotations) != 0 || len(cm.ManagedFields) != 0 {
				t.Errorf("annotations %d, managed fields %d kept", len(cm.Annotations), len(cm.ManagedFields))
			}
			if fmt.Sprint(cm.Data) != fmt.Sprint(tt.data) || fmt.Sprint(cm.BinaryData) != fmt.Sprint(tt.binaryData) {
				t.Errorf("data %v, binary data %v; want %v, %v", cm.Data, cm.BinaryData, tt.data, tt.binaryData)
			}
		})
	}
	// Not a ConfigMap (a tombstone): passed through.
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/cm"}
	if got, _ := stripConfigMap(tomb); got != tomb {
		t.Errorf("tombstone changed: %v", got)
	}
}
