// Package buildinfo holds what was baked into the binary at build time and
// the colour each release version is shown in.
package buildinfo

import (
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Set at link time:
//
//	go build -ldflags "-X github.com/flotilla-dev/flotilla/internal/buildinfo.version=v2"
//
// They are unexported so nothing can change them after start-up.
var (
	version  = "v1"
	revision = "unknown"
)

// Info describes one build.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"go_version"`
}

// Get returns the build information of this binary.
func Get() Info {
	return Info{Version: version, Revision: revision, GoVersion: runtime.Version()}
}

// Version is the version baked in at build time (default "v1").
func Version() string { return version }

// palette gives v1, v2, v3 … distinct colours; versions past the palette wrap.
var palette = [...]Colour{
	{Name: "blue", HTML: "#1f6feb", ANSI: "\x1b[34m"},
	{Name: "green", HTML: "#2da44e", ANSI: "\x1b[32m"},
	{Name: "orange", HTML: "#d4670b", ANSI: "\x1b[33m"},
	{Name: "purple", HTML: "#8250df", ANSI: "\x1b[35m"},
	{Name: "red", HTML: "#cf222e", ANSI: "\x1b[31m"},
	{Name: "cyan", HTML: "#0598bc", ANSI: "\x1b[36m"},
}

// Colour is how one version is shown in HTML and on a terminal.
type Colour struct {
	Name string
	HTML string
	ANSI string
}

// ColourOf returns the colour of a version such as "v2" or "2.1.0": the
// major number picks the colour, so every v2.x looks the same. Versions
// without a number are grey.
func ColourOf(v string) Colour {
	s := strings.TrimPrefix(strings.ToLower(v), "v")
	if i := strings.IndexAny(s, ".-+"); i >= 0 {
		s = s[:i]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return Colour{Name: "grey", HTML: "#6e7781", ANSI: "\x1b[37m"}
	}
	return palette[(n-1)%len(palette)]
}

// DefaultInstance names this replica: $POD_NAME (set from the downward API
// in Kubernetes), else the host name, else fallback.
func DefaultInstance(getenv func(string) string, fallback string) string {
	if v := getenv("POD_NAME"); v != "" {
		return v
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return fallback
}

// Handler serves GET /version: the build, with the version a service
// claims (which --version may override) and its instance name.
func Handler(instance, version string) http.Handler {
	info := Get()
	info.Version = version
	body, _ := json.Marshal(struct {
		Info
		Instance string `json:"instance"`
	}{info, instance})
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}
