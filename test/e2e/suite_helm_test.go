//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flotilla-dev/flotilla/internal/load"
)

// helmModule is Helm from the Go module proxy, as the Makefile's HELM.
const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

// TestHelm installs the chart with deploy/helm/values-local.yaml in a
// namespace of its own, runs `helm test` (its pod sends requests to the
// counter through the gateway, by path and by the talk's host) and curls
// the chart's NodePorts. $HELM names a helm binary; without it Helm is
// built from the module proxy (slow once, then from Go's build cache).
func TestHelm(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "helm")
	run := helmRunner(t, c, ns)
	run("install", "flotilla", "../../deploy/helm/flotilla", "-f", "../../deploy/helm/values-local.yaml", "--wait", "--timeout", "5m")
	testHelmInstalled(t, c, ns, run)
}

// helmRunner returns a function that runs helm in namespace ns of c and
// fails the test on error. $HELM names a helm binary; without it Helm is
// built from the module proxy (slow once, then from Go's build cache).
func helmRunner(t *testing.T, c *cluster, ns string) func(args ...string) string {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" {
		bin := t.TempDir()
		helm = filepath.Join(bin, "helm")
		build := exec.CommandContext(t.Context(), "go", "install", helmModule)
		build.Env = append(os.Environ(), "GOBIN="+bin)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", helmModule, err, out)
		}
	}
	return func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, helm, append(args, "-n", ns)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		t.Logf("helm %s:\n%s", strings.Join(args, " "), out.String())
		if err != nil {
			t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
}

// testHelmInstalled is TestHelm's checks of the release installed in ns.
func testHelmInstalled(t *testing.T, c *cluster, ns string, run func(args ...string) string) {
	gw := fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, ns, "flotilla-gateway", 80))
	counter := fmt.Sprintf("http://127.0.0.1:%d", c.nodePort(t, ns, "flotilla-counter", 5000))
	// `helm install --wait` returns when the pods are ready; the gateway
	// learns them from their EndpointSlices (when it resolved headless
	// Services' names, the cluster DNS cached their empty answers and a
	// `helm test` run at once got 503 no_healthy_upstream). Wait until
	// every gateway replica has every ready pod of both backends (one
	// replica answering says nothing of the other), then run it.
	s := &system{cluster: c, ns: ns}
	s.waitGateway(t, "counter", "app.kubernetes.io/name=counter")
	s.waitGateway(t, "demo", "app.kubernetes.io/name=demo")
	waitOK(t, gw+"/counter", "")
	waitOK(t, gw+"/flask", "flaskapp.test")
	run("test", "flotilla", "--timeout", "5m")

	pods := c.podNames(t, ns, "app.kubernetes.io/name=counter")
	waitOK(t, counter+"/", "")
	prev := -1
	for i, u := range []struct{ url, host string }{{counter + "/", ""}, {gw + "/flask", "flaskapp.test"}, {gw + "/counter", ""}} {
		waitOK(t, u.url, u.host)
		r, err := fetch(t.Context(), u.url, u.host, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, n := counterAnswer(t, fmt.Sprintf("request %d to %s (Host %q)", i, u.url, u.host), r, pods)
		if n <= prev {
			t.Errorf("%s: value=%d after value=%d, want more", u.url, n, prev)
		}
		prev = n
	}

	// The chart's /limited (redis.enabled): the demo under one limit of 50
	// requests a second (burst 50) for both gateway replicas together,
	// counted in the chart's Redis, which the gateway reaches with the
	// password the chart mounts. Fail-open would admit everything, so 429s
	// prove Redis answered; the admitted count stays near the fleet's limit.
	waitOK(t, gw+"/limited/", "")
	if r, err := fetch(t.Context(), gw+"/limited/", "", nil); err != nil || !strings.Contains(r.Header.Get("RateLimit-Policy"), `"fleet";q=50;w=1`) {
		t.Errorf("GET %s/limited/: %v, header %v; want RateLimit-Policy \"fleet\";q=50;w=1", gw, err, r.Header)
	}
	sleep(t, 2*time.Second) // the bucket refills
	sum, err := load.Run(t.Context(), load.Config{URL: gw + "/limited/", Rate: 150, Duration: 5 * time.Second,
		Timeout: loadTimeout, DisableKeepAlive: true}, load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := 50*sum.Elapsed.Seconds() + 50
	t.Logf("helm /limited, 150 req/s for %s: %d admitted, %d refused (429), want %.0f admitted; statuses %v",
		sum.Elapsed.Round(time.Millisecond), sum.Status[http.StatusOK], sum.Status[http.StatusTooManyRequests], want, sum.Status)
	if got := float64(sum.Status[http.StatusOK]); sum.Status[http.StatusTooManyRequests] == 0 || math.Abs(got-want) > 0.1*want {
		t.Errorf("/limited admitted %v and refused %d, want %.0f ± 10%% admitted: the gateway does not count in the chart's Redis", got, sum.Status[http.StatusTooManyRequests], want)
	}

	// HTTPS (values-local.yaml: gateway.tls.enabled) with the chart's
	// generated certificate, trusting only the CA the chart put next to it.
	caB64 := c.must(t, "", "get", "secret", "-n", ns, "flotilla-gateway-tls", "-o", `jsonpath={.data.ca\.crt}`)
	caPEM, err := base64.StdEncoding.DecodeString(strings.TrimSpace(caB64))
	block, _ := pem.Decode(caPEM)
	if err != nil || block == nil {
		t.Fatalf("Secret flotilla-gateway-tls key ca.crt: %v, %q", err, caB64)
	}
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: caCert, pool: x509.NewCertPool()}
	ca.pool.AddCert(caCert)
	gwTLS := fmt.Sprintf("https://127.0.0.1:%d", c.nodePort(t, ns, "flotilla-gateway", 443))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, gwTLS+"/counter", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := do(h2Client(ca), req)
	if err != nil {
		t.Fatalf("GET %s/counter: %v", gwTLS, err)
	}
	if _, n := counterAnswer(t, "HTTPS "+gwTLS+"/counter", r, pods); n <= prev || r.ProtoMajor != 2 {
		t.Errorf("HTTPS %s/counter: HTTP/%d, value=%d after value=%d; want HTTP/2 and more", gwTLS, r.ProtoMajor, n, prev)
	}
	if err := verified(r, ca); err != nil {
		t.Errorf("HTTPS %s/counter: %v", gwTLS, err)
	}

	// The chart's gRPC routes: the demo's health service over HTTPS.
	s.waitGateway(t, "demo-grpc", "app.kubernetes.io/name=demo")
	conn, err := grpc.NewClient(strings.TrimPrefix(gwTLS, "https://"), grpc.WithTransportCredentials(credentials.NewTLS(ca.tlsConfig())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC Health/Check through %s: %v, %v; want SERVING", gwTLS, res.GetStatus(), err)
	}
}
