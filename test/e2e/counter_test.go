//go:build e2e

package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// counterManifest is the smallest deployment of the talk's flask-app: Redis
// (no persistence: this test is about the request path) and two counter
// replicas behind a NodePort. The full manifests live in deploy/kubernetes.
const counterManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, labels: {app: redis}}
spec:
  replicas: 1
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 999, runAsGroup: 999, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: redis
        image: redis:7.0
        imagePullPolicy: IfNotPresent
        command: ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"]
        ports: [{containerPort: 6379}]
        readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 2}
        resources: {requests: {cpu: 20m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: redis}
spec:
  selector: {app: redis}
  ports: [{port: 6379}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: counter, labels: {app: counter}}
spec:
  replicas: 2
  selector: {matchLabels: {app: counter}}
  template:
    metadata: {labels: {app: counter}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: counter
        image: ghcr.io/flotilla-dev/flotilla:v1
        imagePullPolicy: IfNotPresent
        args: ["counter"]
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /healthz, port: 8080}}
        resources: {requests: {cpu: 20m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: counter}
spec:
  type: NodePort
  selector: {app: counter}
  ports: [{port: 80, targetPort: 8080}]
`

// counterLine is the talk's answer to curl.
var counterLine = regexp.MustCompile(`^\[([^\]]+)\] Redis counter value=(\d+)\n$`)

// TestCounterThroughNodePort is the talk's first demo: curl the NodePort,
// get "[<pod>] Redis counter value=N", N going up by one per request.
func TestCounterThroughNodePort(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "counter")
	c.apply(t, ns, counterManifest)
	c.waitRollout(t, ns, "deploy/redis", "deploy/counter")
	pods := c.podNames(t, ns, "app=counter")
	url := fmt.Sprintf("http://127.0.0.1:%d/", c.nodePort(t, ns, "counter", 80))

	// kube-proxy programs the NodePort shortly after the Service exists.
	eventually(t, convergeTimeout, "GET "+url, func() error {
		r, err := fetch(t.Context(), url, "", nil)
		if err == nil && r.Status != 200 {
			err = fmt.Errorf("status %d: %q", r.Status, r.Body)
		}
		return err
	})

	// A new connection per request, so kube-proxy picks a pod for each, as for the talk's curls.
	// At least 20 requests, and on until every pod has answered: a pod the rollout calls ready
	// can reach kube-proxy's rules seconds after the first one. How long that takes is the
	// machine's business (convergeTimeout bounds a cluster that never converges).
	prev := -1
	seen := map[string]bool{}
	sent, deadline := 0, time.Now().Add(convergeTimeout)
	for i := 0; i < 20 || len(seen) < len(pods) && time.Now().Before(deadline); i++ {
		sent++
		r, err := fetch(t.Context(), url, "", nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		m := counterLine.FindStringSubmatch(r.Body)
		if r.Status != 200 || m == nil {
			t.Fatalf("request %d: status %d, body %q, want 200 and %q", i, r.Status, r.Body, counterLine)
		}
		n, _ := strconv.Atoi(m[2])
		// One client and nothing else increments: each answer is exactly one more.
		if prev >= 0 && n != prev+1 {
			t.Errorf("request %d: value=%d after value=%d, want %d", i, n, prev, prev+1)
		}
		prev = n
		if !slices.Contains(pods, m[1]) {
			t.Errorf("request %d: answered by %q, not one of the counter pods %q", i, m[1], pods)
		}
		seen[m[1]] = true
		if v := r.Header.Get("X-Flotilla-Version"); v != "v1" {
			t.Errorf("request %d: X-Flotilla-Version = %q, want v1 (the image's baked-in version)", i, v)
		}
	}
	if len(seen) != len(pods) {
		t.Errorf("answers came from %d pods %v in %v, want every one of %q", len(seen), seen, convergeTimeout, pods)
	}
	t.Logf("%d requests answered by %d pods, value now %d", sent, len(seen), prev)
}
