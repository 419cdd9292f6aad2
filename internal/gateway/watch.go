package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// WatchFile reloads Options.ConfigPath whenever its content changes, until
// ctx is done. It watches the file's directory, not the file: editors
// replace files by rename, and a Kubernetes ConfigMap volume swaps a
// "..data" symlink, both of which a watch on the file itself loses.
// Events are coalesced over debounce (default 100ms) and a reload happens
// only when the bytes changed. Failed reloads are logged and recorded
// (metric, Status); the last good config keeps serving.
func (g *Gateway) WatchFile(ctx context.Context, debounce time.Duration) error {
	path := g.opts.ConfigPath
	if path == "" {
		return fmt.Errorf("watch: no config file")
	}
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(path)); err != nil {
		return fmt.Errorf("watch %s: %w", filepath.Dir(path), err)
	}
	g.mu.Lock()
	last := g.fileSum
	g.mu.Unlock()
	// The secrets the config names (API keys, htpasswd, key sets,
	// passwords) are watched too: a rotated Secret reloads the policies
	// that read it.
	dirs := map[string]bool{filepath.Dir(path): true}
	watchSecrets := func() []byte {
		files := g.secretFiles()
		for _, f := range files {
			watch := []string{filepath.Dir(f)}
			if fi, err := os.Stat(f); err == nil && fi.IsDir() {
				// A directory of keys (a mounted Secret): its "..data"
				// swap happens inside it.
				watch = append(watch, f)
			}
			for _, d := range watch {
				if dirs[d] {
					continue
				}
				if err := w.Add(d); err != nil {
					g.log.Warn("config watch: cannot watch a secret's directory", slog.String("path", d), slog.String("error", err.Error()))
				}
				dirs[d] = true
			}
		}
		return filesSum(files)
	}
	lastSecrets := watchSecrets()
	// Fire once at start: the file may have changed between loading it
	// and watching its directory.
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			g.log.Warn("config watch error", slog.String("path", path), slog.String("error", err.Error()))
		case <-timer.C:
			data, err := config.ReadFile(path)
			if errors.Is(err, fs.ErrNotExist) {
				continue // gone for a moment (mid-swap)
			}
			if err != nil {
				g.log.Warn("config watch: cannot read the file", slog.String("path", path), slog.String("error", err.Error()))
				continue
			}
			sum := hash(data)
			if bytes.Equal(sum, last) && bytes.Equal(filesSum(g.secretFiles()), lastSecrets) {
				continue // unchanged
			}
			last = sum
			if err := g.reloadFile(data); err != nil {
				g.LogRejected(err)
			}
			lastSecrets = watchSecrets()
		}
	}
}

// LogRejected logs a failed reload of the config file, one entry per
// problem found.
func (g *Gateway) LogRejected(err error) {
	g.log.Error("config rejected; the last good config keeps serving", slog.String("source", g.opts.ConfigPath), slog.Any("errors", splitErrors(err)))
}

func hash(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// secretFiles are the files the serving config's policies read.
func (g *Gateway) secretFiles() []string {
	if st := g.state.Load(); st != nil {
		return st.cfg.SecretFiles()
	}
	return nil
}

// filesSum digests the content of files, and of the files in those that
// are directories; a missing file counts as empty.
func filesSum(files []string) []byte {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f))
		if entries, err := os.ReadDir(f); err == nil {
			for _, e := range entries {
				data, _ := os.ReadFile(filepath.Join(f, e.Name()))
				s := sha256.Sum256(data)
				h.Write([]byte(e.Name()))
				h.Write(s[:])
			}
			continue
		}
		data, _ := os.ReadFile(f)
		s := sha256.Sum256(data)
		h.Write(s[:])
	}
	return h.Sum(nil)
}
