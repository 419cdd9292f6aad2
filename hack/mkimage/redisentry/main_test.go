package main

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCommand(t *testing.T) {
	files := map[string]string{
		"/etc/redis/on.conf":    "port 6379\n  Protected-Mode yes\n",
		"/etc/redis/plain.conf": "port 6379\n# protected-mode yes\nappendonly yes\n",
	}
	readFile := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	off := []string{"--protected-mode", "no"}
	tests := []struct {
		name string
		args []string // os.Args
		want []string
	}{
		// The image run bare: Entrypoint + Cmd, as the talk's redis Deployment does.
		{name: "bare", args: []string{"/usr/local/bin/docker-entrypoint", "redis-server"}, want: cat(realServer, off)},
		{name: "entrypoint, options", args: []string{"docker-entrypoint", "redis-server", "--port", "7000"}, want: cat(realServer, off, "--port", "7000")},
		// Kubernetes args without a command: the official entrypoint puts redis-server first.
		{name: "entrypoint, first arg an option", args: []string{"docker-entrypoint", "--port", "7000"}, want: cat(realServer, off, "--port", "7000")},
		{name: "entrypoint, first arg a .conf", args: []string{"docker-entrypoint", "/etc/redis/plain.conf"}, want: cat(realServer, "/etc/redis/plain.conf", off)},
		{name: "entrypoint, another program", args: []string{"docker-entrypoint", "true", "--x"}, want: []string{"true", "--x"}},
		// Kubernetes command: [redis-server, …]: the link on PATH.
		{name: "as redis-server, bare", args: []string{"redis-server"}, want: cat(realServer, off)},
		{name: "as redis-server by path", args: []string{"/usr/local/bin/redis-server", "--port", "1"}, want: cat(realServer, off, "--port", "1")},
		// An explicit setting wins, as with the official image.
		{name: "explicit yes", args: []string{"redis-server", "--port", "6379", "--protected-mode", "yes", "--include", "/auth.conf"},
			want: cat(realServer, "--port", "6379", "--protected-mode", "yes", "--include", "/auth.conf")},
		{name: "explicit, other case", args: []string{"redis-server", "--Protected-Mode", "yes"}, want: cat(realServer, "--Protected-Mode", "yes")},
		{name: "config sets it", args: []string{"redis-server", "/etc/redis/on.conf", "--port", "1"}, want: cat(realServer, "/etc/redis/on.conf", "--port", "1")},
		{name: "config does not set it", args: []string{"redis-server", "/etc/redis/plain.conf", "--port", "1"}, want: cat(realServer, "/etc/redis/plain.conf", off, "--port", "1")},
		{name: "config missing", args: []string{"redis-server", "/nope.conf"}, want: cat(realServer, "/nope.conf", off)},
		{name: "config from stdin", args: []string{"redis-server", "-", "--port", "1"}, want: cat(realServer, "-", "--port", "1")},
		// The e2e suite's Redis.
		{name: "e2e", args: []string{"redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"},
			want: cat(realServer, "--save", "", "--appendonly", "no", "--protected-mode", "no")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := command(tt.args, readFile)
			if err != nil {
				t.Fatalf("command(%q) error = %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("command(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestCommandErrors(t *testing.T) {
	_, err := command([]string{"docker-entrypoint"}, func(string) ([]byte, error) { return nil, errors.New("unused") })
	if err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("command(no args) error = %v, want \"no command\"", err)
	}
}

func TestSetsProtectedMode(t *testing.T) {
	tests := []struct {
		conf string
		want bool
	}{
		{"protected-mode no\n", true},
		{"\tPROTECTED-MODE yes", true},
		{"# protected-mode yes\n", false},
		{"protected-modes yes\n", false},
		{"bind 0.0.0.0\r\nprotected-mode no\r\n", true},
		{"", false},
		{"\x00\xff\n", false},
	}
	for _, tt := range tests {
		if got := setsProtectedMode([]byte(tt.conf)); got != tt.want {
			t.Errorf("setsProtectedMode(%q) = %v, want %v", tt.conf, got, tt.want)
		}
	}
}

// cat flattens strings and string slices into one argument list.
func cat(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, v)
		case []string:
			out = append(out, v...)
		}
	}
	return out
}
