package memlimit

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestContainer(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name  string
		files fstest.MapFS
		want  int64
		err   string
	}{
		{"no cgroup", fstest.MapFS{}, 0, ""},
		{"v2 namespaced", fstest.MapFS{"proc/self/cgroup": file("0::/\n"), "sys/fs/cgroup/memory.max": file("134217728\n")}, 128 << 20, ""},
		{"v2 unlimited", fstest.MapFS{"proc/self/cgroup": file("0::/\n"), "sys/fs/cgroup/memory.max": file("max\n")}, 0, ""},
		{"v2 own path first", fstest.MapFS{
			"proc/self/cgroup":                          file("0::/kubepods/pod1/c1\n"),
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": file("67108864\n"),
			"sys/fs/cgroup/memory.max":                  file("max\n"),
		}, 64 << 20, ""},
		{"v1", fstest.MapFS{
			"proc/self/cgroup":                           file("12:memory:/docker/abc\n11:cpu,cpuacct:/docker/abc\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("268435456\n"),
		}, 256 << 20, ""},
		{"v1 unlimited", fstest.MapFS{"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n")}, 0, ""},
		{"garbage", fstest.MapFS{"sys/fs/cgroup/memory.max": file("lots\n")}, 0, `/sys/fs/cgroup/memory.max: want a byte count or max, got "lots"`},
		{"negative", fstest.MapFS{"sys/fs/cgroup/memory.max": file("-1\n")}, 0, "want a byte count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Container(tt.files)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Container() error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Container() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestApplyEnvWins(t *testing.T) {
	got, why, err := Apply(func(k string) (string, bool) { return "100MiB", k == "GOMEMLIMIT" })
	if got != 0 || err != nil || !strings.Contains(why, "GOMEMLIMIT") {
		t.Errorf("Apply() = %d, %q, %v; want 0 and the reason naming GOMEMLIMIT", got, why, err)
	}
}
