package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/internal/redistest"
)

// TestRedisImageStartsAsOfficial builds the redis image and runs its
// entrypoint on this machine against the host's redis-server (the image's
// own binary, byte for byte), then connects from a non-loopback address of
// this machine, the only kind of client protected mode refuses: in a pod,
// every other pod is one.
func TestRedisImageStartsAsOfficial(t *testing.T) {
	if _, err := os.Stat(realRedis); err != nil {
		t.Fatalf("redis-server not found: run `make deps` (apt-get install redis-server): %v", err)
	}
	out := buildSet(t, "-only", "redis")
	img, _ := loadArchive(t, filepath.Join(out, "redis.tar"))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/usr/local/bin/docker-entrypoint"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"redis-server"}, cf.Config.Cmd); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	files := imageFiles(t, img)
	if l := files["/usr/local/bin/redis-server"]; l == nil || l.Header.Linkname != "docker-entrypoint" {
		t.Errorf("/usr/local/bin/redis-server = %+v, want a link to docker-entrypoint (first on PATH)", l)
	}
	host, err := os.ReadFile(realRedis)
	if err != nil {
		t.Fatal(err)
	}
	if f := files[realRedis]; f == nil || !bytes.Equal(f.Data, host) {
		t.Fatalf("the image's %s is not the host's: running the host's would prove nothing", realRedis)
	}
	ep := files["/usr/local/bin/docker-entrypoint"]
	if ep == nil {
		t.Fatal("image has no /usr/local/bin/docker-entrypoint")
	}
	// The image's /usr/local/bin on this machine; /usr/bin/redis-server is the host's.
	bin := filepath.Join(t.TempDir(), "usr/local/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "docker-entrypoint"), ep.Data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("docker-entrypoint", filepath.Join(bin, "redis-server")); err != nil {
		t.Fatal(err)
	}
	entrypoint, link := filepath.Join(bin, "docker-entrypoint"), filepath.Join(bin, "redis-server")

	ip := redistest.NonLoopbackIP(t)
	if ip == "" {
		t.Skip("no non-loopback IPv4 address on this machine: protected mode cannot be observed (TestCommand in ./redisentry checks the arguments)")
	}
	auth := filepath.Join(t.TempDir(), "redis-auth.conf")
	if err := os.WriteFile(auth, []byte("requirepass s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const pong, denied, noauth = "+PONG", "-DENIED Redis is running in protected mode", "-NOAUTH"
	tests := []struct {
		name string
		path string   // executable
		args []string // os.Args, "PORT" replaced
		want string   // prefix of the answer to PING from a non-loopback address
	}{
		// The control: Debian's binary alone refuses, so the check below sees protected mode.
		{name: "debian's redis-server", path: realRedis, args: []string{"redis-server", "--port", "PORT"}, want: denied},
		// The talk's redis Deployment: the image's Entrypoint and Cmd, no args
		// (a port added only so as not to take 6379 on this machine).
		{name: "image run bare", path: entrypoint, args: append(append([]string{cf.Config.Entrypoint[0]}, cf.Config.Cmd...), "--port", "PORT"), want: pong},
		// Kubernetes args without a command.
		{name: "args only", path: entrypoint, args: []string{cf.Config.Entrypoint[0], "--port", "PORT"}, want: pong},
		// Kubernetes command: [redis-server, …] bypasses the entrypoint; the link on PATH does not.
		{name: "command redis-server", path: link, args: []string{"redis-server", "--port", "PORT"}, want: pong},
		// What the shipped manifests run: protected mode on, a password; the
		// password, not protected mode, answers.
		{name: "shipped manifests", path: link, args: []string{"redis-server", "--appendonly", "no", "--port", "PORT",
			"--protected-mode", "yes", "--include", auth}, want: noauth},
		{name: "explicit yes, no password", path: link, args: []string{"redis-server", "--port", "PORT", "--protected-mode", "yes"}, want: denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := strconv.Itoa(redistest.FreePort(t))
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "PORT", port)
			}
			startRedis(t, tt.path, args, port)
			if got := ping(t, net.JoinHostPort(ip, port), ""); !strings.HasPrefix(got, tt.want) {
				t.Errorf("PING from %s = %.90q, want %q…", ip, got, tt.want)
			}
			if tt.want == noauth {
				if got := ping(t, net.JoinHostPort(ip, port), "s3cret"); got != pong {
					t.Errorf("AUTH + PING from %s = %.90q, want %q", ip, got, pong)
				}
			}
		})
	}
}

const realRedis = "/usr/bin/redis-server"

// startRedis runs path with argv args in a temporary working directory and
// waits until it answers on loopback (which protected mode always admits).
func startRedis(t *testing.T, path string, args []string, port string) {
	t.Helper()
	dir := t.TempDir()
	var log bytes.Buffer
	cmd := &exec.Cmd{Path: path, Args: args, Dir: dir, Stdout: &log, Stderr: &log}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", args, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for range 500 {
		select {
		case <-exited:
			t.Fatalf("%q exited:\n%s", args, log.String())
		default:
		}
		if got := ping(t, net.JoinHostPort("127.0.0.1", port), ""); got == "+PONG" || strings.HasPrefix(got, "-NOAUTH") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%q did not answer on loopback within 10s:\n%s", args, log.String())
}

// ping sends PING (after AUTH password, if one is given) and returns the
// answer's first line, or the error's text.
func ping(t *testing.T, addr, password string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	if password != "" {
		c.Write([]byte("AUTH " + password + "\r\n"))
		if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
			return "AUTH: " + line
		}
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err.Error()
	}
	line, err := r.ReadString('\n')
	if err != nil && line == "" {
		return err.Error()
	}
	return strings.TrimRight(line, "\r\n")
}
