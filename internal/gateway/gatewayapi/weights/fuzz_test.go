package weights

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
)

// FuzzUpdateWeights: any route name and any backend name and weight (the
// admin API's URL path and JSON body) end in a write of the rule the
// route came from, or in one of the admin API's errors; never a panic, a
// write to a route that does not exist, or a weight out of range.
func FuzzUpdateWeights(f *testing.F) {
	for _, s := range []struct {
		route, backend string
		weight         int
	}{
		{"gw.shop.demo.0.0", stable, 50},
		{"gw.shop.demo.1.1", green, 100},
		{"gw.shop.demo.0.0.https", canary, 0},
		{"gw.shop.demo.9.0", stable, 1},
		{"gw.shop.", "", -1},
		{"gw.", "gw.shop.stable.http", 1000001},
		{"gw.shop.demo.0.0", "gw..", 5},
		{"demo", "a", 1},
	} {
		f.Add(s.route, s.backend, s.weight)
	}
	f.Fuzz(func(t *testing.T, route, backend string, weight int) {
		core := fake.NewClientset(service("stable", 8080, ""), service("canary", 8080, ""), service("blue", 8080, ""), service("green", 8080, "kubernetes.io/h2c"))
		gwc := gwfake.NewSimpleClientset() //nolint:staticcheck // see TestUpdateWeights
		if _, err := gwc.GatewayV1().HTTPRoutes("shop").Create(context.Background(), demoRoute(), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The table knows every route the fuzzer names, so RuleOf and the
		// backend mapping decide.
		local := &localTable{routes: map[string]map[string]int{route: {stable: 90, canary: 10, blue: 1, green: 0}}}
		wr, err := New(Options{Local: local, Routes: gwc.GatewayV1(), Services: core.CoreV1()})
		if err != nil {
			t.Fatal(err)
		}
		got, err := wr.UpdateWeights(context.Background(), route, admin.Set(map[string]int{backend: weight}))
		if err != nil {
			if !errors.Is(err, admin.ErrNotFound) && !errors.Is(err, admin.ErrInvalid) && !errors.Is(err, admin.ErrUnavailable) {
				t.Fatalf("UpdateWeights(%q, %q=%d) = %v, want an admin API error", route, backend, weight, err)
			}
			return
		}
		if weight < 0 || weight > MaxWeight {
			t.Fatalf("UpdateWeights(%q, %q=%d) wrote a weight out of range (%s)", route, backend, weight, got.Where)
		}
		if got.Where == "local" {
			if local.RouteOfPart(ExtraPart, route) {
				t.Fatalf("UpdateWeights(%q): a route of the Gateway API part written locally", route)
			}
			return
		}
		r := demoRoute()
		if _, ok := RuleOf(r, route); !ok {
			t.Fatalf("UpdateWeights(%q) wrote %s, but no rule of HTTPRoute shop/demo has this route", route, got.Where)
		}
		if got.Weights[backend] != weight {
			t.Fatalf("UpdateWeights(%q, %q=%d) = %v", route, backend, weight, got.Weights)
		}
	})
}
