// Package redistest starts real redis-server processes for tests. It is
// imported only by _test files.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server process owned by one test.
type Server struct {
	t     testing.TB
	Addr  string
	port  int
	dir   string
	cmd   *exec.Cmd
	extra []string
}

// Start runs redis-server on a free loopback port, with persistence off
// (unless args turn it on), and stops it when the test ends. redis-server
// must be installed (`make deps` does it); in CI its absence fails the test
// rather than skipping it silently.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found: run `make deps` (apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, port: FreePort(t), dir: t.TempDir()}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.extra = args
	t.Cleanup(s.Stop) // before Restart: a server that fails to answer is still stopped
	s.Restart()
	return s
}

// Restart starts the process again on the same port (after Stop or Kill).
func (s *Server) Restart() {
	s.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
	}, s.extra...)
	s.cmd = exec.Command("redis-server", args...)
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s.ping() == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	s.t.Fatalf("redis-server on %s did not answer PING within 10s; its log:\n%s", s.Addr, log)
}

// Kill ends the process abruptly (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Stop is Kill under another name, for t.Cleanup.
func (s *Server) Stop() { s.Kill() }

// Pause stops the process with SIGSTOP so it accepts connections but never
// answers: a slow Redis. Resume undoes it.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused process.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Do sends one command over a fresh connection and returns the reply line.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") { // bulk string: read the value line
		if line == "$-1" {
			return "", nil
		}
		v, err := r.ReadString('\n')
		return strings.TrimRight(v, "\r\n"), err
	}
	if strings.HasPrefix(line, "-") {
		return "", fmt.Errorf("redis: %s", line[1:])
	}
	return strings.TrimLeft(line, "+:"), nil
}

// ping reports whether the server answers; an authentication error is an
// answer too.
func (s *Server) ping() error {
	v, err := s.Do("PING")
	if err != nil && strings.Contains(err.Error(), "NOAUTH") {
		return nil
	}
	if err == nil && v != "PONG" {
		err = fmt.Errorf("PING answered %q", v)
	}
	return err
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// NonLoopbackIP returns an IPv4 address of this machine other than
// loopback that a listener can bind, or "" when there is none: Redis'
// protected mode refuses only clients from such addresses.
func NonLoopbackIP(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(n.IP.String(), "0"))
		if err != nil {
			continue
		}
		ln.Close()
		return n.IP.String()
	}
	return ""
}
