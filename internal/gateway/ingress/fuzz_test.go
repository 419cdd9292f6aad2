package ingress

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// fuzzed are the annotations whose values the fuzzer writes.
var fuzzed = []string{annRewriteTarget, annUseRegex, annWhitelist, annLimitRPS, annProxyBodySize, annProxyReadTimeout,
	annCORSOrigin, annBackendProtocol, annUpstreamHashBy, annAppRoot, annPermanentRedirect, annCanaryWeight, annCanaryByHeaderPat, annAuthRealm}

// FuzzAnnotations: whatever the annotation values and path, Translate
// never panics, an error always leaves the Ingress out, and what it serves
// always validates and compiles with the rest: one Ingress can never
// break the gateway's reload.
func FuzzAnnotations(f *testing.F) {
	f.Add(3, "/$2", "/something(/|$)(.*)")
	f.Add(0, "/", "/k8sdemo")
	f.Add(2, "10.0.0.0/8,::1", "/")
	f.Add(4, "8m", "/x")
	f.Add(5, "60", "/a")
	f.Add(6, "https://*.example.com", "/")
	f.Add(7, "GRPCS", "/")
	f.Add(8, "$http_x_user", "/")
	f.Add(9, "/app", "/")
	f.Add(10, "https://example.com:8443/p", "/")
	f.Add(11, "101", "/")
	f.Add(12, "a(b", "/")
	f.Add(1, "true", "/(a|b")
	f.Add(13, "realm\"", "/")
	f.Add(0, "/$1${2}$$", "/(x)")
	f.Fuzz(func(t *testing.T, which int, value, path string) {
		if which < 0 {
			which = -which
		}
		k := fuzzed[which%len(fuzzed)]
		main := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "main", Namespace: "default", Annotations: map[string]string{k: value, annAuthType: "basic", annAuthSecret: "users"}},
			Spec: networkingv1.IngressSpec{IngressClassName: new("flotilla"), Rules: []networkingv1.IngressRule{{Host: "app.test", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: path, PathType: new(networkingv1.PathTypeImplementationSpecific), Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "app", Port: networkingv1.ServiceBackendPort{Name: "http"}}}}}}}}}}}
		canary := main.DeepCopy()
		canary.Name = "canary"
		canary.Annotations = map[string]string{annCanary: "true", k: value, annCanaryByHeader: "X-Canary"}
		canary.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "app-v2"
		other := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default"},
			Spec: networkingv1.IngressSpec{IngressClassName: new("flotilla"), DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}}}}
		secret := &corev1.Secret{Data: map[string][]byte{"auth": []byte("u:$2y$05$abcdefghijklmnopqrstuuTPxmr0pEnvYZc84h.3ejvLrmzA2C9UG\n")}}
		res := Translate(Input{Ingresses: []*networkingv1.Ingress{main, canary, other}, Secrets: func(ns, n string) *corev1.Secret {
			if n == "users" {
				return secret
			}
			return nil
		}}, Options{})
		served := strings.Join(res.Served, " ")
		if !strings.Contains(served, "default/other") {
			t.Fatalf("an unrelated Ingress is not served: %v", res.Problems)
		}
		for _, p := range res.Problems {
			if p.Severity == Error && strings.Contains(served, "default/"+p.Name) {
				t.Fatalf("%s has an error but is served: %s", p.Name, p)
			}
			if p.Severity == Error && p.Annotation == "" && !strings.Contains(p.Message, "spec.") && !strings.Contains(p.Message, "translated config") {
				t.Fatalf("an error names neither an annotation nor a field: %s", p)
			}
		}
		c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Backends: res.Backends, Routes: res.Routes}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("served config does not validate (%s=%q, path %q): %v", k, value, path, err)
		}
		if _, err := route.CompileWith(c, route.Options{Policies: func(*config.Route) ([]route.Filter, error) { return nil, nil }}); err != nil {
			t.Fatalf("served config does not compile (%s=%q, path %q): %v", k, value, path, err)
		}
	})
}
