package httpserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDynamicPorts: ports open and close under a running server; the
// handler sees which port a request came in on; a connection accepted
// before its port closed keeps being served; the server survives every
// change and stops only when the listener is closed.
func TestDynamicPorts(t *testing.T) {
	d := NewDynamic("127.0.0.1", nil)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strconv.Itoa(r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr).Port))
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(d) }()
	ctx := context.Background()
	a, b := freePort(t), freePort(t)
	get := func(c *http.Client, port int) (string, error) {
		resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	if err := d.Set(ctx, map[int]bool{a: false}); err != nil {
		t.Fatal(err)
	}
	kept := &http.Client{Transport: &http.Transport{}}
	if got, err := get(kept, a); err != nil || got != strconv.Itoa(a) {
		t.Fatalf("port %d: %q, %v", a, got, err)
	}
	if _, err := get(http.DefaultClient, b); err == nil {
		t.Fatalf("port %d answered before it was opened", b)
	}
	if err := d.Set(ctx, map[int]bool{b: false}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(&http.Client{Transport: &http.Transport{}}, b); err != nil || got != strconv.Itoa(b) {
		t.Fatalf("port %d: %q, %v", b, got, err)
	}
	if _, err := get(&http.Client{Transport: &http.Transport{}}, a); err == nil {
		t.Fatalf("port %d answered a new connection after it was closed", a)
	}
	// The keep-alive connection accepted on a before it closed.
	if got, err := get(kept, a); err != nil || got != strconv.Itoa(a) {
		t.Errorf("open connection on closed port %d: %q, %v", a, got, err)
	}
	if got := d.Ports(); len(got) != 1 || got[0] != b {
		t.Errorf("Ports() = %v, want [%d]", got, b)
	}
	// TLS without a TLS configuration is refused, the rest still opens.
	c := freePort(t)
	if err := d.Set(ctx, map[int]bool{b: false, c: true}); err == nil {
		t.Error("a TLS port opened without a TLS configuration")
	}
	if got := d.Ports(); len(got) != 1 || got[0] != b {
		t.Errorf("Ports() = %v, want [%d]", got, b)
	}
	srv.Close()
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
	if err := d.Set(ctx, map[int]bool{a: false}); err == nil {
		t.Error("Set after Close opened a port")
	}
}
