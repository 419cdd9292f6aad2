package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
)

// chunkedReader reads a chunked request body (RFC 9112 §7.1) strictly,
// where net/http's reader is lenient: a chunk line is hex digits, then
// only well-formed extensions, then CRLF (no whitespace after the size,
// no bare LF, no CR elsewhere); chunk data is followed by exactly CRLF;
// a size over 2^60 is refused; extensions may not outweigh the data (as
// net/http's reader counts it); the trailer section is field lines as
// strict as the header section's, without the fields a trailer must not
// carry (RFC 9110 §6.5.1). Trailers are merged into req.Trailer at the
// end, as net/http does.
type chunkedReader struct {
	br       *bufio.Reader
	req      *http.Request
	n        int64 // bytes left in the current chunk
	needCRLF bool  // chunk data was read; its CRLF was not
	excess   int64 // chunk-line bytes not paid for by data
	maxCount int   // trailer fields allowed
	err      error
}

// chunkError is a malformed chunked body.
type chunkError string

func (e chunkError) Error() string { return "malformed chunked body: " + string(e) }

const (
	maxChunkLine    = 4 << 10
	maxChunkSize    = 1 << 60
	maxExcess       = 16 << 10
	maxTrailerBytes = 16 << 10
)

func (cr *chunkedReader) Read(p []byte) (int, error) {
	if cr.err != nil {
		return 0, cr.err
	}
	if cr.n == 0 {
		if cr.needCRLF {
			if cr.err = cr.readCRLF(); cr.err != nil {
				return 0, cr.err
			}
			cr.needCRLF = false
		}
		if cr.err = cr.beginChunk(); cr.err != nil {
			return 0, cr.err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > cr.n {
		p = p[:cr.n]
	}
	n, err := cr.br.Read(p)
	cr.n -= int64(n)
	if cr.n == 0 {
		cr.needCRLF = true
	}
	switch {
	case err == io.EOF:
		cr.err = io.ErrUnexpectedEOF
	case err != nil:
		cr.err = err
	}
	return n, cr.err
}

func (cr *chunkedReader) readCRLF() error {
	var b [2]byte
	if _, err := io.ReadFull(cr.br, b[:]); err != nil {
		return eofUnexpected(err)
	}
	if b != [2]byte{'\r', '\n'} {
		return chunkError("chunk data not followed by CRLF")
	}
	return nil
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine returns a line without its CRLF, which must end it.
func (cr *chunkedReader) readLine() ([]byte, error) {
	line, err := cr.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, chunkError("chunk line too long")
	case err != nil:
		return nil, eofUnexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, chunkError("line not ended by CRLF")
	}
	line = line[:len(line)-2]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, chunkError("CR inside a line")
	}
	if len(line) > maxChunkLine {
		return nil, chunkError("chunk line too long")
	}
	return line, nil
}

// beginChunk reads a chunk line; at the last chunk, the trailers too,
// and then the error is io.EOF.
func (cr *chunkedReader) beginChunk() error {
	line, err := cr.readLine()
	if err != nil {
		return err
	}
	cr.excess += int64(len(line)) + 2
	var size int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if size > maxChunkSize>>4 {
			return chunkError("chunk size too large")
		}
		size = size<<4 | int64(d)
	}
	switch {
	case i == 0:
		return chunkError("chunk size not hexadecimal")
	case i > 16: // net/http's reader refuses more digits, leading zeros or not
		return chunkError("chunk size too long")
	}
	if size > maxChunkSize {
		return chunkError("chunk size too large")
	}
	if err := checkChunkExt(line[i:]); err != nil {
		return err
	}
	cr.excess = max(cr.excess-16-2*size, 0)
	if cr.excess > maxExcess {
		return chunkError("chunk extensions outweigh the data")
	}
	if size == 0 {
		if err := cr.readTrailers(); err != nil {
			return err
		}
		return io.EOF
	}
	cr.n = size
	return nil
}

func unhex(b byte) int {
	switch {
	case '0' <= b && b <= '9':
		return int(b - '0')
	case 'a' <= b && b <= 'f':
		return int(b-'a') + 10
	case 'A' <= b && b <= 'F':
		return int(b-'A') + 10
	}
	return -1
}

// checkChunkExt checks *( BWS ";" BWS name [ BWS "=" BWS value ] ),
// name a token, value a token or a quoted string.
func checkChunkExt(ext []byte) error {
	for len(ext) > 0 {
		ext = trimLeftOWS(ext)
		if len(ext) == 0 || ext[0] != ';' {
			return chunkError("malformed chunk extension")
		}
		ext = trimLeftOWS(ext[1:])
		n := tokenLen(ext)
		if n == 0 {
			return chunkError("malformed chunk extension")
		}
		ext = trimLeftOWS(ext[n:])
		if len(ext) == 0 || ext[0] != '=' {
			continue
		}
		ext = trimLeftOWS(ext[1:])
		if len(ext) > 0 && ext[0] == '"' {
			n = quotedLen(ext)
		} else {
			n = tokenLen(ext)
		}
		if n == 0 {
			return chunkError("malformed chunk extension")
		}
		ext = ext[n:]
	}
	return nil
}

func trimLeftOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func tokenLen(b []byte) int {
	n := 0
	for n < len(b) && isTokenByte(b[n]) {
		n++
	}
	return n
}

// quotedLen is the length of the quoted-string at b's start, 0 if
// there is none.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i++; i == len(b) || b[i] < ' ' && b[i] != '\t' || b[i] == 0x7f {
				return 0
			}
		case c < ' ' && c != '\t' || c == 0x7f:
			return 0
		}
	}
	return 0
}

// readTrailers reads the trailer section through its empty line.
func (cr *chunkedReader) readTrailers() error {
	var t http.Header
	total := 0
	for count := 0; ; count++ {
		line, err := cr.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if total += len(line); total > maxTrailerBytes || count >= cr.maxCount {
			return chunkError("trailer section over the limit")
		}
		name, value, err := splitField(line)
		if err != nil {
			return chunkError("trailer: " + err.(statusError).text)
		}
		key := http.CanonicalHeaderKey(string(name))
		if forbiddenTrailer[key] {
			return chunkError("trailer field " + key + " not allowed")
		}
		if t == nil {
			t = http.Header{}
		}
		t[key] = append(t[key], string(value))
	}
	if len(t) > 0 && cr.req != nil {
		if cr.req.Trailer == nil {
			cr.req.Trailer = http.Header{}
		}
		for k, vv := range t {
			cr.req.Trailer[k] = vv
		}
	}
	return nil
}

// forbiddenTrailer: fields that frame, route, authenticate or control a
// request (RFC 9110 §6.5.1), which a trailer must not carry.
var forbiddenTrailer = map[string]bool{
	"Transfer-Encoding": true, "Content-Length": true, "Host": true, "Connection": true, "Keep-Alive": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Proxy-Connection": true, "Expect": true, "Max-Forwards": true,
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true,
	"Content-Type": true, "Content-Encoding": true, "Content-Range": true, "Range": true,
	"If-Match": true, "If-None-Match": true, "If-Modified-Since": true, "If-Unmodified-Since": true, "If-Range": true,
	"Cache-Control": true, "Pragma": true, "Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true,
	"X-Forwarded-Proto": true,
}

// Close is a no-op: the server reads what is left of the body.
func (cr *chunkedReader) Close() error { return nil }
