package counter

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flotilla-dev/flotilla/internal/pki"
	"github.com/flotilla-dev/flotilla/internal/redistest"
)

// TestRedisRefusalNamesReason: when Redis refuses the connection (an error
// reply, then close), the counter's 503 says why, not only "connection
// lost". Real redis-server processes refusing for real reasons.
func TestRedisRefusalNamesReason(t *testing.T) {
	tests := []struct {
		name string
		// start returns the address the counter dials.
		start func(t *testing.T) string
		want  string
	}{
		{
			// The talk's bare Redis: no password, protected mode on, a client
			// from another address than loopback.
			name: "protected mode",
			start: func(t *testing.T) string {
				ip := redistest.NonLoopbackIP(t)
				if ip == "" {
					t.Skip("no non-loopback IPv4 address on this machine: protected mode cannot refuse a local client (the max clients case covers the same path)")
				}
				rs := redistest.Start(t, "--bind", "127.0.0.1", ip, "--protected-mode", "yes")
				_, port, _ := net.SplitHostPort(rs.Addr)
				return net.JoinHostPort(ip, port)
			},
			want: "DENIED Redis is running in protected mode because protected mode is enabled and no password is set",
		},
		{
			// One connection already holds the only slot.
			name: "max clients",
			start: func(t *testing.T) string {
				rs := redistest.Start(t, "--maxclients", "1")
				c, err := net.Dial("tcp", rs.Addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if _, err := c.Write([]byte("PING\r\n")); err != nil {
					t.Fatal(err)
				}
				if line, err := readLine(c); err != nil || line != "+PONG" {
					t.Fatalf("holding connection: PING = %q, %v", line, err)
				}
				return rs.Addr
			},
			want: "ERR max number of clients reached",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.start(t)
			srv, _ := startCounter(t, addr, opTimeout)
			c := &http.Client{Timeout: 5 * time.Second}
			for _, path := range []string{"/", "/readyz"} {
				code, body, _ := fetch(t, c, srv.URL+path)
				want := "Redis at " + addr + " is unavailable: " + tt.want
				if path == "/readyz" {
					want = tt.want
				}
				if code != http.StatusServiceUnavailable || !strings.Contains(body, want) {
					t.Errorf("GET %s = %d %q, want 503 containing %q", path, code, body, want)
				}
				if strings.Count(body, "\n") != 1 {
					t.Errorf("GET %s body = %q, want one line", path, body)
				}
			}
		})
	}
}

func readLine(c net.Conn) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return strings.TrimSuffix(string(b), "\r"), nil
		}
		b = append(b, one[0])
	}
}

func TestRefusalConn(t *testing.T) {
	long := "ERR " + strings.Repeat("x", 3000)
	tests := []struct {
		name   string
		chunks []string // what the server sends, one Write each, then it closes
		want   string   // the RefusedError's reason; "" for the plain close
	}{
		{name: "denied", chunks: []string{"-DENIED Redis is running in protected mode\r\n"}, want: "DENIED Redis is running in protected mode"},
		{name: "split across reads", chunks: []string{"-ERR max number", " of clients reached\r", "\n"}, want: "ERR max number of clients reached"},
		{name: "closed inside the line", chunks: []string{"-ERR max num"}, want: "ERR max num"},
		{name: "bare LF", chunks: []string{"-ERR x\n"}, want: "ERR x"},
		{name: "answer after the error", chunks: []string{"-ERR unknown command 'HELLO'\r\n", "+OK\r\n"}},
		{name: "answer in the same read", chunks: []string{"-ERR unknown command 'HELLO'\r\n+OK\r\n"}},
		{name: "not an error", chunks: []string{"+OK\r\n"}},
		{name: "map then error", chunks: []string{"%1\r\n+a\r\n:1\r\n", "-ERR later\r\n"}},
		{name: "nothing", chunks: nil},
		{name: "empty error", chunks: []string{"-\r\n"}},
		{name: "control characters", chunks: []string{"-ERR a\x1b[31mb\x00c\r\n"}, want: "ERR a [31mb c"},
		{name: "invalid UTF-8", chunks: []string{"-ERR \xff\xfe ok é\r\n"}, want: "ERR    ok é"},
		{name: "too long", chunks: []string{"-" + long + "\r\n"}, want: long[:maxRefusal] + " …"},
		{name: "too long, never ends", chunks: []string{"-" + long, long}, want: long[:maxRefusal] + " …"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, client := net.Pipe()
			go func() {
				for _, c := range tt.chunks {
					server.Write([]byte(c))
				}
				server.Close()
			}()
			c := newRefusalConn(client)
			defer c.Close()
			buf := make([]byte, 16)
			var err error
			for err == nil {
				_, err = c.Read(buf)
			}
			var refused *RefusedError
			switch {
			case tt.want == "" && errors.As(err, &refused):
				t.Errorf("Read() error = %q (refusal), want the plain close", err)
			case tt.want == "" && err != io.EOF:
				t.Errorf("Read() error = %v, want io.EOF", err)
			case tt.want != "" && !errors.As(err, &refused):
				t.Errorf("Read() error = %v, want a refusal %q", err, tt.want)
			case tt.want != "" && refused.Reason != tt.want:
				t.Errorf("Read() refusal = %.80q… (%d bytes), want %.80q… (%d bytes)", refused.Reason, len(refused.Reason), tt.want, len(tt.want))
			case tt.want != "" && !errors.Is(err, io.EOF):
				t.Errorf("Read() error = %v, want it to wrap io.EOF", err)
			}
		})
	}
}

func FuzzCleanReason(f *testing.F) {
	for _, s := range []string{"-DENIED x", "-ERR \xff", "-a\r\nb", "-\x00\x1b", strings.Repeat("é", 1500)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		s := cleanReason(line)
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n\x00") {
			t.Errorf("cleanReason(%q) = %q, want one line of valid UTF-8", line, s)
		}
		if limit := maxRefusal + len(" …"); len(s) > limit {
			t.Errorf("cleanReason(%q) is %d bytes, want at most %d", line, len(s), limit)
		}
	})
}

// TestRedisTLS: the store dials TLS itself (to watch for refusals), so it is
// tested against a real redis-server speaking TLS, both a trusted server and
// one whose certificate the client must reject.
func TestRedisTLS(t *testing.T) {
	ca, err := pki.NewCA("counter test CA")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.Issue(pki.Request{Names: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{"ca.pem": ca.PEM, "cert.pem": srvCert.CertPEM, "key.pem": srvCert.KeyPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	redistest.Start(t, "--tls-port", tlsPort, "--tls-cert-file", filepath.Join(dir, "cert.pem"),
		"--tls-key-file", filepath.Join(dir, "key.pem"), "--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
		"--tls-auth-clients", "no")
	addr := net.JoinHostPort("127.0.0.1", tlsPort)

	good := NewRedis(RedisOptions{Addr: addr, TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	defer good.Close()
	if n, err := good.Incr(context.Background()); err != nil || n != 1 {
		t.Errorf("Incr() over TLS = %d, %v; want 1", n, err)
	}
	other, err := pki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	bad := NewRedis(RedisOptions{Addr: addr, TLS: &tls.Config{RootCAs: other.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	defer bad.Close()
	if _, err := bad.Incr(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Incr() trusting another CA = %v, want a certificate error", err)
	}
}
