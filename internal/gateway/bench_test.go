package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
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
		// The live view's cost: the upstream names its version, and the
		// per-version and per-instance statistics are off, on (the
		// default), or on with viewers watching the page's event stream.
		version bool
		liveOff bool
		viewers int
	}{
		{name: "bare"},
		{name: "kubernetes-discovery", kube: true},
		{name: "access-log", access: true},
		{name: "ip-rules", policy: ", ipRules: {allow: [10.0.0.0/8, 127.0.0.0/8], deny: [127.0.0.2]}"},
		{name: "origin-no-cors", origin: "https://app.test"}, // what the Origin header costs without a policy
		{name: "cors", policy: `, cors: {allowOrigins: ["https://app.test"], exposeHeaders: [X-Request-Id], allowCredentials: true}`, origin: "https://app.test"},
		{name: "live-stats-off", version: true, liveOff: true},
		{name: "live-stats-on", version: true},
		{name: "live-stats-50-viewers", version: true, viewers: 50},
	} {
		b.Run(tc.name, func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.version {
					w.Header()["X-Flotilla-Version"] = []string{"v1"}
				}
				io.WriteString(w, "ok\n")
			}))
			defer up.Close()
			opts := Options{Registry: prometheus.NewRegistry(), DisableLiveStats: tc.liveOff}
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
			if tc.viewers > 0 {
				stop := watchLive(b, gw, tc.viewers)
				defer stop()
			}
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

// watchLive opens n event streams on the live view, as n browsers would,
// each read to the end on its own goroutine; stop closes them.
func watchLive(b *testing.B, gw *Gateway, n int) (stop func()) {
	b.Helper()
	ui := gw.LiveUI(nil, false)
	adm := httptest.NewServer(admin.Secure(gw.AdminHandler(), admin.Options{UI: ui}))
	client := adm.Client()
	resp, err := client.Get(adm.URL + "/ui/session")
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Cookies()
	var wg sync.WaitGroup
	started := make(chan error, n)
	for range n {
		req, _ := http.NewRequest("GET", adm.URL+"/ui/events", nil)
		for _, c := range cookie {
			req.AddCookie(c)
		}
		wg.Go(func() {
			resp, err := client.Do(req)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("events: status %d", resp.StatusCode)
			}
			started <- err
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	for range n {
		if err := <-started; err != nil {
			b.Fatal(err)
		}
	}
	return func() {
		ui.Close() // ends the streams
		wg.Wait()
		adm.Close()
	}
}
