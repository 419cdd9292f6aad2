package ingress

import (
	"os"
	"regexp"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDocsTableMatchesCode keeps docs/ingress.md honest: every annotation
// the table calls "not supported" gets a warning naming it (never
// silence), and every one it calls supported or equivalent does not get a
// "not supported" warning.
func TestDocsTableMatchesCode(t *testing.T) {
	data, err := os.ReadFile("../../../docs/ingress.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| (`[^|]+) \\| ([^|]+) \\|")
	name := regexp.MustCompile("`([a-z0-9-]+)(\\*)?(: [a-z]+)?`")
	n := 0
	_, section, _ := strings.Cut(string(data), "\n## Annotations\n")
	section, _, _ = strings.Cut(section, "\n## ")
	for _, line := range strings.Split(section, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		status := strings.TrimSpace(m[2])
		for _, nm := range name.FindAllStringSubmatch(m[1], -1) {
			if nm[2] != "" || nm[3] != "" { // a family ("auth-keepalive*") or a value ("auth-type: basic")
				continue
			}
			key := Prefix + nm[1]
			ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "doc", Annotations: map[string]string{key: "x"}},
				Spec: networkingv1.IngressSpec{IngressClassName: new("flotilla"), DefaultBackend: &networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"}}}}}
			res := Translate(Input{Ingresses: []*networkingv1.Ingress{ing}}, Options{})
			warned := false
			for _, p := range res.Problems {
				if p.Annotation == key && strings.HasPrefix(p.Message, "not supported") {
					warned = true
				}
			}
			n++
			switch {
			case strings.HasPrefix(status, "not supported") && !warned:
				t.Errorf("%s: the docs say %q, but no warning names it", key, status)
			case !strings.HasPrefix(status, "not supported") && warned:
				t.Errorf("%s: the docs say %q, but it is warned as not supported", key, status)
			}
		}
	}
	if n < 80 {
		t.Fatalf("read %d annotations from docs/ingress.md; the table's format changed", n)
	}
}
