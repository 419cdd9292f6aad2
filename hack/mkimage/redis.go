package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// redisSpec describes a Redis image made of the host's Debian redis-server:
// the binary, the shared libraries it links (found by ldd) and its ELF
// interpreter, at the paths the dynamic loader looks for them. Host
// architecture only: the binary is the one installed here.
//
// It starts as the official image does (see ./redisentry): its entrypoint
// and a redis-server ahead of Debian's on PATH give protected mode the
// official image's default, off, so the image run bare (the talk's redis
// Deployment, no args) serves the other pods instead of refusing them with
// "-DENIED"; an explicit --protected-mode or config line still wins.
func redisSpec(ctx context.Context, o buildOpts, server string) (imageSpec, error) {
	bin, err := os.ReadFile(server)
	if err != nil {
		return imageSpec{}, fmt.Errorf("redis-server: %w (apt-get install redis-server, or pass -redis-server)", err)
	}
	libs, err := sharedLibs(ctx, server)
	if err != nil {
		return imageSpec{}, err
	}
	version, err := redisVersion(ctx, server)
	if err != nil {
		return imageSpec{}, err
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	entrypoint, err := goBuild(ctx, o, "./hack/mkimage/redisentry", "-s -w", platform)
	if err != nil {
		return imageSpec{}, err
	}
	entries := []entry{
		{Name: "/usr/bin/redis-server", Mode: 0o755, Data: bin},
		{Name: "/usr/local/bin/docker-entrypoint", Mode: 0o755, Data: entrypoint},
		// First on PATH: command: [redis-server, …] goes through it too.
		{Name: "/usr/local/bin/redis-server", Link: "docker-entrypoint"},
		{Name: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/usr/sbin/nologin\n" +
			"redis:x:999:999:redis:/data:/usr/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")},
		{Name: "/etc/group", Data: []byte("root:x:0:\nredis:x:999:\nnobody:x:65534:\n")},
		// Redis' working directory (RDB/AOF files); a volume is mounted over it in Kubernetes.
		{Name: "/data", Dir: true, Mode: 0o755, UID: redisUID, GID: redisUID},
		{Name: "/tmp", Dir: true, Mode: 0o1777},
	}
	for image, host := range libs {
		b, err := os.ReadFile(host)
		if err != nil {
			return imageSpec{}, fmt.Errorf("redis-server library %s: %w", host, err)
		}
		entries = append(entries, entry{Name: image, Mode: 0o755, Data: b})
	}
	return imageSpec{
		Platform: platform,
		Created:  o.Created,
		Gzip:     o.Gzip,
		Layers: []layerSpec{{Entries: entries, CreatedBy: "mkimage: Debian redis-server " + version +
			" and the libraries it links; go build ./hack/mkimage/redisentry (docker-entrypoint, redis-server: protected mode off by default)"}},
		Config: v1.Config{
			User:         fmt.Sprintf("%d:%d", redisUID, redisUID),
			Entrypoint:   []string{"/usr/local/bin/docker-entrypoint"},
			Cmd:          []string{"redis-server"},
			Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			WorkingDir:   "/data",
			ExposedPorts: map[string]struct{}{"6379/tcp": {}},
			Labels: map[string]string{
				"org.opencontainers.image.title":    "redis",
				"org.opencontainers.image.version":  version,
				"org.opencontainers.image.revision": o.Revision,
				"org.opencontainers.image.source":   o.Source,
				"org.opencontainers.image.description": "Debian's redis-server " + version +
					", packaged by flotilla's hack/mkimage for clusters without a registry",
			},
		},
	}, nil
}

// lddLine matches "libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)" and
// "/lib64/ld-linux-x86-64.so.2 (0x...)".
var lddLine = regexp.MustCompile(`^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$`)

// sharedLibs returns, for every library bin loads, the path the loader opens
// (the key, kept in the image) and the host file behind it (symlinks
// resolved). The ELF interpreter is read from the binary itself, so it is
// there even if ldd printed it under another name.
func sharedLibs(ctx context.Context, bin string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	libs, err := parseLdd(out)
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if interp := interpreter(f); interp != "" {
		libs = append(libs, interp)
	}
	m := map[string]string{}
	for _, l := range libs {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, fmt.Errorf("library %s: %w", l, err)
		}
		m[l] = real
	}
	return m, nil
}

// parseLdd returns the library paths in ldd's output. A library ldd cannot
// find ("=> not found") is an error: the image would not start.
func parseLdd(out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "", strings.Contains(line, "linux-vdso"), strings.Contains(line, "linux-gate"):
			continue
		case strings.Contains(line, "not found"):
			return nil, fmt.Errorf("missing library: %s", strings.TrimSpace(line))
		}
		m := lddLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		libs = append(libs, m[1])
	}
	return libs, sc.Err()
}

// interpreter returns the ELF's PT_INTERP path, or "" for a static binary.
func interpreter(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return ""
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	return ""
}

var redisVersionRe = regexp.MustCompile(`\bv=(\d+\.\d+\.\d+)\b`)

// redisVersion returns "7.0.15" from `redis-server --version`.
func redisVersion(ctx context.Context, server string) (string, error) {
	out, err := exec.CommandContext(ctx, server, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", server, err)
	}
	m := redisVersionRe.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version: no version in %q", server, out)
	}
	return string(m[1]), nil
}
