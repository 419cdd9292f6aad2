package httpserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
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

// TestEdgeFlags: the edge limits parse from flags into the h1 server, and
// Validate names each bad flag.
func TestEdgeFlags(t *testing.T) {
	var o Options
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.Flags(fs)
	o.EdgeFlags(fs)
	if err := fs.Parse([]string{"--max-conns=10", "--max-conns-per-ip=-1", "--allow-upgrades=websocket,echo",
		"--first-byte-timeout=3s", "--min-body-rate=100", "--read-header-timeout=4s"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	s := NewH1(http.NotFoundHandler(), o, slog.New(slog.DiscardHandler))
	got := fmt.Sprint(s.MaxConns, s.MaxConnsPerIP, s.AllowUpgrades, s.FirstByteTimeout, s.MinBodyRate, s.MinResponseRate,
		s.ReadHeaderTimeout, s.MaxHeaderCount, s.MaxURIBytes, s.RequestBufferBytes, s.MaxRequestsPerConn, s.RateWindow, s.IdleTimeout)
	if want := "10 -1 [websocket echo] 3s 100 240 4s 100 8192 65536 1000 10s 1m15s"; got != want {
		t.Errorf("h1 server settings = %s, want %s", got, want)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"h2c", []string{"--allow-upgrades=h2c"}, "--allow-upgrades"},
		{"not a token", []string{"--allow-upgrades=web socket"}, "not a protocol name"},
		{"negative timeout", []string{"--read-header-timeout=-1s"}, "--read-header-timeout"},
		{"negative first byte", []string{"--first-byte-timeout=-1s"}, "--first-byte-timeout"},
		{"negative header count", []string{"--max-header-count=-2"}, "--max-header-count"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			o.Flags(fs)
			o.EdgeFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
