package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// object is one rendered manifest, decoded into its API type.
type object struct {
	Kind, Name, Namespace string
	Obj                   any // a pointer to the API type, e.g. *appsv1.Deployment
}

func (o object) String() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// serviceMonitor is the part of the Prometheus operator's ServiceMonitor
// (monitoring.coreos.com/v1) that the chart and the component use, so a
// misspelt field fails the strict decode as it would for a built-in kind.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// metricTemplate is Flagger's MetricTemplate (flagger.app/v1beta1), as
// components/flagger uses it.
type metricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Provider struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"provider"`
		Query string `json:"query"`
	} `json:"spec"`
}

// kinds lists every kind deploy/ may produce. A kind missing here fails the
// tests: add it together with the checks it needs.
var kinds = map[string]func() any{
	"v1/ConfigMap":                                    func() any { return new(corev1.ConfigMap) },
	"v1/Namespace":                                    func() any { return new(corev1.Namespace) },
	"v1/PersistentVolume":                             func() any { return new(corev1.PersistentVolume) },
	"v1/PersistentVolumeClaim":                        func() any { return new(corev1.PersistentVolumeClaim) },
	"v1/Pod":                                          func() any { return new(corev1.Pod) },
	"v1/Secret":                                       func() any { return new(corev1.Secret) },
	"v1/Service":                                      func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                               func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                              func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                             func() any { return new(appsv1.StatefulSet) },
	"autoscaling/v2/HorizontalPodAutoscaler":          func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/Ingress":                    func() any { return new(networkingv1.Ingress) },
	"networking.k8s.io/v1/IngressClass":               func() any { return new(networkingv1.IngressClass) },
	"networking.k8s.io/v1/NetworkPolicy":              func() any { return new(networkingv1.NetworkPolicy) },
	"policy/v1/PodDisruptionBudget":                   func() any { return new(policyv1.PodDisruptionBudget) },
	"rbac.authorization.k8s.io/v1/Role":               func() any { return new(rbacv1.Role) },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() any { return new(rbacv1.RoleBinding) },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return new(rbacv1.ClusterRole) },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return new(rbacv1.ClusterRoleBinding) },
	"storage.k8s.io/v1/StorageClass":                  func() any { return new(storagev1.StorageClass) },
	"monitoring.coreos.com/v1/ServiceMonitor":         func() any { return new(serviceMonitor) },
	"flagger.app/v1beta1/MetricTemplate":              func() any { return new(metricTemplate) },
	"gateway.networking.k8s.io/v1/GatewayClass":       func() any { return new(gwv1.GatewayClass) },
	"gateway.networking.k8s.io/v1/Gateway":            func() any { return new(gwv1.Gateway) },
	"gateway.networking.k8s.io/v1/HTTPRoute":          func() any { return new(gwv1.HTTPRoute) },
}

// decodeAll splits a multi-document YAML stream and strictly decodes each
// document: unknown or misspelt fields and duplicate keys are errors.
func decodeAll(stream []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var out []object
	var errs []error
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		o, err := decode(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
			continue
		}
		out = append(out, o)
	}
	return out, errors.Join(errs...)
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for line := range strings.SplitSeq(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

func decode(doc []byte) (object, error) {
	var tm struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return object{}, err
	}
	key := tm.APIVersion + "/" + tm.Kind
	o := object{Kind: tm.Kind, Name: tm.Metadata.Name, Namespace: tm.Metadata.Namespace}
	newObj, ok := kinds[key]
	if !ok {
		return o, fmt.Errorf("%s: unexpected kind %q", o, key)
	}
	o.Obj = newObj()
	if err := yaml.UnmarshalStrict(doc, o.Obj); err != nil {
		return o, fmt.Errorf("%s: %w", o, err)
	}
	if o.Name == "" {
		return o, fmt.Errorf("%s: metadata.name is empty", key)
	}
	return o, nil
}
