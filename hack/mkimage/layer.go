package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file, directory or symlink of a layer.
type entry struct {
	Name     string // absolute path in the image, e.g. "/etc/passwd"
	Mode     int64  // permission bits; 0 means 0644 for files, 0755 for directories
	UID, GID int
	Data     []byte // contents of a regular file
	Link     string // target, for a symlink
	Dir      bool
}

// buildLayer returns an OCI layer holding entries, gzip-compressed at level. The tar is
// reproducible: entries sorted by name, parent directories added (root-owned,
// 0755), every time set to mtime, no user or group names. Two entries with
// the same name are an error.
func buildLayer(entries []entry, mtime time.Time, level int) (v1.Layer, error) {
	byName := map[string]entry{}
	for _, e := range entries {
		name := path.Clean("/" + e.Name)
		if name == "/" {
			return nil, fmt.Errorf("layer entry %q: the root cannot be an entry", e.Name)
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("layer entry %q: given twice", name)
		}
		e.Name = name
		byName[name] = e
	}
	for name := range byName {
		for d := path.Dir(name); d != "/"; d = path.Dir(d) {
			if p, ok := byName[d]; ok {
				if !p.Dir {
					return nil, fmt.Errorf("layer entry %q: parent %q is not a directory", name, d)
				}
				continue
			}
			byName[d] = entry{Name: d, Dir: true}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := byName[n]
		h := &tar.Header{
			Name:    strings.TrimPrefix(n, "/"),
			Mode:    e.Mode,
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		switch {
		case e.Dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.Link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", n, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Compress once here: given uncompressed bytes, the tarball package would
	// compress again on every read of the layer.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, level)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	compressed := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(compressed)), nil },
		tarball.WithMediaType(types.OCILayer))
}
