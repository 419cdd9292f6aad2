// Command mkimage builds flotilla's container images as OCI image tarballs,
// without Docker or a registry: go build, then go-containerregistry.
//
//	mkimage [flags]                 flotilla v1..v3 (amd64+arm64), redis, pause → -out
//	mkimage files [flags] SRC=DST…  one image of local files (the cluster's CoreDNS, test tools)
//
// Every tarball is an OCI layout (index.json names the image), importable with
// `ctr -n k8s.io images import` and `docker load`. Builds are reproducible:
// the same commit gives the same digests (fixed timestamps, sorted tar
// entries, -trimpath, no VCS stamping).
package main

import (
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Image names. Redis and pause carry the names manifests and containerd ask
// for, so the manifests stay as a user with a registry would write them.
const (
	flotillaRepo = "ghcr.io/flotilla-dev/flotilla"
	defaultRedis = "docker.io/library/redis:7.0"
	defaultPause = "registry.k8s.io/pause:3.10"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	if len(args) > 0 && args[0] == "files" {
		err = runFiles(ctx, args[1:], stdout, stderr)
	} else {
		err = runAll(ctx, args, stdout, stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mkimage:", err)
		return 1
	}
	return 0
}

// commonFlags registers the flags every mode shares.
func commonFlags(fs *flag.FlagSet, o *buildOpts, platforms, created *string) {
	fs.StringVar(&o.Repo, "repo", ".", "module root to build from")
	fs.StringVar(&o.Revision, "revision", "", "revision to bake in and label (default: git rev-parse --short=12 HEAD, else \"unknown\")")
	fs.StringVar(&o.Source, "source", "https://github.com/flotilla-dev/flotilla", "source URL label (org.opencontainers.image.source)")
	fs.StringVar(platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch[/variant] of the Go images")
	fs.IntVar(&o.Gzip, "gzip-level", gzip.BestCompression, "gzip level of the layers, 1 (fastest) to 9 (smallest)")
	fs.StringVar(created, "created", "", "image creation time, Unix seconds (default: $SOURCE_DATE_EPOCH, else the HEAD commit's time, else 0)")
}

// finish fills in the defaults of o that depend on the repository.
func finish(ctx context.Context, o *buildOpts, platforms, created string) error {
	var err error
	if o.Gzip < gzip.BestSpeed || o.Gzip > gzip.BestCompression {
		return fmt.Errorf("-gzip-level: want 1 to 9, got %d", o.Gzip)
	}
	if o.Platforms, err = parsePlatforms(platforms); err != nil {
		return err
	}
	if o.Revision == "" {
		o.Revision = gitOutput(ctx, o.Repo, "rev-parse", "--short=12", "HEAD")
		if o.Revision == "" {
			o.Revision = "unknown"
		}
	}
	if created == "" {
		created = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if created == "" {
		created = gitOutput(ctx, o.Repo, "log", "-1", "--format=%ct")
	}
	if created == "" {
		created = "0"
	}
	secs, err := strconv.ParseInt(created, 10, 64)
	if err != nil || secs < 0 {
		return fmt.Errorf("-created (or SOURCE_DATE_EPOCH): want Unix seconds, got %q", created)
	}
	o.Created = time.Unix(secs, 0).UTC()
	o.WorkDir, err = os.MkdirTemp("", "mkimage-")
	return err
}

func gitOutput(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// runAll builds the project's image set.
func runAll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o buildOpts
	var platforms, created string
	commonFlags(fs, &o, &platforms, &created)
	out := fs.String("out", "dist/images", "directory the tarballs are written to")
	versions := fs.String("versions", "v1,v2,v3", "comma-separated flotilla versions, each baked into its own image")
	only := fs.String("only", "flotilla,redis,pause", "comma-separated subset of flotilla, redis, pause to build")
	redisServer := fs.String("redis-server", "/usr/bin/redis-server", "the redis-server binary put in the redis image (Debian's)")
	redisRef := fs.String("redis-tag", defaultRedis, "name of the redis image")
	pauseRef := fs.String("pause-tag", defaultPause, "name of the pause image")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle put in the flotilla image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (did you mean `mkimage files`?)", fs.Args())
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		switch s = strings.TrimSpace(s); s {
		case "flotilla", "redis", "pause":
			want[s] = true
		default:
			return fmt.Errorf("-only: unknown image %q, want flotilla, redis or pause", s)
		}
	}
	vs, err := parseVersions(*versions)
	if err != nil {
		return err
	}
	if err := finish(ctx, &o, platforms, created); err != nil {
		return err
	}
	defer os.RemoveAll(o.WorkDir)

	var built []string
	write := func(file, ref string, specs []imageSpec) error {
		tag, err := parseRef(ref)
		if err != nil {
			return err
		}
		idx, err := buildIndex(specs)
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		path := filepath.Join(*out, file)
		if err := writeArchive(path, tag, idx, o.Created); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		built = append(built, path)
		return report(stdout, path, tag, idx)
	}
	if want["flotilla"] {
		certs, err := readCerts(*caCerts)
		if err != nil {
			return err
		}
		for _, v := range vs {
			specs, err := flotillaSpecs(ctx, o, v, certs)
			if err != nil {
				return err
			}
			if err := write("flotilla-"+v+".tar", flotillaRepo+":"+v, specs); err != nil {
				return err
			}
		}
	}
	if want["redis"] {
		spec, err := redisSpec(ctx, o, *redisServer)
		if err != nil {
			return err
		}
		if err := write("redis.tar", *redisRef, []imageSpec{spec}); err != nil {
			return err
		}
	}
	if want["pause"] {
		specs, err := pauseSpecs(ctx, o)
		if err != nil {
			return err
		}
		if err := write("pause.tar", *pauseRef, specs); err != nil {
			return err
		}
	}
	return nil
}

// parseVersions parses "v1,v2,v3". A version becomes an image tag and an
// ldflags value, so it is limited to tag characters.
func parseVersions(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if _, err := name.NewTag(flotillaRepo+":"+v, name.StrictValidation); err != nil || v == "" || strings.ContainsAny(v, " '\"") {
			return nil, fmt.Errorf("-versions: %q is not a valid image tag", v)
		}
		if seen[v] {
			return nil, fmt.Errorf("-versions: %q given twice", v)
		}
		seen[v] = true
		out = append(out, v)
	}
	return out, nil
}

// report prints the tarball's size and, per platform, the image's
// compressed size (what a node downloads) and digest.
func report(w io.Writer, path string, ref imageRef, idx v1.ImageIndex) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s  %s  %s  %.1f MB\n", path, ref.Full, d, float64(st.Size())/1e6)
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			return err
		}
		size, err := compressedSize(img)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "    %s/%s  %s  %.1f MB compressed\n", m.Platform.OS, m.Platform.Architecture, m.Digest, float64(size)/1e6)
	}
	return nil
}

// compressedSize is manifest + config + compressed layers.
func compressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// runFiles builds one single-platform image from local files.
func runFiles(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkimage files", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output tarball (required)")
	ref := fs.String("tag", "", "image name, e.g. localhost/flotilla/coredns:1 (required)")
	entrypoint := fs.String("entrypoint", "", "entrypoint, space-separated")
	user := fs.String("user", fmt.Sprintf("%d:%d", nonRootUID, nonRootUID), "user:group the image runs as")
	arch := fs.String("arch", "", "architecture of the files (default: this machine's)")
	var envs multiFlag
	fs.Var(&envs, "env", "K=V in the image's environment (repeatable)")
	var o buildOpts
	var platforms, created string
	commonFlags(fs, &o, &platforms, &created)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *ref == "" {
		return errors.New("files: -o and -tag are required")
	}
	tag, err := parseRef(*ref)
	if err != nil {
		return fmt.Errorf("files: -tag: %w", err)
	}
	if *arch == "" {
		*arch = runtime.GOARCH
	}
	if err := finish(ctx, &o, "linux/"+*arch, created); err != nil {
		return err
	}
	defer os.RemoveAll(o.WorkDir)
	entries := baseEntries(nil)[:3] // users, groups, nsswitch: no CA bundle
	for _, a := range fs.Args() {
		src, dst, err := parseMapping(a)
		if err != nil {
			return fmt.Errorf("files: %w", err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("files: %w", err)
		}
		entries = append(entries, entry{Name: dst, Mode: 0o755, Data: b})
	}
	sort.Strings(envs)
	spec := imageSpec{
		Platform: o.Platforms[0],
		Created:  o.Created,
		Gzip:     o.Gzip,
		Layers:   []layerSpec{{Entries: entries, CreatedBy: "mkimage files"}},
		Config: v1.Config{
			User:       *user,
			Entrypoint: strings.Fields(*entrypoint),
			Env:        append([]string{"PATH=/bin:/usr/bin:/"}, envs...),
			Labels:     map[string]string{"org.opencontainers.image.source": o.Source, "org.opencontainers.image.revision": o.Revision},
		},
	}
	idx, err := buildIndex([]imageSpec{spec})
	if err != nil {
		return err
	}
	if err := writeArchive(*out, tag, idx, o.Created); err != nil {
		return err
	}
	return report(stdout, *out, tag, idx)
}

// parseMapping parses "SRC=DST" where DST is an absolute path in the image.
func parseMapping(s string) (src, dst string, err error) {
	src, dst, ok := strings.Cut(s, "=")
	if !ok || src == "" || dst == "" {
		return "", "", fmt.Errorf("%q: want SRC=DST", s)
	}
	if !strings.HasPrefix(dst, "/") {
		return "", "", fmt.Errorf("%q: the image path %q must be absolute", s, dst)
	}
	return src, dst, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
