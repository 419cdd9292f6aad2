package httpserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

func TestServeDrainsGracefully(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	// The drain delay is long so the request sent during it lands inside
	// it even on a busy machine.
	o := Options{DrainDelay: 2 * time.Second, ShutdownTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan struct{})
	served := make(chan error, 1)
	go func() {
		served <- Serve(ctx, New(h, o, slog.New(slog.DiscardHandler)), ln, o, func() { close(drained) })
	}()

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			slow <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-started
	cancel()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("onDrain not called when the context ended")
	}
	// During the drain delay the listener still accepts: load balancers
	// that have not yet seen readiness fail must not get refused.
	resp, err := http.Get(url + "/fast")
	if err != nil {
		t.Fatalf("request during drain delay: %v", err)
	}
	resp.Body.Close()
	close(release)
	if got := <-slow; got != "done" {
		t.Errorf("in-flight request got %q, want done", got)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve() = %v, want nil after a clean drain", err)
	}
	if _, err := http.Get(url + "/fast"); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}

func TestServeShutdownTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	started := make(chan struct{})
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { close(started); <-block })
	ln, _ := Listen(context.Background(), "127.0.0.1:0")
	o := Options{ShutdownTimeout: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, New(h, o, slog.New(slog.DiscardHandler)), ln, o, nil) }()
	go http.Get("http://" + ln.Addr().String())
	<-started
	cancel()
	select {
	case err := <-served:
		if err == nil {
			t.Error("Serve() = nil, want a shutdown timeout error while a request hangs")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not give up after ShutdownTimeout")
	}
}

func TestNewSetsTimeouts(t *testing.T) {
	s := New(http.NotFoundHandler(), Options{}, slog.New(slog.DiscardHandler))
	if s.ReadHeaderTimeout == 0 || s.IdleTimeout == 0 || s.ReadTimeout == 0 || s.WriteTimeout == 0 || s.MaxHeaderBytes == 0 {
		t.Errorf("server without a timeout: %+v", s)
	}
}
