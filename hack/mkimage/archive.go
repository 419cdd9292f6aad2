package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on the descriptor in index.json that name the image. containerd's
// importer (`ctr images import`) reads the first; the OCI spec defines the second.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// imageSpec is one single-platform image.
type imageSpec struct {
	Platform v1.Platform
	Layers   []layerSpec
	Config   v1.Config
	Created  time.Time // also the time of every file in every layer
	Gzip     int       // gzip level of the layers, 1 (fastest) to 9 (smallest)
}

// layerSpec is one layer and the history line that says where it came from.
type layerSpec struct {
	Entries   []entry
	CreatedBy string
}

// buildImage assembles spec as an OCI image.
func buildImage(spec imageSpec) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, ls := range spec.Layers {
		l, err := buildLayer(ls.Entries, spec.Created, spec.Gzip)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     l,
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: spec.Created}, CreatedBy: ls.CreatedBy},
		})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = spec.Platform.OS, spec.Platform.Architecture, spec.Platform.Variant
	cf.Created = v1.Time{Time: spec.Created}
	cf.Config = spec.Config
	return mutate.ConfigFile(img, cf)
}

// buildIndex puts one image per platform into an OCI image index.
func buildIndex(specs []imageSpec) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, s := range specs {
		img, err := buildImage(s)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", s.Platform.OS, s.Platform.Architecture, err)
		}
		p := s.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx, nil
}

// imageRef is an image name as containerd stores it: fully qualified
// ("docker.io/library/redis:7.0", which kubelet asks for when a manifest says
// "redis:7.0"), and with a tag.
type imageRef struct {
	Full string
	Tag  string
}

// parseRef validates ref and requires a registry domain, because containerd
// stores names as given and kubelet looks them up fully qualified.
func parseRef(ref string) (imageRef, error) {
	t, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return imageRef{}, fmt.Errorf("image name %q: %w", ref, err)
	}
	domain, _, ok := strings.Cut(ref, "/")
	if !ok || !(strings.ContainsAny(domain, ".:") || domain == "localhost") {
		return imageRef{}, fmt.Errorf("image name %q: want a fully qualified name such as docker.io/library/%s", ref, ref)
	}
	return imageRef{Full: ref, Tag: t.TagStr()}, nil
}

// writeArchive writes an OCI image layout as one tar file (what `ctr images
// import` and `docker load` read) holding idx under the name ref. The tar is
// reproducible: sorted entries, mtime for every entry.
func writeArchive(file string, ref imageRef, idx v1.ImageIndex, mtime time.Time) error {
	blobs := map[string][]byte{} // "sha256/<hex>" -> content
	if err := collectIndex(blobs, idx); err != nil {
		return err
	}
	desc, err := partial.Descriptor(idx)
	if err != nil {
		return err
	}
	desc.Annotations = map[string]string{
		annotationContainerdName: ref.Full,
		annotationRefName:        ref.Tag,
	}
	top, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{*desc}})
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json": top,
	}
	for k, b := range blobs {
		files["blobs/"+k] = b
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, n := range names {
		b := files[n]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(b)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	// Write then rename, so an interrupted build never leaves a truncated tarball behind.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func collectIndex(blobs map[string][]byte, idx v1.ImageIndex) error {
	if err := addBlob(blobs, idx.RawManifest); err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		if err := addBlob(blobs, img.RawManifest); err != nil {
			return err
		}
		if err := addBlob(blobs, img.RawConfigFile); err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			err := addBlob(blobs, func() ([]byte, error) {
				rc, err := l.Compressed()
				if err != nil {
					return nil, err
				}
				defer rc.Close()
				return io.ReadAll(rc)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// addBlob stores the bytes get returns under their sha256, once.
func addBlob(blobs map[string][]byte, get func() ([]byte, error)) error {
	b, err := get()
	if err != nil {
		return err
	}
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	blobs[h.Algorithm+"/"+h.Hex] = b
	return nil
}

// parsePlatforms parses "linux/amd64,linux/arm64/v8" into platforms.
func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		parts := strings.Split(f, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
			return nil, fmt.Errorf("-platforms: %q is not os/arch[/variant]", f)
		}
		if parts[0] != "linux" {
			return nil, fmt.Errorf("-platforms: %q: only linux images can be built", f)
		}
		if seen[f] {
			return nil, fmt.Errorf("-platforms: %q given twice", f)
		}
		seen[f] = true
		p := v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		out = append(out, p)
	}
	return out, nil
}
