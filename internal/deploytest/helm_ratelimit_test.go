package deploytest

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	gwconfig "github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// helmGateway is what the chart gives the gateway: its parsed config, its
// pod and its NetworkPolicy (nil when networkPolicy.enabled is false).
type helmGateway struct {
	cfg    *gwconfig.Config
	pod    *corev1.PodSpec
	policy *networkingv1.NetworkPolicy
	objs   []object
}

func renderGateway(t *testing.T, values map[string]any) helmGateway {
	t.Helper()
	out, err := helmTemplate(values)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	objs, err := decodeAll(out)
	if err != nil {
		t.Fatal(err)
	}
	full := "flotilla"
	if f, ok := values["fullnameOverride"].(string); ok && f != "" {
		full = f
	}
	cm := find[*corev1.ConfigMap](objs, "ConfigMap", "", full+"-gateway")
	d := find[*appsv1.Deployment](objs, "Deployment", "", full+"-gateway")
	if cm == nil || d == nil {
		t.Fatalf("no ConfigMap and Deployment %s-gateway", full)
	}
	cfg, err := gwconfig.Parse([]byte(cm.Data["gateway.yaml"]))
	if err != nil {
		t.Fatalf("gateway.yaml: %v\n%s", err, cm.Data["gateway.yaml"])
	}
	return helmGateway{cfg: cfg, pod: &d.Spec.Template.Spec, policy: find[*networkingv1.NetworkPolicy](objs, "NetworkPolicy", "", full+"-gateway"), objs: objs}
}

func (g helmGateway) route(name string) *gwconfig.Route {
	for i := range g.cfg.Routes {
		if g.cfg.Routes[i].Name == name {
			return &g.cfg.Routes[i]
		}
	}
	return nil
}

// redisSecret: the Secret mounted at /etc/flotilla/redis in the gateway,
// with the key projected as "password" ("" when none is).
func (g helmGateway) redisSecret() (name, key string) {
	c := g.pod.Containers[0]
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/etc/flotilla/redis" {
			continue
		}
		for _, v := range g.pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				for _, it := range v.Secret.Items {
					if it.Path == "password" {
						return v.Secret.SecretName, it.Key
					}
				}
			}
		}
	}
	return "", ""
}

// reachesRedis: does the gateway's NetworkPolicy let it connect to port
// 6379 of some pods?
func (g helmGateway) reachesRedis() bool {
	if g.policy == nil {
		return false
	}
	for _, r := range g.policy.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.IntValue() == 6379 {
				return true
			}
		}
	}
	return false
}

// fleetLimit is the limited route's limit, as the kustomize base has it.
var fleetLimit = []gwconfig.RateLimit{{Name: "fleet", Requests: 50, Per: time.Second, Burst: 50,
	Key: gwconfig.RateLimitKey{Source: gwconfig.KeyRoute}, Scope: gwconfig.ScopeGlobal, OnError: gwconfig.OnErrorAllow}}

// TestHelmGatewayRedis: with redis.enabled the chart's gateway counts its
// global rate limits in the chart's Redis, as the kustomize base does: a
// redis section (the Redis Service, the password file), the Redis
// password Secret mounted, the NetworkPolicies open both ways, and the
// fleet-limited /limited route with the strategy's backends. Without
// Redis there is none of it (a global limit needs a store).
func TestHelmGatewayRedis(t *testing.T) {
	t.Run("every value set", func(t *testing.T) {
		for _, path := range helmValueSets(t) {
			values := readValues(t, path)
			g := renderGateway(t, values)
			full := "flotilla"
			if f, ok := values["fullnameOverride"].(string); ok && f != "" {
				full = f
			}
			want := &gwconfig.Redis{Address: full + "-redis:6379", PasswordFile: "/etc/flotilla/redis/password",
				Timeout: 50 * time.Millisecond, KeyPrefix: gwconfig.DefaultRedisKeyPrefix}
			if diff := cmp.Diff(want, g.cfg.Redis); diff != "" {
				t.Errorf("%s: gateway redis section (-want +got):\n%s", filepath.Base(path), diff)
			}
			if name, key := g.redisSecret(); name != full+"-redis-auth" || key != "password" {
				t.Errorf("%s: /etc/flotilla/redis/password is Secret %q key %q, want %s-redis-auth key password", filepath.Base(path), name, key, full)
			}
			if !g.reachesRedis() {
				t.Errorf("%s: the gateway's NetworkPolicy has no egress to port 6379", filepath.Base(path))
			}
			limited, demo := g.route("limited"), g.route("demo")
			// With gatewayAPI.enabled the demo's route is an HTTPRoute;
			// /limited stays in the file (no rate limit in Gateway API).
			gwapi, _ := values["gatewayAPI"].(map[string]any)
			if gwapi["enabled"] == true {
				demo = limited
			}
			if limited == nil || demo == nil {
				t.Fatalf("%s: routes limited and demo: %v, %v", filepath.Base(path), limited, demo)
			}
			if diff := cmp.Diff(fleetLimit, limited.RateLimits); diff != "" {
				t.Errorf("%s: route limited's rateLimits (-want +got):\n%s", filepath.Base(path), diff)
			}
			if diff := cmp.Diff(demo.Backends, limited.Backends); diff != "" {
				t.Errorf("%s: route limited's backends differ from route demo's (-demo +limited):\n%s", filepath.Base(path), diff)
			}
			for _, r := range g.cfg.Routes {
				if strings.HasPrefix(r.Name, "limited-") && !cmp.Equal(fleetLimit, r.RateLimits) {
					t.Errorf("%s: route %s (a variant of /limited) has rateLimits %v, want the fleet limit", filepath.Base(path), r.Name, r.RateLimits)
				}
			}
			if p := g.route("private"); p == nil || !strings.Contains(p.Match.Path.Value, "|limited)") {
				t.Errorf("%s: route private does not hide /limited's private paths: %+v", filepath.Base(path), p)
			}
			for _, err := range validate(g.objs) {
				t.Errorf("%s: %v", filepath.Base(path), err)
			}
		}
	})
	t.Run("each strategy", func(t *testing.T) {
		for _, s := range []string{"rolling", "recreate", "blue-green", "canary", "ab-testing", "shadow"} {
			g := renderGateway(t, map[string]any{"strategy": map[string]any{"type": s}})
			n := 0
			for _, r := range g.cfg.Routes {
				if r.Name == "limited" || strings.HasPrefix(r.Name, "limited-") {
					n++
					if !cmp.Equal(fleetLimit, r.RateLimits) {
						t.Errorf("%s: route %s has rateLimits %v, want the fleet limit", s, r.Name, r.RateLimits)
					}
					twin := g.route("demo" + strings.TrimPrefix(r.Name, "limited"))
					if twin == nil || !cmp.Equal(twin.Backends, r.Backends) || !cmp.Equal(twin.Mirror, r.Mirror) || !cmp.Equal(twin.Sticky, r.Sticky) {
						t.Errorf("%s: route %s does not split like its /demo twin %v", s, r.Name, twin)
					}
				}
			}
			if want := map[bool]int{true: 3, false: 1}[s == "ab-testing"]; n != want {
				t.Errorf("%s: %d /limited routes, want %d", s, n, want)
			}
			for _, err := range validate(g.objs) {
				t.Errorf("%s: %v", s, err)
			}
		}
	})
	t.Run("without Redis", func(t *testing.T) {
		g := renderGateway(t, map[string]any{"redis": map[string]any{"enabled": false}})
		if g.cfg.Redis != nil {
			t.Errorf("redis section %+v without redis.enabled", g.cfg.Redis)
		}
		for _, r := range g.cfg.Routes {
			if len(r.RateLimits) > 0 || strings.HasPrefix(r.Name, "limited") {
				t.Errorf("route %s (rateLimits %v) without redis.enabled", r.Name, r.RateLimits)
			}
		}
		if p := g.route("private"); p == nil || strings.Contains(p.Match.Path.Value, "limited") {
			t.Errorf("route private = %+v, want no /limited without the route", p)
		}
		if name, _ := g.redisSecret(); name != "" || slices.ContainsFunc(g.pod.Volumes, func(v corev1.Volume) bool { return v.Name == "redis-auth" }) {
			t.Errorf("the gateway mounts Secret %q without redis.enabled", name)
		}
		if g.reachesRedis() {
			t.Error("the gateway's NetworkPolicy reaches port 6379 without redis.enabled")
		}
	})
	t.Run("validate catches a broken chart", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			mutate func(g helmGateway)
			want   string
		}{
			{"no password mount", func(g helmGateway) {
				c := &g.pod.Containers[0]
				c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "redis-auth" })
			}, "Deployment/flotilla-gateway: redis.passwordFile /etc/flotilla/redis/password is not a key of a Secret mounted in the gateway"},
			{"no egress to Redis", func(g helmGateway) {
				g.policy.Spec.Egress = slices.DeleteFunc(g.policy.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
					return len(r.Ports) == 1 && r.Ports[0].Port.IntValue() == 6379
				})
			}, "Deployment/flotilla-gateway: NetworkPolicies keep the gateway from Redis"},
			{"Redis admits only the counter", func(g helmGateway) {
				np := find[*networkingv1.NetworkPolicy](g.objs, "NetworkPolicy", "", "flotilla-redis")
				np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[:1]
			}, "StatefulSet/flotilla-redis: NetworkPolicies refuse the gateway"},
		} {
			g := renderGateway(t, nil)
			if errs := validate(g.objs); len(errs) > 0 {
				t.Fatalf("the unbroken chart fails: %v", errs)
			}
			tt.mutate(g)
			var msgs []string
			for _, err := range validate(g.objs) {
				msgs = append(msgs, err.Error())
			}
			if !strings.Contains(strings.Join(msgs, "\n"), tt.want) {
				t.Errorf("%s: validate = %q, want %q", tt.name, msgs, tt.want)
			}
		}
	})
	t.Run("existing Redis Secret", func(t *testing.T) {
		g := renderGateway(t, map[string]any{"redis": map[string]any{"auth": map[string]any{"existingSecret": "my-redis"}}})
		if name, key := g.redisSecret(); name != "my-redis" || key != "password" {
			t.Errorf("/etc/flotilla/redis/password is Secret %q key %q, want my-redis key password", name, key)
		}
	})
	t.Run("own routes without a redis section get the chart's", func(t *testing.T) {
		own := "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes:\n  - name: all\n    match: {path: {type: Prefix, value: /}, methods: [GET, HEAD]}\n    rateLimits: [{requests: 5, scope: global}]\n    backends: [{name: demo}]\nbackends:\n  - {name: demo, addresses: [\"flotilla-demo-headless:8080\"]}\n"
		g := renderGateway(t, map[string]any{"gateway": map[string]any{"routes": own}})
		if g.cfg.Redis == nil || g.cfg.Redis.Address != "flotilla-redis:6379" {
			t.Errorf("redis section %+v, want the chart's Redis", g.cfg.Redis)
		}
		if g.route("limited") != nil {
			t.Error("own routes got the chart's limited route")
		}
	})
	t.Run("own routes with a redis section keep it", func(t *testing.T) {
		own := "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nredis: {address: \"cache.example.test:6380\", passwordFile: /etc/flotilla/redis/password}\nroutes:\n  - name: all\n    match: {path: {type: Prefix, value: /}, methods: [GET, HEAD]}\n    backends: [{name: demo}]\nbackends:\n  - {name: demo, addresses: [\"flotilla-demo-headless:8080\"]}\n"
		g := renderGateway(t, map[string]any{"gateway": map[string]any{"routes": own}})
		if g.cfg.Redis == nil || g.cfg.Redis.Address != "cache.example.test:6380" {
			t.Errorf("redis section %+v, want the user's", g.cfg.Redis)
		}
	})
}
