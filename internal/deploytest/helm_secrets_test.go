package deploytest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestHelmSecrets: the chart's Redis password and admin token come from the
// values, or existing Secrets, or are generated; never a fixed default.
func TestHelmSecrets(t *testing.T) {
	render := func(t *testing.T, values map[string]any) []object {
		t.Helper()
		out, err := helmTemplate(values)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(out)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	secretVolume := func(objs []object, kind, name, volume string) string {
		var spec *corev1.PodSpec
		switch kind {
		case "Deployment":
			spec = &find[*appsv1.Deployment](objs, kind, "", name).Spec.Template.Spec
		default:
			spec = &find[*appsv1.StatefulSet](objs, kind, "", name).Spec.Template.Spec
		}
		for _, v := range spec.Volumes {
			if v.Name == volume && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
		return ""
	}
	t.Run("generated, different per install", func(t *testing.T) {
		a, b := render(t, nil), render(t, nil)
		for _, s := range []struct{ name, key string }{{"flotilla-redis-auth", "password"}, {"flotilla-gateway-admin", "token"}} {
			sa, sb := find[*corev1.Secret](a, "Secret", "", s.name), find[*corev1.Secret](b, "Secret", "", s.name)
			if sa == nil || sb == nil {
				t.Fatalf("no Secret %s", s.name)
			}
			if v := sa.StringData[s.key]; len(v) != 32 || v == sb.StringData[s.key] {
				t.Errorf("Secret %s key %s = %d bytes, same in two renders: %v; want 32 random characters", s.name, s.key, len(v), v == sb.StringData[s.key])
			}
		}
		if errs := validate(a); len(errs) > 0 {
			t.Errorf("validate: %v", errs)
		}
	})
	t.Run("given", func(t *testing.T) {
		objs := render(t, map[string]any{
			"redis":   map[string]any{"auth": map[string]any{"password": "given-redis-password-1"}},
			"gateway": map[string]any{"admin": map[string]any{"token": "given-admin-token-123"}},
		})
		r := find[*corev1.Secret](objs, "Secret", "", "flotilla-redis-auth")
		if r.StringData["password"] != "given-redis-password-1" || r.StringData["redis-auth.conf"] != "requirepass given-redis-password-1\n" {
			t.Errorf("redis-auth = %v", r.StringData)
		}
		if a := find[*corev1.Secret](objs, "Secret", "", "flotilla-gateway-admin"); a.StringData["token"] != "given-admin-token-123" {
			t.Errorf("gateway-admin = %v", a.StringData)
		}
	})
	t.Run("policies off are caught", func(t *testing.T) {
		objs := render(t, map[string]any{"networkPolicy": map[string]any{"enabled": false}})
		for _, o := range objs {
			if o.Kind == "NetworkPolicy" {
				t.Errorf("renders %s with networkPolicy.enabled false", o)
			}
		}
		var msgs []string
		for _, err := range validate(objs) {
			msgs = append(msgs, err.Error())
		}
		if !strings.Contains(strings.Join(msgs, "\n"), "no default-deny NetworkPolicy selects it") {
			t.Errorf("validate = %q, want the missing default deny named", msgs)
		}
	})
	t.Run("Ingress without the controller admitted is caught", func(t *testing.T) {
		objs := render(t, map[string]any{"ingress": map[string]any{"enabled": true}, "networkPolicy": map[string]any{"ingressController": []any{}}})
		var msgs []string
		for _, err := range validate(objs) {
			msgs = append(msgs, err.Error())
		}
		if !strings.Contains(strings.Join(msgs, "\n"), "Deployment/flotilla-demo: an Ingress sends clients here, but NetworkPolicies refuse the ingress controller") {
			t.Errorf("validate = %q, want the refused ingress controller named", msgs)
		}
		if errs := validate(render(t, map[string]any{"ingress": map[string]any{"enabled": true}})); len(errs) > 0 {
			t.Errorf("with the default ingressController: %v", errs)
		}
	})
	t.Run("admin hosts and pprof", func(t *testing.T) {
		objs := render(t, map[string]any{"gateway": map[string]any{"admin": map[string]any{"hosts": []any{"a.test", "b.test"}, "pprof": true}}})
		c := find[*appsv1.Deployment](objs, "Deployment", "", "flotilla-gateway").Spec.Template.Spec.Containers[0]
		if v, _ := envValue(c, "FLOTILLA_ADMIN_HOSTS"); v != "a.test,b.test" {
			t.Errorf("FLOTILLA_ADMIN_HOSTS = %q, want a.test,b.test", v)
		}
		if v, _ := envValue(c, "FLOTILLA_ADMIN_PPROF"); v != "true" {
			t.Errorf("FLOTILLA_ADMIN_PPROF = %q, want true", v)
		}
	})
	t.Run("existing Secrets", func(t *testing.T) {
		objs := render(t, map[string]any{
			"redis":   map[string]any{"auth": map[string]any{"existingSecret": "my-redis"}},
			"gateway": map[string]any{"admin": map[string]any{"existingSecret": "my-admin"}},
		})
		for _, o := range objs {
			if o.Kind == "Secret" {
				t.Errorf("renders %s although existing Secrets are named", o)
			}
		}
		for _, c := range []struct{ kind, name, volume, want string }{
			{"StatefulSet", "flotilla-redis", "auth", "my-redis"},
			{"Deployment", "flotilla-counter", "redis-auth", "my-redis"},
			{"Deployment", "flotilla-gateway", "admin-token", "my-admin"},
		} {
			if got := secretVolume(objs, c.kind, c.name, c.volume); got != c.want {
				t.Errorf("%s %s volume %s = Secret %q, want %q", c.kind, c.name, c.volume, got, c.want)
			}
		}
	})
	t.Run("TLS off by default", func(t *testing.T) {
		objs := render(t, nil)
		c := find[*appsv1.Deployment](objs, "Deployment", "", "flotilla-gateway").Spec.Template.Spec.Containers[0]
		if slices.Contains(c.Args, "--tls-addr") || len(find[*corev1.Service](objs, "Service", "", "flotilla-gateway").Spec.Ports) != 1 ||
			find[*corev1.Secret](objs, "Secret", "", "flotilla-gateway-tls") != nil {
			t.Errorf("gateway args %q, Service ports, TLS Secret: want no HTTPS without gateway.tls.enabled", c.Args)
		}
	})
	t.Run("TLS generated", func(t *testing.T) {
		values := map[string]any{"gateway": map[string]any{"tls": map[string]any{"enabled": true, "hosts": []any{"gw.example.test", "10.0.0.7"}}}}
		a, b := render(t, values), render(t, values)
		sa, sb := find[*corev1.Secret](a, "Secret", "", "flotilla-gateway-tls"), find[*corev1.Secret](b, "Secret", "", "flotilla-gateway-tls")
		if sa == nil || sb == nil || sa.Type != corev1.SecretTypeTLS {
			t.Fatalf("Secret flotilla-gateway-tls = %+v, want one of type kubernetes.io/tls", sa)
		}
		if string(sa.Data["tls.key"]) == string(sb.Data["tls.key"]) {
			t.Error("two renders generated the same key")
		}
		if _, err := tls.X509KeyPair(sa.Data["tls.crt"], sa.Data["tls.key"]); err != nil {
			t.Errorf("tls.crt and tls.key: %v", err)
		}
		block, _ := pem.Decode(sa.Data["tls.crt"])
		if block == nil {
			t.Fatal("tls.crt: no PEM block")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(sa.Data["ca.crt"]) {
			t.Fatal("ca.crt: no PEM certificate")
		}
		for _, name := range []string{"flotilla-gateway", "flotilla-gateway.flotilla-helm.svc", "flotilla-gateway.flotilla-helm.svc.cluster.local",
			"localhost", "127.0.0.1", "flaskapp.test", "minikube.test", "gw.example.test", "10.0.0.7"} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
				t.Errorf("certificate for %s: %v", name, err)
			}
		}
		if errs := validate(a); len(errs) > 0 {
			t.Errorf("validate: %v", errs)
		}
	})
	t.Run("TLS from an existing Secret", func(t *testing.T) {
		objs := render(t, map[string]any{"gateway": map[string]any{"tls": map[string]any{"enabled": true, "secretName": "my-tls"}}})
		if s := find[*corev1.Secret](objs, "Secret", "", "flotilla-gateway-tls"); s != nil {
			t.Error("renders a TLS Secret although gateway.tls.secretName names one")
		}
		if got := secretVolume(objs, "Deployment", "flotilla-gateway", "tls"); got != "my-tls" {
			t.Errorf("gateway volume tls = Secret %q, want my-tls", got)
		}
		if errs := validate(objs); len(errs) > 0 {
			t.Errorf("validate: %v", errs)
		}
	})
	for _, tt := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"short Redis password", map[string]any{"redis": map[string]any{"auth": map[string]any{"password": "short"}}}, "password"},
		{"Redis password with a space", map[string]any{"redis": map[string]any{"auth": map[string]any{"password": "a password with spaces"}}}, "password"},
		{"short admin token", map[string]any{"gateway": map[string]any{"admin": map[string]any{"token": "short"}}}, "token"},
		{"admin token with a quote", map[string]any{"gateway": map[string]any{"admin": map[string]any{"token": `0123456789abcdef"`}}}, "token"},
		{"admin host with a port", map[string]any{"gateway": map[string]any{"admin": map[string]any{"hosts": []any{"a.test:9901"}}}}, "hosts"},
		{"old per-component policy toggle", map[string]any{"gateway": map[string]any{"networkPolicy": map[string]any{"enabled": false}}}, "networkPolicy"},
		{"TLS Secret name with capitals", map[string]any{"gateway": map[string]any{"tls": map[string]any{"secretName": "My_TLS"}}}, "secretName"},
		{"TLS host with a port", map[string]any{"gateway": map[string]any{"tls": map[string]any{"hosts": []any{"a.test:443"}}}}, "hosts"},
		{"TLS validity of 0 days", map[string]any{"gateway": map[string]any{"tls": map[string]any{"validityDays": 0}}}, "validityDays"},
		{"TLS node port out of range", map[string]any{"gateway": map[string]any{"tls": map[string]any{"nodePort": 443}}}, "nodePort"},
		{"TLS enabled as a string", map[string]any{"gateway": map[string]any{"tls": map[string]any{"enabled": "yes"}}}, "enabled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := helmTemplate(tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template = %v, want a schema error naming %q", err, tt.want)
			}
		})
	}
}
