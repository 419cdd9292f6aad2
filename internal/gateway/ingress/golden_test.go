package ingress

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yamlv3 "gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

// objects is a golden case's input: Kubernetes objects as YAML documents.
type objects struct {
	ingresses []*networkingv1.Ingress
	classes   []*networkingv1.IngressClass
	services  map[string]*corev1.Service
	secrets   map[string]*corev1.Secret
}

func (o *objects) input() Input {
	return Input{Ingresses: o.ingresses, Classes: o.classes,
		Services: func(ns, n string) *corev1.Service { return o.services[ns+"/"+n] },
		Secrets:  func(ns, n string) *corev1.Secret { return o.secrets[ns+"/"+n] }}
}

func parseObjects(t testing.TB, data []byte) *objects {
	t.Helper()
	o := &objects{services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{}}
	dec := yaml.NewYAMLReader(bufioReader(data))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var meta struct{ Kind string }
		if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		var obj any
		switch meta.Kind {
		case "": // a document of comments only
		case "Ingress":
			ing := &networkingv1.Ingress{}
			o.ingresses, obj = append(o.ingresses, ing), ing
		case "IngressClass":
			c := &networkingv1.IngressClass{}
			o.classes, obj = append(o.classes, c), c
		case "Service":
			s := &corev1.Service{}
			obj = s
			defer func() { o.services[s.Namespace+"/"+s.Name] = s }()
		case "Secret":
			s := &corev1.Secret{}
			obj = s
			defer func() {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				for k, v := range s.StringData {
					s.Data[k] = []byte(v)
				}
				o.secrets[s.Namespace+"/"+s.Name] = s
			}()
		default:
			t.Fatalf("unknown kind %q", meta.Kind)
		}
		if obj == nil {
			continue
		}
		if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %v", meta.Kind, err)
		}
	}
	for _, ing := range o.ingresses {
		if ing.Namespace == "" {
			ing.Namespace = "default"
		}
	}
	return o
}

// golden renders a Result for a golden file: the config fragment as the
// gateway's YAML would spell it, then the problems and file names.
func golden(r Result) []byte {
	out := struct {
		Backends     any      `yaml:"backends,omitempty"`
		Routes       any      `yaml:"routes,omitempty"`
		Certificates any      `yaml:"certificates,omitempty"`
		Files        []string `yaml:"files,omitempty"`
		Problems     []string `yaml:"problems,omitempty"`
		Served       []string `yaml:"served,omitempty"`
		Ours         []string `yaml:"ours,omitempty"`
	}{Backends: r.Backends, Routes: r.Routes, Certificates: r.Certificates, Served: r.Served, Ours: r.Ours}
	for f, data := range r.Files {
		out.Files = append(out.Files, fmt.Sprintf("%s (%d bytes)", f, len(data)))
	}
	sortStrings(out.Files)
	for _, p := range r.Problems {
		out.Problems = append(out.Problems, p.String())
	}
	b, err := yamlv3.Marshal(out)
	if err != nil {
		panic(err)
	}
	// Leave out what is unset, as a hand-written config would.
	var tree any
	if err := yamlv3.Unmarshal(b, &tree); err != nil {
		panic(err)
	}
	b, err = yamlv3.Marshal(prune(tree))
	if err != nil {
		panic(err)
	}
	return b
}

// prune drops nulls, zero values and empty collections.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == "weight" && e != nil {
				continue // weight 0 means something
			}
			if e = prune(e); e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
		if len(x) == 0 {
			return nil
		}
	case []any:
		out := x[:0]
		for _, e := range x {
			if e = prune(e); e != nil {
				out = append(out, e)
			} else {
				out = append(out, map[string]any{})
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case string:
		if x == "" || x == "0s" {
			return nil
		}
	case int:
		if x == 0 {
			return nil
		}
	case bool:
		if !x {
			return nil
		}
	case nil:
		return nil
	}
	return v
}

// TestGolden translates every testdata/*.yaml (Ingresses, IngressClasses,
// Services, Secrets) and compares with its .golden file: one file per
// annotation or feature. go test ./internal/gateway/ingress -update
// rewrites them; review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o := parseObjects(t, data)
			opts := Options{}
			if strings.HasPrefix(name, "nginx-class") {
				opts.NginxClass = true
			}
			if strings.HasPrefix(name, "no-https") {
				opts.NoHTTPS = true
			}
			got := golden(Translate(o.input(), opts))
			gf := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(gf, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("Translate(%s) mismatch (-want +got):\n%s", f, d)
			}
		})
	}
}
