package kubeshared

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// TestPublishedAddresses: explicit addresses win; else the Service's
// load balancer, else its external IPs, else its cluster IP; a missing
// Service is an error naming it.
func TestPublishedAddresses(t *testing.T) {
	svc := func(name string, mod func(*corev1.Service)) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.9", ExternalIPs: []string{"192.0.2.5"}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.1"}, {Hostname: "lb.example.com"}, {IP: "203.0.113.1"}}}}}
		if mod != nil {
			mod(s)
		}
		return s
	}
	client := fake.NewClientset(svc("lb", nil),
		svc("ext", func(s *corev1.Service) { s.Status = corev1.ServiceStatus{} }),
		svc("cluster", func(s *corev1.Service) { s.Status, s.Spec.ExternalIPs = corev1.ServiceStatus{}, nil }),
		svc("headless", func(s *corev1.Service) {
			s.Status, s.Spec.ExternalIPs, s.Spec.ClusterIP = corev1.ServiceStatus{}, nil, corev1.ClusterIPNone
		}))
	tests := []struct {
		service string
		addrs   []string
		want    []string
		err     string
	}{
		{"", nil, nil, ""},
		{"ns/lb", []string{"198.51.100.1", "gw.example.com", "198.51.100.1"}, []string{"198.51.100.1", "gw.example.com"}, ""},
		{"ns/lb", nil, []string{"203.0.113.1", "lb.example.com"}, ""},
		{"ns/ext", nil, []string{"192.0.2.5"}, ""},
		{"ns/cluster", nil, []string{"10.0.0.9"}, ""},
		{"ns/headless", nil, nil, ""},
		{"ns/missing", nil, nil, "publish service ns/missing"},
	}
	for _, tt := range tests {
		got, err := PublishedAddresses(context.Background(), client.CoreV1(), tt.service, tt.addrs)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("PublishedAddresses(%q) error = %v, want %q", tt.service, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("PublishedAddresses(%q, %v) = %v, %v, want %v", tt.service, tt.addrs, got, err, tt.want)
		}
	}
}

// TestWriteFiles: files are written 0600 under dir, unchanged ones left
// alone, stale ones removed, and a name outside dir refused.
func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFiles(dir, map[string][]byte{"tls/a/tls.key": []byte("k1"), "old": []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(dir, map[string][]byte{"tls/a/tls.key": []byte("k2")}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tls", "a", "tls.key"))
	if err != nil || string(b) != "k2" {
		t.Errorf("tls.key = %q, %v, want k2", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls", "a", "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tls.key mode = %v, %v, want 0600", fi.Mode().Perm(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "old")); !os.IsNotExist(err) {
		t.Errorf("stale file kept: %v", err)
	}
	if err := WriteFiles(dir, map[string][]byte{"../escape": []byte("x")}); err == nil {
		t.Error("WriteFiles(../escape) = nil, want a refusal")
	}
}

// TestShortNameAndServicePort: names stay valid config names; Service
// ports resolve to the name EndpointSlices use.
func TestShortNameAndServicePort(t *testing.T) {
	if got := ShortName("gw", "NS", "a b", "0"); got != "gw.ns.a-b.0" {
		t.Errorf("ShortName = %q", got)
	}
	long := ShortName("gw", strings.Repeat("x", 80))
	if len(long) != MaxName || long == ShortName("gw", strings.Repeat("x", 81)) {
		t.Errorf("long names: %q (%d), want %d characters, distinct", long, len(long), MaxName)
	}
	s := &corev1.Service{Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Port: 81, TargetPort: intstr.FromInt32(8081)}, {Port: 82}, {Port: 83, TargetPort: intstr.FromString("web")}}}}
	for port, want := range map[int32]string{80: "http", 81: "8081", 82: "82", 83: "", 99: ""} {
		if got := ServicePortKey(s, port); got != want {
			t.Errorf("ServicePortKey(%d) = %q, want %q", port, got, want)
		}
	}
}
