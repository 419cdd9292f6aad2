package deploytest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/flotilla-dev/flotilla/internal/cli"
	gwconfig "github.com/flotilla-dev/flotilla/internal/gateway/config"
)

const (
	flotillaImage = "ghcr.io/flotilla-dev/flotilla:"
	redisImage    = "redis:"
	// minDrain is the least drain delay that lets kube-proxy and the
	// gateway (DNS TTL 5s, re-resolved every 2s, /readyz every 2s) stop
	// sending to a terminating backend before it closes its listener.
	minBackendDrain = 10 * time.Second
	minGatewayDrain = 3 * time.Second
	// dnsTTL is how long clusters cache DNS answers for Services (CoreDNS
	// "ttl 30", kubeadm's default and the local cluster's).
	dnsTTL = 30 * time.Second
)

// workload is a Deployment, StatefulSet or bare Pod with its pod template.
type workload struct {
	obj    object
	labels map[string]string
	spec   *corev1.PodSpec
	isTest bool // a helm test hook: runs once, needs no probes, no budget
}

func workloads(objs []object) []workload {
	var ws []workload
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			ws = append(ws, workload{obj: o, labels: v.Spec.Template.Labels, spec: &v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			ws = append(ws, workload{obj: o, labels: v.Spec.Template.Labels, spec: &v.Spec.Template.Spec})
		case *corev1.Pod:
			ws = append(ws, workload{obj: o, labels: v.Labels, spec: &v.Spec, isTest: v.Annotations["helm.sh/hook"] == "test"})
		}
	}
	return ws
}

// validate returns every problem found in one rendered set of objects.
func validate(objs []object) []error {
	var errs []error
	fail := func(o object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	ws := workloads(objs)
	for _, w := range ws {
		checkPod(w, fail)
	}
	checkSelectors(objs, ws, fail)
	checkServices(objs, ws, fail)
	checkBudgets(objs, ws, fail)
	checkAutoscalers(objs, ws, fail)
	checkRedisPolicy(objs, ws, fail)
	checkNetworkPolicies(objs, ws, fail)
	checkSecrets(objs, ws, fail)
	checkMountedObjects(objs, ws, fail)
	checkGateways(objs, ws, fail)
	checkRBAC(objs, fail)
	checkIngresses(objs, fail)
	checkGatewayAPI(objs, ws, fail)
	return errs
}

type failFunc func(o object, format string, args ...any)

func checkPod(w workload, fail failFunc) {
	s := w.spec
	o := w.obj
	if s.HostNetwork || s.HostPID || s.HostIPC {
		fail(o, "uses the host's network, PID or IPC namespace")
	}
	if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		switch {
		case s.ServiceAccountName == "":
			fail(o, "mounts the default service account token; set automountServiceAccountToken: false")
		case w.labels["app.kubernetes.io/name"] != "gateway":
			fail(o, "mounts the token of service account %s; only the gateway needs the API (EndpointSlices)", s.ServiceAccountName)
		}
	}
	for _, v := range s.Volumes {
		if v.HostPath != nil {
			fail(o, "volume %s is a hostPath (forbidden by Pod Security restricted)", v.Name)
		}
	}
	psc := s.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	for _, c := range slices.Concat(s.InitContainers, s.Containers) {
		co := object{Kind: o.Kind, Name: o.Name + " container " + c.Name, Namespace: o.Namespace}
		checkContainerSecurity(co, c, psc, fail)
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			fail(co, "needs cpu and memory requests")
		}
		if c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() {
			fail(co, "needs cpu and memory limits")
		}
		if c.ImagePullPolicy != corev1.PullIfNotPresent {
			fail(co, "imagePullPolicy is %q, want IfNotPresent (images are imported, there may be no registry)", c.ImagePullPolicy)
		}
		if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
			fail(co, "image %q has no pinned tag", c.Image)
		}
		if !w.isTest {
			checkProbes(co, c, fail)
		}
		switch {
		case strings.HasPrefix(c.Image, flotillaImage):
			checkFlotillaContainer(co, c, s, w.isTest, fail)
		case strings.HasPrefix(c.Image, redisImage):
			checkRedisContainer(co, c, s, psc, fail)
		default:
			fail(co, "image %q is neither flotilla nor redis", c.Image)
		}
	}
}

func checkContainerSecurity(o object, c corev1.Container, psc *corev1.PodSecurityContext, fail failFunc) {
	sc := c.SecurityContext
	if sc == nil {
		fail(o, "has no securityContext")
		return
	}
	nonRoot := psc.RunAsNonRoot
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		fail(o, "runAsNonRoot is not true")
	}
	uid := psc.RunAsUser
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if uid == nil || *uid == 0 {
		fail(o, "runAsUser must be set and non-zero (the images may have no user entry)")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		fail(o, "allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		fail(o, "is privileged")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		fail(o, "readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		fail(o, "must drop ALL capabilities and add none")
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		fail(o, "seccompProfile is not RuntimeDefault")
	}
}

func checkProbes(o object, c corev1.Container, fail failFunc) {
	for name, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p == nil {
			fail(o, "has no %s", name)
			continue
		}
		var port intstr.IntOrString
		switch {
		case p.HTTPGet != nil:
			port = p.HTTPGet.Port
			want := map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"}[name]
			if p.HTTPGet.Path != want {
				fail(o, "%s path is %q, want %q", name, p.HTTPGet.Path, want)
			}
		case p.TCPSocket != nil:
			port = p.TCPSocket.Port
		default:
			fail(o, "%s is neither httpGet nor tcpSocket", name)
			continue
		}
		if !hasPort(c, port) {
			fail(o, "%s port %s is not a container port", name, port.String())
		}
	}
}

func hasPort(c corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return true
		}
	}
	return false
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

func checkFlotillaContainer(o object, c corev1.Container, s *corev1.PodSpec, isTest bool, fail failFunc) {
	if len(c.Command) > 0 {
		fail(o, "sets command %q; the image's entrypoint is /flotilla, give the subcommand in args", c.Command)
	}
	if len(c.Args) == 0 {
		fail(o, "has no args: the first must be a flotilla subcommand")
		return
	}
	sub := c.Args[0]
	known, err := flagsOf(sub)
	if err != nil {
		fail(o, "%v", err)
		return
	}
	for _, a := range c.Args[1:] {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !known.flags[name] {
				fail(o, "flotilla %s has no flag --%s", sub, name)
			}
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "FLOTILLA_") && !known.env[e.Name] {
			fail(o, "env %s is not a flag of flotilla %s", e.Name, sub)
		}
	}
	if isTest {
		return
	}
	checkListeners(o, c, known, fail)
	podName := false
	for _, e := range c.Env {
		if e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			podName = true
		}
	}
	if !podName {
		fail(o, "POD_NAME is not set from the downward API (metadata.name)")
	}
	drain, shutdown := durationSetting(o, c, "drain-delay", 0, fail), durationSetting(o, c, "shutdown-timeout", 10*time.Second, fail)
	grace := time.Duration(ptrOr(s.TerminationGracePeriodSeconds, 30)) * time.Second
	if grace <= drain+shutdown {
		fail(o, "terminationGracePeriodSeconds %s is not above drain delay %s + shutdown timeout %s", grace, drain, shutdown)
	}
	minDrain := minBackendDrain
	if sub == "gateway" {
		minDrain = minGatewayDrain
	}
	if drain < minDrain {
		fail(o, "drain delay %s is below %s: clients would still be sent to a closed listener", drain, minDrain)
	}
	// A controller writes Secret material (certificates, htpasswd) to a
	// directory: the root file system is read-only, so it must be inside a
	// writable volume (the default, under /tmp, cannot be created).
	for class, dir := range map[string]string{"ingress-class": "ingress-secret-dir", "gateway-class": "gateway-secret-dir"} {
		if setting(c, class, "") == "" {
			continue
		}
		d := setting(c, dir, "")
		if d == "" || !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return !m.ReadOnly && strings.HasPrefix(d, strings.TrimSuffix(m.MountPath, "/")+"/")
		}) {
			fail(o, "--%s is set but --%s %q is not inside a writable volume mount (the root file system is read-only)", class, dir, d)
		}
	}
}

// setting reads a flag's value from args (--name=v or --name v) or its
// FLOTILLA_ variable, else def.
func setting(c corev1.Container, flag, def string) string {
	v, ok := envValue(c, "FLOTILLA_"+strings.ToUpper(strings.ReplaceAll(flag, "-", "_")))
	for i, a := range c.Args {
		if a == "--"+flag && i+1 < len(c.Args) {
			v, ok = c.Args[i+1], true
		} else if after, found := strings.CutPrefix(a, "--"+flag+"="); found {
			v, ok = after, true
		}
	}
	if !ok {
		return def
	}
	return v
}

func durationSetting(o object, c corev1.Container, flag string, def time.Duration, fail failFunc) time.Duration {
	v := setting(c, flag, def.String())
	d, err := time.ParseDuration(v)
	if err != nil {
		fail(o, "--%s: %v", flag, err)
	}
	return d
}

// checkListeners: every container port is served on an address other pods
// and the kubelet can reach (a flag defaulting to 127.0.0.1 would make the
// port, and any probe on it, dead), and every listener of the service has a
// container port.
func checkListeners(o object, c corev1.Container, known flagSet, fail failFunc) {
	served := map[int32]bool{}
	for _, flag := range []string{"addr", "tls-addr", "admin-addr"} {
		def, ok := known.defaults[flag]
		if !ok {
			continue
		}
		addr := setting(c, flag, def)
		if addr == "" {
			continue // disabled
		}
		host, portStr, err := net.SplitHostPort(addr)
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil {
			fail(o, "--%s %q is not host:port", flag, addr)
			continue
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			fail(o, "--%s listens on %s, which only the pod itself can reach; set it to :%d", flag, addr, port)
			continue
		}
		served[int32(port)] = true
		if !hasPort(c, intstr.FromInt(port)) {
			fail(o, "--%s listens on %s, which is no container port", flag, addr)
		}
	}
	for _, cp := range c.Ports {
		if !served[cp.ContainerPort] {
			fail(o, "container port %s (%d) is not listened on (--addr/--tls-addr/--admin-addr)", cp.Name, cp.ContainerPort)
		}
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func checkRedisContainer(o object, c corev1.Container, s *corev1.PodSpec, psc *corev1.PodSecurityContext, fail failFunc) {
	if len(c.Command) == 0 && len(c.Args) == 0 {
		// The talk's redis Deployment (deploy/kubernetes/talk), verbatim:
		// the image run bare, as `kubectl run redis --image=redis` did. The
		// image's working directory, where Redis writes, is /data: it must
		// be a writable mount (the root file system is read-only). No
		// --appendonly: the slide's Redis keeps its count in memory.
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/data" && !m.ReadOnly }) {
			fail(o, "redis-server run bare writes to its working directory /data, which is not a writable volume mount")
		}
		if psc.FSGroup == nil || *psc.FSGroup != 999 || ptrOr(psc.RunAsUser, 0) != 999 {
			fail(o, "Redis runs as uid/fsGroup 999 so it can write its volume")
		}
		return
	}
	if len(c.Command) == 0 || c.Command[0] != "redis-server" {
		fail(o, "command must start with redis-server, got %q", c.Command)
		return
	}
	args := strings.Join(c.Command[1:], " ")
	if !strings.Contains(args, "--appendonly yes") {
		fail(o, "redis-server runs without --appendonly yes")
	}
	dir := ""
	for i, a := range c.Command {
		if a == "--dir" && i+1 < len(c.Command) {
			dir = c.Command[i+1]
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir && !m.ReadOnly {
			mounted = true
		}
	}
	if dir == "" || !mounted {
		fail(o, "--dir %q is not a writable volume mount", dir)
	}
	if psc.FSGroup == nil || *psc.FSGroup != 999 || ptrOr(psc.RunAsUser, 0) != 999 {
		fail(o, "Redis runs as uid/fsGroup 999 so it can write its volume")
	}
}

func selectorMatches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(lbls))
}

func checkSelectors(objs []object, ws []workload, fail failFunc) {
	for _, w := range ws {
		var sel *metav1.LabelSelector
		switch v := w.obj.Obj.(type) {
		case *appsv1.Deployment:
			sel = v.Spec.Selector
			if v.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				ru := v.Spec.Strategy.RollingUpdate
				if ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.String() != "0" && ru.MaxUnavailable.String() != "0%" {
					fail(w.obj, "rolling update must set maxUnavailable: 0 so no old pod goes before a new one is ready")
				}
			}
		case *appsv1.StatefulSet:
			sel = v.Spec.Selector
		default:
			continue
		}
		if !selectorMatches(sel, w.labels) {
			fail(w.obj, "selector %v does not match its pod template labels %v", sel, w.labels)
		}
		for _, other := range ws {
			if other.obj == w.obj || other.obj.Namespace != w.obj.Namespace || other.isTest {
				continue
			}
			if selectorMatches(sel, other.labels) {
				fail(w.obj, "selector also matches the pods of %s", other.obj)
			}
		}
	}
}

func selected(sel map[string]string, ns string, ws []workload) []workload {
	var out []workload
	for _, w := range ws {
		if w.obj.Namespace == ns && !w.isTest && len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(w.labels)) {
			out = append(out, w)
		}
	}
	return out
}

func containerPort(w workload, p intstr.IntOrString) bool {
	for _, c := range w.spec.Containers {
		if hasPort(c, p) {
			return true
		}
	}
	return false
}

func checkServices(objs []object, ws []workload, fail failFunc) {
	nodePorts := map[int32]string{}
	for _, o := range objs {
		svc, ok := o.Obj.(*corev1.Service)
		if !ok {
			continue
		}
		targets := selected(svc.Spec.Selector, o.Namespace, ws)
		if len(targets) == 0 {
			fail(o, "selector %v selects no workload", svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port)
			}
			for _, w := range targets {
				if !containerPort(w, tp) {
					fail(o, "port %s targets %s, which %s does not expose", p.Name, tp.String(), w.obj)
				}
			}
			if p.NodePort != 0 {
				if p.NodePort < 30000 || p.NodePort > 32767 {
					fail(o, "nodePort %d outside 30000-32767", p.NodePort)
				}
				if prev, dup := nodePorts[p.NodePort]; dup {
					fail(o, "nodePort %d already used by %s", p.NodePort, prev)
				}
				nodePorts[p.NodePort] = o.String()
			}
		}
	}
}

func checkBudgets(objs []object, ws []workload, fail failFunc) {
	for _, w := range ws {
		if w.isTest {
			continue
		}
		n := 0
		for _, o := range objs {
			if pdb, ok := o.Obj.(*policyv1.PodDisruptionBudget); ok && o.Namespace == w.obj.Namespace && selectorMatches(pdb.Spec.Selector, w.labels) {
				n++
			}
		}
		if n != 1 {
			fail(w.obj, "covered by %d PodDisruptionBudgets, want 1", n)
		}
	}
	for _, o := range objs {
		if pdb, ok := o.Obj.(*policyv1.PodDisruptionBudget); ok {
			if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
				fail(o, "set exactly one of minAvailable and maxUnavailable")
			}
			found := false
			for _, w := range ws {
				found = found || (w.obj.Namespace == o.Namespace && selectorMatches(pdb.Spec.Selector, w.labels))
			}
			if !found {
				fail(o, "selects no workload")
			}
		}
	}
}

func checkAutoscalers(objs []object, ws []workload, fail failFunc) {
	scaled := map[string]bool{}
	for _, o := range objs {
		hpa, ok := o.Obj.(*autoscalingv2.HorizontalPodAutoscaler)
		if !ok {
			continue
		}
		ref := hpa.Spec.ScaleTargetRef
		scaled[o.Namespace+"/"+ref.Name] = true
		found := false
		for _, w := range ws {
			found = found || (w.obj.Kind == ref.Kind && w.obj.Name == ref.Name && w.obj.Namespace == o.Namespace)
		}
		if !found {
			fail(o, "scales %s %s, which does not exist", ref.Kind, ref.Name)
		}
		if ptrOr(hpa.Spec.MinReplicas, 1) < 1 || ptrOr(hpa.Spec.MinReplicas, 1) > hpa.Spec.MaxReplicas {
			fail(o, "minReplicas must be 1..maxReplicas")
		}
	}
	for _, w := range ws {
		if w.obj.Kind == "Deployment" && w.labels["app.kubernetes.io/name"] == "counter" && !scaled[w.obj.Namespace+"/"+w.obj.Name] {
			fail(w.obj, "the counter has no HorizontalPodAutoscaler")
		}
	}
}

// checkRedisPolicy: every Redis is covered by a NetworkPolicy that admits
// the counter, and nothing else.
func checkRedisPolicy(objs []object, ws []workload, fail failFunc) {
	for _, redis := range ws {
		if redis.labels["app.kubernetes.io/name"] != "redis" {
			continue
		}
		covered := false
		for _, o := range objs {
			np, ok := o.Obj.(*networkingv1.NetworkPolicy)
			// A policy without ingress rules (a default deny) admits nobody
			// and is not what this check is about.
			if !ok || o.Namespace != redis.obj.Namespace || !selectorMatches(&np.Spec.PodSelector, redis.labels) || len(np.Spec.Ingress) == 0 {
				continue
			}
			covered = true
			var admitted []string
			for _, w := range ws {
				if w.obj.Namespace != o.Namespace || w.isTest {
					continue
				}
				for _, rule := range np.Spec.Ingress {
					for _, peer := range rule.From {
						if peer.PodSelector != nil && peer.NamespaceSelector == nil && peer.IPBlock == nil && selectorMatches(peer.PodSelector, w.labels) {
							admitted = append(admitted, w.labels["app.kubernetes.io/name"])
						}
					}
				}
			}
			slices.Sort(admitted)
			admitted = slices.Compact(admitted)
			for _, name := range admitted {
				if name != "counter" && name != "gateway" {
					fail(o, "admits %s to Redis; only the counter and the gateway (its global rate limits) may connect", name)
				}
			}
			if !slices.Contains(admitted, "counter") {
				fail(o, "does not admit the counter to Redis")
			}
		}
		if !covered {
			fail(redis.obj, "no NetworkPolicy restricts who reaches Redis")
		}
	}
}

// checkGateways: the routes ConfigMap is valid gateway config, is mounted as
// a directory (subPath mounts never update), and every backend address names
// a headless Service whose pods listen on that port.
func checkGateways(objs []object, ws []workload, fail failFunc) {
	for _, w := range ws {
		for _, c := range w.spec.Containers {
			if !strings.HasPrefix(c.Image, flotillaImage) || len(c.Args) == 0 || c.Args[0] != "gateway" {
				continue
			}
			path := ""
			for i, a := range c.Args {
				if a == "--config" && i+1 < len(c.Args) {
					path = c.Args[i+1]
				}
			}
			if path == "" {
				fail(w.obj, "gateway has no --config")
				continue
			}
			dir, file := path[:strings.LastIndex(path, "/")], path[strings.LastIndex(path, "/")+1:]
			var mount *corev1.VolumeMount
			for i, m := range c.VolumeMounts {
				if m.MountPath == dir {
					mount = &c.VolumeMounts[i]
				}
			}
			if mount == nil || mount.SubPath != "" {
				fail(w.obj, "no volume mounted as the directory %s (a subPath mount would never see updates)", dir)
				continue
			}
			cmName := ""
			for _, v := range w.spec.Volumes {
				if v.Name == mount.Name && v.ConfigMap != nil {
					cmName = v.ConfigMap.Name
				}
			}
			cm := find[*corev1.ConfigMap](objs, "ConfigMap", w.obj.Namespace, cmName)
			if cm == nil {
				fail(w.obj, "config volume %s is not an existing ConfigMap (%q)", mount.Name, cmName)
				continue
			}
			cfg, err := gwconfig.Parse([]byte(cm.Data[file]))
			if err != nil {
				fail(w.obj, "ConfigMap %s key %s: %v", cmName, file, err)
				continue
			}
			for _, b := range cfg.Backends {
				if b.Kubernetes != nil {
					checkBackendService(objs, ws, w, b, fail)
					continue
				}
				// The shipped configs watch EndpointSlices: DNS answers are
				// cached up to dnsTTL, which rollouts would have to wait out.
				fail(w.obj, "backend %s lists addresses; want kubernetes: {service, port} (EndpointSlices, no DNS cache)", b.Name)
				for _, addr := range b.Addresses {
					checkBackendAddress(objs, ws, w.obj, b, addr, fail)
				}
			}
			checkRoutes(w.obj, cfg, fail)
			checkGatewayTLS(objs, w, c, cfg, fail)
			checkGatewayRedis(objs, ws, w, c, cfg, dir, fail)
		}
	}
}

// checkGatewayTLS: a gateway with --tls-addr has a tls section whose every
// file is in a Secret mounted read-only as a directory (a subPath mount
// would never see a renewed certificate), a Secret of type
// kubernetes.io/tls when it is part of the render (else it is the user's,
// by name), and a Service port for its HTTPS port.
func checkGatewayTLS(objs []object, w workload, c corev1.Container, cfg *gwconfig.Config, fail failFunc) {
	addr := setting(c, "tls-addr", "")
	if addr == "" {
		return
	}
	if cfg.TLS == nil {
		fail(w.obj, "gateway runs with --tls-addr %s but its routes have no tls section", addr)
		return
	}
	var files []string
	for _, cert := range cfg.TLS.Certificates {
		files = append(files, cert.CertFile, cert.KeyFile)
	}
	if a := cfg.TLS.ClientAuth; a != nil {
		files = append(files, a.CAFile)
	}
	wrongType := map[string]bool{} // reported once per Secret
	for _, file := range files {
		dir, base := path.Split(file)
		var mount *corev1.VolumeMount
		for i, m := range c.VolumeMounts {
			if strings.TrimSuffix(m.MountPath, "/")+"/" == dir && m.SubPath == "" {
				mount = &c.VolumeMounts[i]
			}
		}
		var vol *corev1.Volume
		for i, v := range w.spec.Volumes {
			if mount != nil && v.Name == mount.Name {
				vol = &w.spec.Volumes[i]
			}
		}
		if mount == nil || vol == nil || vol.Secret == nil {
			fail(w.obj, "tls file %s is not in a Secret volume mounted as the directory %s", file, dir)
			continue
		}
		if !mount.ReadOnly {
			fail(w.obj, "the TLS Secret volume %s is mounted read-write at %s", mount.Name, mount.MountPath)
		}
		key := base
		if items := vol.Secret.Items; len(items) > 0 {
			key = ""
			for _, it := range items {
				if it.Path == base {
					key = it.Key
				}
			}
			if key == "" {
				fail(w.obj, "tls file %s: the Secret volume %s projects no item to %s", file, vol.Name, base)
				continue
			}
		}
		sec := find[*corev1.Secret](objs, "Secret", w.obj.Namespace, vol.Secret.SecretName)
		if sec == nil {
			continue // the user's (kubectl create secret tls), by name
		}
		if sec.Type != corev1.SecretTypeTLS && !wrongType[sec.Name] {
			wrongType[sec.Name] = true
			fail(w.obj, "TLS Secret %s is of type %q, want %q", sec.Name, sec.Type, corev1.SecretTypeTLS)
		}
		if _, ok := sec.Data[key]; !ok {
			if _, ok := sec.StringData[key]; !ok {
				fail(w.obj, "tls file %s: Secret %s has no key %s", file, sec.Name, key)
			}
		}
	}
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	served := false
	for _, o := range objs {
		svc, ok := o.Obj.(*corev1.Service)
		if !ok || o.Namespace != w.obj.Namespace || svc.Spec.ClusterIP == corev1.ClusterIPNone ||
			!slices.ContainsFunc(selected(svc.Spec.Selector, o.Namespace, []workload{w}), func(x workload) bool { return x.obj == w.obj }) {
			continue
		}
		for _, p := range svc.Spec.Ports {
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port)
			}
			for _, cp := range c.Ports {
				if int(cp.ContainerPort) == port && ((tp.Type == intstr.String && tp.StrVal == cp.Name) || (tp.Type == intstr.Int && tp.IntVal == cp.ContainerPort)) {
					served = true
				}
			}
		}
	}
	if !served {
		fail(w.obj, "gateway serves HTTPS on %s but no Service has a port for it", addr)
	}
}

func checkBackendAddress(objs []object, ws []workload, gw object, b gwconfig.Backend, addr string, fail failFunc) {
	backend := b.Name
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		fail(gw, "backend %s address %q: %v", backend, addr, err)
		return
	}
	port, _ := strconv.Atoi(portStr)
	name, ns, _ := strings.Cut(host, ".")
	if ns == "" {
		ns = gw.Namespace
	} else {
		ns, _, _ = strings.Cut(ns, ".")
	}
	svc := find[*corev1.Service](objs, "Service", ns, name)
	if svc == nil {
		fail(gw, "backend %s address %q: no Service %s in namespace %q", backend, addr, name, ns)
		return
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		fail(gw, "backend %s address %q: Service %s is not headless, so the gateway would see one address and balance per connection", backend, addr, name)
	}
	// A new pod reaches the gateway only when the cached DNS answer
	// expires, the gateway resolves again and checks it once; a rollout
	// that retired old pods sooner could leave the gateway with none.
	discovery := dnsTTL + b.ResolveInterval
	if b.HealthCheck != nil {
		discovery += b.HealthCheck.Interval
	}
	for _, t := range selected(svc.Spec.Selector, ns, ws) {
		if !containerPort(t, intstr.FromInt(port)) {
			fail(gw, "backend %s address %q: %s does not listen on %d", backend, addr, t.obj, port)
		}
		if d, ok := t.obj.Obj.(*appsv1.Deployment); ok && time.Duration(d.Spec.MinReadySeconds)*time.Second < discovery {
			fail(t.obj, "minReadySeconds %d is below the %s the gateway may take to discover a new pod (DNS TTL %s + resolve interval + health check): a rollout could retire every pod the gateway knows", d.Spec.MinReadySeconds, discovery, dnsTTL)
		}
	}
}

// checkBackendService: a backend with kubernetes discovery names a Service
// of the render with that port, whose pods listen on it, and the gateway
// pod may watch EndpointSlices in the Service's namespace.
func checkBackendService(objs []object, ws []workload, gw workload, b gwconfig.Backend, fail failFunc) {
	k := b.Kubernetes
	ns := k.Namespace
	if ns == "" {
		ns = gw.obj.Namespace
	}
	svc := find[*corev1.Service](objs, "Service", ns, k.Service)
	if svc == nil {
		fail(gw.obj, "backend %s: no Service %s in namespace %q", b.Name, k.Service, ns)
		return
	}
	var target *intstr.IntOrString
	for _, p := range svc.Spec.Ports {
		if p.Name == k.Port || (p.TargetPort.Type == intstr.Int && strconv.Itoa(p.TargetPort.IntValue()) == k.Port) ||
			(p.TargetPort.Type == intstr.String && p.TargetPort.StrVal == "" && strconv.Itoa(int(p.Port)) == k.Port) {
			tp := p.TargetPort
			if tp.Type == intstr.String && tp.StrVal == "" {
				tp = intstr.FromInt32(p.Port)
			}
			target = &tp
		}
	}
	if target == nil {
		fail(gw.obj, "backend %s: Service %s has no port %q (by name, or target port number)", b.Name, k.Service, k.Port)
		return
	}
	pods := selected(svc.Spec.Selector, ns, ws)
	if len(pods) == 0 {
		fail(gw.obj, "backend %s: Service %s selects no workload of the render", b.Name, k.Service)
	}
	for _, t := range pods {
		if !containerPort(t, *target) {
			fail(gw.obj, "backend %s: %s does not listen on port %s of Service %s", b.Name, t.obj, target.String(), k.Service)
		}
	}
	s := gw.spec
	if s.ServiceAccountName == "" || s.AutomountServiceAccountToken == nil || !*s.AutomountServiceAccountToken {
		fail(gw.obj, "backend %s uses kubernetes discovery, but the pod mounts no service account token (serviceAccountName and automountServiceAccountToken: true)", b.Name)
		return
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if !mayEndpointSlices(objs, ns, gw.obj.Namespace, s.ServiceAccountName, verb) {
			fail(gw.obj, "backend %s: service account %s may not %s EndpointSlices in namespace %q (a Role and RoleBinding there)", b.Name, s.ServiceAccountName, verb, ns)
		}
	}
}

// mayEndpointSlices: does a RoleBinding in ns give service account sa of
// saNS a Role of ns that allows verb on endpointslices.discovery.k8s.io?
func mayEndpointSlices(objs []object, ns, saNS, sa, verb string) bool {
	for _, o := range objs {
		rb, ok := o.Obj.(*rbacv1.RoleBinding)
		if !ok || o.Namespace != ns || rb.RoleRef.Kind != "Role" {
			continue
		}
		bound := slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == sa && subjectNamespace(s, o.Namespace) == saNS
		})
		role := find[*rbacv1.Role](objs, "Role", ns, rb.RoleRef.Name)
		if !bound || role == nil {
			continue
		}
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, "discovery.k8s.io") && slices.Contains(r.Resources, "endpointslices") && slices.Contains(r.Verbs, verb) {
				return true
			}
		}
	}
	return false
}

// subjectNamespace is s's namespace as the authorizer sees it: the
// binding's when s names none. A Helm render names no namespace on its
// objects, the release's on subjects: then it is the objects' "".
func subjectNamespace(s rbacv1.Subject, bindingNS string) string {
	if s.Namespace == "" || bindingNS == "" {
		return bindingNS
	}
	return s.Namespace
}

// grants is every permission the manifests may give, by role kind and
// apiGroup/resource: the gateway's EndpointSlice watch in its namespace
// and the live view's pods and ReplicaSets there,
// and the Ingress controller's (components/ingress-controller) and the
// Gateway API controller's (components/gateway-api) leader Leases and
// per-Gateway Services (components/gateway-api-per-gateway),
// cluster-wide reads, status and Event writes.
var grants = map[string]map[string][]string{
	"Role": {
		"discovery.k8s.io/endpointslices": {"get", "list", "watch"},
		"coordination.k8s.io/leases":      {"create", "get", "update"},
		// The live view (--live-kubernetes): pods' labels (read as
		// metadata) and ReplicaSets, by informers, in the gateway's
		// namespace only.
		"/pods":            {"list", "watch"},
		"apps/replicasets": {"list", "watch"},
	},
	"ClusterRole": {
		"networking.k8s.io/ingresses":        {"get", "list", "watch"},
		"networking.k8s.io/ingressclasses":   {"get", "list", "watch"},
		"networking.k8s.io/ingresses/status": {"update"},
		// create, update, delete: the per-Gateway Services and their
		// EndpointSlices (components/gateway-api-per-gateway), in each
		// Gateway's namespace.
		"/services":                       {"get", "list", "watch", "create", "update", "delete"},
		"/secrets":                        {"get", "list", "watch"},
		"discovery.k8s.io/endpointslices": {"get", "list", "watch", "create", "update", "delete"},
		"/events":                         {"create", "patch"},
		"events.k8s.io/events":            {"create", "patch"},
		// Gateway API (components/gateway-api); namespaces for
		// allowedRoutes selectors.
		"gateway.networking.k8s.io/gatewayclasses": {"get", "list", "watch"},
		"gateway.networking.k8s.io/gateways":       {"get", "list", "watch"},
		// patch: the admin API's weights of a route from an HTTPRoute.
		"gateway.networking.k8s.io/httproutes":            {"get", "list", "watch", "patch"},
		"gateway.networking.k8s.io/referencegrants":       {"get", "list", "watch"},
		"gateway.networking.k8s.io/gatewayclasses/status": {"update"},
		"gateway.networking.k8s.io/gateways/status":       {"update"},
		"gateway.networking.k8s.io/httproutes/status":     {"update"},
		// ListenerSets: read, and the status of those of our Gateways.
		"gateway.networking.k8s.io/listenersets":        {"get", "list", "watch"},
		"gateway.networking.k8s.io/listenersets/status": {"update"},
		"/namespaces": {"get", "list", "watch"},
		// BackendTLSPolicies and the ConfigMaps of their CA bundles.
		"gateway.networking.k8s.io/backendtlspolicies":        {"get", "list", "watch"},
		"gateway.networking.k8s.io/backendtlspolicies/status": {"update"},
		"/configmaps": {"get", "list", "watch"},
	},
}

// checkRBAC: least privilege. Roles and ClusterRoles grant only what
// grants lists (no wildcard, no other resource or verb, no non-resource
// URL), bindings bind roles of the render to service accounts of the
// render, and service accounts mount no token unless the pod asks.
func checkRBAC(objs []object, fail failFunc) {
	checkRules := func(o object, rules []rbacv1.PolicyRule) {
		if len(rules) == 0 {
			fail(o, "grants nothing")
		}
		for i, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, verb := range r.Verbs {
						if !slices.Contains(grants[o.Kind][g+"/"+res], verb) {
							fail(o, "rule %d grants %s on %s/%s, which no part of Flotilla needs", i, verb, g, res)
						}
					}
				}
			}
			if len(r.NonResourceURLs) > 0 {
				fail(o, "rule %d grants non-resource URLs %q", i, r.NonResourceURLs)
			}
		}
	}
	checkSubjects := func(o object, subjects []rbacv1.Subject) {
		for _, s := range subjects {
			ns := s.Namespace
			if ns == "" {
				ns = o.Namespace
			}
			// A Helm render's objects name no namespace.
			if s.Kind != "ServiceAccount" || find[*corev1.ServiceAccount](objs, "ServiceAccount", ns, s.Name) == nil && find[*corev1.ServiceAccount](objs, "ServiceAccount", "", s.Name) == nil {
				fail(o, "binds %s %s/%s, not a service account of the render", s.Kind, ns, s.Name)
			}
		}
	}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *rbacv1.Role:
			checkRules(o, v.Rules)
		case *rbacv1.ClusterRole:
			checkRules(o, v.Rules)
		case *rbacv1.RoleBinding:
			if v.RoleRef.Kind != "Role" || find[*rbacv1.Role](objs, "Role", o.Namespace, v.RoleRef.Name) == nil {
				fail(o, "binds %s %s, which is not a Role of the render in its namespace", v.RoleRef.Kind, v.RoleRef.Name)
			}
			checkSubjects(o, v.Subjects)
		case *rbacv1.ClusterRoleBinding:
			if v.RoleRef.Kind != "ClusterRole" || find[*rbacv1.ClusterRole](objs, "ClusterRole", "", v.RoleRef.Name) == nil {
				fail(o, "binds %s %s, which is not a ClusterRole of the render", v.RoleRef.Kind, v.RoleRef.Name)
			}
			checkSubjects(o, v.Subjects)
		case *corev1.ServiceAccount:
			if v.AutomountServiceAccountToken == nil || *v.AutomountServiceAccountToken {
				fail(o, "mounts its token in every pod that uses it; set automountServiceAccountToken: false (the pod that needs it asks)")
			}
		}
	}
}

func find[T any](objs []object, kind, ns, name string) T {
	var zero T
	for _, o := range objs {
		if o.Kind == kind && o.Namespace == ns && o.Name == name {
			if v, ok := o.Obj.(T); ok {
				return v
			}
		}
	}
	return zero
}

func checkIngresses(objs []object, fail failFunc) {
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
				b := p.Backend.Service
				if b == nil {
					fail(o, "path %s has no service backend", p.Path)
					continue
				}
				svc := find[*corev1.Service](objs, "Service", o.Namespace, b.Name)
				if svc == nil {
					fail(o, "path %s: no Service %s", p.Path, b.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
				}) {
					fail(o, "path %s: Service %s has no port %v", p.Path, b.Name, b.Port)
				}
			}
		}
	}
}

// flagSet is what `flotilla <sub> --help` documents.
type flagSet struct {
	flags, env map[string]bool
	defaults   map[string]string // flag → default value, where help shows one
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]flagSet{}
	helpFlag  = regexp.MustCompile(`--([a-z0-9-]+)[^\n]*\[\$(FLOTILLA_[A-Z0-9_]+)\](?: \(default "?([^"\n]*?)"?\))?\n`)
)

// flagsOf asks the real flotilla command line which flags sub has, so a
// manifest cannot set a flag or variable the binary does not know.
func flagsOf(sub string) (flagSet, error) {
	helpMu.Lock()
	defer helpMu.Unlock()
	if fs, ok := helpCache[sub]; ok {
		return fs, nil
	}
	var out bytes.Buffer
	env := cli.Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }, LookupEnv: func(string) (string, bool) { return "", false }}
	if code := cli.Run(context.Background(), []string{sub, "--help"}, env); code != cli.ExitOK {
		return flagSet{}, fmt.Errorf("flotilla %s --help exited %d: %s", sub, code, out.String())
	}
	fs := flagSet{flags: map[string]bool{}, env: map[string]bool{}, defaults: map[string]string{}}
	for _, m := range helpFlag.FindAllStringSubmatch(out.String(), -1) {
		fs.flags[m[1]] = true
		fs.env[m[2]] = true
		fs.defaults[m[1]] = m[3]
	}
	if len(fs.flags) == 0 {
		return fs, fmt.Errorf("flotilla %s --help lists no flags", sub)
	}
	helpCache[sub] = fs
	return fs, nil
}

// checkMountedObjects fails a pod whose volumes, env or envFrom name a
// Secret or ConfigMap that the same render does not create (and that is
// not marked optional), or a key that object does not hold (the volume
// named tls excepted: the user's certificate), since the kubelet
// would leave the pod in ContainerCreating (or CreateContainerConfigError)
// for ever, waiting for it.
func checkMountedObjects(objs []object, ws []workload, fail failFunc) {
	keys := map[string][]string{} // "Secret ns/name" → its keys
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.Secret:
			k := []string{}
			for key := range v.Data {
				k = append(k, key)
			}
			for key := range v.StringData {
				k = append(k, key)
			}
			keys["Secret "+o.Namespace+"/"+o.Name] = k
		case *corev1.ConfigMap:
			k := []string{}
			for key := range v.Data {
				k = append(k, key)
			}
			for key := range v.BinaryData {
				k = append(k, key)
			}
			keys["ConfigMap "+o.Namespace+"/"+o.Name] = k
		}
	}
	for _, w := range ws {
		need := func(kind, name string, optional *bool, items []string, where string) {
			if optional != nil && *optional {
				return
			}
			have, ok := keys[kind+" "+w.obj.Namespace+"/"+name]
			if !ok {
				fail(w.obj, "%s uses %s %q, which this render does not create (the pod would never start; mark it optional if it may be absent)", where, kind, name)
				return
			}
			for _, item := range items {
				if !slices.Contains(have, item) {
					fail(w.obj, "%s uses key %q of %s %q, which has only %q", where, item, kind, name, have)
				}
			}
		}
		itemKeys := func(items []corev1.KeyToPath) []string {
			var k []string
			for _, i := range items {
				k = append(k, i.Key)
			}
			return k
		}
		for _, v := range w.spec.Volumes {
			where := "volume " + v.Name
			switch {
			case v.Name == "tls":
				// The certificate the user brings (kubectl create secret
				// tls, cert-manager), as components/tls and the chart's
				// gateway.tls.secretName document.
			case v.Secret != nil:
				need("Secret", v.Secret.SecretName, v.Secret.Optional, itemKeys(v.Secret.Items), where)
			case v.ConfigMap != nil:
				need("ConfigMap", v.ConfigMap.Name, v.ConfigMap.Optional, itemKeys(v.ConfigMap.Items), where)
			case v.Projected != nil:
				for _, s := range v.Projected.Sources {
					if s.Secret != nil {
						need("Secret", s.Secret.Name, s.Secret.Optional, itemKeys(s.Secret.Items), where)
					}
					if s.ConfigMap != nil {
						need("ConfigMap", s.ConfigMap.Name, s.ConfigMap.Optional, itemKeys(s.ConfigMap.Items), where)
					}
				}
			}
		}
		for _, c := range slices.Concat(w.spec.InitContainers, w.spec.Containers) {
			for _, e := range c.EnvFrom {
				where := "container " + c.Name + " envFrom"
				if e.SecretRef != nil {
					need("Secret", e.SecretRef.Name, e.SecretRef.Optional, nil, where)
				}
				if e.ConfigMapRef != nil {
					need("ConfigMap", e.ConfigMapRef.Name, e.ConfigMapRef.Optional, nil, where)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				where := "container " + c.Name + " env " + e.Name
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					need("Secret", r.Name, r.Optional, []string{r.Key}, where)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					need("ConfigMap", r.Name, r.Optional, []string{r.Key}, where)
				}
			}
		}
	}
}
