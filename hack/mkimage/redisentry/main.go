// Command redisentry makes the Redis image built of Debian's redis-server
// start as the official redis image (docker.io/library/redis) does. It is
// installed as /usr/local/bin/docker-entrypoint (the image's entrypoint) and
// as /usr/local/bin/redis-server, a link to it ahead of Debian's
// /usr/bin/redis-server on PATH, so that `command: [redis-server, …]` in a
// manifest goes through it too.
//
// As the image's entrypoint it does what the official docker-entrypoint.sh
// does: a first argument that is an option ("--port") or a config file
// ("x.conf") gets "redis-server" put before it (so `args: ["--port", "7000"]`
// works), the umask 0022 becomes 0077, and the command is executed.
//
// As redis-server it gives protected mode the default the official image
// has: off. The official image compiles Redis with protected-mode defaulting
// to "no" (its 7.0 Dockerfile patches config.c; its older entrypoints passed
// "--protected-mode no" after the config file), because a container's port
// is not exposed unless someone asks for it, and in Kubernetes every other
// pod is a non-loopback client that protected mode would refuse with
// "-DENIED". Debian's binary defaults to "yes", so this adds
// "--protected-mode no" right after the config file, if any, and before the
// other arguments: an explicit setting (an argument, or a protected-mode line
// in the config file) still wins, as it does with the official image. Debian's
// /usr/bin/redis-server, called by that path, keeps Debian's default.
//
// Not done: the official entrypoint, started as root, chowns the working
// directory and steps down to the redis user with gosu; this image runs as
// 999:999 and has no gosu.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// realServer is Debian's binary, where the image puts it.
const realServer = "/usr/bin/redis-server"

func main() {
	argv, err := command(os.Args, os.ReadFile)
	if err == nil && argv[0] != realServer {
		argv[0], err = exec.LookPath(argv[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-entrypoint:", err)
		os.Exit(127)
	}
	if filepath.Base(os.Args[0]) != "redis-server" { // as the entrypoint only
		if old := syscall.Umask(0o077); old != 0o022 {
			syscall.Umask(old) // someone chose a umask: keep it
		}
	}
	// argv[0] as Redis sees it stays "redis-server" (its process title).
	args := append([]string{filepath.Base(argv[0])}, argv[1:]...)
	err = syscall.Exec(argv[0], args, os.Environ())
	fmt.Fprintf(os.Stderr, "docker-entrypoint: exec %s: %v\n", argv[0], err)
	os.Exit(126)
}

// command returns the program to execute and its arguments, given this
// process' os.Args. readFile reads a config file (os.ReadFile).
func command(osArgs []string, readFile func(string) ([]byte, error)) ([]string, error) {
	var args []string
	if filepath.Base(osArgs[0]) == "redis-server" {
		args = append([]string{"redis-server"}, osArgs[1:]...) // called as redis-server
	} else {
		args = osArgs[1:] // the image's entrypoint: the rest is the command
		if len(args) == 0 {
			return nil, fmt.Errorf("no command: want redis-server and its arguments (the image's Cmd)")
		}
		if strings.HasPrefix(args[0], "-") || strings.HasSuffix(args[0], ".conf") {
			args = append([]string{"redis-server"}, args...)
		}
	}
	if args[0] != "redis-server" {
		return args, nil
	}
	return append([]string{realServer}, protectedModeOff(args[1:], readFile)...), nil
}

// protectedModeOff returns redis-server's arguments with "--protected-mode
// no" after the config file (Redis only takes it first), unless the
// arguments or the config file set protected-mode themselves. A config read
// from stdin ("-") cannot be looked at: it keeps Debian's default (on), the
// safe side.
func protectedModeOff(args []string, readFile func(string) ([]byte, error)) []string {
	config := ""
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || args[0] == "-") {
		config = args[0]
	}
	for _, a := range args {
		if strings.EqualFold(a, "--protected-mode") {
			return args
		}
	}
	switch config {
	case "":
		return append([]string{"--protected-mode", "no"}, args...)
	case "-":
		return args
	}
	if b, err := readFile(config); err == nil && setsProtectedMode(b) {
		return args
	}
	// An unreadable config file: Redis will say what is wrong with it.
	out := []string{config, "--protected-mode", "no"}
	return append(out, args[1:]...)
}

// setsProtectedMode reports whether a redis.conf has a protected-mode
// directive (Redis' directive names are case-insensitive). Lines it includes
// are not followed, as the official entrypoint did not.
func setsProtectedMode(conf []byte) bool {
	for line := range strings.Lines(string(conf)) {
		f := strings.Fields(line)
		if len(f) > 0 && strings.EqualFold(f[0], "protected-mode") {
			return true
		}
	}
	return false
}
