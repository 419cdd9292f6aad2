package auth

import (
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// forwardSeen is what the authorization service received.
type forwardSeen struct {
	method string
	uri    string
	header http.Header
	body   []byte
	length int64
}

// forwardService is a real HTTP server standing in for the external
// authorization service: it records every request and answers with fn.
type forwardService struct {
	*httptest.Server
	mu   sync.Mutex
	seen []forwardSeen
}

func forwardNewService(t *testing.T, fn http.HandlerFunc) *forwardService {
	t.Helper()
	s := &forwardService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, forwardSeen{method: r.Method, uri: r.RequestURI, header: r.Header.Clone(), body: body, length: r.ContentLength})
		s.mu.Unlock()
		fn(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *forwardService) last(t *testing.T) forwardSeen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		t.Fatal("the authorization service was not called")
	}
	return s.seen[len(s.seen)-1]
}

func forwardNew(t *testing.T, c config.ForwardAuth) *Forward {
	t.Helper()
	f, err := NewForward(&c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// clientRequest is a client's POST with a body, credentials, hop-by-hop
// headers and its own forged X-Forwarded-* claims.
func forwardClientRequest() *http.Request {
	r := httptest.NewRequest("POST", "https://app.example.com/counter/inc?by=2", strings.NewReader("the request body"))
	r.RemoteAddr = "203.0.113.7:51234"
	r.Header.Set("Authorization", "Bearer abc")
	r.Header.Set("Cookie", "_oauth2_proxy=xyz")
	r.Header.Set("X-Custom", "kept")
	r.Header.Set("Content-Type", "text/plain")
	r.Header.Set("Content-Length", "16")
	r.Header.Set("Connection", "keep-alive, X-Conn-Named")
	r.Header.Set("X-Conn-Named", "hop")
	r.Header.Set("Keep-Alive", "timeout=5")
	r.Header.Set("Te", "trailers")
	r.Header.Set("Trailer", "X-T")
	r.Header.Set("Transfer-Encoding", "chunked")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Proxy-Authorization", "Basic cHJveHk6cHc=")
	r.Header.Set("Proxy-Connection", "keep-alive")
	r.Header.Set("Accept-Encoding", "br")
	r.Header.Set("Expect", "100-continue")
	r.Header.Set("X-Forwarded-For", "10.6.6.6")
	r.Header.Set("X-Forwarded-Host", "forged.example")
	r.Header.Set("X-Forwarded-User", "admin")
	r.Header.Set("Forwarded", "for=10.6.6.6")
	r.Header.Set("X-Real-Ip", "10.6.6.6")
	return r
}

func TestForwardAllows(t *testing.T) {
	svc := forwardNewService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth-Request-User", "alice")
		w.Header().Add("X-Auth-Groups", "admins")
		w.Header().Add("X-Auth-Groups", "devs")
		w.Header().Set("X-Not-Listed", "dropped")
		io.WriteString(w, "ok")
	})
	f := forwardNew(t, config.ForwardAuth{URL: svc.URL + "/verify?rd=1", ResponseHeaders: []string{"x-auth-groups", "X-Auth-Request-User", "X-Absent"}})
	r := forwardClientRequest()
	before := r.Header.Clone()
	id, err := f.Authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, r.Header); diff != "" {
		t.Errorf("Authenticate modified the request headers (-before +after):\n%s", diff)
	}
	if id.Principal != "alice" {
		t.Errorf("Principal = %q, want alice", id.Principal)
	}
	wantSet := http.Header{"X-Auth-Groups": {"admins", "devs"}, "X-Auth-Request-User": {"alice"}}
	if diff := cmp.Diff(wantSet, id.Set); diff != "" {
		t.Errorf("Set (-want +got):\n%s", diff)
	}

	got := svc.last(t)
	if got.method != "GET" || got.uri != "/verify?rd=1" {
		t.Errorf("service got %s %s, want GET /verify?rd=1", got.method, got.uri)
	}
	if len(got.body) != 0 || got.length != 0 {
		t.Errorf("service got a body (%d bytes, Content-Length %d), want none", len(got.body), got.length)
	}
	for k, want := range map[string]string{
		"Authorization":      "Bearer abc",
		"Cookie":             "_oauth2_proxy=xyz",
		"X-Custom":           "kept",
		"Content-Type":       "text/plain",
		"X-Forwarded-Method": "POST",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Host":   "app.example.com",
		"X-Forwarded-Uri":    "/counter/inc?by=2",
		"X-Forwarded-For":    "203.0.113.7",
	} {
		if v := got.header.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("service got %s %q, want %q", k, v, want)
		}
	}
	for _, k := range []string{"X-Conn-Named", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Proxy-Authorization", "Proxy-Connection", "Expect", "X-Forwarded-User", "Forwarded", "X-Real-Ip"} {
		if v, ok := got.header[k]; ok {
			t.Errorf("service got %s %q, want it not sent", k, v)
		}
	}
	if v := got.header.Get("Accept-Encoding"); v == "br" {
		t.Errorf("service got the client's Accept-Encoding %q", v)
	}
}

func TestForwardPrincipalHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"none", http.Header{}, ""},
		{"X-Auth-Request-User", http.Header{"X-Auth-Request-User": {"a"}, "X-Auth-User": {"b"}}, "a"},
		{"X-Auth-User", http.Header{"X-Auth-Request-User": {""}, "X-Auth-User": {"b"}, "X-Forwarded-User": {"c"}}, "b"},
		{"X-Forwarded-User", http.Header{"X-Forwarded-User": {"c"}}, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := forwardNewService(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.WriteHeader(http.StatusNoContent)
			})
			id, err := forwardNew(t, config.ForwardAuth{URL: svc.URL}).Authenticate(forwardClientRequest())
			if err != nil {
				t.Fatal(err)
			}
			if id.Principal != tt.want || id.Set != nil {
				t.Errorf("Principal = %q, Set %v; want %q and nothing to set", id.Principal, id.Set, tt.want)
			}
		})
	}
}

func TestForwardRequestHeadersAllowList(t *testing.T) {
	svc := forwardNewService(t, func(w http.ResponseWriter, r *http.Request) {})
	f := forwardNew(t, config.ForwardAuth{URL: svc.URL, RequestHeaders: []string{"cookie", "X-Missing", "Connection", "X-Forwarded-Host"}})
	f.ClientIP = func(*http.Request) string { return "198.51.100.9" }
	r := forwardClientRequest()
	r.TLS = nil
	r.Host = "plain.example"
	if _, err := f.Authenticate(r); err != nil {
		t.Fatal(err)
	}
	got := svc.last(t).header
	// What Go's client adds itself (Host is not a header field here).
	for _, k := range []string{"User-Agent", "Accept-Encoding"} {
		got.Del(k)
	}
	want := http.Header{
		"Cookie":             {"_oauth2_proxy=xyz"},
		"X-Forwarded-Method": {"POST"},
		"X-Forwarded-Proto":  {"http"},
		"X-Forwarded-Host":   {"plain.example"},
		"X-Forwarded-Uri":    {"/counter/inc?by=2"},
		"X-Forwarded-For":    {"198.51.100.9"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("service got headers (-want +got):\n%s", diff)
	}
}

func TestForwardDenied(t *testing.T) {
	big := strings.Repeat("x", ForwardBodyLimit+1000)
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantHeader http.Header
		wantBody   string
	}{
		{name: "401 with challenge and body", status: 401,
			header:     http.Header{"Www-Authenticate": {`Bearer realm="sso"`, `Basic realm="sso"`}, "Content-Type": {"application/json"}, "X-Other": {"dropped"}},
			body:       `{"error":"login"}`,
			wantHeader: http.Header{"Www-Authenticate": {`Bearer realm="sso"`, `Basic realm="sso"`}, "Content-Type": {"application/json"}},
			wantBody:   `{"error":"login"}`},
		{name: "403", status: 403, header: http.Header{"Content-Type": {"text/plain"}}, body: "no",
			wantHeader: http.Header{"Content-Type": {"text/plain"}}, wantBody: "no"},
		{name: "302 to the login page, not followed", status: 302,
			header:     http.Header{"Location": {"/login?rd=%2Fcounter"}, "Set-Cookie": {"csrf=1; HttpOnly", "state=2"}},
			wantHeader: http.Header{"Location": {"/login?rd=%2Fcounter"}, "Set-Cookie": {"csrf=1; HttpOnly", "state=2"}}},
		{name: "body capped", status: 401, header: http.Header{"Content-Type": {"text/plain"}}, body: big,
			wantHeader: http.Header{"Content-Type": {"text/plain"}}, wantBody: big[:ForwardBodyLimit]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			svc := forwardNewService(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) > 1 {
					t.Errorf("service called again for %s (a redirect was followed)", r.URL)
				}
				for k, v := range tt.header {
					w.Header()[k] = v
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := forwardNew(t, config.ForwardAuth{URL: svc.URL}).Authenticate(forwardClientRequest())
			e := apiKeyRefusal(t, err)
			if e.Status != tt.status || e.Reason != ReasonDenied {
				t.Errorf("refusal %d %s, want %d %s", e.Status, e.Reason, tt.status, ReasonDenied)
			}
			if diff := cmp.Diff(tt.wantHeader, e.Header); diff != "" {
				t.Errorf("Header (-want +got):\n%s", diff)
			}
			if string(e.Body) != tt.wantBody {
				t.Errorf("Body = %.40q (%d bytes), want %.40q (%d bytes)", e.Body, len(e.Body), tt.wantBody, len(tt.wantBody))
			}
		})
	}
}

// TestForwardFailsClosed: anything but 2xx, 401, 403 and 3xx, a slow or
// absent service, refuses with 503, and the error names the URL without
// its query.
func TestForwardFailsClosed(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := forwardNewService(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	status := func(code int) string {
		return forwardNewService(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }).URL
	}
	tests := []struct {
		name       string
		url        string
		wantReason string
		wantErr    string
	}{
		{"500", status(500), ReasonServiceError, "answered 500"},
		{"502", status(502), ReasonServiceError, "answered 502"},
		{"404", status(404), ReasonServiceError, "answered 404"},
		{"429", status(429), ReasonServiceError, "answered 429"},
		{"400", status(400), ReasonServiceError, "answered 400"},
		{"304", status(304), ReasonServiceError, "answered 304"},
		{"slow service", slow.URL, ReasonUnavailable, "no answer within 100ms"},
		{"service down", down, ReasonUnavailable, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forwardNew(t, config.ForwardAuth{URL: tt.url + "/check?token=s3cr3t", Timeout: 100 * time.Millisecond})
			_, err := f.Authenticate(forwardClientRequest())
			e := apiKeyRefusal(t, err)
			if e.Status != 503 || e.Reason != tt.wantReason {
				t.Errorf("refusal %d %s, want 503 %s", e.Status, e.Reason, tt.wantReason)
			}
			msg := e.Error()
			if !strings.Contains(msg, tt.url+"/check") || !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q, want it to name %s/check and %q", msg, tt.url, tt.wantErr)
			}
			if strings.Contains(msg, "s3cr3t") {
				t.Errorf("error %q holds the URL's query", msg)
			}
			if e.Header != nil || e.Body != nil {
				t.Errorf("refusal relays %v %q, want nothing from a failed service", e.Header, e.Body)
			}
		})
	}
}

func TestForwardCAFile(t *testing.T) {
	svc := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth-User", "tls-user")
	}))
	svc.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	svc.StartTLS()
	t.Cleanup(svc.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := forwardNew(t, config.ForwardAuth{URL: svc.URL, CAFile: ca}).Authenticate(forwardClientRequest())
	if err != nil || id.Principal != "tls-user" {
		t.Errorf("with the CA: %v, %v; want tls-user", id, err)
	}

	// Without it the system roots do not know the test CA: fail closed.
	_, err = forwardNew(t, config.ForwardAuth{URL: svc.URL}).Authenticate(forwardClientRequest())
	if e := apiKeyRefusal(t, err); e.Status != 503 || e.Reason != ReasonUnavailable || !strings.Contains(e.Error(), "certificate") {
		t.Errorf("without the CA: %v, want 503 unavailable naming the certificate", e)
	}

	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{{bad, "no PEM certificates"}, {filepath.Join(dir, "absent.pem"), "absent.pem"}} {
		if _, err := NewForward(&config.ForwardAuth{URL: svc.URL, CAFile: c.file}, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CAFile %s: error %v, want one containing %q", c.file, err, c.want)
		}
	}
}

func TestForwardBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "::"} {
		if _, err := NewForward(&config.ForwardAuth{URL: u}, nil); err == nil {
			t.Errorf("NewForward(%q) succeeded, want an error", u)
		}
	}
}

// BenchmarkForward is one check against a service on loopback: a
// keep-alive round trip, what forward auth adds to each request.
func BenchmarkForward(b *testing.B) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth-User", "alice")
	}))
	defer svc.Close()
	f, err := NewForward(&config.ForwardAuth{URL: svc.URL, ResponseHeaders: []string{"X-Auth-User"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := forwardClientRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}
