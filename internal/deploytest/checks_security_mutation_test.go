package deploytest

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestValidateCatchesExposure breaks the local overlay's edge protection in
// one way at a time: routes that expose private paths or other methods,
// missing or loose NetworkPolicies, Redis without a password, an admin API
// without a token, a gateway whose global rate limits cannot reach Redis
// or its password. Each must be named by validate.
func TestValidateCatchesExposure(t *testing.T) {
	good := kustomize(t, filepath.Join(kustomizeRoot, "local"))
	deploy := func(objs []object, name string) *appsv1.Deployment {
		return find[*appsv1.Deployment](objs, "Deployment", "flotilla", name)
	}
	policy := func(objs []object, name string) *networkingv1.NetworkPolicy {
		return find[*networkingv1.NetworkPolicy](objs, "NetworkPolicy", "flotilla", name)
	}
	drop := func(objs []object, kind, name string) []object {
		return slices.DeleteFunc(objs, func(o object) bool { return o.Kind == kind && o.Name == name })
	}
	routes := func(old, new string) func([]object) []object {
		return func(objs []object) []object {
			cm := find[*corev1.ConfigMap](objs, "ConfigMap", "flotilla", "gateway")
			if !strings.Contains(cm.Data["gateway.yaml"], old) {
				t.Fatalf("routes have no %q", old)
			}
			cm.Data["gateway.yaml"] = strings.Replace(cm.Data["gateway.yaml"], old, new, 1)
			return objs
		}
	}
	dropEnv := func(name, env string) func([]object) []object {
		return func(objs []object) []object {
			c := &deploy(objs, name).Spec.Template.Spec.Containers[0]
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == env })
			return objs
		}
	}
	redis := func(objs []object) *corev1.Container {
		return &find[*appsv1.StatefulSet](objs, "StatefulSet", "flotilla", "redis").Spec.Template.Spec.Containers[0]
	}
	secret := func(objs []object, prefix string) *corev1.Secret {
		for _, o := range objs {
			if s, ok := o.Obj.(*corev1.Secret); ok && strings.HasPrefix(o.Name, prefix+"-") {
				return s
			}
		}
		t.Fatalf("no Secret %s-<hash>", prefix)
		return nil
	}
	tests := []struct {
		name   string
		mutate func([]object) []object
		want   string
	}{
		{"route exposes /counter/metrics", routes(`"/(counter|demo|limited)/(healthz|readyz|metrics)(/.*)?"`, `"/(counter|demo|limited)/(healthz|readyz)(/.*)?"`),
			"route counter: GET gateway.test/counter/metrics reaches backend counter as /metrics"},
		{"route exposes the demo's readiness switch", routes(`"/(counter|demo|limited)/(healthz|readyz|metrics)(/.*)?"`, `"/(counter|demo|limited)/(healthz|metrics)(/.*)?"`),
			"route demo: GET gateway.test/demo/readyz/disable reaches backend demo as /readyz/disable"},
		{"route exposes flaskapp.test/flask/metrics", routes(`"/flask/(healthz|readyz|metrics)(/.*)?"`, `"/flask/(healthz|readyz)(/.*)?"`),
			"route flask: GET flaskapp.test/flask/metrics reaches backend counter as /metrics"},
		{"route exposes minikube.test/healthz", routes(`"/(healthz|readyz|metrics)(/.*)?"`, `"/(readyz|metrics)(/.*)?"`),
			"route minikube: GET minikube.test/healthz reaches backend demo as /healthz"},
		{"route takes every method", routes("      methods: [GET, HEAD]\n", ""),
			"route flask: sends every method to its backends"},
		{"route takes POST", routes("methods: [GET, HEAD]", "methods: [GET, HEAD, POST]"),
			"route flask: sends POST to its backends"},
		{"no default deny", func(objs []object) []object { return drop(objs, "NetworkPolicy", "default-deny") },
			"Deployment flotilla/gateway: no default-deny NetworkPolicy selects it"},
		{"default deny that denies no egress", func(objs []object) []object {
			policy(objs, "default-deny").Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			return objs
		}, "Deployment flotilla/gateway: no default-deny NetworkPolicy selects it"},
		{"no gateway policy", func(objs []object) []object { return drop(objs, "NetworkPolicy", "gateway") },
			"NetworkPolicies refuse clients on the gateway's http port"},
		{"gateway admin port open to the world", func(objs []object) []object {
			policy(objs, "gateway").Spec.Ingress[1].From = nil
			return objs
		}, "NetworkPolicies open the gateway's admin port to the world"},
		{"gateway cannot resolve its backends", func(objs []object) []object {
			np := policy(objs, "gateway")
			np.Spec.Egress = np.Spec.Egress[:1]
			return objs
		}, "NetworkPolicies keep the gateway from DNS"},
		{"no counter policy", func(objs []object) []object { return drop(objs, "NetworkPolicy", "counter") },
			"NetworkPolicies keep the counter from Redis"},
		{"NodePort entry refused", func(objs []object) []object { return drop(objs, "NetworkPolicy", "direct-entry-nodeport") },
			"Deployment flotilla/demo: a NodePort or LoadBalancer Service sends clients here, but NetworkPolicies refuse them"},
		{"demo open to the world without an entry Service", func(objs []object) []object {
			find[*corev1.Service](objs, "Service", "flotilla", "demo-nodeport").Spec.Type = corev1.ServiceTypeClusterIP
			find[*corev1.Service](objs, "Service", "flotilla", "demo-nodeport").Spec.Ports[0].NodePort = 0
			return objs
		}, "Deployment flotilla/demo: NetworkPolicies open the http port to the world, but no NodePort"},
		{"redis may connect out", func(objs []object) []object {
			policy(objs, "redis").Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{}}
			return objs
		}, "NetworkPolicies let Redis connect out"},
		{"the demo may reach Redis", func(objs []object) []object {
			np := policy(objs, "redis")
			np.Spec.Ingress[0].From[0].PodSelector.MatchExpressions[0].Values = []string{"counter", "gateway", "demo"}
			return objs
		}, "admits demo to Redis; only the counter and the gateway"},
		{"redis without password", func(objs []object) []object {
			c := redis(objs)
			i := slices.Index(c.Command, "--include")
			c.Command = slices.Delete(c.Command, i, i+2)
			return objs
		}, "Redis has no password"},
		{"redis password on the command line", func(objs []object) []object {
			c := redis(objs)
			c.Command = append(c.Command, "--requirepass", "0123456789abcdef0123")
			return objs
		}, "the Redis password is on the command line"},
		{"redis protected mode off", func(objs []object) []object {
			c := redis(objs)
			c.Command[slices.Index(c.Command, "--protected-mode")+1] = "no"
			return objs
		}, "redis-server runs without --protected-mode yes"},
		{"counter without the password", dropEnv("counter", "FLOTILLA_REDIS_PASSWORD_FILE"),
			"the counter reads no Redis password (--redis-password-file)"},
		{"counter with another password", func(objs []object) []object {
			secret(objs, "redis-auth").Data["password"] = []byte("another-password-0123")
			return objs
		}, "the counter's Redis password (Secret redis-auth-"},
		{"admin API without a token", dropEnv("gateway", "FLOTILLA_ADMIN_TOKEN_FILE"),
			"the admin API listens on :9901 without --admin-token-file"},
		{"admin token too short", func(objs []object) []object {
			secret(objs, "gateway-admin").Data["token"] = []byte("short\n")
			return objs
		}, "the admin token (Secret gateway-admin-"},
		{"admin token not from a Secret", func(objs []object) []object {
			c := &deploy(objs, "gateway").Spec.Template.Spec.Containers[0]
			for i := range c.Env {
				if c.Env[i].Name == "FLOTILLA_ADMIN_TOKEN_FILE" {
					c.Env[i].Value = "/etc/flotilla/gateway/gateway.yaml"
				}
			}
			return objs
		}, "--admin-token-file /etc/flotilla/gateway/gateway.yaml is not a key of a mounted Secret"},
		{"gRPC route without the gRPC content type", routes("      headers: [{name: Content-Type, value: application/grpc}]\n", ""),
			"route grpc-health: sends POST to its backends"},
		{"gRPC route for a whole package", routes("value: /flotilla.demo.v1.Echo}", "value: /flotilla.demo.v1}"),
			"route grpc-echo: sends POST to its backends"},
		{"gRPC route that takes GET too", routes("methods: [POST]", "methods: [POST, GET]"),
			"route grpc-health: sends POST to its backends"},
		{"https port closed", func(objs []object) []object {
			np := policy(objs, "gateway")
			np.Spec.Ingress[0].Ports = np.Spec.Ingress[0].Ports[:1]
			return objs
		}, "NetworkPolicies refuse clients on the gateway's https port"},
		{"https without a Service port", func(objs []object) []object {
			for _, name := range []string{"gateway", "gateway-nodeport"} {
				svc := find[*corev1.Service](objs, "Service", "flotilla", name)
				svc.Spec.Ports = svc.Spec.Ports[:1]
			}
			return objs
		}, "gateway serves HTTPS on :8443 but no Service has a port for it"},
		{"https port not listened on", func(objs []object) []object {
			c := &deploy(objs, "gateway").Spec.Template.Spec.Containers[0]
			c.Args = slices.DeleteFunc(c.Args, func(a string) bool { return a == "--tls-addr" || a == ":8443" })
			return objs
		}, "container port https (8443) is not listened on"},
		{"--tls-addr without a tls section", routes("tls:\n  certificates:\n    - {certFile: /etc/flotilla/tls/tls.crt, keyFile: /etc/flotilla/tls/tls.key}\n  minVersion: \"1.2\"\n", ""),
			"gateway runs with --tls-addr :8443 but its routes have no tls section"},
		{"TLS Secret mounted read-write", func(objs []object) []object {
			c := &deploy(objs, "gateway").Spec.Template.Spec.Containers[0]
			for i := range c.VolumeMounts {
				if c.VolumeMounts[i].Name == "tls" {
					c.VolumeMounts[i].ReadOnly = false
				}
			}
			return objs
		}, "the TLS Secret volume tls is mounted read-write at /etc/flotilla/tls"},
		{"TLS certificate by subPath", func(objs []object) []object {
			c := &deploy(objs, "gateway").Spec.Template.Spec.Containers[0]
			for i := range c.VolumeMounts {
				if c.VolumeMounts[i].Name == "tls" {
					c.VolumeMounts[i].MountPath, c.VolumeMounts[i].SubPath = "/etc/flotilla/tls/tls.crt", "tls.crt"
				}
			}
			return objs
		}, "tls file /etc/flotilla/tls/tls.crt is not in a Secret volume mounted as the directory /etc/flotilla/tls/"},
		{"TLS Secret of the wrong type", func(objs []object) []object {
			return append(objs, object{Kind: "Secret", Name: "gateway-tls", Namespace: "flotilla", Obj: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "gateway-tls", Namespace: "flotilla"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"tls.crt": nil, "tls.key": nil}}})
		}, `TLS Secret gateway-tls is of type "Opaque", want "kubernetes.io/tls"`},
		{"gateway without the Redis password mount", func(objs []object) []object {
			c := &deploy(objs, "gateway").Spec.Template.Spec.Containers[0]
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/flotilla/redis" })
			return objs
		}, "Deployment flotilla/gateway: redis.passwordFile /etc/flotilla/redis/password is not a key of a Secret mounted in the gateway"},
		{"gateway's Redis password from another key", func(objs []object) []object {
			for _, v := range deploy(objs, "gateway").Spec.Template.Spec.Volumes {
				if v.Secret != nil && strings.HasPrefix(v.Secret.SecretName, "redis-auth") {
					v.Secret.Items[0].Key = "redis-auth.conf"
				}
			}
			return objs
		}, "the gateway's Redis password (Secret redis-auth-"},
		{"gateway's redis section without passwordFile", routes("  passwordFile: /etc/flotilla/redis/password\n", ""),
			"the gateway's redis section has no passwordFile, but Redis requires a password"},
		{"gateway's redis address names no Service", routes("address: redis:6379", "address: cache:6379"),
			`redis.address "cache:6379": no Service cache in namespace "flotilla"`},
		{"gateway's redis address on a port Redis does not serve", routes("address: redis:6379", "address: redis:6380"),
			`redis.address "redis:6380": Service redis has no port 6380`},
		{"gateway cannot reach Redis", func(objs []object) []object {
			np := policy(objs, "gateway")
			np.Spec.Egress = slices.DeleteFunc(np.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
				return len(r.Ports) == 1 && r.Ports[0].Port.IntValue() == 6379
			})
			return objs
		}, "Deployment flotilla/gateway: NetworkPolicies keep the gateway from Redis"},
		{"Redis refuses the gateway", func(objs []object) []object {
			np := policy(objs, "redis")
			np.Spec.Ingress[0].From[0].PodSelector.MatchExpressions[0].Values = []string{"counter"}
			return objs
		}, "StatefulSet flotilla/redis: NetworkPolicies refuse the gateway"},
		{"pprof on", func(objs []object) []object {
			c := &deploy(objs, "gateway").Spec.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "FLOTILLA_ADMIN_PPROF", Value: "true"})
			return objs
		}, "--admin-pprof is on in a shipped configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := decodeAll(good)
			if err != nil {
				t.Fatal(err)
			}
			if errs := validate(objs); len(errs) > 0 {
				t.Fatalf("the unbroken overlay fails: %v", errs)
			}
			errs := validate(tt.mutate(objs))
			// errors.Join of none is nil: a mutation nothing caught.
			if err := errors.Join(errs...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("validate() = %v, want an error containing %q", errs, tt.want)
			}
		})
	}
}
