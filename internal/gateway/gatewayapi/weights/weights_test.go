package weights

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
)

// localTable is the gateway's table as the Writer sees it: routes and
// their live weights, and the local writes made.
type localTable struct {
	routes map[string]map[string]int
	writes []string
}

// RouteOfPart: the gateway API part's routes are named gw.… here (the
// routes file's "file-gw.x" below tells them apart by more than a prefix).
func (l *localTable) RouteOfPart(part, route string) bool {
	_, ok := l.routes[route]
	return ok && part == ExtraPart && strings.HasPrefix(route, "gw.") && route != "gw.file"
}

func (l *localTable) Weights(route string) (map[string]int, error) {
	w, ok := l.routes[route]
	if !ok {
		return nil, fmt.Errorf("no such route (%w): %q", admin.ErrNotFound, route)
	}
	return maps.Clone(w), nil
}

func (l *localTable) UpdateWeightsLocal(route string, next admin.NextWeights) (admin.Written, error) {
	l.writes = append(l.writes, route)
	w, err := next(maps.Clone(l.routes[route]))
	if err != nil {
		return admin.Written{}, err
	}
	for k, v := range w {
		if _, ok := l.routes[route][k]; !ok {
			return admin.Written{}, fmt.Errorf("%w: route %q has no backend %q", admin.ErrInvalid, route, k)
		}
		if v < 0 || v > 100 { // as the gateway's config validation
			return admin.Written{}, fmt.Errorf("%w: weight %d", admin.ErrInvalid, v)
		}
		l.routes[route][k] = v
	}
	return admin.Written{Where: "local", Weights: maps.Clone(l.routes[route])}, nil
}

func service(name string, port int32, appProtocol string) *corev1.Service {
	sp := corev1.ServicePort{Name: "http", Port: port, TargetPort: intstr.FromString("http")}
	if appProtocol != "" {
		sp.AppProtocol = &appProtocol
	}
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{sp}}}
}

func ref(svc string, weight *int32) gwv1.HTTPBackendRef {
	port := gwv1.PortNumber(8080)
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(svc), Port: &port}, Weight: weight}}
}

func w32(v int32) *int32 { return &v }

// demoRoute is HTTPRoute shop/demo: rule 0 a 90/10 canary on /a, rule 1
// blue/green on two matches with a backendRef whose Service is missing.
func demoRoute() *gwv1.HTTPRoute {
	prefix := gwv1.PathMatchPathPrefix
	path := func(p string) gwv1.HTTPRouteMatch {
		return gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &p}}
	}
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "demo", ResourceVersion: "7"},
		Spec: gwv1.HTTPRouteSpec{Rules: []gwv1.HTTPRouteRule{
			{Matches: []gwv1.HTTPRouteMatch{path("/a")}, BackendRefs: []gwv1.HTTPBackendRef{ref("stable", w32(90)), ref("canary", w32(10))}},
			{Matches: []gwv1.HTTPRouteMatch{path("/b"), path("/c")}, BackendRefs: []gwv1.HTTPBackendRef{ref("blue", nil), ref("green", w32(0)), ref("missing", w32(5))}},
		}},
	}
}

const (
	stable = "gw.shop.stable.http"
	canary = "gw.shop.canary.http"
	blue   = "gw.shop.blue.http"
	green  = "gw.shop.green.http.h2c"
)

// ruleWeights returns the weights of every backendRef of every rule of
// HTTPRoute shop/demo as the API holds them ("-" for none).
func ruleWeights(t *testing.T, gwc *gwfake.Clientset) [][]string {
	t.Helper()
	r, err := gwc.GatewayV1().HTTPRoutes("shop").Get(context.Background(), "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, rule := range r.Spec.Rules {
		var ws []string
		for _, b := range rule.BackendRefs {
			if b.Weight == nil {
				ws = append(ws, "-")
			} else {
				ws = append(ws, fmt.Sprint(*b.Weight))
			}
		}
		out = append(out, ws)
	}
	return out
}

// TestUpdateWeights: where each route's weights are written, what the API
// receives, and what is refused with which status.
func TestUpdateWeights(t *testing.T) {
	original := [][]string{{"90", "10"}, {"-", "0", "5"}}
	for _, c := range []struct {
		name      string
		route     string
		w         map[string]int
		conflicts int   // patches answered 409 before the API accepts
		apiErr    error // every patch answered with this
		listErr   error // every list of HTTPRoutes answered with this
		wantErr   error // admin.ErrNotFound, ErrInvalid or ErrUnavailable
		wantMsg   string
		wantWhere string
		wantW     map[string]int
		wantRules [][]string
		wantLocal []string
		patches   int
	}{
		{name: "file-config route swapped locally", route: "demo", w: map[string]int{"b": 100},
			wantWhere: "local", wantW: map[string]int{"a": 100, "b": 100}, wantRules: original, wantLocal: []string{"demo"}},
		{name: "file-config route named gw. swapped locally", route: "gw.file", w: map[string]int{"a": 0},
			wantWhere: "local", wantW: map[string]int{"a": 0, "b": 100}, wantRules: original, wantLocal: []string{"gw.file"}},
		{name: "unknown route", route: "gw.shop.nope.0.0", w: map[string]int{stable: 1},
			wantErr: admin.ErrNotFound, wantMsg: `"gw.shop.nope.0.0"`, wantRules: original},
		{name: "route in the table, HTTPRoute gone", route: "gw.shop.gone.0.0", w: map[string]int{stable: 1},
			wantErr: admin.ErrNotFound, wantMsg: "no HTTPRoute rule", wantRules: original},
		{name: "unknown backend", route: "gw.shop.demo.0.0", w: map[string]int{stable: 50, "gw.shop.other.http": 50},
			wantErr: admin.ErrInvalid, wantMsg: `no backend "gw.shop.other.http"; its backends: gw.shop.stable.http, gw.shop.canary.http`, wantRules: original},
		{name: "backend of another rule", route: "gw.shop.demo.0.0", w: map[string]int{blue: 50},
			wantErr: admin.ErrInvalid, wantMsg: `HTTPRoute shop/demo spec.rules[0]) has no backend "gw.shop.blue.http"`, wantRules: original},
		{name: "backendRef whose Service is missing", route: "gw.shop.demo.1.0", w: map[string]int{"gw.shop.missing.http": 50},
			wantErr: admin.ErrInvalid, wantMsg: `no backend "gw.shop.missing.http"`, wantRules: original},
		{name: "weight above 100", route: "gw.shop.demo.0.0", w: map[string]int{stable: 101},
			wantErr: admin.ErrInvalid, wantMsg: `weights["gw.shop.stable.http"]: must be 0..100, got 101`, wantRules: original},
		{name: "negative weight", route: "gw.shop.demo.0.0", w: map[string]int{canary: -1},
			wantErr: admin.ErrInvalid, wantMsg: "got -1", wantRules: original},
		{name: "every weight 0", route: "gw.shop.demo.0.0", w: map[string]int{stable: 0, canary: 0},
			wantErr: admin.ErrInvalid, wantMsg: "every weight would be 0", wantRules: original},
		{name: "canary step patches rule 0 only", route: "gw.shop.demo.0.0", w: map[string]int{stable: 50, canary: 50},
			wantWhere: "HTTPRoute shop/demo spec.rules[0]", wantW: map[string]int{stable: 50, canary: 50},
			wantRules: [][]string{{"50", "50"}, {"-", "0", "5"}}, patches: 1},
		{name: "one backend named, the other keeps its weight as the HTTPRoute has it", route: "gw.shop.demo.0.0", w: map[string]int{canary: 30},
			wantWhere: "HTTPRoute shop/demo spec.rules[0]", wantW: map[string]int{stable: 90, canary: 30},
			wantRules: [][]string{{"90", "30"}, {"-", "0", "5"}}, patches: 1},
		{name: "blue/green flip through the second match of rule 1", route: "gw.shop.demo.1.1", w: map[string]int{blue: 0, green: 100},
			wantWhere: "HTTPRoute shop/demo spec.rules[1]", wantW: map[string]int{blue: 0, green: 100},
			wantRules: [][]string{{"90", "10"}, {"0", "100", "5"}}, patches: 1},
		{name: "route split by scheme", route: "gw.shop.demo.0.0.https", w: map[string]int{stable: 0, canary: 100},
			wantWhere: "HTTPRoute shop/demo spec.rules[0]", wantW: map[string]int{stable: 0, canary: 100},
			wantRules: [][]string{{"0", "100"}, {"-", "0", "5"}}, patches: 1},
		{name: "conflict retried", route: "gw.shop.demo.0.0", w: map[string]int{stable: 0, canary: 100}, conflicts: 2,
			wantWhere: "HTTPRoute shop/demo spec.rules[0]", wantW: map[string]int{stable: 0, canary: 100},
			wantRules: [][]string{{"0", "100"}, {"-", "0", "5"}}, patches: 3},
		{name: "conflict after conflict gives up", route: "gw.shop.demo.0.0", w: map[string]int{stable: 0, canary: 100}, conflicts: 100,
			wantErr: admin.ErrConflict, wantMsg: "the object has been modified", wantRules: original, patches: 5},
		{name: "API server unreachable", route: "gw.shop.demo.0.0", w: map[string]int{stable: 0, canary: 100},
			listErr: errors.New("dial tcp 10.96.0.1:443: connect: connection refused"),
			wantErr: admin.ErrUnavailable, wantMsg: "connection refused", wantRules: original},
		{name: "patch forbidden", route: "gw.shop.demo.0.0", w: map[string]int{stable: 0, canary: 100},
			apiErr:  apierrors.NewForbidden(schema.GroupResource{Group: "gateway.networking.k8s.io", Resource: "httproutes"}, "demo", errors.New("RBAC")),
			wantErr: admin.ErrUnavailable, wantMsg: "forbidden", wantRules: original, patches: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			core := fake.NewClientset(service("stable", 8080, ""), service("canary", 8080, ""), service("blue", 8080, ""), service("green", 8080, "kubernetes.io/h2c"))
			gwc := gwfake.NewSimpleClientset() //nolint:staticcheck // the field-managed NewClientset does not know v1 kinds (see controller_test.go)
			if _, err := gwc.GatewayV1().HTTPRoutes("shop").Create(context.Background(), demoRoute(), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			gwc.ClearActions()
			n := 0
			gwc.PrependReactor("list", "httproutes", func(clienttesting.Action) (bool, runtime.Object, error) {
				return c.listErr != nil, nil, c.listErr
			})
			gwc.PrependReactor("patch", "httproutes", func(clienttesting.Action) (bool, runtime.Object, error) {
				if c.apiErr != nil {
					return true, nil, c.apiErr
				}
				if n < c.conflicts {
					n++
					return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "gateway.networking.k8s.io", Resource: "httproutes"}, "demo", errors.New("the object has been modified"))
				}
				return false, nil, nil
			})
			local := &localTable{routes: map[string]map[string]int{
				"demo":    {"a": 100, "b": 0},
				"gw.file": {"a": 0, "b": 100},
				// The table may lag the HTTPRoute (90/10): the Writer
				// computes on what it reads from the API.
				"gw.shop.demo.0.0":       {stable: 9, canary: 1},
				"gw.shop.demo.0.0.https": {stable: 9, canary: 1},
				"gw.shop.demo.1.0":       {blue: 1, green: 0},
				"gw.shop.demo.1.1":       {blue: 1, green: 0},
				"gw.shop.gone.0.0":       {stable: 1},
			}}
			wr, err := New(Options{Local: local, Routes: gwc.GatewayV1(), Services: core.CoreV1()})
			if err != nil {
				t.Fatal(err)
			}
			got, err := wr.UpdateWeights(context.Background(), c.route, admin.Set(c.w))
			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("UpdateWeights(%q) = %v", c.route, err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("UpdateWeights(%q) = %v, want an error wrapping %v", c.route, err, c.wantErr)
			case c.wantErr != nil && !strings.Contains(err.Error(), c.wantMsg):
				t.Errorf("UpdateWeights(%q) = %v, want it to say %q", c.route, err, c.wantMsg)
			}
			if c.wantErr == nil {
				if !strings.HasPrefix(got.Where, c.wantWhere) {
					t.Errorf("Where = %q, want %q", got.Where, c.wantWhere)
				}
				if diff := cmp.Diff(c.wantW, got.Weights); diff != "" {
					t.Errorf("Weights (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(c.wantRules, ruleWeights(t, gwc)); diff != "" {
				t.Errorf("HTTPRoute weights (-want +got):\n%s", diff)
			}
			if !slices.Equal(local.writes, c.wantLocal) {
				t.Errorf("local writes %q, want %q", local.writes, c.wantLocal)
			}
			var patches []clienttesting.PatchActionImpl
			for _, a := range gwc.Actions() {
				if p, ok := a.(clienttesting.PatchActionImpl); ok {
					patches = append(patches, p)
				}
			}
			if len(patches) != c.patches {
				t.Errorf("%d patches, want %d (actions %v)", len(patches), c.patches, gwc.Actions())
			}
			for _, p := range patches {
				var ops []jsonPatchOp
				if err := json.Unmarshal(p.GetPatch(), &ops); err != nil {
					t.Fatal(err)
				}
				if len(ops) == 0 || ops[0].Path != "/metadata/resourceVersion" || ops[0].Value != "7" {
					t.Errorf("patch %s: want the resourceVersion precondition first", p.GetPatch())
				}
				if p.PatchOptions.FieldManager != FieldManager {
					t.Errorf("patch field manager %q, want %q", p.PatchOptions.FieldManager, FieldManager)
				}
			}
		})
	}
}

// TestStepOnTheWrittenWeights: a change relative to the current weights
// (the live view's canary step) is computed on the HTTPRoute as read for
// the write, not on this replica's table, which may lag it; after a
// conflict it is computed again on what the other writer wrote. Two
// steps of 10 at once make 20.
func TestStepOnTheWrittenWeights(t *testing.T) {
	gwc := gwfake.NewSimpleClientset() //nolint:staticcheck // see TestUpdateWeights
	routes := gwc.GatewayV1().HTTPRoutes("shop")
	ctx := context.Background()
	if _, err := routes.Create(ctx, demoRoute(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another replica's step lands between our read and our patch: our
	// first patch meets a conflict.
	raced := false
	gwc.PrependReactor("patch", "httproutes", func(clienttesting.Action) (bool, runtime.Object, error) {
		if raced {
			return false, nil, nil
		}
		raced = true
		// The tracker, not the clientset: a reactor runs under the
		// clientset's lock.
		gvr := schema.GroupVersionResource{Group: gwv1.GroupName, Version: "v1", Resource: "httproutes"}
		o, err := gwc.Tracker().Get(gvr, "shop", "demo")
		if err != nil {
			return true, nil, err
		}
		r := o.(*gwv1.HTTPRoute).DeepCopy()
		r.Spec.Rules[0].BackendRefs[0].Weight, r.Spec.Rules[0].BackendRefs[1].Weight = w32(80), w32(20)
		r.ResourceVersion = "8"
		if err := gwc.Tracker().Update(gvr, r, "shop"); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "gateway.networking.k8s.io", Resource: "httproutes"}, "demo", errors.New("the object has been modified"))
	})
	// This replica's table has not seen even the 90/10 on the 0..100
	// scale: it still says 9/1.
	local := &localTable{routes: map[string]map[string]int{"gw.shop.demo.0.0": {stable: 9, canary: 1}}}
	core := fake.NewClientset(service("stable", 8080, ""), service("canary", 8080, ""))
	wr, err := New(Options{Local: local, Routes: gwc.GatewayV1(), Services: core.CoreV1()})
	if err != nil {
		t.Fatal(err)
	}
	var seen []map[string]int
	step := func(cur map[string]int) (map[string]int, error) {
		seen = append(seen, maps.Clone(cur))
		return map[string]int{canary: cur[canary] + 10, stable: cur[stable] - 10}, nil
	}
	got, err := wr.UpdateWeights(ctx, "gw.shop.demo.0.0", step)
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]int{{stable: 90, canary: 10}, {stable: 80, canary: 20}}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("the step saw (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{stable: 70, canary: 30}, got.Weights); diff != "" {
		t.Errorf("Weights (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"70", "30"}, {"-", "0", "5"}}, ruleWeights(t, gwc)); diff != "" {
		t.Errorf("HTTPRoute weights (-want +got):\n%s", diff)
	}
	// An error of the step is returned as it is, nothing written.
	refuse := errors.New("step: backend: no such backend")
	if _, err := wr.UpdateWeights(ctx, "gw.shop.demo.0.0", func(map[string]int) (map[string]int, error) { return nil, refuse }); err != refuse {
		t.Errorf("UpdateWeights with a failing step = %v, want %v", err, refuse)
	}
}

// TestNamesAgreeWithTranslate: every route and backend the translation
// makes of an HTTPRoute is one the Writer finds, at the rule it came from;
// a change of the naming scheme in package gatewayapi fails here.
func TestNamesAgreeWithTranslate(t *testing.T) {
	class := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "flotilla"}, Spec: gwv1.GatewayClassSpec{ControllerName: gatewayapi.DefaultControllerName}}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "edge"}, Spec: gwv1.GatewaySpec{GatewayClassName: "flotilla",
		Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}}
	long := demoRoute()
	long.Name = strings.Repeat("a-very-long-route-name-", 5) + "x"
	routes := []*gwv1.HTTPRoute{demoRoute(), long}
	for _, r := range routes {
		r.Spec.ParentRefs = []gwv1.ParentReference{{Name: "edge"}}
	}
	svcs := map[string]*corev1.Service{}
	for _, s := range []*corev1.Service{service("stable", 8080, ""), service("canary", 8080, ""), service("blue", 8080, ""), service("green", 8080, "kubernetes.io/h2c")} {
		svcs[s.Namespace+"/"+s.Name] = s
	}
	res := gatewayapi.Translate(gatewayapi.Input{Classes: []*gwv1.GatewayClass{class}, Gateways: []*gwv1.Gateway{gw}, Routes: routes,
		Services: func(ns, name string) *corev1.Service { return svcs[ns+"/"+name] }}, gatewayapi.Options{ClassName: "flotilla"})
	if len(res.Routes) != 6 {
		t.Fatalf("translated %d routes, want 6 (problems %v)", len(res.Routes), res.Problems)
	}
	core := fake.NewClientset(service("stable", 8080, ""), service("canary", 8080, ""), service("blue", 8080, ""), service("green", 8080, "kubernetes.io/h2c"))
	wr := &Writer{opts: Options{Services: core.CoreV1()}}
	for _, rc := range res.Routes {
		found := false
		for _, r := range routes {
			i, ok := RuleOf(r, rc.Name)
			if !ok {
				continue
			}
			found = true
			names, err := wr.backendNames(context.Background(), r, r.Spec.Rules[i].BackendRefs)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range rc.Backends {
				if !slices.Contains(names, b.Name) {
					t.Errorf("route %s: backend %s is none of the Writer's names %q of HTTPRoute %s rule %d", rc.Name, b.Name, names, r.Name, i)
				}
			}
		}
		if !found {
			t.Errorf("route %s: no HTTPRoute rule found by RuleOf", rc.Name)
		}
	}
}

// TestNamesAgreeWithTranslatePerGateway: with per-Gateway listeners a
// route attached to two Gateways of different hostnames is copied per
// set of ports (….l<i>), and a redirect keeping the listener's port per
// port (….p<i>); RuleOf finds the rule of every copy.
func TestNamesAgreeWithTranslatePerGateway(t *testing.T) {
	class := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "flotilla"}, Spec: gwv1.GatewayClassSpec{ControllerName: gatewayapi.DefaultControllerName}}
	var gws []*gwv1.Gateway
	for _, n := range []string{"edge", "edge2"} {
		h := gwv1.Hostname(n + ".test")
		gws = append(gws, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: n}, Spec: gwv1.GatewaySpec{GatewayClassName: "flotilla",
			Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: &h}}}})
	}
	long := demoRoute()
	long.Name = strings.Repeat("a-very-long-route-name-", 5) + "x"
	redirect := demoRoute()
	redirect.Name = "to-elsewhere"
	redirect.Spec.Rules = []gwv1.HTTPRouteRule{{Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestRedirect,
		RequestRedirect: &gwv1.HTTPRequestRedirectFilter{Hostname: new(gwv1.PreciseHostname("elsewhere.test"))}}}}}
	routes := []*gwv1.HTTPRoute{demoRoute(), long, redirect}
	for _, r := range routes {
		r.Spec.ParentRefs = []gwv1.ParentReference{{Name: "edge"}, {Name: "edge2"}}
	}
	svcs := map[string]*corev1.Service{}
	for _, s := range []*corev1.Service{service("stable", 8080, ""), service("canary", 8080, ""), service("blue", 8080, ""), service("green", 8080, "kubernetes.io/h2c")} {
		svcs[s.Namespace+"/"+s.Name] = s
	}
	ports := map[string]map[int32]int32{"shop/edge": {80: 20000}, "shop/edge2": {80: 20001}}
	res := gatewayapi.Translate(gatewayapi.Input{Classes: []*gwv1.GatewayClass{class}, Gateways: gws, Routes: routes,
		Services: func(ns, name string) *corev1.Service { return svcs[ns+"/"+name] },
		Ports:    func(ns, name string) map[int32]int32 { return ports[ns+"/"+name] }}, gatewayapi.Options{ClassName: "flotilla", PerGateway: true})
	perSet, perPort := 0, 0
	for _, rc := range res.Routes {
		if len(rc.Match.Ports) == 1 && rc.Redirect != nil {
			perPort++
		} else if len(rc.Match.Ports) == 1 {
			perSet++
		}
		found := false
		for _, r := range routes {
			if _, ok := RuleOf(r, rc.Name); ok {
				found = true
			}
		}
		if !found {
			t.Errorf("route %s: no HTTPRoute rule found by RuleOf", rc.Name)
		}
	}
	if perSet < 2 || perPort != 2 {
		t.Errorf("%d copies per set of ports and %d per port of a redirect, want ≥ 2 and 2 (problems %v)", perSet, perPort, res.Problems)
	}
}
