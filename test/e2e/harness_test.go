//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeouts for waiting on the cluster; generous because CI machines are shared.
const (
	rolloutTimeout = 3 * time.Minute
	kubectlTimeout = 2 * time.Minute
)

// cluster runs kubectl against the cluster under test.
type cluster struct {
	kubectl    string // path of kubectl ($KUBECTL)
	kubeconfig string // $KUBECONFIG

	apiOnce sync.Once // apiServer
	api     *http.Client
	apiURL  string
	apiErr  error
}

// newCluster returns the cluster named by $KUBECONFIG and $KUBECTL (what
// test/e2e/cluster/env.sh prints), or fails the test saying how to get one.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{kubectl: os.Getenv("KUBECTL"), kubeconfig: os.Getenv("KUBECONFIG")}
	if c.kubectl == "" || c.kubeconfig == "" {
		t.Fatal(`KUBECTL and KUBECONFIG must be set: run "make e2e", or "make cluster-up" then eval "$(test/e2e/cluster/env.sh)"`)
	}
	if _, err := os.Stat(c.kubeconfig); err != nil {
		t.Fatalf("KUBECONFIG: %v (is the cluster up? make cluster-up)", err)
	}
	return c
}

// run runs kubectl with args, stdin as its input, and returns its stdout.
// It is bounded by kubectlTimeout unless ctx has a deadline of its own, so
// a kubectl given a longer --timeout is not killed first.
func (c *cluster) run(ctx context.Context, stdin string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, kubectlTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// must is run that fails the test on error.
func (c *cluster) must(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := c.run(t.Context(), stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// namespace creates a namespace for t, named after prefix, and deletes it
// when t ends; if t failed, it first dumps what is in it.
func (c *cluster) namespace(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "e2e-" + prefix + "-" + hex.EncodeToString(b)
	c.must(t, "", "create", "namespace", ns)
	t.Cleanup(func() {
		// t.Context() is already cancelled in cleanups.
		ctx := context.Background()
		if t.Failed() {
			c.dump(ctx, t, ns)
		}
		if _, err := c.run(ctx, "", "delete", "namespace", ns, "--wait=false"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return ns
}

// apply applies manifest (YAML) in namespace ns.
func (c *cluster) apply(t *testing.T, ns, manifest string) {
	t.Helper()
	c.must(t, manifest, "apply", "-n", ns, "-f", "-")
}

// waitRollout waits until every named workload ("deploy/counter",
// "statefulset/redis") has rolled out.
func (c *cluster) waitRollout(t *testing.T, ns string, workloads ...string) {
	t.Helper()
	for _, w := range workloads {
		eventually(t, rolloutTimeout, "rollout of "+w, c.rolloutDone(t.Context(), ns, w))
	}
}

// nodePort returns the node port of Service svc's port named or numbered port.
func (c *cluster) nodePort(t *testing.T, ns, svc string, port int) int {
	t.Helper()
	out := c.must(t, "", "get", "service", "-n", ns, svc, "-o",
		fmt.Sprintf(`jsonpath={.spec.ports[?(@.port==%d)].nodePort}`, port))
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("service %s/%s port %d: no node port (got %q)", ns, svc, port, out)
	}
	return n
}

// podNames returns the names of the pods matching selector.
func (c *cluster) podNames(t *testing.T, ns, selector string) []string {
	t.Helper()
	out := c.must(t, "", "get", "pods", "-n", ns, "-l", selector, "-o", `jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}`)
	return strings.Fields(out)
}

// dump writes the namespace's pods, events and container logs to the test
// log, so that a failure in CI explains itself.
func (c *cluster) dump(ctx context.Context, t *testing.T, ns string) {
	show := func(title string, args ...string) {
		out, err := c.run(ctx, "", args...)
		if err != nil {
			out += err.Error()
		}
		t.Logf("=== %s\n%s", title, out)
	}
	show("pods in "+ns, "get", "pods", "-n", ns, "-o", "wide")
	show("pod details", "describe", "pods", "-n", ns)
	show("events in "+ns, "get", "events", "-n", ns, "--sort-by=.lastTimestamp")
	out, _ := c.run(ctx, "", "get", "pods", "-n", ns, "-o", `jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}`)
	for _, pod := range strings.Fields(out) {
		show("logs of "+pod, "logs", "-n", ns, pod, "--all-containers", "--prefix", "--tail=200")
		if prev, err := c.run(ctx, "", "logs", "-n", ns, pod, "--all-containers", "--prefix", "--previous", "--tail=100"); err == nil && prev != "" {
			t.Logf("=== logs of %s before its last restart\n%s", pod, prev)
		}
	}
}

// response is what fetch saw.
type response struct {
	Status     int
	Header     http.Header
	Body       string
	ProtoMajor int                  // 1 or 2
	TLS        *tls.ConnectionState // nil over clear text
}

// freshClient opens a new connection for every request, as curl does, so
// kube-proxy picks a pod for each one. Its timeout is generous (the
// machine is shared): a bound on a hang, not a speed assertion.
var freshClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// fetch sends GET url on a new connection, with Host host (none when host
// is "") and header added, and reads the whole answer.
func fetch(ctx context.Context, url, host string, header http.Header) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return response{}, err
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	return do(freshClient, req)
}

// do sends req with hc and reads the whole answer (up to 1 MiB).
func do(hc *http.Client, req *http.Request) (response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b), ProtoMajor: resp.ProtoMajor, TLS: resp.TLS}, nil
}

// apiServer returns an HTTP client for the API server with the
// kubeconfig's credentials (client certificate or bearer token; what
// `kubectl config view --raw --minify --flatten` shows), and its URL.
// kubectl cannot serve here: `kubectl get --raw` hides the body of an
// answer that is not 2xx, and that body is what a test reads.
func (c *cluster) apiServer(t *testing.T) (*http.Client, string) {
	t.Helper()
	c.apiOnce.Do(func() { c.api, c.apiURL, c.apiErr = c.newAPIClient(t.Context()) })
	if c.apiErr != nil {
		t.Fatalf("API server client from %s: %v", c.kubeconfig, c.apiErr)
	}
	return c.api, c.apiURL
}

func (c *cluster) newAPIClient(ctx context.Context) (*http.Client, string, error) {
	out, err := c.run(ctx, "", "config", "view", "--raw", "--minify", "--flatten", "-o", "json")
	if err != nil {
		return nil, "", err
	}
	var cfg struct {
		Clusters []struct {
			Cluster struct {
				Server                string `json:"server"`
				CertificateAuthority  []byte `json:"certificate-authority-data"`
				InsecureSkipTLSVerify bool   `json:"insecure-skip-tls-verify"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				ClientCertificate []byte `json:"client-certificate-data"`
				ClientKey         []byte `json:"client-key-data"`
				Token             string `json:"token"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		return nil, "", fmt.Errorf("kubectl config view: %v", err)
	}
	if len(cfg.Clusters) != 1 || len(cfg.Users) != 1 {
		return nil, "", fmt.Errorf("kubectl config view --minify: %d clusters and %d users, want one of each", len(cfg.Clusters), len(cfg.Users))
	}
	cl, user := cfg.Clusters[0].Cluster, cfg.Users[0].User
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cl.InsecureSkipTLSVerify}
	if len(cl.CertificateAuthority) > 0 {
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(cl.CertificateAuthority) {
			return nil, "", errors.New("certificate-authority-data: no PEM certificate")
		}
	}
	if len(user.ClientCertificate) > 0 {
		cert, err := tls.X509KeyPair(user.ClientCertificate, user.ClientKey)
		if err != nil {
			return nil, "", fmt.Errorf("client certificate: %v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	} else if user.Token == "" {
		return nil, "", errors.New("the user has neither a client certificate nor a token (exec and auth-provider plugins are not supported)")
	}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: tc}
	if user.Token != "" {
		rt = bearer{token: user.Token, next: rt}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: rt}, strings.TrimSuffix(cl.Server, "/"), nil
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// podGet sends GET path to pod's port through the API server's proxy to
// the pod (no NodePort, no Service: the pod itself, ready or not) and
// returns the pod's answer as it is.
func (c *cluster) podGet(t *testing.T, ns, pod string, port int, path string) (response, error) {
	t.Helper()
	hc, server := c.apiServer(t)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s:%d/proxy%s", server, ns, pod, port, path), nil)
	if err != nil {
		return response{}, err
	}
	return do(hc, req)
}

// eventually calls f until it returns nil or timeout passes, and then fails
// the test with f's last error. For waiting on the cluster to converge, not
// for asserting on speed.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if errors.As(err, new(*stuckError)) {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rolloutDone returns a check for eventually: nil when workload in ns has
// rolled out, else what it waits for, or a *stuckError when one of ns's
// pods cannot start, seen the same at two checks in a row (every tenth
// call, about 5 s apart: a Secret applied with its Deployment can be
// missing for a moment on a loaded machine).
func (c *cluster) rolloutDone(ctx context.Context, ns, workload string) func() error {
	calls, last := 0, ""
	return func() error {
		out, err := c.run(ctx, "", "rollout", "status", "-n", ns, workload, "--watch=false")
		if err == nil && !strings.Contains(out, "successfully rolled out") && !strings.Contains(out, "roll out complete") {
			err = errors.New(strings.TrimSpace(out))
		}
		if calls++; err != nil && calls%10 == 0 {
			stuck := c.stuckPods(ctx, ns)
			if stuck != nil && stuck.Error() == last {
				return stuck
			}
			last = ""
			if stuck != nil {
				last = stuck.Error()
			}
		}
		return err
	}
}

// stuckError is a pod that cannot start by itself: waiting on does not help.
type stuckError struct{ msg string }

func (e *stuckError) Error() string { return e.msg }

// stuckPods returns a *stuckError naming the first pod in ns that waits
// for something that will not come: a container that cannot be created
// (a missing Secret key or ConfigMap, an image the node does not have) or
// a volume whose Secret or ConfigMap does not exist, reported by the
// kubelet five times (its retries back off: about 15 s, past any cache sync
// on a loaded machine). A
// rollout wait fails with it at once instead of after its timeout.
func (c *cluster) stuckPods(ctx context.Context, ns string) error {
	out, err := c.run(ctx, "", "get", "pods", "-n", ns, "-o",
		`jsonpath={range .items[*]}{.metadata.name}{range .status.containerStatuses[*]} {.state.waiting.reason}{end}{"\n"}{end}`)
	if err != nil {
		return nil
	}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		for _, reason := range f[min(1, len(f)):] {
			switch reason {
			case "CreateContainerConfigError", "ErrImageNeverPull", "InvalidImageName", "ErrImagePull", "ImagePullBackOff":
				return &stuckError{fmt.Sprintf("pod %s/%s cannot start: %s", ns, f[0], reason)}
			}
		}
	}
	out, err = c.run(ctx, "", "get", "events", "-n", ns, "--field-selector", "reason=FailedMount", "-o",
		`jsonpath={range .items[*]}{.involvedObject.name} {.count} {.message}{"\n"}{end}`)
	if err != nil {
		return nil
	}
	for line := range strings.Lines(out) {
		f := strings.SplitN(strings.TrimSpace(line), " ", 3)
		if n, _ := strconv.Atoi(f[min(1, len(f)-1)]); len(f) == 3 && n >= 5 && strings.Contains(f[2], "not found") {
			return &stuckError{fmt.Sprintf("pod %s/%s cannot start: %s (%d times)", ns, f[0], f[2], n)}
		}
	}
	return nil
}
