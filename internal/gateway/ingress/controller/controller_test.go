package controller

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
	"github.com/flotilla-dev/flotilla/internal/tlsconf"
)

func prefix() *networkingv1.PathType { p := networkingv1.PathTypePrefix; return &p }

func ingressObj(name string, annotations map[string]string, host, path, svc string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: annotations},
		Spec: networkingv1.IngressSpec{IngressClassName: new("flotilla"), Rules: []networkingv1.IngressRule{{Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: prefix(), Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
}

type harness struct {
	client *fake.Clientset
	srv    *httptest.Server
	gw     *gateway.Gateway
	dir    string
}

// start runs a gateway with Kubernetes discovery and the Ingress
// controller against a fake API server holding objs, and an upstream
// reached only through the EndpointSlice of Service "app".
func start(t *testing.T, upstream *httptest.Server, objs ...any) *harness {
	t.Helper()
	return startWith(t, upstream, baseConfig, nil, nil, objs...)
}

const baseConfig = `apiVersion: flotilla.dev/v1alpha1
kind: Gateway
routes: [{name: healthz, match: {path: {type: Exact, value: /healthz}}, directResponse: {status: 200, body: ok}}]
`

// startWith is start with the gateway's base config and HTTPS store.
func startWith(t *testing.T, upstream *httptest.Server, baseYAML string, store *tlsconf.Store, edit func(*Options), objs ...any) *harness {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(upstream.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	base := []any{
		&networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "flotilla"}, Spec: networkingv1.IngressClassSpec{Controller: "flotilla.dev/ingress-controller"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(int32(port))}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "app-1", Labels: map[string]string{discoveryv1.LabelServiceName: "app"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(port))}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}}},
	}
	client := fake.NewClientset()
	ctx := context.Background()
	for _, o := range append(base, objs...) {
		var err error
		switch o := o.(type) {
		case *networkingv1.IngressClass:
			_, err = client.NetworkingV1().IngressClasses().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = client.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *discoveryv1.EndpointSlice:
			_, err = client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, err = client.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("unknown object %T", o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	disc := discovery.New(discovery.Options{Connect: func() (discovery.Client, string, error) {
		return discoverytest.Client{Interface: client}, "shop", nil
	}})
	t.Cleanup(disc.Close)
	cfg, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{Endpoints: disc, TLS: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	dir := filepath.Join(t.TempDir(), "secrets")
	opts := Options{Client: kubeshared.ClientsOf(client), SecretDir: dir, Apply: gw.SetExtra, PublishAddresses: []string{"203.0.113.7"},
		Lease: &Lease{Namespace: "shop", Name: "flotilla-ingress-leader", Identity: "test"}, Debounce: 10 * time.Millisecond}
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(runCtx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	return &harness{client: client, srv: srv, gw: gw, dir: dir}
}

func (h *harness) get(host, path, user, pass string) (int, string, error) {
	req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
	req.Host = host
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestIngressServedThroughEndpointSlices: an Ingress created in the API
// is routed by the gateway to a real upstream found only through an
// EndpointSlice; an Ingress with an invalid annotation gets an Event and
// is not served while the others are; served Ingresses get the status
// address from the leader; a basic-auth Secret is materialised and
// enforced; deleting the Ingress removes its route.
func TestIngressServedThroughEndpointSlices(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		fmt.Fprintf(w, "upstream %s", r.URL.Path)
	}))
	defer upstream.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	good := ingressObj("good", map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}, "app.test", "/app", "app")
	bad := ingressObj("bad", map[string]string{"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/99"}, "bad.test", "/", "app")
	locked := ingressObj("locked", map[string]string{"nginx.ingress.kubernetes.io/auth-type": "basic", "nginx.ingress.kubernetes.io/auth-secret": "users",
		"nginx.ingress.kubernetes.io/configuration-snippet": "deny all;"}, "locked.test", "/", "app")
	users := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "users"}, Data: map[string][]byte{"auth": []byte("alice:" + string(hash) + "\n")}}
	h := start(t, upstream, good, bad, locked, users)

	discoverytest.Eventually(t, "the Ingress's route reaches the upstream", func() error {
		code, body, err := h.get("app.test", "/app/x", "", "")
		if err != nil || code != 200 || body != "upstream /" {
			return fmt.Errorf("GET app.test/app/x = %d %q %v, want 200 %q", code, body, err, "upstream /")
		}
		return nil
	})
	if code, _, _ := h.get("app.test", "/appx", "", ""); code != 404 {
		t.Errorf("GET app.test/appx = %d, want 404 (Prefix matches by path element)", code)
	}
	if code, body, _ := h.get("base.test", "/healthz", "", ""); code != 200 || body != "ok" {
		t.Errorf("the file config's route: GET /healthz = %d %q, want 200 ok", code, body)
	}
	if code, _, _ := h.get("bad.test", "/", "", ""); code != 404 {
		t.Errorf("GET bad.test/ = %d, want 404: an Ingress with an invalid annotation is not served", code)
	}
	discoverytest.Eventually(t, "basic auth from the Secret", func() error {
		if code, _, _ := h.get("locked.test", "/", "", ""); code != 401 {
			return fmt.Errorf("without credentials: %d, want 401", code)
		}
		if code, _, _ := h.get("locked.test", "/", "alice", "wrong"); code != 401 {
			return fmt.Errorf("wrong password: %d, want 401", code)
		}
		if code, _, _ := h.get("locked.test", "/", "alice", "s3cret"); code != 200 {
			return fmt.Errorf("right password: %d, want 200", code)
		}
		return nil
	})
	if fi, err := os.Stat(filepath.Join(h.dir, "auth", "shop", "users", "htpasswd")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("htpasswd file: %v %v, want mode 0600", fi, err)
	}
	// A rotated Secret is enforced without a restart.
	hash2, err := bcrypt.GenerateFromPassword([]byte("n3w"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users.Data["auth"] = []byte("bob:" + string(hash2) + "\n")
	if _, err := h.client.CoreV1().Secrets("shop").Update(context.Background(), users, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "the rotated Secret enforced", func() error {
		if code, _, _ := h.get("locked.test", "/", "alice", "s3cret"); code != 401 {
			return fmt.Errorf("old user: %d, want 401", code)
		}
		if code, _, _ := h.get("locked.test", "/", "bob", "n3w"); code != 200 {
			return fmt.Errorf("new user: %d, want 200", code)
		}
		return nil
	})

	ctx := context.Background()
	discoverytest.Eventually(t, "Events naming the problems", func() error {
		evs, err := h.client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var badEv, snippetEv bool
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "bad" && e.Type == corev1.EventTypeWarning && e.Reason == "IngressRejected" && strings.Contains(e.Message, "whitelist-source-range") && strings.Contains(e.Message, "10.0.0.0/99") {
				badEv = true
			}
			if e.InvolvedObject.Name == "locked" && e.Reason == "IngressWarning" && strings.Contains(e.Message, "configuration-snippet") {
				snippetEv = true
			}
		}
		if !badEv || !snippetEv {
			return fmt.Errorf("events %+v: bad rejected %v, snippet warned %v", evs.Items, badEv, snippetEv)
		}
		return nil
	})
	discoverytest.Eventually(t, "status written by the leader", func() error {
		ing, err := h.client.NetworkingV1().Ingresses("shop").Get(ctx, "good", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lb := ing.Status.LoadBalancer.Ingress; len(lb) != 1 || lb[0].IP != "203.0.113.7" {
			return fmt.Errorf("good status = %+v, want 203.0.113.7", lb)
		}
		return nil
	})
	if ing, _ := h.client.NetworkingV1().Ingresses("shop").Get(ctx, "bad", metav1.GetOptions{}); len(ing.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("bad status = %+v, want none: it is not served", ing.Status.LoadBalancer.Ingress)
	}
	if _, err := h.client.CoordinationV1().Leases("shop").Get(ctx, "flotilla-ingress-leader", metav1.GetOptions{}); err != nil {
		t.Errorf("Lease: %v", err)
	}

	// An Ingress that becomes invalid stops being served and loses its
	// address; the last good state of the others keeps serving.
	lockedNow, err := h.client.NetworkingV1().Ingresses("shop").Get(ctx, "locked", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "locked has the address", func() error {
		l, err := h.client.NetworkingV1().Ingresses("shop").Get(ctx, "locked", metav1.GetOptions{})
		if err != nil || len(l.Status.LoadBalancer.Ingress) != 1 {
			return fmt.Errorf("locked status %+v %v", l.Status, err)
		}
		lockedNow = l
		return nil
	})
	lockedNow.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"] = "lots"
	if _, err := h.client.NetworkingV1().Ingresses("shop").Update(ctx, lockedNow, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "the now invalid Ingress unserved and its status cleared", func() error {
		if code, _, _ := h.get("locked.test", "/", "bob", "n3w"); code != 404 {
			return fmt.Errorf("GET locked.test = %d, want 404", code)
		}
		l, err := h.client.NetworkingV1().Ingresses("shop").Get(ctx, "locked", metav1.GetOptions{})
		if err != nil || len(l.Status.LoadBalancer.Ingress) != 0 {
			return fmt.Errorf("locked status %+v %v, want none", l.Status, err)
		}
		return nil
	})
	if code, _, _ := h.get("app.test", "/app/x", "", ""); code != 200 {
		t.Errorf("GET app.test/app/x = %d after another Ingress broke, want 200", code)
	}

	if err := h.client.NetworkingV1().Ingresses("shop").Delete(ctx, "good", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "the deleted Ingress's route gone", func() error {
		if code, _, _ := h.get("app.test", "/app/x", "", ""); code != 404 {
			return fmt.Errorf("GET app.test/app/x = %d, want 404", code)
		}
		return nil
	})
	if err := h.client.NetworkingV1().Ingresses("shop").Delete(ctx, "locked", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	discoverytest.Eventually(t, "the unused htpasswd removed", func() error {
		if _, err := os.Stat(filepath.Join(h.dir, "auth", "shop", "users", "htpasswd")); !os.IsNotExist(err) {
			return fmt.Errorf("htpasswd still there: %v", err)
		}
		return nil
	})
}

// TestIngressNamespacesAndClasses: only the namespaces given are read,
// and an Ingress of another class is left alone (no route, no status).
func TestIngressNamespacesAndClasses(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "upstream") }))
	defer upstream.Close()
	inShop := ingressObj("mine", nil, "mine.test", "/", "app")
	other := ingressObj("elsewhere", nil, "elsewhere.test", "/", "app")
	other.Namespace = "other"
	nginx := ingressObj("nginx", nil, "nginx.test", "/", "app")
	nginx.Spec.IngressClassName = new("nginx")
	h := startWith(t, upstream, baseConfig, nil, func(o *Options) { o.Namespaces = []string{"shop"} }, inShop, other, nginx)
	discoverytest.Eventually(t, "the Ingress of the watched namespace served", func() error {
		if code, _, _ := h.get("mine.test", "/", "", ""); code != 200 {
			return fmt.Errorf("GET mine.test = %d, want 200", code)
		}
		ing, err := h.client.NetworkingV1().Ingresses("shop").Get(context.Background(), "mine", metav1.GetOptions{})
		if err != nil || len(ing.Status.LoadBalancer.Ingress) != 1 {
			return fmt.Errorf("mine status %+v %v", ing.Status, err)
		}
		return nil
	})
	for _, host := range []string{"elsewhere.test", "nginx.test"} {
		if code, _, _ := h.get(host, "/", "", ""); code != 404 {
			t.Errorf("GET %s = %d, want 404 (not ours)", host, code)
		}
	}
	for _, ns := range []string{"other", "shop"} {
		ings, _ := h.client.NetworkingV1().Ingresses(ns).List(context.Background(), metav1.ListOptions{})
		for _, ing := range ings.Items {
			if ing.Name != "mine" && len(ing.Status.LoadBalancer.Ingress) != 0 {
				t.Errorf("%s/%s got status %+v; it is not ours", ns, ing.Name, ing.Status.LoadBalancer.Ingress)
			}
		}
	}
}
