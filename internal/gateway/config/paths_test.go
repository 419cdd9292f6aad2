package config

import (
	"strings"
	"testing"
)

func TestPathsDefaultsAndValidation(t *testing.T) {
	base := "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nbackends: [{name: b, addresses: ['127.0.0.1:1']}]\nroutes: [{name: r, backends: [{name: b}]}]\n"
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Defaults.Paths; p.MergeSlashes == nil || !*p.MergeSlashes || p.EncodedSlash != EncodedSlashReject {
		t.Errorf("default paths = %+v, want mergeSlashes true, encodedSlash reject", p)
	}
	c, err = Parse([]byte(base + "defaults: {paths: {mergeSlashes: false, encodedSlash: keep}}\n"))
	if err != nil || *c.Defaults.Paths.MergeSlashes || c.Defaults.Paths.EncodedSlash != EncodedSlashKeep {
		t.Errorf("paths {mergeSlashes: false, encodedSlash: keep} = %+v, %v", c.Defaults.Paths, err)
	}
	for in, want := range map[string]string{
		"defaults: {paths: {encodedSlash: allow}}\n": `defaults.paths.encodedSlash: want reject, keep or decode, got "allow"`,
		"defaults: {paths: {normalize: true}}\n":     "normalize",
	} {
		if _, err := Parse([]byte(base + in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}
