package gatewayapi

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yamlv3 "gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

// objects is a golden case's input: Kubernetes objects as YAML documents.
type objects struct {
	classes    []*gwv1.GatewayClass
	gateways   []*gwv1.Gateway
	routes     []*gwv1.HTTPRoute
	grants     []*gwv1.ReferenceGrant
	sets       []*gwv1.ListenerSet
	services   map[string]*corev1.Service
	secrets    map[string]*corev1.Secret
	namespaces map[string]*corev1.Namespace
	policies   []*gwv1.BackendTLSPolicy
	configMaps map[string]*corev1.ConfigMap
}

func (o *objects) input() Input {
	return Input{Classes: o.classes, Gateways: o.gateways, Routes: o.routes, Grants: o.grants, ListenerSets: o.sets,
		Services:           func(ns, n string) *corev1.Service { return o.services[ns+"/"+n] },
		Secrets:            func(ns, n string) *corev1.Secret { return o.secrets[ns+"/"+n] },
		Namespaces:         func(n string) *corev1.Namespace { return o.namespaces[n] },
		BackendTLSPolicies: o.policies, ConfigMaps: func(ns, n string) *corev1.ConfigMap { return o.configMaps[ns+"/"+n] }}
}

func parseObjects(t testing.TB, data []byte) *objects {
	t.Helper()
	o := &objects{services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{}, namespaces: map[string]*corev1.Namespace{}, configMaps: map[string]*corev1.ConfigMap{}}
	dec := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var metas []*metav1.ObjectMeta
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
		case "":
		case "GatewayClass":
			c := &gwv1.GatewayClass{}
			o.classes, obj = append(o.classes, c), c
		case "Gateway":
			g := &gwv1.Gateway{}
			o.gateways, obj = append(o.gateways, g), g
			metas = append(metas, &g.ObjectMeta)
		case "HTTPRoute":
			r := &gwv1.HTTPRoute{}
			o.routes, obj = append(o.routes, r), r
			metas = append(metas, &r.ObjectMeta)
		case "ListenerSet":
			s := &gwv1.ListenerSet{}
			o.sets, obj = append(o.sets, s), s
			metas = append(metas, &s.ObjectMeta)
		case "ReferenceGrant":
			g := &gwv1.ReferenceGrant{}
			o.grants, obj = append(o.grants, g), g
			metas = append(metas, &g.ObjectMeta)
		case "Namespace":
			n := &corev1.Namespace{}
			obj = n
			defer func() { o.namespaces[n.Name] = n }()
		case "Service":
			s := &corev1.Service{}
			obj = s
			metas = append(metas, &s.ObjectMeta)
			defer func() { o.services[s.Namespace+"/"+s.Name] = s }()
		case "Secret":
			s := &corev1.Secret{}
			obj = s
			metas = append(metas, &s.ObjectMeta)
			defer func() {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				for k, v := range s.StringData {
					s.Data[k] = []byte(v)
				}
				o.secrets[s.Namespace+"/"+s.Name] = s
			}()
		case "BackendTLSPolicy":
			p := &gwv1.BackendTLSPolicy{}
			o.policies, obj = append(o.policies, p), p
			metas = append(metas, &p.ObjectMeta)
		case "ConfigMap":
			c := &corev1.ConfigMap{}
			obj = c
			metas = append(metas, &c.ObjectMeta)
			defer func() { o.configMaps[c.Namespace+"/"+c.Name] = c }()
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
	for _, m := range metas {
		if m.Namespace == "" {
			m.Namespace = "default"
		}
	}
	return o
}

func conds(cs []metav1.Condition) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return out
}

// golden renders a Result: the config fragment as the gateway's YAML would
// spell it, the problems, file names and every status.
func golden(r Result) []byte {
	type listener struct {
		Name           string   `yaml:"name"`
		SupportedKinds []string `yaml:"supportedKinds"`
		AttachedRoutes int32    `yaml:"attachedRoutes"`
		Conditions     []string `yaml:"conditions"`
	}
	type gw struct {
		Conditions           []string   `yaml:"conditions"`
		Listeners            []listener `yaml:"listeners"`
		AttachedListenerSets *int32     `yaml:"attachedListenerSets,omitempty"`
	}
	type parent struct {
		ParentRef  string   `yaml:"parentRef"`
		Conditions []string `yaml:"conditions"`
	}
	out := struct {
		Backends     any                 `yaml:"backends,omitempty"`
		Routes       any                 `yaml:"routes,omitempty"`
		Certificates any                 `yaml:"certificates,omitempty"`
		Files        []string            `yaml:"files,omitempty"`
		Problems     []string            `yaml:"problems,omitempty"`
		Classes      map[string][]string `yaml:"gatewayClasses,omitempty"`
		Gateways     map[string]gw       `yaml:"gateways,omitempty"`
		RouteParents map[string][]parent `yaml:"httpRoutes,omitempty"`
		Policies     map[string][]parent `yaml:"backendTLSPolicies,omitempty"`
		ListenerSets map[string]gw       `yaml:"listenerSets,omitempty"`
		SetPorts     map[string][]int32  `yaml:"listenerSetPorts,omitempty"`
	}{Policies: map[string][]parent{}, Backends: r.Backends, Routes: r.Routes, Certificates: r.Certificates, Classes: map[string][]string{}, Gateways: map[string]gw{}, RouteParents: map[string][]parent{},
		ListenerSets: map[string]gw{}, SetPorts: r.ListenerSetPorts}
	for f, data := range r.Files {
		out.Files = append(out.Files, fmt.Sprintf("%s (%d bytes)", f, len(data)))
	}
	slices.Sort(out.Files)
	for _, p := range r.Problems {
		out.Problems = append(out.Problems, p.String())
	}
	for k, c := range r.ClassConditions {
		out.Classes[k] = conds(c)
	}
	for k, s := range r.Gateways {
		g := gw{Conditions: conds(s.Conditions), AttachedListenerSets: s.AttachedListenerSets}
		for _, l := range s.Listeners {
			ls := listener{Name: string(l.Name), AttachedRoutes: l.AttachedRoutes, Conditions: conds(l.Conditions), SupportedKinds: []string{}}
			for _, k := range l.SupportedKinds {
				ls.SupportedKinds = append(ls.SupportedKinds, string(k.Kind))
			}
			g.Listeners = append(g.Listeners, ls)
		}
		out.Gateways[k] = g
	}
	for k, s := range r.ListenerSets {
		g := gw{Conditions: conds(s.Conditions)}
		for _, l := range s.Listeners {
			ls := listener{Name: string(l.Name), AttachedRoutes: l.AttachedRoutes, Conditions: conds(l.Conditions), SupportedKinds: []string{}}
			for _, k := range l.SupportedKinds {
				ls.SupportedKinds = append(ls.SupportedKinds, string(k.Kind))
			}
			g.Listeners = append(g.Listeners, ls)
		}
		out.ListenerSets[k] = g
	}
	for k, ps := range r.RouteParents {
		for _, p := range ps {
			ref := string(p.ParentRef.Name)
			if p.ParentRef.Namespace != nil {
				ref = string(*p.ParentRef.Namespace) + "/" + ref
			}
			if k := p.ParentRef.Kind; k != nil && *k != "Gateway" {
				ref = string(*k) + " " + ref
			}
			if p.ParentRef.SectionName != nil {
				ref += "#" + string(*p.ParentRef.SectionName)
			}
			if p.ParentRef.Port != nil {
				ref += fmt.Sprintf(":%d", *p.ParentRef.Port)
			}
			out.RouteParents[k] = append(out.RouteParents[k], parent{ParentRef: ref, Conditions: conds(p.Conditions)})
		}
	}
	for k, as := range r.BackendTLSPolicies {
		for _, a := range as {
			out.Policies[k] = append(out.Policies[k], parent{ParentRef: string(*a.AncestorRef.Namespace) + "/" + string(a.AncestorRef.Name), Conditions: conds(a.Conditions)})
		}
	}
	b, err := yamlv3.Marshal(out)
	if err != nil {
		panic(err)
	}
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

// prune drops nulls, zero values and empty collections, but keeps weights
// and attachedRoutes, whose 0 means something.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if (k == "weight" || k == "attachedRoutes" || k == "supportedKinds" || k == "attachedListenerSets") && e != nil {
				continue
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

// TestGolden translates every testdata/*.yaml (GatewayClasses, Gateways,
// HTTPRoutes, ReferenceGrants, Services, Secrets, Namespaces) and compares
// with its .golden file: one file per feature and status condition.
// go test ./internal/gateway/gatewayapi -update rewrites them; review the
// diff.
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
			opts := Options{NoHTTPS: strings.HasPrefix(name, "no-https"), PerGateway: strings.HasPrefix(name, "per-gateway")}
			in := parseObjects(t, data).input()
			if opts.PerGateway {
				in.Ports = perGatewayPorts
			}
			got := golden(Translate(in, opts))
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
