//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
		ctx, cancel := context.WithTimeout(t.Context(), rolloutTimeout+30*time.Second)
		_, err := c.run(ctx, "", "rollout", "status", "-n", ns, w, "--timeout="+rolloutTimeout.String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
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

// response is what get saw.
type response struct {
	Status int
	Header http.Header
	Body   string
}

var client = &http.Client{Timeout: 5 * time.Second}

// get sends GET url, with header added, and reads the whole answer.
func get(ctx context.Context, url string, header http.Header) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return response{}, err
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}, nil
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
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
