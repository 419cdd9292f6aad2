package proxy

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/internal/gateway/route"
)

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestMirrorKeepsBodyReadError(t *testing.T) {
	p := New(Options{})
	defer p.Close()
	broken := errors.New("client went away")
	r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader("part"), failingReader{broken}))
	r.ContentLength = 100
	p.sendMirrors(r, &Call{Route: &route.Route{Name: "r"}, Request: &route.Request{ID: "rid"}, Mirrors: []Shadow{{Percent: 100}}})
	b, err := io.ReadAll(r.Body)
	if string(b) != "part" || !errors.Is(err, broken) {
		t.Errorf("primary body after a failed mirror read = %q, %v; want \"part\", %v", b, err, broken)
	}
}
