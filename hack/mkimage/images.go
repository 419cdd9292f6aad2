package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Non-root identities baked into the images.
const (
	nonRootUID = 65532 // flotilla and pause: distroless' "nonroot"
	redisUID   = 999   // redis: the UID of the official redis image, which manifests set as runAsUser
)

// buildOpts is what every Go image build needs.
type buildOpts struct {
	Repo      string // module root the Go packages are built from
	Revision  string // VCS revision baked in and labelled (default: git rev-parse --short=12 HEAD)
	Source    string // URL of the source, labelled
	Created   time.Time
	Platforms []v1.Platform
	WorkDir   string // scratch directory for binaries
	Gzip      int    // gzip level of the layers (default 9: smallest)
}

// goBuild builds pkg statically for p with ldflags and returns the binary.
// -buildvcs=false: the revision comes from ldflags, so an unrelated dirty
// file in the work tree does not change the image digest.
func goBuild(ctx context.Context, o buildOpts, pkg, ldflags string, p v1.Platform) ([]byte, error) {
	out := filepath.Join(o.WorkDir, fmt.Sprintf("%s-%s-%s%s", filepath.Base(pkg), p.Architecture, p.Variant, hashString(ldflags)))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = o.Repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOARM=", "GOFLAGS=-mod=readonly")
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s for %s/%s: %w\n%s", pkg, p.OS, p.Architecture, err, b)
	}
	return os.ReadFile(out)
}

func hashString(s string) string {
	h, _, _ := v1.SHA256(strings.NewReader(s))
	return h.Hex[:12]
}

// baseEntries is what a static Go binary needs around it: CA certificates for
// outbound TLS, and user and group files naming root, nobody and the non-root
// user the image runs as.
func baseEntries(certs []byte) []entry {
	return []entry{
		{Name: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Name: "/etc/group", Data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		// Go's resolver reads it: files before DNS, as glibc systems do.
		{Name: "/etc/nsswitch.conf", Data: []byte("hosts: files dns\n")},
		{Name: "/etc/ssl/certs/ca-certificates.crt", Data: certs},
		{Name: "/home/nonroot", Dir: true, Mode: 0o700, UID: nonRootUID, GID: nonRootUID},
		{Name: "/tmp", Dir: true, Mode: 0o1777},
	}
}

// readCerts returns the host's CA bundle (Debian's ca-certificates).
func readCerts(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w (install ca-certificates or pass -ca-certs)", err)
	}
	return b, nil
}

// flotillaSpecs describes the flotilla image of one version, one spec per
// platform: base layer (shared by every version and platform) + the binary.
func flotillaSpecs(ctx context.Context, o buildOpts, version string, certs []byte) ([]imageSpec, error) {
	ldflags := fmt.Sprintf("-s -w -X github.com/flotilla-dev/flotilla/internal/buildinfo.version=%s "+
		"-X github.com/flotilla-dev/flotilla/internal/buildinfo.revision=%s", version, o.Revision)
	var specs []imageSpec
	for _, p := range o.Platforms {
		bin, err := goBuild(ctx, o, "./cmd/flotilla", ldflags, p)
		if err != nil {
			return nil, err
		}
		specs = append(specs, imageSpec{
			Platform: p,
			Created:  o.Created,
			Gzip:     o.Gzip,
			Layers: []layerSpec{
				{Entries: baseEntries(certs), CreatedBy: "mkimage: base (CA certificates, users root/nobody/nonroot)"},
				{Entries: []entry{{Name: "/flotilla", Mode: 0o755, Data: bin}}, CreatedBy: "mkimage: go build ./cmd/flotilla " + ldflags},
			},
			Config: v1.Config{
				User:       fmt.Sprintf("%d:%d", nonRootUID, nonRootUID),
				Entrypoint: []string{"/flotilla"},
				Env:        []string{"PATH=/"},
				WorkingDir: "/",
				Labels: map[string]string{
					"org.opencontainers.image.title":    "flotilla",
					"org.opencontainers.image.version":  version,
					"org.opencontainers.image.revision": o.Revision,
					"org.opencontainers.image.source":   o.Source,
					"org.opencontainers.image.created":  o.Created.UTC().Format(time.RFC3339),
				},
			},
		})
	}
	return specs, nil
}

// pauseSpecs describes the pod sandbox ("pause") image the cluster's
// containerd uses: our own 30-line Go program.
func pauseSpecs(ctx context.Context, o buildOpts) ([]imageSpec, error) {
	var specs []imageSpec
	for _, p := range o.Platforms {
		bin, err := goBuild(ctx, o, "./hack/mkimage/pause", "-s -w", p)
		if err != nil {
			return nil, err
		}
		specs = append(specs, imageSpec{
			Platform: p,
			Created:  o.Created,
			Gzip:     o.Gzip,
			Layers:   []layerSpec{{Entries: []entry{{Name: "/pause", Mode: 0o755, Data: bin}}, CreatedBy: "mkimage: go build ./hack/mkimage/pause"}},
			Config: v1.Config{
				User:       fmt.Sprintf("%d:%d", nonRootUID, nonRootUID),
				Entrypoint: []string{"/pause"},
				Labels: map[string]string{
					"org.opencontainers.image.title":    "pause",
					"org.opencontainers.image.revision": o.Revision,
					"org.opencontainers.image.source":   o.Source,
				},
			},
		})
	}
	return specs, nil
}
