package gatewayapi

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/route"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// FuzzHTTPRoute: whatever an HTTPRoute says (the API server's validation
// aside), Translate never panics and what it emits is a valid config that
// compiles: a bad route is refused with a condition, never a bad reload.
func FuzzHTTPRoute(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		for _, r := range parseObjects(f, data).routes {
			b, _ := sigsyaml.Marshal(r.Spec)
			f.Add(string(b))
		}
	}
	f.Add(`{parentRefs: [{name: gw}], rules: [{matches: [{path: {type: PathPrefix, value: "/a//b/../c"}}], backendRefs: [{name: web, port: 80, weight: -1}]}]}`)
	f.Add(`{parentRefs: [{name: gw}], rules: [{matches: [{headers: [{name: "", value: x}]}], backendRefs: [{name: web, port: 80}]}]}`)
	f.Add(`{parentRefs: [{name: gw}], rules: [{filters: [{type: RequestRedirect}], backendRefs: [{name: web, port: 80}]}]}`)
	f.Add(`{parentRefs: [{name: gw}], hostnames: ["*"], rules: [{filters: [{type: URLRewrite, urlRewrite: {hostname: "a b"}}], backendRefs: [{name: web, port: 80}]}]}`)
	base := parseObjects(f, []byte(head))
	f.Fuzz(func(t *testing.T, spec string) {
		var s gwv1.HTTPRouteSpec
		if err := sigsyaml.Unmarshal([]byte(spec), &s); err != nil {
			return
		}
		in := base.input()
		in.Routes = []*gwv1.HTTPRoute{{Spec: s}}
		in.Routes[0].Namespace, in.Routes[0].Name = "default", "fuzz"
		res := Translate(in, Options{})
		if len(res.Routes) == 0 {
			return
		}
		c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind, Backends: res.Backends, Routes: res.Routes}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("emitted an invalid config: %v\nspec: %s", err, spec)
		}
		if _, err := route.CompileWith(c, route.Options{Policies: func(*config.Route) ([]route.Filter, error) { return nil, nil }}); err != nil {
			t.Fatalf("emitted a config that does not compile: %v", err)
		}
	})
}
