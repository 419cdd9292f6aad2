package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// buildSet runs mkimage the way `make images` does, for this machine's
// platform only (cross builds would only cost time here), into a temp dir.
// Fastest gzip: the race detector makes deflate slow, and the level changes
// no property tested here.
func buildSet(t *testing.T, extra ...string) string {
	t.Helper()
	out := t.TempDir()
	args := append([]string{"-repo", "../..", "-out", out, "-platforms", "linux/" + runtime.GOARCH,
		"-revision", "testrev", "-created", "1700000000", "-gzip-level", "1"}, extra...)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("mkimage %s = exit %d, stderr:\n%s", strings.Join(args, " "), code, stderr.String())
	}
	return out
}

// loadArchive unpacks an image tarball and loads it as an OCI layout with
// go-containerregistry, returning the one image for this machine and the
// annotations naming it.
func loadArchive(t *testing.T, file string) (v1.Image, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	untar(t, file, dir)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("layout.FromPath: %v", err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatalf("index.json: %v", err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1", len(tm.Manifests))
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("image index: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img, tm.Manifests[0].Annotations
		}
	}
	t.Fatalf("%s has no linux/%s image", file, runtime.GOARCH)
	return nil, nil
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// imageFiles returns the image's flattened file system: path → header and
// contents.
func imageFiles(t *testing.T, img v1.Image) map[string]*fileInImage {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]*fileInImage{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(h.Name, "/")] = &fileInImage{Header: h, Data: b}
	}
}

type fileInImage struct {
	Header *tar.Header
	Data   []byte
}

func TestFlotillaImage(t *testing.T) {
	out := buildSet(t, "-only", "flotilla", "-versions", "v7")
	img, ann := loadArchive(t, filepath.Join(out, "flotilla-v7.tar"))

	if got, want := ann[annotationContainerdName], "ghcr.io/flotilla-dev/flotilla:v7"; got != want {
		t.Errorf("image name = %q, want %q", got, want)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532", cf.Config.User)
	}
	if diff := cmp.Diff([]string{"/flotilla"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "v7",
		"org.opencontainers.image.revision": "testrev",
		"org.opencontainers.image.source":   "https://github.com/flotilla-dev/flotilla",
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if want := time.Unix(1700000000, 0).UTC(); !cf.Created.Equal(want) {
		t.Errorf("created = %v, want %v", cf.Created.Time, want)
	}

	files := imageFiles(t, img)
	for _, p := range []string{"/flotilla", "/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt", "/tmp"} {
		if files[p] == nil {
			t.Errorf("image has no %s", p)
		}
	}
	if f := files["/etc/passwd"]; f != nil && !strings.Contains(string(f.Data), ":65532:65532:") {
		t.Errorf("/etc/passwd has no user 65532:\n%s", f.Data)
	}
	bin := files["/flotilla"]
	if bin == nil {
		t.FailNow()
	}
	if bin.Header.Mode&0o111 == 0 {
		t.Errorf("/flotilla mode = %o, want executable", bin.Header.Mode)
	}
	f, err := elf.NewFile(bytes.NewReader(bin.Data))
	if err != nil {
		t.Fatalf("/flotilla is not an ELF file: %v", err)
	}
	if interp := interpreter(f); interp != "" {
		t.Errorf("/flotilla wants the interpreter %s, want a static binary", interp)
	}
	exe := filepath.Join(t.TempDir(), "flotilla")
	if err := os.WriteFile(exe, bin.Data, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(exe, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("flotilla version: %v\n%s", err, got)
	}
	if want := "flotilla v7 (revision testrev,"; !strings.HasPrefix(string(got), want) {
		t.Errorf("flotilla version = %q, want prefix %q", got, want)
	}
}

func TestReproducible(t *testing.T) {
	args := []string{"-only", "flotilla,pause", "-versions", "v1"}
	a, b := buildSet(t, args...), buildSet(t, args...)
	for _, f := range []string{"flotilla-v1.tar", "pause.tar"} {
		if sa, sb := fileSum(t, filepath.Join(a, f)), fileSum(t, filepath.Join(b, f)); sa != sb {
			t.Errorf("%s differs between two builds of the same tree: %s, %s", f, sa, sb)
		}
	}
}

func fileSum(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestRedisImage checks the image is complete: every ELF file in it finds
// each library it needs, and its interpreter, inside the image, so it starts
// on a node that has none of the host's libraries.
func TestRedisImage(t *testing.T) {
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		t.Fatalf("redis-server not found: run `make deps` (apt-get install redis-server): %v", err)
	}
	out := buildSet(t, "-only", "redis")
	img, ann := loadArchive(t, filepath.Join(out, "redis.tar"))
	if got, want := ann[annotationContainerdName], "docker.io/library/redis:7.0"; got != want {
		t.Errorf("image name = %q, want %q", got, want)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "999:999" {
		t.Errorf("user = %q, want 999:999", cf.Config.User)
	}
	if !strings.Contains(strings.Join(cf.Config.Env, " "), "PATH=/usr/local/bin:/usr/bin:/bin") {
		t.Errorf("env = %q, want the PATH the manifests rely on", cf.Config.Env)
	}
	files := imageFiles(t, img)
	if d := files["/data"]; d == nil || d.Header.Uid != 999 {
		t.Errorf("/data missing or not owned by 999: %+v", d)
	}
	// The loader's search path for a library without a path: the directories
	// Debian's glibc searches by default.
	searchDirs := []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
		"/usr/lib/aarch64-linux-gnu", "/lib64", "/lib", "/usr/lib"}
	elfs := 0
	for name, f := range files {
		if f.Header.Typeflag != tar.TypeReg {
			continue
		}
		e, err := elf.NewFile(bytes.NewReader(f.Data))
		if err != nil {
			continue // not an ELF file
		}
		elfs++
		if interp := interpreter(e); interp != "" && files[interp] == nil {
			t.Errorf("%s: interpreter %s is not in the image", name, interp)
		}
		needed, err := e.ImportedLibraries()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, lib := range needed {
			found := false
			for _, d := range searchDirs {
				if files[path.Join(d, lib)] != nil {
					found = true
				}
			}
			if !found {
				t.Errorf("%s needs %s, which is not in the image", name, lib)
			}
		}
	}
	if elfs < 2 {
		t.Errorf("%d ELF files in the image, want redis-server and its libraries", elfs)
	}
}

func TestBuildLayer(t *testing.T) {
	mtime := time.Unix(1234, 0)
	l, err := buildLayer([]entry{
		{Name: "/usr/bin/b", Mode: 0o755, Data: []byte("b")},
		{Name: "a/x", Data: []byte("x")},
		{Name: "/data", Dir: true, UID: 999, GID: 999},
		{Name: "/lnk", Link: "a/x"},
	}, mtime, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, mtime)
		}
		got = append(got, fmt.Sprintf("%s %c %o %d %s", h.Name, h.Typeflag, h.Mode, h.Uid, h.Linkname))
	}
	want := []string{
		"a/ 5 755 0 ", "a/x 0 644 0 ", "data/ 5 755 999 ", "lnk 2 777 0 a/x",
		"usr/ 5 755 0 ", "usr/bin/ 5 755 0 ", "usr/bin/b 0 755 0 ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
}

func TestBuildLayerErrors(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{name: "duplicate", entries: []entry{{Name: "/a"}, {Name: "a"}}, want: `"/a": given twice`},
		{name: "root", entries: []entry{{Name: "/"}}, want: "the root cannot be an entry"},
		{name: "file as parent", entries: []entry{{Name: "/a"}, {Name: "/a/b"}}, want: `parent "/a" is not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildLayer(tt.entries, time.Unix(0, 0), gzip.BestSpeed)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("buildLayer() error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
