package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClientBodyOverCapIsNotTheEndpoints(t *testing.T) {
	u := newUpstream(t, "u")
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q], outlier: {consecutiveFailures: 1}}]
routes: [{name: r, backends: [{name: u}], retries: {attempts: 0}}]
`, u.addr()), Options{MaxRequestBody: 10})
	// No Content-Length: the cap is hit while the body streams upstream.
	body := io.MultiReader(strings.NewReader(strings.Repeat("x", 100)))
	resp, _ := f.do(t, "POST", "x.test", "/", body, nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body over the cap: status %d, want 413", resp.StatusCode)
	}
	if v := testutil.ToFloat64(f.gw.metrics.ejections.WithLabelValues("u")); v != 0 {
		t.Errorf("ejections_total{u} = %v, want 0: the client's body is not the endpoint's failure", v)
	}
	if resp, _ := f.do(t, "GET", "x.test", "/", nil, nil); resp.StatusCode != 200 {
		t.Errorf("next request = %d, want 200 from the endpoint still in rotation", resp.StatusCode)
	}
}

func TestUpstreamReadsBodyAfterSendingHeaders(t *testing.T) {
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s|%v", b, err)
	}))
	defer u.Close()
	f := start(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes: [{name: r, backends: [{name: u}]}]
`, strings.TrimPrefix(u.URL, "http://")), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/", pr)
	req.ContentLength = 11
	go io.WriteString(pw, "hello ")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The rest of the body is sent only after the response headers came.
	go func() {
		io.WriteString(pw, "world")
		pw.Close()
	}()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "hello world|<nil>" {
		t.Errorf("upstream read %q after answering headers, want \"hello world|<nil>\"", b)
	}
}

func TestH2CHealthChecks(t *testing.T) {
	u := &upstream{name: "h2"}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Config.Protocols = new(http.Protocols)
	u.Config.Protocols.SetUnencryptedHTTP2(true) // HTTP/1.1 is refused
	u.Start()
	defer u.Close()
	f := start(t, fmt.Sprintf(`
backends: [{name: h2, addresses: [%q], protocol: h2c, healthCheck: {interval: 20ms, unhealthyThreshold: 1, healthyThreshold: 1}}]
routes: [{name: r, backends: [{name: h2}]}]
`, u.addr()), Options{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		u.mu.Lock()
		checks := 0
		for _, a := range u.got {
			if a.Path == "/healthz" || a.Header.Get("User-Agent") == "flotilla-gateway-health/1" {
				checks++
			}
		}
		u.mu.Unlock()
		if checks >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("h2c upstream answered %d health checks, want them sent over HTTP/2", checks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp, _ := f.do(t, "GET", "x.test", "/", nil, nil); resp.StatusCode != 200 {
		t.Errorf("GET = %d, want 200 from the h2c endpoint its health checks keep up", resp.StatusCode)
	}
}

// TestStatusRetryNeverEjectsTheLastEndpoint: a counted 503 cannot eject
// the only endpoint, so the retry goes to it again and the client gets
// the upstream's answer, not the gateway's no_healthy_upstream.
func TestStatusRetryNeverEjectsTheLastEndpoint(t *testing.T) {
	sick := newUpstream(t, "sick")
	sick.handler = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
	f := start(t, fmt.Sprintf(`
backends: [{name: sick, addresses: [%q], outlier: {consecutiveFailures: 1, countStatuses: [503], maxEjectionPercent: 100}}]
routes: [{name: r, backends: [{name: sick}], retries: {attempts: 1, backoff: 1ms, retryOn: [503]}}]
`, sick.addr()), Options{})
	resp, body := f.do(t, "GET", "x.test", "/", nil, nil)
	if resp.StatusCode != 503 || strings.Contains(body, "no_healthy_upstream") {
		t.Errorf("GET = %d %s, want the upstream's own 503", resp.StatusCode, body)
	}
	if n := sick.hits.Load(); n != 2 {
		t.Errorf("upstream hits = %d, want 2 (the retry goes to the only endpoint)", n)
	}
	if !f.gw.state.Load().pools["sick"].Available() {
		t.Error("the only endpoint was ejected")
	}
}

func TestRouteTimeoutAboveServerWriteTimeout(t *testing.T) {
	u := newUpstream(t, "slow")
	u.handler = func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(600 * time.Millisecond) // beyond the server's WriteTimeout, within the route's
		io.WriteString(w, "late")
	}
	gw, err := New(mustParse(t, fmt.Sprintf(`
backends: [{name: u, addresses: [%q]}]
routes: [{name: r, backends: [{name: u}], timeout: 10s}]
`, u.addr())), Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw.Handler())
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	defer gw.Close()
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		t.Fatalf("GET with a 10s route timeout behind a 200ms server WriteTimeout: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "late" {
		t.Errorf("GET = %d %q, want 200 \"late\"", resp.StatusCode, b)
	}
}

func TestMirrorShapedLikePrimary(t *testing.T) {
	type seen struct {
		uri    string
		header http.Header
	}
	var mu sync.Mutex
	got := map[string]seen{}
	rec := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got[name] = seen{r.RequestURI, r.Header.Clone()}
			mu.Unlock()
		}))
		t.Cleanup(s.Close)
		return s
	}
	primary, shadow := rec("primary"), rec("shadow")
	f := start(t, fmt.Sprintf(`
defaults: {paths: {encodedSlash: keep}}
backends:
  - {name: p, addresses: [%q]}
  - {name: s, addresses: [%q]}
routes:
  - {name: r, backends: [{name: p}], mirror: {backend: s, percent: 100}}
`, strings.TrimPrefix(primary.URL, "http://"), strings.TrimPrefix(shadow.URL, "http://")), Options{})
	f.do(t, "GET", "x.test", "/a%2Fb?q=1", nil, map[string]string{
		"Connection": "X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=5", "Te": "gzip",
		"Proxy-Authorization": "Basic c2VjcmV0", "X-Forwarded-For": "10.0.0.1", "X-Keep": "kept",
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mirrored copy never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p, s := got["primary"], got["shadow"]
	if s.uri != p.uri || p.uri != "/a%2Fb?q=1" {
		t.Errorf("request URI: primary %q, shadow %q, want both \"/a%%2Fb?q=1\"", p.uri, s.uri)
	}
	for _, h := range []string{"X-Hop", "Keep-Alive", "Te", "Proxy-Authorization", "X-Request-Id", "Traceparent", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Keep"} {
		if pv, sv := p.header.Values(h), s.header.Values(h); strings.Join(pv, ",") != strings.Join(sv, ",") {
			t.Errorf("header %s: primary %q, shadow %q, want the same", h, pv, sv)
		}
	}
	if p.header.Get("X-Request-Id") == "" || p.header.Get("Proxy-Authorization") != "" {
		t.Errorf("primary headers %v: want X-Request-Id set and Proxy-Authorization stripped", p.header)
	}
}
