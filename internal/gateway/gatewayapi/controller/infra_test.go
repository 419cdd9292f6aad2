package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/httpserver"
)

// TestServiceMeta: a Gateway's Service carries ours (managed-by, the
// Gateway, gateway-name), then spec.infrastructure's labels and
// annotations, then the publish Service's labels; an earlier one wins.
func TestServiceMeta(t *testing.T) {
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": "gateway", "key2": "from-pub"}}}
	long := strings.Repeat("a", 64)
	tests := []struct {
		name        string
		gwName      string
		inf         *gwv1.GatewayInfrastructure
		labels, ann map[string]string
	}{
		{name: "no infrastructure", gwName: "edge",
			labels: map[string]string{labelManaged: managedByValue, gwv1.GatewayNameLabelKey: "edge", "app.kubernetes.io/name": "gateway", "key2": "from-pub"},
			ann:    map[string]string{annGateway: "shop/edge"}},
		{name: "infrastructure labels and annotations, over the publish Service's", gwName: "edge",
			inf:    &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{"key2": "value2"}, Annotations: map[gwv1.AnnotationKey]gwv1.AnnotationValue{"key1": "value1"}},
			labels: map[string]string{labelManaged: managedByValue, gwv1.GatewayNameLabelKey: "edge", "app.kubernetes.io/name": "gateway", "key2": "value2"},
			ann:    map[string]string{annGateway: "shop/edge", "key1": "value1"}},
		{name: "ours cannot be overridden", gwName: "edge",
			inf: &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{labelManaged: "someone", gwv1.GatewayNameLabelKey: "other"},
				Annotations: map[gwv1.AnnotationKey]gwv1.AnnotationValue{annGateway: "x/y"}},
			labels: map[string]string{labelManaged: managedByValue, gwv1.GatewayNameLabelKey: "edge", "app.kubernetes.io/name": "gateway", "key2": "from-pub"},
			ann:    map[string]string{annGateway: "shop/edge"}},
		{name: "a name too long for a label value: no gateway-name label", gwName: long,
			labels: map[string]string{labelManaged: managedByValue, "app.kubernetes.io/name": "gateway", "key2": "from-pub"},
			ann:    map[string]string{annGateway: "shop/" + long}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := gatewayObj()
			g.Name, g.Spec.Infrastructure = tt.gwName, tt.inf
			labels, ann := serviceMeta("shop/"+tt.gwName, g, pub)
			if d := cmp.Diff(tt.labels, labels); d != "" {
				t.Errorf("labels (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.ann, ann); d != "" {
				t.Errorf("annotations (-want +got):\n%s", d)
			}
		})
	}
}

// TestGatewayInfrastructureOnService: the Lease holder puts a Gateway's
// spec.infrastructure labels and annotations on its Service, and follows
// their changes (a removed one goes).
func TestGatewayInfrastructureOnService(t *testing.T) {
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway", Labels: map[string]string{"app.kubernetes.io/name": "gateway"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	g := gatewayObj()
	g.Spec.Infrastructure = &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{"key2": "value2", "team": "a"},
		Annotations: map[gwv1.AnnotationKey]gwv1.AnnotationValue{"key1": "value1"}}
	rng := freeRange(t, 2)
	var dyn *httpserver.Dynamic
	h := startWith(t, []runtime.Object{pub}, []runtime.Object{class(), g}, perGateway(t, rng, &dyn))
	ctx := context.Background()
	svcs := h.core.CoreV1().Services("shop")
	has := func(want map[string]string, got map[string]string) error {
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
		return nil
	}
	eventually(t, "the Service carries the infrastructure metadata", func() error {
		s, err := svcs.Get(ctx, serviceName("shop", "edge"), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := has(map[string]string{"key2": "value2", "team": "a", gwv1.GatewayNameLabelKey: "edge", labelManaged: managedByValue}, s.Labels); err != nil {
			return err
		}
		return has(map[string]string{"key1": "value1", annGateway: "shop/edge"}, s.Annotations)
	})
	// The change, made again whenever the fake API server lost it: its
	// UpdateStatus stores the whole object, so a status write from a sync
	// that began before the change puts the old spec back (a real API
	// server keeps the spec on a status update).
	change := func() error {
		cur, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Spec.Infrastructure.Labels["key2"] == "changed" {
			return nil
		}
		cur.Spec.Infrastructure.Labels = map[gwv1.LabelKey]gwv1.LabelValue{"key2": "changed"}
		cur.Spec.Infrastructure.Annotations = nil
		cur.Generation++
		_, err = h.gw.GatewayV1().Gateways("shop").Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}
	eventually(t, "the Service follows the Gateway's change", func() error {
		if err := change(); err != nil {
			return err
		}
		s, err := svcs.Get(ctx, serviceName("shop", "edge"), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := s.Labels["team"]; ok {
			return fmt.Errorf("label team still there: %v", s.Labels)
		}
		if _, ok := s.Annotations["key1"]; ok {
			return fmt.Errorf("annotation key1 still there: %v", s.Annotations)
		}
		if len(s.Spec.Selector) != 0 {
			return fmt.Errorf("selector %v, want none", s.Spec.Selector)
		}
		return has(map[string]string{"key2": "changed"}, s.Labels)
	})
}

// TestServiceKeepsOthersMetadata: a label or annotation another writer
// puts on a Gateway's Service (a load balancer controller's, a user's
// kubectl annotate) stays: the controller removes only the keys it put
// there itself, so the two never take turns rewriting the Service.
func TestServiceKeepsOthersMetadata(t *testing.T) {
	pub := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gateway", Labels: map[string]string{"app.kubernetes.io/name": "gateway"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app.kubernetes.io/name": "gateway"}}}
	g := gatewayObj()
	g.Spec.Infrastructure = &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{"team": "a"},
		Annotations: map[gwv1.AnnotationKey]gwv1.AnnotationValue{"key1": "value1"}}
	rng := freeRange(t, 2)
	var dyn *httpserver.Dynamic
	h := startWith(t, []runtime.Object{pub}, []runtime.Object{class(), g}, perGateway(t, rng, &dyn))
	ctx := context.Background()
	svcs := h.core.CoreV1().Services("shop")
	name := serviceName("shop", "edge")
	eventually(t, "the Service exists with the Gateway's metadata", func() error {
		s, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Labels["team"] != "a" || s.Annotations["key1"] != "value1" {
			return fmt.Errorf("labels %v, annotations %v", s.Labels, s.Annotations)
		}
		return nil
	})
	// Another writer's annotation and label.
	eventually(t, "another writer's metadata is on the Service", func() error {
		s, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Annotations["lb.example.com/pool"] == "blue" {
			return nil
		}
		s.Annotations["lb.example.com/pool"] = "blue"
		s.Labels["owner"] = "ops"
		_, err = svcs.Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	// A change of the Gateway's metadata is followed (and proves a sync
	// ran after the other writer's): its own removed key goes, the other
	// writer's stay.
	change := func() error {
		cur, err := h.gw.GatewayV1().Gateways("shop").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Spec.Infrastructure.Labels["team"] == "b" {
			return nil
		}
		cur.Spec.Infrastructure.Labels = map[gwv1.LabelKey]gwv1.LabelValue{"team": "b"}
		cur.Spec.Infrastructure.Annotations = nil
		cur.Generation++
		_, err = h.gw.GatewayV1().Gateways("shop").Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}
	eventually(t, "the Service follows the Gateway and keeps the other writer's keys", func() error {
		if err := change(); err != nil {
			return err
		}
		s, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Labels["team"] != "b" {
			return fmt.Errorf("label team = %q, want b", s.Labels["team"])
		}
		if _, ok := s.Annotations["key1"]; ok {
			return fmt.Errorf("annotation key1, taken out of spec.infrastructure, still there: %v", s.Annotations)
		}
		if s.Annotations["lb.example.com/pool"] != "blue" || s.Labels["owner"] != "ops" {
			return fmt.Errorf("the other writer's metadata was removed: labels %v, annotations %v", s.Labels, s.Annotations)
		}
		return nil
	})
}
