package deploytest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	gwconfig "github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

// peer is one end of a connection a NetworkPolicy may admit: a pod (its
// labels and namespace's) or, when world, an address outside the cluster.
type peer struct {
	name     string // for messages
	world    bool
	ns       string
	nsLabels map[string]string
	labels   map[string]string
}

// prometheus is the scraper docs/deploy.md tells the policies to admit.
var prometheus = peer{name: "Prometheus", ns: "monitoring", nsLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"},
	labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}

var world = peer{name: "the world", world: true}

// apiServer is the API server: outside the pod network, like the world.
var apiServer = peer{name: "the API server", world: true}

// ingressController is ingress-nginx as docs/deploy.md says to admit it.
var ingressController = peer{name: "the ingress controller", ns: "ingress-nginx", nsLabels: map[string]string{"kubernetes.io/metadata.name": "ingress-nginx"},
	labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}}

func podPeer(w workload) peer {
	return peer{name: w.labels["app.kubernetes.io/name"], ns: w.obj.Namespace,
		nsLabels: map[string]string{"kubernetes.io/metadata.name": w.obj.Namespace}, labels: w.labels}
}

func policies(objs []object, ns string) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, o := range objs {
		if np, ok := o.Obj.(*networkingv1.NetworkPolicy); ok && o.Namespace == ns {
			out = append(out, np)
		}
	}
	return out
}

func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 { // the API server's default
		return t == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, t)
}

// selectsPod: a policy's podSelector, where the empty selector selects
// every pod (unlike selectorMatches, for Services).
func selectsPod(sel metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(&sel)
	return err == nil && s.Matches(labelSet(lbls))
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool              { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string            { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) { v, ok := l[k]; return v, ok }

// peerMatches: a NetworkPolicyPeer against p, in the policy's namespace.
func peerMatches(np networkingv1.NetworkPolicyPeer, policyNS string, p peer) bool {
	if np.IPBlock != nil {
		// Only a block covering everything is counted as "the world".
		return p.world && (np.IPBlock.CIDR == "0.0.0.0/0" || np.IPBlock.CIDR == "::/0")
	}
	if p.world {
		return false
	}
	if np.NamespaceSelector == nil {
		if p.ns != policyNS {
			return false
		}
	} else if !selectsPod(*np.NamespaceSelector, p.nsLabels) {
		return false
	}
	return np.PodSelector == nil || selectsPod(*np.PodSelector, p.labels)
}

// portMatches: a policy port against port (a container port of the pod
// the policy protects, or of the destination for egress).
func portMatches(pp []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port int32, name string) bool {
	if len(pp) == 0 {
		return true
	}
	for _, p := range pp {
		pr := corev1.ProtocolTCP
		if p.Protocol != nil {
			pr = *p.Protocol
		}
		if pr != proto {
			continue
		}
		if p.Port == nil || (p.Port.Type == intstr.Int && p.Port.IntVal == port) || (p.Port.Type == intstr.String && name != "" && p.Port.StrVal == name) {
			return true
		}
	}
	return false
}

// admitsIngress: can from connect to w on its container port named or
// numbered port (TCP)?
func admitsIngress(objs []object, w workload, from peer, port intstr.IntOrString) bool {
	num, name := resolvePort(w, port)
	isolated := false
	for _, np := range policies(objs, w.obj.Namespace) {
		if !selectsPod(np.Spec.PodSelector, w.labels) || !hasType(np, networkingv1.PolicyTypeIngress) {
			continue
		}
		isolated = true
		for _, rule := range np.Spec.Ingress {
			if !portMatches(rule.Ports, corev1.ProtocolTCP, num, name) {
				continue
			}
			if len(rule.From) == 0 {
				return true
			}
			for _, f := range rule.From {
				if peerMatches(f, w.obj.Namespace, from) {
					return true
				}
			}
		}
	}
	return !isolated
}

// admitsEgress: can w connect to the peer to on port?
func admitsEgress(objs []object, w workload, to peer, proto corev1.Protocol, port int32, portName string) bool {
	isolated := false
	for _, np := range policies(objs, w.obj.Namespace) {
		if !selectsPod(np.Spec.PodSelector, w.labels) || !hasType(np, networkingv1.PolicyTypeEgress) {
			continue
		}
		isolated = true
		for _, rule := range np.Spec.Egress {
			if !portMatches(rule.Ports, proto, port, portName) {
				continue
			}
			if len(rule.To) == 0 {
				return true
			}
			for _, t := range rule.To {
				if peerMatches(t, w.obj.Namespace, to) {
					return true
				}
			}
		}
	}
	return !isolated
}

func resolvePort(w workload, p intstr.IntOrString) (int32, string) {
	for _, c := range w.spec.Containers {
		for _, cp := range c.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return cp.ContainerPort, cp.Name
			}
		}
	}
	return p.IntVal, p.StrVal
}

func appName(w workload) string { return w.labels["app.kubernetes.io/name"] }

// checkNetworkPolicies: every namespace denies by default, and what each
// workload may take and make is exactly what it needs:
//   - the gateway's data port is open to the world, its admin port is not;
//   - the counter and the demo take their http port only from the gateway
//     and Prometheus, unless a NodePort or LoadBalancer Service makes them
//     an entry point (then from the world);
//   - Redis takes 6379 from the counter (and from a gateway whose config
//     has a redis section: checkGatewayRedis);
//   - the gateway reaches the counter and demo pods, the counter Redis,
//     both DNS; a helm test pod the gateway; Redis and the demo nothing.
func checkNetworkPolicies(objs []object, ws []workload, fail failFunc) {
	// Default deny: a policy without rules for both directions selects
	// every pod (kustomize: the namespace's; Helm: the release's, the
	// namespace may be shared).
	for _, w := range ws {
		deny := false
		for _, np := range policies(objs, w.obj.Namespace) {
			deny = deny || (selectsPod(np.Spec.PodSelector, w.labels) &&
				hasType(np, networkingv1.PolicyTypeIngress) && hasType(np, networkingv1.PolicyTypeEgress) && len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0)
		}
		if !deny {
			fail(w.obj, "no default-deny NetworkPolicy selects it (policyTypes Ingress and Egress, no rules)")
		}
	}
	entry := entryWorkloads(objs, ws)
	behindIngress := map[object]bool{}
	for _, o := range objs {
		ing, ok := o.Obj.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if b := p.Backend.Service; b != nil {
					if svc := find[*corev1.Service](objs, "Service", o.Namespace, b.Name); svc != nil {
						for _, w := range selected(svc.Spec.Selector, o.Namespace, ws) {
							behindIngress[w.obj] = true
						}
					}
				}
			}
		}
	}
	dns := peer{name: "DNS", world: true}
	for _, w := range ws {
		if w.isTest {
			continue
		}
		http := intstr.FromString("http")
		switch appName(w) {
		case "gateway":
			if !admitsIngress(objs, w, world, http) {
				fail(w.obj, "NetworkPolicies refuse clients on the gateway's http port")
			}
			if https := intstr.FromString("https"); containerPort(w, https) && !admitsIngress(objs, w, world, https) {
				fail(w.obj, "NetworkPolicies refuse clients on the gateway's https port")
			}
			if admitsIngress(objs, w, world, intstr.FromString("admin")) {
				fail(w.obj, "NetworkPolicies open the gateway's admin port to the world")
			}
			if !admitsIngress(objs, w, prometheus, intstr.FromString("admin")) {
				fail(w.obj, "NetworkPolicies refuse Prometheus on the gateway's admin port (/metrics)")
			}
			for _, t := range ws {
				if n := appName(t); (n == "counter" || n == "demo") && t.obj.Namespace == w.obj.Namespace && !admitsEgress(objs, w, podPeer(t), corev1.ProtocolTCP, 8080, "") {
					fail(w.obj, "NetworkPolicies keep the gateway from %s on port 8080", t.obj)
				}
			}
			if !admitsEgress(objs, w, dns, corev1.ProtocolUDP, 53, "") {
				fail(w.obj, "NetworkPolicies keep the gateway from DNS (UDP 53): it resolves its backends")
			}
			// The API server's address is the cluster's: the rule may name
			// no peer, but must open its ports (443 before kube-proxy's
			// DNAT, 6443 after it with kubeadm, kind, minikube).
			for _, port := range []int32{443, 6443} {
				if !admitsEgress(objs, w, apiServer, corev1.ProtocolTCP, port, "") {
					fail(w.obj, "NetworkPolicies keep the gateway from the API server (TCP %d): it watches its backends' EndpointSlices", port)
				}
			}
		case "counter", "demo":
			for _, from := range ws {
				if entry[w.obj] || from.isTest || from.obj.Namespace != w.obj.Namespace {
					continue
				}
				want := appName(from) == "gateway"
				if got := admitsIngress(objs, w, podPeer(from), http); got != want {
					fail(w.obj, "NetworkPolicies %s %s on the http port; want only the gateway (and Prometheus)", map[bool]string{true: "admit", false: "refuse"}[got], from.obj)
				}
			}
			if !admitsIngress(objs, w, prometheus, http) {
				fail(w.obj, "NetworkPolicies refuse Prometheus on the http port (/metrics)")
			}
			if got, want := admitsIngress(objs, w, world, http), entry[w.obj]; got != want {
				if want {
					fail(w.obj, "a NodePort or LoadBalancer Service sends clients here, but NetworkPolicies refuse them")
				} else {
					fail(w.obj, "NetworkPolicies open the http port to the world, but no NodePort or LoadBalancer Service makes it an entry point")
				}
			}
			if behindIngress[w.obj] && !admitsIngress(objs, w, ingressController, http) {
				fail(w.obj, "an Ingress sends clients here, but NetworkPolicies refuse the ingress controller")
			}
			if appName(w) == "counter" {
				for _, r := range ws {
					if appName(r) == "redis" && r.obj.Namespace == w.obj.Namespace && !admitsEgress(objs, w, podPeer(r), corev1.ProtocolTCP, 6379, "redis") {
						fail(w.obj, "NetworkPolicies keep the counter from Redis")
					}
				}
				if !admitsEgress(objs, w, dns, corev1.ProtocolUDP, 53, "") {
					fail(w.obj, "NetworkPolicies keep the counter from DNS (UDP 53): it resolves Redis")
				}
			} else if admitsEgress(objs, w, world, corev1.ProtocolTCP, 443, "") {
				fail(w.obj, "NetworkPolicies let the demo connect out; it needs nothing")
			}
		case "redis":
			if admitsEgress(objs, w, world, corev1.ProtocolTCP, 443, "") {
				fail(w.obj, "NetworkPolicies let Redis connect out; it needs nothing")
			}
			if admitsIngress(objs, w, world, intstr.FromInt(6379)) {
				fail(w.obj, "NetworkPolicies open Redis to the world")
			}
		}
	}
	for _, t := range ws {
		if !t.isTest {
			continue
		}
		for _, g := range ws {
			if appName(g) == "gateway" && g.obj.Namespace == t.obj.Namespace && !admitsEgress(objs, t, podPeer(g), corev1.ProtocolTCP, 8080, "http") {
				fail(t.obj, "NetworkPolicies keep the test pod from the gateway")
			}
		}
	}
}

// entryWorkloads: the workloads of an app a NodePort or LoadBalancer
// Service sends clients to. By app, not by the Service's selector: a
// blue/green switch moves the selector from one track to the other.
func entryWorkloads(objs []object, ws []workload) map[object]bool {
	apps := map[[2]string]bool{}
	for _, o := range objs {
		svc, ok := o.Obj.(*corev1.Service)
		if !ok || (svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer) {
			continue
		}
		for _, w := range selected(svc.Spec.Selector, o.Namespace, ws) {
			apps[[2]string{o.Namespace, appName(w)}] = true
		}
	}
	out := map[object]bool{}
	for _, w := range ws {
		out[w.obj] = apps[[2]string{w.obj.Namespace, appName(w)}]
	}
	return out
}

// secretFile resolves a path inside a container to the Secret key mounted
// there: the Secret's object, key and value.
func secretFile(objs []object, ns string, s *corev1.PodSpec, c corev1.Container, file string) (*corev1.Secret, string, bool) {
	dir, base := path.Split(file)
	for _, m := range c.VolumeMounts {
		if strings.TrimSuffix(m.MountPath, "/")+"/" != dir || m.SubPath != "" {
			continue
		}
		for _, v := range s.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			key := base
			if len(v.Secret.Items) > 0 {
				key = ""
				for _, it := range v.Secret.Items {
					if it.Path == base {
						key = it.Key
					}
				}
			}
			sec := find[*corev1.Secret](objs, "Secret", ns, v.Secret.SecretName)
			if sec == nil || key == "" {
				return sec, key, false
			}
			if _, ok := sec.Data[key]; !ok {
				if _, ok := sec.StringData[key]; !ok {
					return sec, key, false
				}
			}
			return sec, key, true
		}
	}
	return nil, "", false
}

func secretValue(sec *corev1.Secret, key string) string {
	if v, ok := sec.Data[key]; ok {
		return string(v)
	}
	return sec.StringData[key]
}

// checkSecrets: Redis requires a password that comes from a Secret (never
// the command line) with protected mode on, the counter reads the same
// password from a Secret, and a gateway whose admin API listens beyond
// loopback reads its token from a Secret.
func checkSecrets(objs []object, ws []workload, fail failFunc) {
	redisPW := redisPasswords(objs, ws, fail)
	for _, w := range ws {
		for _, c := range w.spec.Containers {
			if !strings.HasPrefix(c.Image, flotillaImage) || len(c.Args) == 0 {
				continue
			}
			switch c.Args[0] {
			case "counter":
				want, ok := redisPW[w.obj.Namespace]
				if !ok {
					continue // no Redis here (a partial base)
				}
				file := setting(c, "redis-password-file", "")
				if file == "" {
					fail(w.obj, "the counter reads no Redis password (--redis-password-file)")
					continue
				}
				sec, key, found := secretFile(objs, w.obj.Namespace, w.spec, c, file)
				if !found {
					fail(w.obj, "--redis-password-file %s is not a key of a mounted Secret", file)
					continue
				}
				if strings.TrimRight(secretValue(sec, key), "\r\n") != want {
					fail(w.obj, "the counter's Redis password (Secret %s key %s) is not Redis's requirepass", sec.Name, key)
				}
			case "gateway":
				known, err := flagsOf("gateway")
				if err != nil {
					continue // reported by checkFlotillaContainer
				}
				addr := setting(c, "admin-addr", known.defaults["admin-addr"])
				if addr == "" || loopback(addr) {
					continue
				}
				file := setting(c, "admin-token-file", "")
				if file == "" {
					fail(w.obj, "the admin API listens on %s without --admin-token-file: anyone who reaches the port can change weights", addr)
					continue
				}
				sec, key, found := secretFile(objs, w.obj.Namespace, w.spec, c, file)
				if !found {
					fail(w.obj, "--admin-token-file %s is not a key of a mounted Secret", file)
					continue
				}
				if n := len(strings.TrimSpace(secretValue(sec, key))); n < 16 {
					fail(w.obj, "the admin token (Secret %s key %s) is %d bytes, want at least 16", sec.Name, key, n)
				}
				if setting(c, "admin-pprof", "false") == "true" {
					fail(w.obj, "--admin-pprof is on in a shipped configuration")
				}
			}
		}
	}
}

// redisPasswords: the password each namespace's Redis requires (its
// requirepass, from the Secret key redis-server --include's), by
// namespace; fail names a Redis that has none or reads it badly.
func redisPasswords(objs []object, ws []workload, fail failFunc) map[string]string {
	redisPW := map[string]string{} // namespace → password
	for _, w := range ws {
		for _, c := range w.spec.Containers {
			if !strings.HasPrefix(c.Image, redisImage) || len(c.Command) == 0 {
				continue
			}
			args := strings.Join(c.Command[1:], " ")
			if !strings.Contains(args, "--protected-mode yes") {
				fail(w.obj, "redis-server runs without --protected-mode yes")
			}
			if strings.Contains(args, "requirepass") {
				fail(w.obj, "the Redis password is on the command line, where every process listing shows it; use --include of a Secret")
			}
			pw := ""
			for i, a := range c.Command {
				if a != "--include" || i+1 >= len(c.Command) {
					continue
				}
				sec, key, ok := secretFile(objs, w.obj.Namespace, w.spec, c, c.Command[i+1])
				if !ok {
					fail(w.obj, "--include %s is not a key of a mounted Secret", c.Command[i+1])
					continue
				}
				for line := range strings.Lines(secretValue(sec, key)) {
					if v, found := strings.CutPrefix(strings.TrimSpace(line), "requirepass "); found {
						pw = strings.TrimSpace(v)
					}
				}
			}
			if pw == "" {
				fail(w.obj, "Redis has no password: want --include of a Secret key holding \"requirepass <password>\"")
				continue
			}
			if len(pw) < 16 {
				fail(w.obj, "the Redis password is %d bytes, want at least 16", len(pw))
			}
			redisPW[w.obj.Namespace] = pw
		}
	}
	return redisPW
}

// checkGatewayRedis: a gateway whose config has a redis section (the store
// of its global rate limits) reaches that Redis as the counter does:
// redis.address names a Service of the render that selects Redis pods
// listening on its port, the NetworkPolicies let the gateway connect to
// them (its egress and Redis's ingress), and when Redis requires a
// password, redis.passwordFile is a key of a Secret mounted in the
// gateway's container that holds Redis's requirepass (a Secret outside
// the render, the user's, is trusted by name). configDir is the directory
// of the config file, which relative files are resolved against.
func checkGatewayRedis(objs []object, ws []workload, w workload, c corev1.Container, cfg *gwconfig.Config, configDir string, fail failFunc) {
	r := cfg.Redis
	if r == nil {
		return
	}
	host, portStr, err := net.SplitHostPort(r.Address)
	if err != nil {
		fail(w.obj, "redis.address %q: %v", r.Address, err)
		return
	}
	port, _ := strconv.Atoi(portStr)
	name, ns, _ := strings.Cut(host, ".")
	if ns == "" {
		ns = w.obj.Namespace
	} else {
		ns, _, _ = strings.Cut(ns, ".")
	}
	svc := find[*corev1.Service](objs, "Service", ns, name)
	if svc == nil {
		fail(w.obj, "redis.address %q: no Service %s in namespace %q", r.Address, name, ns)
		return
	}
	var target *intstr.IntOrString
	for _, p := range svc.Spec.Ports {
		if int(p.Port) == port {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port)
			}
			target = &tp
		}
	}
	if target == nil {
		fail(w.obj, "redis.address %q: Service %s has no port %d", r.Address, name, port)
		return
	}
	var redises []workload
	for _, t := range selected(svc.Spec.Selector, ns, ws) {
		if appName(t) == "redis" && containerPort(t, *target) {
			redises = append(redises, t)
		}
	}
	if len(redises) == 0 {
		fail(w.obj, "redis.address %q: Service %s selects no Redis listening on %s", r.Address, name, target.String())
		return
	}
	for _, t := range redises {
		num, portName := resolvePort(t, *target)
		if !admitsEgress(objs, w, podPeer(t), corev1.ProtocolTCP, num, portName) {
			fail(w.obj, "NetworkPolicies keep the gateway from Redis (%s port %d), the store of its global rate limits", t.obj, num)
		}
		if t.obj.Namespace == w.obj.Namespace && !admitsIngress(objs, t, podPeer(w), *target) {
			fail(t.obj, "NetworkPolicies refuse the gateway (%s), whose global rate limits count here", w.obj)
		}
	}
	want, known := redisPasswords(objs, ws, func(object, string, ...any) {})[ns]
	if r.PasswordFile == "" {
		if known {
			fail(w.obj, "the gateway's redis section has no passwordFile, but Redis requires a password")
		}
		return
	}
	file := r.PasswordFile
	if !path.IsAbs(file) {
		file = path.Join(configDir, file)
	}
	sec, key, found := secretFile(objs, w.obj.Namespace, w.spec, c, file)
	switch {
	case !found && sec == nil && key != "":
		// Mounted from a Secret outside the render (the user's), by name.
	case !found:
		fail(w.obj, "redis.passwordFile %s is not a key of a Secret mounted in the gateway (the Redis password Secret)", file)
	case known && strings.TrimRight(secretValue(sec, key), "\r\n") != want:
		fail(w.obj, "the gateway's Redis password (Secret %s key %s) is not Redis's requirepass", sec.Name, key)
	}
}

func loopback(addr string) bool {
	host, _, _ := strings.Cut(addr, ":")
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		host = strings.Trim(addr[:i], "[]")
	}
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// privateSuffixes are the apps' endpoints for the kubelet, Prometheus and
// operators (internal/counter/handler.go, internal/demo/demo.go).
var privateSuffixes = []string{"/healthz", "/readyz", "/readyz/disable", "/readyz/enable", "/metrics"}

// pathTricks are put between a public prefix and a private suffix: an
// attacker's ways of spelling the same path that a naive prefix match
// would miss (the gateway normalizes them before matching).
var pathTricks = []string{"", "/", "/.", "/x/..", "/%2e", "/x/%2e%2e", "/%2E/."}

// checkRoutes: a gateway's routes send only GET and HEAD to backends, and
// no request for a probe, metrics or control path reaches a backend as
// that path. Each route with backends is tried with a request built to
// match it (its host, path prefix, headers, cookies) plus a private
// suffix; whatever route the table picks must not forward it as private.
func checkRoutes(o object, cfg *gwconfig.Config, fail failFunc) {
	for _, r := range cfg.Routes {
		if len(r.Backends) == 0 {
			continue
		}
		if len(r.Match.Methods) == 0 {
			fail(o, "route %s: sends every method to its backends; want methods [GET, HEAD]", r.Name)
		}
		for _, m := range r.Match.Methods {
			if m == http.MethodPost && isGRPCRoute(r) {
				continue
			}
			if m != http.MethodGet && m != http.MethodHead {
				fail(o, "route %s: sends %s to its backends; the apps serve clients only GET and HEAD (POST only on a gRPC service's route: path Prefix /package.Service, methods [POST], header Content-Type exactly application/grpc)", r.Name, m)
			}
		}
	}
	// Auth and rate limits need the gateway's state; their settings were
	// validated with the config.
	tb, err := route.CompileWith(cfg, route.Options{Policies: func(*gwconfig.Route) ([]route.Filter, error) { return nil, nil }})
	if err != nil {
		fail(o, "routes do not compile: %v", err)
		return
	}
	for _, r := range cfg.Routes {
		if len(r.Backends) == 0 {
			continue
		}
		host := "gateway.test"
		if len(r.Match.Hosts) > 0 {
			host = strings.TrimPrefix(r.Match.Hosts[0], "*.") // a wildcard's parent: "x." is added below
			if strings.HasPrefix(r.Match.Hosts[0], "*.") {
				host = "x." + host
			}
		}
		prefix := ""
		if pm := r.Match.Path; pm != nil {
			switch pm.Type {
			case gwconfig.PathPrefix:
				prefix = strings.TrimRight(pm.Value, "/")
			case gwconfig.PathRegex:
				// The expression's literal start, as a path prefix.
				lit := literalPrefix(pm.Value)
				switch i := strings.LastIndex(lit, "/"); {
				case strings.HasSuffix(lit, "/"):
					prefix = strings.TrimRight(lit, "/")
				case strings.HasPrefix(pm.Value[len(lit):], "(/"):
					prefix = lit
				case i >= 0:
					prefix = lit[:i]
				}
			default:
				continue // Exact: one path, checked by its value below
			}
		}
		for _, suffix := range privateSuffixes {
			for _, trick := range pathTricks {
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					req := httptest.NewRequest(method, "http://"+host+prefix+trick+suffix, nil)
					for _, h := range r.Match.Headers {
						req.Header.Set(h.Name, cmpValue(h))
					}
					for _, c := range r.Match.Cookies {
						req.AddCookie(&http.Cookie{Name: c.Name, Value: cmpValue(c)})
					}
					// As the gateway does: the normalized path is matched; one
					// it refuses never reaches a route.
					np, err := route.NormalizePath(req.URL.EscapedPath(), route.PathOptionsFrom(cfg.Defaults.Paths))
					if err != nil {
						continue
					}
					got := tb.Match(req, np.Match)
					if got == nil || len(got.Config.Backends) == 0 {
						continue
					}
					if p := got.RewritePath(np.Match); isPrivate(p) {
						fail(o, "route %s: %s %s%s reaches backend %s as %s; private paths must answer 404 from the gateway (directResponse)", got.Name, method, host, req.URL.EscapedPath(), got.Config.Backends[0].Name, p)
					}
				}
			}
		}
	}
}

// grpcService is the path of one gRPC service, /package.Service: its
// methods are /package.Service/Method.
var grpcService = regexp.MustCompile(`^/[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.[A-Z][A-Za-z0-9_]*$`)

// isGRPCRoute reports a route made for one gRPC service and nothing else:
// the service's path prefix, POST only, and the gRPC content type. Only
// such a route may send POST to the demo, whose gRPC services answer
// nothing but gRPC.
func isGRPCRoute(r gwconfig.Route) bool {
	pm := r.Match.Path
	if pm == nil || pm.Type != gwconfig.PathPrefix || !grpcService.MatchString(pm.Value) ||
		len(r.Match.Methods) != 1 || r.Match.Methods[0] != http.MethodPost {
		return false
	}
	return slices.ContainsFunc(r.Match.Headers, func(h gwconfig.ValueMatch) bool {
		return strings.EqualFold(h.Name, "Content-Type") && (h.Type == "" || h.Type == gwconfig.MatchExact) && h.Value == "application/grpc"
	})
}

func cmpValue(v gwconfig.ValueMatch) string {
	if v.Type == gwconfig.MatchExact || v.Type == "" {
		return v.Value
	}
	return "x"
}

func literalPrefix(re string) string {
	for i, c := range re {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, c) {
			return re[:i]
		}
	}
	return re
}

func isPrivate(p string) bool {
	for _, s := range []string{"/healthz", "/readyz", "/metrics"} {
		if p == s || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}
