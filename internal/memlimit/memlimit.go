// Package memlimit sets the Go runtime's soft memory limit (GOMEMLIMIT)
// from the container's memory limit, so that the garbage collector works
// harder before the kernel's OOM killer ends the process: a pod under a
// flood of connections slows down instead of dying.
package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// Ratio is the share of the container's limit given to the Go runtime;
// the rest is for what it does not count (thread stacks outside the
// heap, cgo, the kernel's socket buffers charged to the cgroup).
const Ratio = 0.9

// Apply sets the runtime's memory limit to Ratio of the container's,
// unless the GOMEMLIMIT environment variable is set (the runtime has
// read it then) or no limit is found. It returns the limit it set (0:
// none) and, when it set none, why.
func Apply(lookupEnv func(string) (string, bool)) (int64, string, error) {
	if v, ok := lookupEnv("GOMEMLIMIT"); ok {
		return 0, "GOMEMLIMIT=" + v + " is set", nil
	}
	limit, err := Container(os.DirFS("/"))
	if err != nil {
		return 0, "", err
	}
	if limit <= 0 {
		return 0, "no container memory limit", nil
	}
	set := int64(float64(limit) * Ratio)
	debug.SetMemoryLimit(set)
	return set, "", nil
}

// Container returns the memory limit of the cgroup the process is in,
// in bytes, read from root (the file system's root): cgroup v2's
// memory.max, else v1's memory.limit_in_bytes, each first under the
// process's own cgroup path (/proc/self/cgroup), then at the mount's
// top (a container's cgroup namespace shows its own cgroup there). 0
// means no limit.
func Container(root fs.FS) (int64, error) {
	v2, v1 := cgroupPaths(root)
	for _, f := range []string{
		path.Join("sys/fs/cgroup", v2, "memory.max"),
		"sys/fs/cgroup/memory.max",
		path.Join("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"),
		"sys/fs/cgroup/memory/memory.limit_in_bytes",
	} {
		b, err := fs.ReadFile(root, f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read /%s: %w", f, err)
		}
		return parseLimit(f, b)
	}
	return 0, nil
}

// parseLimit reads "max" (v2: none), or a byte count; v1 says "none"
// with a number near 2^63.
func parseLimit(name string, b []byte) (int64, error) {
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/%s: want a byte count or max, got %q", name, s)
	}
	if n >= math.MaxInt64/2 {
		return 0, nil
	}
	return int64(n), nil
}

// cgroupPaths reads /proc/self/cgroup: the v2 path ("0::/path") and the
// v1 memory controller's ("N:...memory...:/path").
func cgroupPaths(root fs.FS) (v2, v1 string) {
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case strings.Contains(","+parts[1]+",", ",memory,"):
			v1 = parts[2]
		}
	}
	return v2, v1
}

// Set is Apply with the process's environment; it logs what it did.
func Set(log *slog.Logger) {
	limit, why, err := Apply(os.LookupEnv)
	switch {
	case err != nil:
		log.Warn("GOMEMLIMIT not derived from the container", slog.Any("error", err))
	case limit > 0:
		log.Info("GOMEMLIMIT derived from the container's memory limit", slog.Int64("bytes", limit), slog.Float64("ratio", Ratio))
	default:
		log.Debug("GOMEMLIMIT not derived", slog.String("reason", why))
	}
}
