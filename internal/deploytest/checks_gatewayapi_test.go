package deploytest

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/gatewayapi"
)

// translateRender runs the Gateway API translation on a render's
// GatewayClasses, Gateways, HTTPRoutes and Services, as the controller
// does on the cluster for the class named class.
func translateRender(objs []object, class string) gatewayapi.Result {
	var in gatewayapi.Input
	svcs, secrets := map[string]*corev1.Service{}, map[string]*corev1.Secret{}
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *gwv1.GatewayClass:
			c := v.DeepCopy()
			c.Namespace = "" // kustomize gives it the overlay's; the API server drops it
			in.Classes = append(in.Classes, c)
		case *gwv1.Gateway:
			in.Gateways = append(in.Gateways, v)
		case *gwv1.HTTPRoute:
			in.Routes = append(in.Routes, v)
		case *corev1.Service:
			svcs[o.Namespace+"/"+o.Name] = v
		case *corev1.Secret:
			secrets[o.Namespace+"/"+o.Name] = v
		}
	}
	in.Services = func(ns, name string) *corev1.Service { return svcs[ns+"/"+name] }
	in.Secrets = func(ns, name string) *corev1.Secret { return secrets[ns+"/"+name] }
	return gatewayapi.Translate(in, gatewayapi.Options{ClassName: class})
}

// checkGatewayAPI: the Gateway API objects of a render are what the
// controller serves without a problem. Each GatewayClass of ours has a
// gateway Deployment serving it (--gateway-class); every HTTPRoute
// attaches to a Gateway of the render with its refs resolved (Accepted
// and ResolvedRefs True: a backendRef to a Service or port the render
// does not have fails here), and the translation reports no problem,
// not even a Warning (a filter it cannot honour, weights it had to
// scale).
func checkGatewayAPI(objs []object, ws []workload, fail failFunc) {
	var classes []string
	hasRoutes := false
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *gwv1.GatewayClass:
			if string(v.Spec.ControllerName) == gatewayapi.DefaultControllerName {
				classes = append(classes, o.Name)
			}
		case *gwv1.HTTPRoute:
			hasRoutes = true
		}
	}
	if hasRoutes && len(classes) == 0 {
		for _, o := range objs {
			if _, ok := o.Obj.(*gwv1.HTTPRoute); ok {
				fail(o, "no GatewayClass of ours (controllerName %s) in the render", gatewayapi.DefaultControllerName)
			}
		}
		return
	}
	for _, class := range classes {
		served := slices.ContainsFunc(ws, func(w workload) bool {
			for _, c := range w.spec.Containers {
				for i, a := range c.Args {
					if a == "--gateway-class="+class || a == "--gateway-class" && i+1 < len(c.Args) && c.Args[i+1] == class {
						return true
					}
				}
			}
			return false
		})
		if !served {
			fail(object{Kind: "GatewayClass", Name: class}, "no gateway of the render serves it (--gateway-class=%s)", class)
		}
		res := translateRender(objs, class)
		for _, p := range res.Problems {
			fail(object{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name}, "Gateway API translation: %s: %s", p.Severity, p.Message)
		}
		for _, o := range objs {
			if _, ok := o.Obj.(*gwv1.HTTPRoute); !ok {
				continue
			}
			parents := res.RouteParents[o.Namespace+"/"+o.Name]
			if len(parents) == 0 {
				fail(o, "attaches to no Gateway of the class %s in the render", class)
			}
			for _, ps := range parents {
				for _, typ := range []string{string(gwv1.RouteConditionAccepted), string(gwv1.RouteConditionResolvedRefs)} {
					if c := findCondition(ps.Conditions, typ); c == nil || c.Status != metav1.ConditionTrue {
						fail(o, "parent %s: %s is %s, want True", ps.ParentRef.Name, typ, conditionString(c))
					}
				}
			}
		}
	}
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}

func conditionString(c *metav1.Condition) string {
	if c == nil {
		return "missing"
	}
	return strings.Join([]string{string(c.Status), c.Reason, c.Message}, " ")
}
