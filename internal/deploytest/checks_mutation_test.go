package deploytest

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestValidateCatches breaks a valid render in one way at a time and checks
// that validate (or the strict decoder) names the problem: the checks that
// guard the real manifests can fail.
func TestValidateCatches(t *testing.T) {
	good := kustomize(t, filepath.Join(kustomizeRoot, "local"))
	deploy := func(objs []object, name string) *appsv1.Deployment {
		return find[*appsv1.Deployment](objs, "Deployment", "flotilla", name)
	}
	tests := []struct {
		name   string
		yaml   func([]byte) []byte // optional edit of the YAML stream
		mutate func(objs []object) []object
		want   string
	}{
		{
			name: "misspelt field",
			yaml: func(b []byte) []byte { return bytes.Replace(b, []byte("  replicas: 2\n"), []byte("  replica: 2\n"), 1) },
			want: `Deployment flotilla/counter: error unmarshaling JSON: while decoding JSON: json: unknown field "replica"`,
		},
		{
			name: "a Secret the render does not create",
			mutate: func(objs []object) []object {
				for i, v := range deploy(objs, "gateway").Spec.Template.Spec.Volumes {
					if v.Secret != nil && v.Name != "tls" {
						deploy(objs, "gateway").Spec.Template.Spec.Volumes[i].Secret.SecretName = "no-such-secret"
						deploy(objs, "gateway").Spec.Template.Spec.Volumes[i].Secret.Optional = nil
					}
				}
				return objs
			},
			want: `uses Secret "no-such-secret", which this render does not create`,
		},
		{
			name: "a key the Secret does not hold",
			mutate: func(objs []object) []object {
				for i, v := range deploy(objs, "gateway").Spec.Template.Spec.Volumes {
					if v.Name == "redis-auth" {
						deploy(objs, "gateway").Spec.Template.Spec.Volumes[i].Secret.Items[0].Key = "passwd"
						deploy(objs, "gateway").Spec.Template.Spec.Volumes[i].Secret.Optional = nil
					}
				}
				return objs
			},
			want: `uses key "passwd" of Secret "redis-auth-`,
		},
		{
			name: "no readiness probe",
			mutate: func(objs []object) []object {
				deploy(objs, "counter").Spec.Template.Spec.Containers[0].ReadinessProbe = nil
				return objs
			},
			want: "container counter: has no readinessProbe",
		},
		{
			name: "liveness probe on the wrong port",
			mutate: func(objs []object) []object {
				deploy(objs, "demo").Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromString("metrics")
				return objs
			},
			want: "livenessProbe port metrics is not a container port",
		},
		{
			name: "privilege escalation",
			mutate: func(objs []object) []object {
				yes := true
				deploy(objs, "demo").Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes
				return objs
			},
			want: "container demo: allowPrivilegeEscalation is not false",
		},
		{
			name: "no memory limit",
			mutate: func(objs []object) []object {
				delete(deploy(objs, "gateway").Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
				return objs
			},
			want: "container gateway: needs cpu and memory limits",
		},
		{
			name: "grace period shorter than drain and shutdown",
			mutate: func(objs []object) []object {
				g := int64(15)
				deploy(objs, "counter").Spec.Template.Spec.TerminationGracePeriodSeconds = &g
				return objs
			},
			want: "terminationGracePeriodSeconds 15s is not above drain delay 10s + shutdown timeout 10s",
		},
		{
			name: "env that is no flag",
			mutate: func(objs []object) []object {
				c := &deploy(objs, "counter").Spec.Template.Spec.Containers[0]
				c.Env = append(c.Env, corev1.EnvVar{Name: "FLOTILLA_REDIS_ADRESS", Value: "redis:6379"})
				return objs
			},
			want: "env FLOTILLA_REDIS_ADRESS is not a flag of flotilla counter",
		},
		{
			name: "no POD_NAME",
			mutate: func(objs []object) []object {
				c := &deploy(objs, "demo").Spec.Template.Spec.Containers[0]
				c.Env = c.Env[1:]
				return objs
			},
			want: "POD_NAME is not set from the downward API",
		},
		{
			name: "service targets a port nobody exposes",
			mutate: func(objs []object) []object {
				find[*corev1.Service](objs, "Service", "flotilla", "counter").Spec.Ports[0].TargetPort = intstr.FromString("web")
				return objs
			},
			want: "Service flotilla/counter: port http targets web",
		},
		{
			name: "selector that selects nothing",
			mutate: func(objs []object) []object {
				find[*corev1.Service](objs, "Service", "flotilla", "demo").Spec.Selector["app.kubernetes.io/name"] = "k8sdemo"
				return objs
			},
			want: "Service flotilla/demo: selector map[app.kubernetes.io/name:k8sdemo] selects no workload",
		},
		{
			name: "duplicate nodePort",
			mutate: func(objs []object) []object {
				find[*corev1.Service](objs, "Service", "flotilla", "demo-nodeport").Spec.Ports[0].NodePort = 30080
				return objs
			},
			want: "nodePort 30080 already used",
		},
		{
			name: "deployment without a disruption budget",
			mutate: func(objs []object) []object {
				for i, o := range objs {
					if o.Kind == "PodDisruptionBudget" && o.Name == "demo" {
						return append(objs[:i], objs[i+1:]...)
					}
				}
				return objs
			},
			want: "Deployment flotilla/demo: covered by 0 PodDisruptionBudgets",
		},
		{
			name: "rolling update that may drop below the replica count",
			mutate: func(objs []object) []object {
				one := intstr.FromInt(1)
				deploy(objs, "counter").Spec.Strategy.RollingUpdate.MaxUnavailable = &one
				return objs
			},
			want: "must set maxUnavailable: 0",
		},
		{
			name: "demo may reach Redis",
			mutate: func(objs []object) []object {
				np := find[*networkingv1.NetworkPolicy](objs, "NetworkPolicy", "flotilla", "redis")
				np.Spec.Ingress[0].From[0].PodSelector.MatchExpressions[0].Values = []string{"counter", "demo"}
				return objs
			},
			want: "admits demo to Redis",
		},
		{
			name: "redis without append-only file",
			mutate: func(objs []object) []object {
				ss := find[*appsv1.StatefulSet](objs, "StatefulSet", "flotilla", "redis")
				ss.Spec.Template.Spec.Containers[0].Command = []string{"redis-server", "--dir", "/data"}
				return objs
			},
			want: "redis-server runs without --appendonly yes",
		},
		{
			name: "redis run bare without a writable /data",
			mutate: func(objs []object) []object {
				c := &find[*appsv1.StatefulSet](objs, "StatefulSet", "flotilla", "redis").Spec.Template.Spec.Containers[0]
				c.Command, c.Args = nil, nil
				for i := range c.VolumeMounts {
					if c.VolumeMounts[i].MountPath == "/data" {
						c.VolumeMounts[i].MountPath = "/var/lib/redis"
					}
				}
				return objs
			},
			want: "redis-server run bare writes to its working directory /data, which is not a writable volume mount",
		},
		{
			name: "hostPath volume",
			mutate: func(objs []object) []object {
				s := &deploy(objs, "demo").Spec.Template.Spec
				s.Volumes = append(s.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
				return objs
			},
			want: "volume host is a hostPath",
		},
		{
			name: "gateway backend through DNS",
			mutate: func(objs []object) []object {
				cm := find[*corev1.ConfigMap](objs, "ConfigMap", "flotilla", "gateway")
				cm.Data["gateway.yaml"] = strings.Replace(cm.Data["gateway.yaml"], "kubernetes: {service: counter, port: http}", `addresses: ["counter-headless:8080"]`, 1)
				return objs
			},
			want: "backend counter lists addresses; want kubernetes: {service, port}",
		},
		{
			name: "gateway backend through a ClusterIP Service's DNS name",
			mutate: func(objs []object) []object {
				cm := find[*corev1.ConfigMap](objs, "ConfigMap", "flotilla", "gateway")
				cm.Data["gateway.yaml"] = strings.Replace(cm.Data["gateway.yaml"], "kubernetes: {service: counter, port: http}", `addresses: ["counter:8080"]`, 1)
				return objs
			},
			want: `backend counter address "counter:8080": Service counter is not headless`,
		},
		{
			name: "DNS backend with a rollout faster than its discovery",
			mutate: func(objs []object) []object {
				cm := find[*corev1.ConfigMap](objs, "ConfigMap", "flotilla", "gateway")
				cm.Data["gateway.yaml"] = strings.Replace(cm.Data["gateway.yaml"], "kubernetes: {service: demo, port: http}", `addresses: ["demo-headless:8080"]`+"\n    resolveInterval: 2s", 1)
				return objs
			},
			want: "Deployment flotilla/demo: minReadySeconds 0 is below the 34s the gateway may take to discover a new pod",
		},
		{
			name: "gateway backend on a missing Service",
			mutate: func(objs []object) []object {
				cm := find[*corev1.ConfigMap](objs, "ConfigMap", "flotilla", "gateway")
				cm.Data["gateway.yaml"] = strings.Replace(cm.Data["gateway.yaml"], "service: counter,", "service: flask-app,", 1)
				return objs
			},
			want: `backend counter: no Service flask-app in namespace "flotilla"`,
		},
		{
			name: "gateway backend on a port the Service lacks",
			mutate: func(objs []object) []object {
				cm := find[*corev1.ConfigMap](objs, "ConfigMap", "flotilla", "gateway")
				cm.Data["gateway.yaml"] = strings.Replace(cm.Data["gateway.yaml"], "service: counter, port: http", "service: counter, port: web", 1)
				return objs
			},
			want: `backend counter: Service counter has no port "web"`,
		},
		{
			name: "gateway without its RoleBinding",
			mutate: func(objs []object) []object {
				return slices.DeleteFunc(objs, func(o object) bool { return o.Kind == "RoleBinding" })
			},
			want: `backend counter: service account gateway may not list EndpointSlices in namespace "flotilla"`,
		},
		{
			name: "gateway without a token",
			mutate: func(objs []object) []object {
				no := false
				deploy(objs, "gateway").Spec.Template.Spec.AutomountServiceAccountToken = &no
				return objs
			},
			want: "backend counter uses kubernetes discovery, but the pod mounts no service account token",
		},
		{
			name: "Role grants another resource",
			mutate: func(objs []object) []object {
				r := find[*rbacv1.Role](objs, "Role", "flotilla", "gateway-endpointslices")
				r.Rules = append(r.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})
				return objs
			},
			want: "Role flotilla/gateway-endpointslices: rule 1 grants get on /secrets, which no part of Flotilla needs",
		},
		{
			name: "Role grants writes",
			mutate: func(objs []object) []object {
				r := find[*rbacv1.Role](objs, "Role", "flotilla", "gateway-endpointslices")
				r.Rules[0].Verbs = append(r.Rules[0].Verbs, "delete")
				return objs
			},
			want: "Role flotilla/gateway-endpointslices: rule 0 grants delete on discovery.k8s.io/endpointslices",
		},
		{
			name: "Role grants everything",
			mutate: func(objs []object) []object {
				r := find[*rbacv1.Role](objs, "Role", "flotilla", "gateway-endpointslices")
				r.Rules[0].Resources = []string{"*"}
				return objs
			},
			want: "rule 0 grants get on discovery.k8s.io/*",
		},
		{
			name: "ClusterRole reading pods",
			yaml: func(b []byte) []byte {
				return append(b, []byte("---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\nrules: [{apiGroups: [\"\"], resources: [pods], verbs: [list]}]\n")...)
			},
			want: "ClusterRole/x: rule 0 grants list on /pods, which no part of Flotilla needs",
		},
		{
			name: "RoleBinding to a user",
			mutate: func(objs []object) []object {
				rb := find[*rbacv1.RoleBinding](objs, "RoleBinding", "flotilla", "gateway-endpointslices")
				rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: "User", Name: "alice"})
				return objs
			},
			want: "binds User flotilla/alice, not a service account of the render",
		},
		{
			name: "service account that mounts its token everywhere",
			mutate: func(objs []object) []object {
				find[*corev1.ServiceAccount](objs, "ServiceAccount", "flotilla", "gateway").AutomountServiceAccountToken = nil
				return objs
			},
			want: "ServiceAccount flotilla/gateway: mounts its token in every pod that uses it",
		},
		{
			name: "token on an app pod",
			mutate: func(objs []object) []object {
				yes := true
				s := &deploy(objs, "counter").Spec.Template.Spec
				s.ServiceAccountName, s.AutomountServiceAccountToken = "gateway", &yes
				return objs
			},
			want: "Deployment flotilla/counter: mounts the token of service account gateway; only the gateway needs the API",
		},
		{
			name: "gateway cut off from the API server",
			mutate: func(objs []object) []object {
				np := find[*networkingv1.NetworkPolicy](objs, "NetworkPolicy", "flotilla", "gateway")
				np.Spec.Egress = slices.DeleteFunc(np.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
					return slices.ContainsFunc(r.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntValue() == 6443 })
				})
				return objs
			},
			want: "NetworkPolicies keep the gateway from the API server (TCP 443)",
		},
		{
			name: "admin API on loopback",
			mutate: func(objs []object) []object {
				c := &deploy(objs, "gateway").Spec.Template.Spec.Containers[0]
				c.Args = append(c.Args, "--admin-addr=127.0.0.1:9901")
				return objs
			},
			want: "--admin-addr listens on 127.0.0.1:9901, which only the pod itself can reach",
		},
		{
			name: "listener without container port",
			mutate: func(objs []object) []object {
				c := &deploy(objs, "counter").Spec.Template.Spec.Containers[0]
				c.Env = append(c.Env, corev1.EnvVar{Name: "FLOTILLA_ADDR", Value: ":9090"})
				return objs
			},
			want: "--addr listens on :9090, which is no container port",
		},
		{
			name: "gateway config mounted with subPath",
			mutate: func(objs []object) []object {
				deploy(objs, "gateway").Spec.Template.Spec.Containers[0].VolumeMounts[0].SubPath = "gateway.yaml"
				return objs
			},
			want: "a subPath mount would never see updates",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := good
			if tt.yaml != nil {
				stream = tt.yaml(bytes.Clone(good))
			}
			objs, err := decodeAll(stream)
			var errs []error
			if err != nil {
				errs = append(errs, err)
			} else {
				if tt.mutate != nil {
					objs = tt.mutate(objs)
				}
				errs = validate(objs)
			}
			if !strings.Contains(errors.Join(errs...).Error(), tt.want) {
				t.Errorf("validate() = %v, want an error containing %q", errs, tt.want)
			}
		})
	}
}
