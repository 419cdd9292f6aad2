package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"testing"
)

// FuzzChunked reads arbitrary bytes as a chunked body with the strict
// reader and with net/http's: whatever the strict reader accepts,
// net/http's reads to the same data (the strict reader only refuses
// more), and it never reads past the body's end.
func FuzzChunked(f *testing.F) {
	for _, seed := range []string{
		"3\r\nabc\r\n0\r\n\r\n",
		"3;a=b;c=\"d\"\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"3 \r\nabc\r\n0\r\n\r\n",
		"3\nabc\n0\n\n",
		"A\r\n0123456789\r\n0\r\n\r\nnext",
		"0\r\nContent-Length: 1\r\n\r\n",
		"fffffffffffffffff\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		cr := &chunkedReader{br: br, maxCount: 100}
		got, err := io.ReadAll(cr)
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(br)
		want, werr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in)))
		if werr != nil {
			t.Fatalf("strict reader accepted %q (data %q), net/http's says %v", in, got, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("strict reader read %q, net/http's %q", got, want)
		}
		if !bytes.HasSuffix(in, rest) {
			t.Fatalf("left %q, not a suffix of the input", rest)
		}
	})
}
