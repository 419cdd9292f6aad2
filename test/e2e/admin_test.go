//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// admin calls a gateway pod's admin API the way an operator's tool does:
// straight to the pod's address (the node, where the tests run, reaches
// pod IPs) with the bearer token from the gateway's admin Secret. The API
// server's pod proxy cannot be used: it drops the Authorization header,
// and the admin API answers 401 without it (docs/deploy.md).
func (s *system) admin(ctx context.Context, pod, method, path, body string) (string, error) {
	ip, err := s.run(ctx, "", "get", "pod", "-n", s.ns, pod, "-o", "jsonpath={.status.podIP}")
	if err != nil {
		return "", err
	}
	token, err := s.adminToken(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+strings.TrimSpace(ip)+":9901"+path, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := freshClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("gateway %s: %s %s: %d %s", pod, method, path, resp.StatusCode, b)
	}
	return string(b), nil
}

// adminToken reads the token of the Secret the gateway Deployment mounts as
// admin-token: kustomize's gateway-admin-<hash> or Helm's
// <release>-gateway-admin, so the Deployment is found by its label.
func (s *system) adminToken(ctx context.Context) (string, error) {
	name, err := s.run(ctx, "", "get", "deploy", "-n", s.ns, "-l", "app.kubernetes.io/name=gateway", "-o",
		`jsonpath={.items[0].spec.template.spec.volumes[?(@.name=="admin-token")].secret.secretName}`)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(name) == "" {
		return "", fmt.Errorf("namespace %s: no gateway Deployment mounting an admin-token Secret", s.ns)
	}
	data, err := s.run(ctx, "", "get", "secret", "-n", s.ns, strings.TrimSpace(name), "-o", "jsonpath={.data.token}")
	if err != nil {
		return "", err
	}
	token, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
	if err != nil {
		return "", fmt.Errorf("secret %s: token: %v", name, err)
	}
	return strings.TrimSpace(string(token)), nil
}

// mustAdmin is admin that fails the test on error.
func (s *system) mustAdmin(t *testing.T, pod, method, path, body string) string {
	t.Helper()
	out, err := s.admin(t.Context(), pod, method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
