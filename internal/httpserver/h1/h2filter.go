package h1

import (
	"bufio"
	"encoding/binary"
	"io"
	"strings"

	"golang.org/x/net/http2/hpack"
)

// frameFilter sits between the connection and Go's HTTP/2 server and
// makes it answer two kinds of input as RFC 9113 says, where it does not
// on its own:
//
//   - a request header block with a connection-specific field
//     (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
//     Upgrade) or a TE other than "trailers" is malformed (§8.2.2), a
//     stream error of type PROTOCOL_ERROR; Go's server answers it 400
//     instead. The filter appends to such a block a field with an
//     upper-case name, which Go's server does reset the stream for. The
//     field is a literal without indexing: both HPACK decoders' tables
//     stay as the client's encoder left them;
//   - a SETTINGS frame may repeat a parameter; the values are processed
//     in order (§6.5.3), so the last one counts. Go's server closes the
//     connection instead; the filter keeps each parameter's last value.
//
// Other frames pass through unbuffered. The filter decodes every header
// block once more, bounded as the server's own decoder is; once the
// stream is something it cannot follow (a malformed frame), it passes
// everything on and lets the server end the connection.
type frameFilter struct {
	src     *bufio.Reader
	out     []byte // a filtered frame being handed out
	off     int
	pass    int  // bytes to pass through unread
	broken  bool // pass everything through
	buf     []byte
	max     int // largest frame payload the filter buffers
	dec     *hpack.Decoder
	inBlock bool // a header block continues in CONTINUATION frames
	bad     bool // the block being decoded is malformed
}

const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9

	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	// maxFrameSize is the largest frame payload the HTTP/2 server
	// accepts (SETTINGS_MAX_FRAME_SIZE): the protocol's initial value,
	// which clients assume until the server's SETTINGS arrive.
	maxFrameSize = 16 << 10
)

// malformedField is a literal header field without indexing, name "X"
// (upper case: invalid in HTTP/2), empty value.
var malformedField = []byte{0x00, 0x01, 'X', 0x00}

func newFrameFilter(src *bufio.Reader, tableSize int, maxHeaderBytes int64) *frameFilter {
	if tableSize <= 0 {
		tableSize = 4096
	}
	f := &frameFilter{src: src, pass: len(clientPreface), max: maxFrameSize}
	f.dec = hpack.NewDecoder(uint32(tableSize), f.field)
	f.dec.SetMaxStringLength(int(maxHeaderBytes))
	return f
}

func (f *frameFilter) Read(p []byte) (int, error) {
	for {
		if f.off < len(f.out) {
			n := copy(p, f.out[f.off:])
			f.off += n
			return n, nil
		}
		if f.broken || f.pass > 0 {
			if !f.broken && len(p) > f.pass {
				p = p[:f.pass]
			}
			n, err := f.src.Read(p)
			f.pass -= n
			return n, err
		}
		if err := f.next(); err != nil {
			return 0, err
		}
	}
}

// next reads the next frame's header and either buffers and filters the
// frame or sets it to pass through.
func (f *frameFilter) next() error {
	hdr, err := f.src.Peek(9)
	if err != nil {
		f.broken = true // the read that follows returns the error
		return nil
	}
	length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
	typ, flags := hdr[3], hdr[4]
	filtered := typ == frameHeaders || typ == frameContinuation || typ == frameSettings && flags&flagAck == 0
	if f.inBlock && typ != frameContinuation {
		f.broken = true // the server ends the connection (§6.10)
		return nil
	}
	if !filtered {
		f.pass = 9 + length
		return nil
	}
	if length > f.max {
		f.broken = true // the server answers FRAME_SIZE_ERROR
		return nil
	}
	if cap(f.buf) < 9+length+len(malformedField) {
		f.buf = make([]byte, 9+length, 9+f.max+len(malformedField))
	}
	buf := f.buf[:9+length]
	if _, err := io.ReadFull(f.src, buf); err != nil {
		return err
	}
	f.out, f.off = buf, 0
	switch typ {
	case frameSettings:
		f.out = dedupeSettings(buf)
	case frameHeaders:
		f.headers(buf, flags)
	case frameContinuation:
		f.block(buf, 9, len(buf), flags)
	}
	return nil
}

// headers starts a header block: the fragment sits between the optional
// pad length and priority fields and the padding.
func (f *frameFilter) headers(buf []byte, flags byte) {
	start, end := 9, len(buf)
	if flags&flagPadded != 0 {
		if end == start {
			f.broken = true
			return
		}
		end -= int(buf[start])
		start++
	}
	if flags&flagPriority != 0 {
		start += 5
	}
	if start > end {
		f.broken = true
		return
	}
	f.inBlock, f.bad = true, false
	f.block(buf, start, end, flags)
}

// block decodes one fragment of a header block; at the block's end a
// malformed block gets malformedField appended after its last fragment.
func (f *frameFilter) block(buf []byte, start, end int, flags byte) {
	if !f.inBlock {
		f.broken = true // CONTINUATION out of place: the server ends the connection
		return
	}
	if _, err := f.dec.Write(buf[start:end]); err != nil {
		f.broken = true // COMPRESSION_ERROR from the server too
		return
	}
	if flags&flagEndHeaders == 0 {
		return
	}
	f.inBlock = false
	if err := f.dec.Close(); err != nil {
		f.broken = true
		return
	}
	if !f.bad {
		return
	}
	out := append(buf[:end:end], malformedField...)
	out = append(out, buf[end:]...)
	n := len(out) - 9
	out[0], out[1], out[2] = byte(n>>16), byte(n>>8), byte(n)
	f.out = out
}

// field is the decoder's emit function.
func (f *frameFilter) field(hf hpack.HeaderField) {
	switch strings.ToLower(hf.Name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		f.bad = true
	case "te":
		f.bad = f.bad || hf.Value != "trailers"
	}
}

// dedupeSettings keeps the last value of each parameter of a SETTINGS
// frame, in the order of those last values.
func dedupeSettings(buf []byte) []byte {
	payload := buf[9:]
	if len(payload)%6 != 0 || len(payload) > 6*100 {
		return buf // the server answers FRAME_SIZE_ERROR, or ENHANCE_YOUR_CALM
	}
	dup := false
	for i := 0; i < len(payload) && !dup; i += 6 {
		for j := i + 6; j < len(payload); j += 6 {
			if payload[i] == payload[j] && payload[i+1] == payload[j+1] {
				dup = true
				break
			}
		}
	}
	if !dup {
		return buf
	}
	out := buf[:9]
	for i := 0; i < len(payload); i += 6 {
		id := binary.BigEndian.Uint16(payload[i:])
		last := true
		for j := i + 6; j < len(payload); j += 6 {
			if binary.BigEndian.Uint16(payload[j:]) == id {
				last = false
				break
			}
		}
		if last {
			out = append(out, payload[i:i+6]...) // out trails the reads: no overlap
		}
	}
	n := len(out) - 9
	out[0], out[1], out[2] = byte(n>>16), byte(n>>8), byte(n)
	return out
}
