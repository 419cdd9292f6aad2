package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// APIKeyMinLength is the shortest key accepted from a keys file, in bytes:
// shorter keys can be guessed by a client trying many (16 random bytes,
// or 22 base64 characters, is the least a generator should make).
const APIKeyMinLength = 16

// APIKey accepts requests carrying one of a set of keys (config.APIKeyAuth).
// Only the keys' SHA-256 digests are kept; a presented key is hashed, found
// by its digest and compared with crypto/subtle, so neither the lookup nor
// the comparison depends on how much of a secret a guess got right.
//
// The WWW-Authenticate challenge has no standard for API keys; it is
// `APIKey realm="flotilla", header="X-API-Key"` (plus `, query="name"`
// when a query parameter is configured), telling a client where the key
// goes.
type APIKey struct {
	header        string
	query         string
	forwardHeader string // "" for none
	challenge     string
	keys          map[[sha256.Size]byte]apiKeyEntry
}

type apiKeyEntry struct {
	name   string
	digest [sha256.Size]byte
}

var _ Method = (*APIKey)(nil)

// NewAPIKey loads c.KeysFile: a file of "name:key" lines or a directory of
// one file per key (see config.APIKeyAuth). Every problem with the file is
// returned, each naming the file and line. It logs nothing (log is for
// symmetry with the other methods): refusals are returned for the gateway
// to log once, with the key's name, never the key.
func NewAPIKey(c *config.APIKeyAuth, log *slog.Logger) (*APIKey, error) {
	_ = log
	if c.KeysFile == "" {
		return nil, errors.New("api keys: no keys file")
	}
	keys, err := apiKeyLoad(c.KeysFile)
	if err != nil {
		return nil, err
	}
	a := &APIKey{
		header:        c.Header,
		query:         c.Query,
		forwardHeader: c.ForwardHeader,
		keys:          keys,
	}
	if a.header == "" {
		a.header = config.DefaultAPIKeyHeader
	}
	// The challenge names the header as configured; lookups use the
	// canonical form.
	a.challenge = fmt.Sprintf(`APIKey realm="flotilla", header=%q`, a.header)
	a.header = http.CanonicalHeaderKey(a.header)
	switch a.forwardHeader {
	case "":
		a.forwardHeader = config.DefaultAPIKeyForwardHeader
	case "-":
		a.forwardHeader = ""
	default:
		a.forwardHeader = http.CanonicalHeaderKey(a.forwardHeader)
	}
	if a.query != "" {
		a.challenge += fmt.Sprintf(`, query=%q`, a.query)
	}
	return a, nil
}

// Name implements Method.
func (a *APIKey) Name() string { return "apiKey" }

// Close implements Method; an APIKey has no background work.
func (a *APIKey) Close() {}

// Len is the number of keys loaded.
func (a *APIKey) Len() int { return len(a.keys) }

// Authenticate implements Method. The key comes from the header, or else
// the query parameter when one is configured; several copies must all be
// the same key (two different keys are refused rather than one chosen).
func (a *APIKey) Authenticate(r *http.Request) (*Identity, error) {
	key, err := a.presented(r)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256([]byte(key))
	e, ok := a.keys[d]
	// The map is keyed by the digest, which tells a client nothing about
	// the key; the comparison that decides is constant-time all the same.
	if !ok || subtle.ConstantTimeCompare(e.digest[:], d[:]) != 1 {
		return nil, a.refuse(ReasonInvalid, errors.New("unknown api key"))
	}
	id := &Identity{Principal: e.name}
	if a.forwardHeader != "" {
		id.Set = http.Header{a.forwardHeader: {e.name}}
	}
	return id, nil
}

func (a *APIKey) presented(r *http.Request) (string, error) {
	hv := r.Header[a.header]
	if len(hv) == 1 { // the common case, without allocating
		if v := strings.TrimSpace(hv[0]); v != "" {
			return v, nil
		}
	}
	var vals []string
	where := "header " + a.header
	for _, v := range hv {
		if v = strings.TrimSpace(v); v != "" {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 && a.query != "" {
		where = "query parameter " + a.query
		for _, v := range r.URL.Query()[a.query] {
			if v != "" {
				vals = append(vals, v)
			}
		}
	}
	if len(vals) == 0 {
		return "", a.refuse(ReasonMissing, fmt.Errorf("no api key in header %s", a.header))
	}
	for _, v := range vals[1:] {
		if v != vals[0] {
			return "", a.refuse(ReasonInvalid, fmt.Errorf("%d different api keys in %s", len(vals), where))
		}
	}
	return vals[0], nil
}

func (a *APIKey) refuse(reason string, err error) *Error {
	return &Error{Status: http.StatusUnauthorized, Reason: reason, Challenge: a.challenge, Err: err}
}

// apiKeyLoad reads a keys file or directory into digest → entry.
func apiKeyLoad(path string) (map[[sha256.Size]byte]apiKeyEntry, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	l := apiKeyLoader{keys: map[[sha256.Size]byte]apiKeyEntry{}, where: map[string]string{}, digestWhere: map[[sha256.Size]byte]string{}}
	if fi.IsDir() {
		l.loadDir(path)
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("api keys: %w", err)
		}
		l.loadLines(path, data)
	}
	if len(l.errs) == 0 && len(l.keys) == 0 {
		l.errs = append(l.errs, fmt.Errorf("%s: no keys", path))
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return l.keys, nil
}

type apiKeyLoader struct {
	keys        map[[sha256.Size]byte]apiKeyEntry
	where       map[string]string            // name → where it was defined
	digestWhere map[[sha256.Size]byte]string // digest → where and by which name
	errs        []error
}

func (l *apiKeyLoader) loadLines(file string, data []byte) {
	for i, line := range strings.Split(string(data), "\n") {
		at := fmt.Sprintf("%s:%d", file, i+1)
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, key, ok := strings.Cut(line, ":")
		if !ok {
			l.errs = append(l.errs, fmt.Errorf("%s: want name:key", at))
			continue
		}
		l.add(at, fmt.Sprintf("line %d", i+1), strings.TrimSpace(name), strings.TrimSpace(key))
	}
}

// loadDir reads a directory of one file per key, as a Kubernetes Secret
// is mounted: dotfiles (and the "..data" and "..2024_..." entries the
// kubelet uses for atomic updates) are skipped, symlinks are followed,
// subdirectories are skipped, and one trailing newline is removed.
func (l *apiKeyLoader) loadDir(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("api keys: %w", err))
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("api keys: %w", err))
			continue
		}
		if fi.IsDir() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			l.errs = append(l.errs, fmt.Errorf("api keys: %w", err))
			continue
		}
		data = bytes.TrimSuffix(data, []byte("\n"))
		data = bytes.TrimSuffix(data, []byte("\r"))
		l.add(p, "file "+e.Name(), e.Name(), string(data))
	}
}

// add checks and adds one key; at prefixes its errors (file:line or the
// key's file), ref names it in later errors (line 3, file alice).
func (l *apiKeyLoader) add(at, ref, name, key string) {
	switch {
	case name == "":
		l.errs = append(l.errs, fmt.Errorf("%s: empty key name", at))
		return
	case !apiKeyValidName(name):
		l.errs = append(l.errs, fmt.Errorf("%s: key name %q: want letters, digits and -_.@+ (it is logged and sent upstream in a header)", at, name))
		return
	}
	var d [sha256.Size]byte
	switch {
	case key == "":
		l.errs = append(l.errs, fmt.Errorf("%s: key %q is empty", at, name))
		return
	case strings.HasPrefix(key, "sha256:"):
		h := strings.TrimPrefix(key, "sha256:")
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			l.errs = append(l.errs, fmt.Errorf("%s: key %q: want sha256: and 64 hex digits", at, name))
			return
		}
		copy(d[:], b)
	case len(key) < APIKeyMinLength:
		l.errs = append(l.errs, fmt.Errorf("%s: key %q is %d bytes, want at least %d (short keys can be guessed)", at, name, len(key), APIKeyMinLength))
		return
	case strings.ContainsFunc(key, func(r rune) bool { return r < ' ' || r == 0x7f }):
		l.errs = append(l.errs, fmt.Errorf("%s: key %q holds control characters (it could not be sent in a header)", at, name))
		return
	default:
		d = sha256.Sum256([]byte(key))
	}
	if prev, dup := l.where[name]; dup {
		l.errs = append(l.errs, fmt.Errorf("%s: duplicate key name %q (first at %s)", at, name, prev))
		return
	}
	if prev, dup := l.digestWhere[d]; dup {
		l.errs = append(l.errs, fmt.Errorf("%s: key %q is the same key as %s", at, name, prev))
		return
	}
	l.where[name] = ref
	l.digestWhere[d] = fmt.Sprintf("%s (%q)", ref, name)
	l.keys[d] = apiKeyEntry{name: name, digest: d}
}

func apiKeyValidName(s string) bool {
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.@+", c)
		if !ok {
			return false
		}
	}
	return true
}
