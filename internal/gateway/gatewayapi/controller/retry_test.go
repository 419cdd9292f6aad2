package controller

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestRetryThroughEndpointSlices: an HTTPRoute's retry, served through
// EndpointSlice discovery (one endpoint), retries a listed status until
// the backend answers (the conformance suite's HTTPRouteRetry shape).
func TestRetryThroughEndpointSlices(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := r.URL.Query().Get("uuid")
		if seen[id] < 2 {
			seen[id]++
			w.WriteHeader(500)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	u := &upstream{name: "flaky", srv: srv}
	route := routeObj("shop", "retries", "", ref("flaky", 1))
	route.Spec.Hostnames = nil
	route.Spec.Rules[0].Retry = &gwv1.HTTPRouteRetry{Codes: []gwv1.HTTPRouteRetryStatusCode{500}, Attempts: new(3)}
	h := start(t, u.objects(), []runtime.Object{class(), gatewayObj(), route})
	eventually(t, "the route served", func() error {
		// 200 once the route and its endpoint are in place (with or
		// without retries: this one may take several requests).
		if code, body, err := h.get("any.test", "/retry?uuid=warm"); err != nil || code != 200 {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	for i := range 20 {
		// One request per uuid: only the gateway's retries can make it 200.
		if code, body, err := h.get("any.test", fmt.Sprintf("/retry?uuid=u%d", i)); err != nil || code != 200 {
			t.Errorf("request %d: %d %q %v, want 200 after two retried 500s", i, code, body, err)
		}
	}
}
