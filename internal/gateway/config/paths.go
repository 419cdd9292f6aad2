package config

// Encoded slash actions (Paths.EncodedSlash), after Envoy's
// path_with_escaped_slashes_action.
const (
	// EncodedSlashReject answers 400 to a path with %2F, %5C or a
	// backslash (the default, Envoy's safest setting).
	EncodedSlashReject = "reject"
	// EncodedSlashKeep leaves %2F and %5C encoded: they are never
	// separators, for matching or dot-segment removal, and go upstream
	// as they came. A raw backslash goes upstream as %5C.
	EncodedSlashKeep = "keep"
	// EncodedSlashDecode turns %2F, %5C and a backslash into '/' before
	// dot segments are removed and routes matched.
	EncodedSlashDecode = "decode"
)

// Paths says how request paths are normalized before routes are matched
// (Envoy's normalize_path, merge_slashes and
// path_with_escaped_slashes_action). Dot segments are always removed
// (RFC 3986 §5.2.4), after percent-encoded unreserved characters are
// decoded ("%2e%2e" is ".."), and the upstream receives exactly the path
// that was matched, or its rewrite, in escaped form.
type Paths struct {
	// MergeSlashes turns "//" into "/" (default true), so "//admin"
	// matches an /admin route.
	MergeSlashes *bool `yaml:"mergeSlashes" json:"mergeSlashes,omitempty"`
	// EncodedSlash is reject (default), keep or decode.
	EncodedSlash string `yaml:"encodedSlash" json:"encodedSlash,omitempty"`
}

func (p *Paths) setDefaults() {
	if p.MergeSlashes == nil {
		t := true
		p.MergeSlashes = &t
	}
	if p.EncodedSlash == "" {
		p.EncodedSlash = EncodedSlashReject
	}
}

func (p *Paths) validate(probs *problems, path string) {
	switch p.EncodedSlash {
	case "", EncodedSlashReject, EncodedSlashKeep, EncodedSlashDecode:
	default:
		probs.addf(path+".encodedSlash", "want %s, %s or %s, got %q", EncodedSlashReject, EncodedSlashKeep, EncodedSlashDecode, p.EncodedSlash)
	}
}
