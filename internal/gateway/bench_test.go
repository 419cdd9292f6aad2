package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway/discovery/discoverytest"
)

// BenchmarkProxy measures one request through the gateway (on the h1
// server, as flotilla gateway runs) over loopback, client and upstream
// included (in this process): compare runs with
// benchstat; the side-by-side figures come from bench/proxy/run.sh.
func BenchmarkProxy(b *testing.B) {
	for _, tc := range []struct {
		name   string
		access bool
		policy string // extra route fields
		origin string
		kube   bool // endpoints from an EndpointSlice (fake API), not the address
	}{
		{name: "bare"},
		{name: "kubernetes-discovery", kube: true},
		{name: "access-log", access: true},
		{name: "ip-rules", policy: ", ipRules: {allow: [10.0.0.0/8, 127.0.0.0/8], deny: [127.0.0.2]}"},
		{name: "origin-no-cors", origin: "https://app.test"}, // what the Origin header costs without a policy
		{name: "cors", policy: `, cors: {allowOrigins: ["https://app.test"], exposeHeaders: [X-Request-Id], allowCredentials: true}`, origin: "https://app.test"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
			defer up.Close()
			opts := Options{Registry: prometheus.NewRegistry()}
			if tc.access {
				opts.AccessLog = io.Discard
			}
			backend := fmt.Sprintf("addresses: [%q]", strings.TrimPrefix(up.URL, "http://"))
			if tc.kube {
				client := fake.NewClientset(endpointSlice(b, "shop", "web-1", "web", strings.TrimPrefix(up.URL, "http://"), "ready"))
				opts.Endpoints = fakeDiscovery(b, client)
				backend = "kubernetes: {service: web, port: http}"
			}
			gw, err := New(mustParse(b, fmt.Sprintf(`
backends: [{name: b, %s}]
routes: [{name: r, match: {hosts: [a.test], path: {value: /api}}, backends: [{name: b}]%s}]
`, backend, tc.policy)), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			srv := serveH1(b, gw.Handler())
			req, _ := http.NewRequest("GET", srv.URL+"/api/x", nil)
			req.Host = "a.test"
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			client := srv.Client()
			discoverytest.Eventually(b, "the backend has its endpoint", func() error {
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
