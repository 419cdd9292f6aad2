package discovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// serviceAccountNamespace is where Kubernetes mounts the pod's namespace
// with its service account token.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Connect returns an Options.Connect that builds a client from kubeconfig
// when it is set, else from the pod's service account (in cluster), else
// from $KUBECONFIG or ~/.kube/config (a developer's machine). The
// namespace of backends that name none is $POD_NAMESPACE, else the
// service account's namespace, else the kubeconfig context's, else
// "default". getenv is os.Getenv in production.
func Connect(kubeconfig string, getenv func(string) string) func() (kubernetes.Interface, string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	return func() (kubernetes.Interface, string, error) {
		cfg, ns, err := restConfig(kubeconfig, getenv)
		if err != nil {
			return nil, "", err
		}
		cfg.UserAgent = "flotilla-gateway"
		// Protobuf is what kube-proxy uses for slices: smaller and cheaper
		// to decode than JSON.
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("API client: %w", err)
		}
		if v := getenv("POD_NAMESPACE"); v != "" {
			ns = v
		}
		return client, ns, nil
	}
}

func restConfig(kubeconfig string, getenv func(string) string) (*rest.Config, string, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err == nil {
			ns := "default"
			if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
				ns = strings.TrimSpace(string(b))
			}
			return cfg, ns, nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, "", fmt.Errorf("in-cluster config: %w", err)
		}
		if getenv("KUBECONFIG") == "" {
			home, _ := os.UserHomeDir()
			if _, err := os.Stat(filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)); home == "" || err != nil {
				return nil, "", errors.New("not running in a cluster (no KUBERNETES_SERVICE_HOST, or no service account token) and no kubeconfig: pass --kubeconfig (FLOTILLA_KUBECONFIG) or set KUBECONFIG")
			}
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, ~/.kube/config
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return cfg, ns, nil
}
