//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// talkExtras are what TestTalk adds to deploy/kubernetes/talk for the
// Ingress controller's own checks: a canary of flask-app on v2 behind an
// ingress-nginx canary Ingress (X-Canary: always → canary), and an Ingress
// whose annotation value is invalid. The namespace enforces Pod Security
// "restricted", hence the security context.
const talkExtras = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: flask-app-canary
  labels: {run: flask-app-canary}
spec:
  replicas: 1
  selector:
    matchLabels: {run: flask-app-canary}
  template:
    metadata:
      labels: {run: flask-app-canary}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: flask-app
        image: ghcr.io/flotilla-dev/flotilla:v2
        imagePullPolicy: IfNotPresent
        args: [counter, --addr=:5000, --redis-addr=redis:6379]
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef: {fieldPath: metadata.name}
        ports:
        - {containerPort: 5000, name: http}
        readinessProbe:
          httpGet: {path: /readyz, port: http}
          periodSeconds: 2
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {cpu: 500m, memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata:
  name: flask-app-canary
spec:
  selector: {run: flask-app-canary}
  ports:
  - {port: 5000, targetPort: 5000}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: flask-app-canary
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  rules:
  - host: flaskapp.test
    http:
      paths:
      - path: /flask
        pathType: Prefix
        backend:
          service:
            name: flask-app-canary
            port: {number: 5000}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bad-allowlist
  annotations:
    nginx.ingress.kubernetes.io/whitelist-source-range: 10.0.0.0/99
spec:
  rules:
  - host: bad.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: k8sdemo
            port: {number: 8080}
`

// TestTalk runs the talk's slides, verbatim, against deploy/kubernetes/talk
// (docs/talk.md): the talk's Deployments, LoadBalancer Services and
// Ingress (no class: Flotilla's IngressClass is the cluster default),
// served by the Flotilla gateway as the Ingress controller. Then the
// slides' operations: kubectl scale, kubectl set image under load, and
// kubectl rollout undo, each with zero failed requests through the
// Ingress; and the controller's own duties: Ingress status, an Event for
// a bad annotation that leaves the other Ingresses serving, and an
// ingress-nginx canary by header.
func TestTalk(t *testing.T) {
	c := newCluster(t)
	s := &system{cluster: c}
	s.ns = c.namespace(t, "talk")
	// The overlay's cluster-scoped objects: the IngressClass flotilla (the
	// same everywhere, left in place) and the ClusterRoleBinding, renamed
	// for this namespace and deleted with it. The gateway reads only its
	// own namespace's Ingresses (--ingress-namespaces in the overlay).
	crb := "flotilla-ingress-controller-" + s.ns
	t.Cleanup(func() {
		if _, err := c.run(context.Background(), "", "delete", "clusterrolebinding", crb, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	start := time.Now()
	c.applyMoved(t, s.ns, deployDir("talk"), fmt.Sprintf(`
  - target: {kind: ClusterRoleBinding, name: flotilla-ingress-controller}
    patch: |-
      - {op: replace, path: /metadata/name, value: %s}`, crb))
	c.apply(t, s.ns, talkExtras)
	s.waitRolledOut(t, "deploy/redis", "deploy/flask-app", "deploy/k8sdemo", "deploy/default-http-backend", "deploy/flask-app-canary", "deploy/gateway")
	t.Logf("deploy/kubernetes/talk rolled out in %v", time.Since(start).Round(100*time.Millisecond))
	s.gateway = fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, s.ns, "gateway-nodeport", 80))
	s.counter = fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, s.ns, "flask-app", 5000))
	s.demo = fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, s.ns, "k8sdemo", 8080))
	waitOK(t, s.gateway+"/flask", "flaskapp.test")
	s.waitIngressBackend(t, "flask-app", "run=flask-app", 5000)
	t.Logf("the talk's Ingress served %v after kubectl apply", time.Since(start).Round(100*time.Millisecond))

	t.Run("Curl", func(t *testing.T) { testTalkCurl(t, s) })
	t.Run("IngressStatus", func(t *testing.T) { testTalkIngressStatus(t, s) })
	t.Run("BadAnnotation", func(t *testing.T) { testTalkBadAnnotation(t, s) })
	t.Run("CanaryByHeader", func(t *testing.T) { testTalkCanary(t, s) })
	t.Run("Scale", func(t *testing.T) { testTalkScale(t, s) })
	t.Run("SetImage", func(t *testing.T) {
		testTalkRollout(t, s, "v1", "v2", "set", "image", "deploy", "flask-app", "flask-app="+image("v2"))
	})
	t.Run("RolloutUndo", func(t *testing.T) { testTalkRollout(t, s, "v2", "v1", "rollout", "undo", "deploy/flask-app") })
}

// testTalkCurl: the slides' curls. flask-app through its LoadBalancer
// Service's node port and through the Ingress by host name count on; the
// k8sdemo likewise; a host no rule names gets the default backend.
func testTalkCurl(t *testing.T, s *system) {
	pods := s.podNames(t, s.ns, "run=flask-app")
	prev := -1
	try := func(what, url, host string) {
		t.Helper()
		r, err := fetch(t.Context(), url, host, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		_, n := counterAnswer(t, what, r, pods)
		// One client, nothing else increments: each answer is one more.
		if prev >= 0 && n != prev+1 {
			t.Errorf("%s: value=%d after value=%d, want %d", what, n, prev, prev+1)
		}
		prev = n
	}
	for i := range 3 {
		try(fmt.Sprintf("curl http://<node>:<flask-app node port> (%d)", i), s.counter, "")
		try(fmt.Sprintf("curl http://flaskapp.test/flask (%d)", i), s.gateway+"/flask", "flaskapp.test")
		// rewrite-target: / sends every path under /flask to /.
		try(fmt.Sprintf("curl http://flaskapp.test/flask/x (%d)", i), s.gateway+"/flask/x", "flaskapp.test")
	}
	t.Logf("flask-app counted on to value=%d through the node port and the Ingress", prev)

	demoPods := s.podNames(t, s.ns, "run=k8sdemo")
	for _, via := range []struct{ what, url, host string }{
		{"curl http://<node>:<k8sdemo node port>", s.demo, ""},
		{"curl http://minikube.test/k8sdemo", s.gateway + "/k8sdemo", "minikube.test"},
	} {
		r, err := fetch(t.Context(), via.url, via.host, nil)
		if err != nil {
			t.Fatalf("%s: %v", via.what, err)
		}
		if inst := r.Header.Get("X-Flotilla-Instance"); r.Status != http.StatusOK || !strings.Contains(r.Body, "version v1") || !slices.Contains(demoPods, inst) {
			t.Errorf("%s: status %d, instance %q, body %q; want 200, one of %q and the demo's page (its /: rewrite-target)", via.what, r.Status, inst, r.Body, demoPods)
		}
	}

	for _, c := range []struct{ what, path, host string }{
		{"a host no rule names", "/", "unknown.test"},
		{"a host no rule names, any path", "/k8sdemo", "unknown.test"},
		{"flaskapp.test outside /flask (the Ingress's defaultBackend)", "/", "flaskapp.test"},
	} {
		r, err := fetch(t.Context(), s.gateway+c.path, c.host, nil)
		if err != nil || r.Status != http.StatusNotFound || r.Body != "default backend - 404\n" {
			t.Errorf("%s: GET %s%s: %v, status %d, body %q; want 404 from default-http-backend", c.what, c.host, c.path, err, r.Status, r.Body)
		}
	}
}

// testTalkIngressStatus: the controller writes the gateway Service's
// address (--publish-service) to the Ingress's status, as `kubectl get
// ingress` shows it.
func testTalkIngressStatus(t *testing.T, s *system) {
	want := strings.TrimSpace(s.kc(t, s.ns, "get", "service", "gateway", "-o", "jsonpath={.spec.clusterIP}"))
	eventually(t, convergeTimeout, "Ingress ingress-definitions status", func() error {
		got := strings.TrimSpace(s.kc(t, s.ns, "get", "ingress", "ingress-definitions", "-o", "jsonpath={.status.loadBalancer.ingress[*].ip}"))
		if got != want {
			return fmt.Errorf("status.loadBalancer.ingress IPs %q, want the gateway Service's %q", got, want)
		}
		return nil
	})
	t.Logf("kubectl get ingress:\n%s", s.kc(t, s.ns, "get", "ingress"))
}

// testTalkBadAnnotation: an Ingress with an invalid annotation value gets
// a Warning Event naming it and is not served; the talk's Ingress still is.
func testTalkBadAnnotation(t *testing.T, s *system) {
	eventually(t, convergeTimeout, "an Event for Ingress bad-allowlist", func() error {
		out := s.kc(t, s.ns, "get", "events", "--field-selector", "involvedObject.kind=Ingress,involvedObject.name=bad-allowlist",
			"-o", `jsonpath={range .items[*]}{.type} {.reason}: {.message}{"\n"}{end}`)
		if !strings.Contains(out, "Warning IngressRejected") || !strings.Contains(out, "whitelist-source-range") || !strings.Contains(out, "10.0.0.0/99") {
			return fmt.Errorf("events %q, want a Warning IngressRejected naming whitelist-source-range and 10.0.0.0/99", out)
		}
		t.Logf("events of Ingress bad-allowlist: %s", strings.TrimSpace(out))
		return nil
	})
	// Not served without the IP rule it asks for: bad.test is a host no
	// rule names.
	if r, err := fetch(t.Context(), s.gateway+"/", "bad.test", nil); err != nil || r.Status != http.StatusNotFound {
		t.Errorf("GET bad.test/: %v, status %d, body %q; want 404 (the Ingress is not served)", err, r.Status, r.Body)
	}
	r, err := fetch(t.Context(), s.gateway+"/flask", "flaskapp.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	counterAnswer(t, "flaskapp.test/flask next to the rejected Ingress", r, s.podNames(t, s.ns, "run=flask-app"))
}

// testTalkCanary: the canary Ingress (canary-by-header: X-Canary) merges
// into the talk's route: "always" goes to the canary (v2), "never" and no
// header to flask-app (v1).
func testTalkCanary(t *testing.T, s *system) {
	s.waitIngressBackend(t, "flask-app-canary", "run=flask-app-canary", 5000)
	canary := s.podNames(t, s.ns, "run=flask-app-canary")
	main := s.podNames(t, s.ns, "run=flask-app")
	get := func(value string) response {
		t.Helper()
		h := http.Header{}
		if value != "" {
			h.Set("X-Canary", value)
		}
		r, err := fetch(t.Context(), s.gateway+"/flask", "flaskapp.test", h)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	eventually(t, convergeTimeout, "X-Canary: always answered by the canary", func() error {
		if r := get("always"); r.Header.Get("X-Flotilla-Version") != "v2" {
			return fmt.Errorf("status %d, version %q, body %q", r.Status, r.Header.Get("X-Flotilla-Version"), r.Body)
		}
		return nil
	})
	for i := range 10 {
		for _, c := range []struct {
			header, version string
			pods            []string
		}{{"always", "v2", canary}, {"never", "v1", main}, {"", "v1", main}} {
			r := get(c.header)
			pod, _ := counterAnswer(t, fmt.Sprintf("X-Canary %q request %d", c.header, i), r, c.pods)
			if v := r.Header.Get("X-Flotilla-Version"); v != c.version {
				t.Errorf("X-Canary %q request %d: version %q from %s, want %s", c.header, i, v, pod, c.version)
			}
		}
	}
}

// testTalkScale: kubectl scale deploy flask-app --replicas=4, and all 4
// answer through the Ingress.
func testTalkScale(t *testing.T, s *system) {
	start := time.Now()
	s.kc(t, s.ns, "scale", "deploy", "flask-app", "--replicas=4")
	s.waitRolledOut(t, "deploy/flask-app")
	s.waitIngressBackend(t, "flask-app", "run=flask-app", 5000)
	t.Logf("scaled to 4 and every gateway replica had the 4 pods after %v", time.Since(start).Round(100*time.Millisecond))
	pods := s.podNames(t, s.ns, "run=flask-app")
	if len(pods) != 4 {
		t.Fatalf("pods %q, want 4", pods)
	}
	seen := map[string]int{}
	for i := 0; i < 200 && len(seen) < 4; i++ {
		r, err := fetch(t.Context(), s.gateway+"/flask", "flaskapp.test", nil)
		if err != nil {
			t.Fatal(err)
		}
		pod, _ := counterAnswer(t, fmt.Sprintf("request %d after the scale", i), r, pods)
		seen[pod]++
	}
	if len(seen) != 4 {
		t.Errorf("200 requests through the Ingress were answered by %v, want all 4 pods %q", seen, pods)
	}
	t.Logf("answers by pod: %v", seen)
}

// testTalkRollout runs a kubectl command that moves flask-app from one
// version to the other (the slide's set image, or rollout undo) under
// loadRate requests/s through the Ingress, then the slide's kubectl
// rollout status: no request fails, a probe before sees only from, a
// probe once only new pods are left and the gateway has them only to.
func testTalkRollout(t *testing.T, s *system, from, to string, kubectl ...string) {
	name := fmt.Sprintf("flask-app %s→%s (kubectl %s), Ingress flaskapp.test/flask", from, to, strings.Join(kubectl, " "))
	cfg := load.Config{URL: s.gateway + "/flask", Host: "flaskapp.test"}
	tr := startLoad(t, name, cfg)
	p := probe{name: name + ", probe", cfg: cfg}
	expectOnly(t, from, p)
	start := time.Now()
	s.kc(t, s.ns, kubectl...)
	// kubectl rollout status deployment/flask-app; its own deadline, or
	// run would bound it by kubectlTimeout.
	ctx, cancel := context.WithTimeout(t.Context(), rolloutLongTimeout)
	defer cancel()
	out, err := s.run(ctx, "", "rollout", "status", "-n", s.ns, "deployment/flask-app", "--timeout="+rolloutLongTimeout.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl rollout status after %v: %s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(out))
	s.waitPods(t, "run=flask-app", 4)
	s.waitIngressBackend(t, "flask-app", "run=flask-app", 5000)
	t.Logf("only %s pods left, in every gateway replica, %v after the command", to, time.Since(start).Round(100*time.Millisecond))
	expectOnly(t, to, p)
	sum := tr.stopNoFailures(t)
	if sum.Rate < loadRate*0.9 {
		t.Errorf("load %s: %.0f requests/s sent, want about %d", name, sum.Rate, loadRate)
	}
	checkVersions(t, name, sum, from, to)
}

// waitIngressBackend waits until every gateway replica has exactly the
// ready pods matching selector (ip:port) as available endpoints of the
// backend the Ingress controller made for Service service
// (ing.<namespace>.<service>.<port>…, docs/ingress.md).
func (s *system) waitIngressBackend(t *testing.T, service, selector string, port int) {
	t.Helper()
	prefix := "ing." + s.ns + "." + service + "."
	s.waitBackend(t, prefix+"*", func(name string) bool { return strings.HasPrefix(name, prefix) }, selector, port, true)
}
