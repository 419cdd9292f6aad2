package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// preMax is how much body a response of unknown length buffers before it
// commits to chunked encoding: a handler that writes less and returns
// gets a Content-Length, as with net/http.
const preMax = 2048

// drainMax is how much of an unread request body is read and discarded
// so the connection can serve the next request; more closes it.
const drainMax = 256 << 10

// response is the http.ResponseWriter of one request.
type response struct {
	c       *conn
	req     *http.Request
	reqBody *body // nil without a body
	header  http.Header
	// sent is the header snapshot taken at WriteHeader when the framing
	// has to wait for the body; headers set later are trailers.
	sent http.Header

	status        int
	wroteHeader   bool // the status line and headers are in the buffer
	hijacked      bool
	closeAfter    bool
	chunked       bool
	noBody        bool  // HEAD, 1xx, 204, 304: body writes are dropped or refused
	contentLength int64 // declared; -1 unknown
	written       int64
	pre           []byte

	mu sync.Mutex // orders a 100 Continue against the response headers
}

func (w *response) Header() http.Header { return w.header }

// WriteHeader records the status. A 1xx other than 101 is sent at once
// (103 Early Hints). The headers go out now when the body's framing is
// known (Content-Length set, HEAD, or a status without a body), else with
// the first body bytes or at the end of the handler.
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.hijacked || w.status != 0 {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.status = code
	w.contentLength = -1
	// Framing is the server's, as with net/http: a handler's
	// Transfer-Encoding chunked means "chunk it" (and no Content-Length),
	// anything else means "until the connection closes".
	if te, ok := w.header["Transfer-Encoding"]; ok {
		delete(w.header, "Transfer-Encoding")
		delete(w.header, "Content-Length")
		if !hasToken(te, "chunked") {
			w.closeAfter = true
		}
	}
	if cl, ok := w.header["Content-Length"]; ok {
		if n, err := strconv.ParseInt(firstOf(cl), 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	w.noBody = w.req.Method == http.MethodHead || !bodyAllowed(code)
	if w.contentLength >= 0 || w.noBody {
		w.emit(false)
		return
	}
	w.sent = w.header.Clone()
}

func firstOf(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return strings.TrimSpace(vv[0])
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func (w *response) informational(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	bw := w.c.bw
	writeStatusLine(bw, w.req, code)
	writeHeaders(bw, w.header, nil)
	bw.WriteString("\r\n")
	bw.Flush()
}

// Write sends body bytes, the headers first if they are not out yet.
func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if !w.wroteHeader {
		if len(w.pre)+len(p) <= preMax {
			w.pre = append(w.pre, p...)
			return len(p), nil
		}
		w.emit(false)
		if err := w.flushPre(); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

func (w *response) flushPre() error {
	if len(w.pre) == 0 {
		return nil
	}
	_, err := w.writeBody(w.pre)
	w.pre = nil
	return err
}

func (w *response) writeBody(p []byte) (int, error) {
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	if len(p) == 0 {
		return 0, nil
	}
	w.written += int64(len(p))
	bw := w.c.bw
	if w.chunked {
		var scratch [16]byte
		bw.Write(strconv.AppendInt(scratch[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		n, err := bw.Write(p)
		if err == nil {
			_, err = bw.WriteString("\r\n")
		}
		return n, err
	}
	return bw.Write(p)
}

// Flush sends what is buffered, headers included.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush that reports the connection's error
// (http.ResponseController uses it).
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.wroteHeader {
		w.emit(false)
		if err := w.flushPre(); err != nil {
			return err
		}
	}
	return w.c.bw.Flush()
}

// EnableFullDuplex is a no-op: reading the request body while writing the
// response always works here.
func (w *response) EnableFullDuplex() error { return nil }

// Hijack hands the connection to the handler (protocol upgrades). It is
// refused once the response headers are out.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("h1: Hijack after the response headers were written")
	}
	c := w.c
	c.stopWatch()
	w.mu.Lock() // a 100 Continue may be on its way out
	err := c.bw.Flush()
	w.hijacked = err == nil
	w.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	c.cr.pacing, c.cr.remain = false, -1
	c.nc.SetDeadline(time.Time{})
	return c.nc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.nc)), nil
}

// emit writes the status line and headers. final: the handler is done, so
// an unknown length is the buffered body's.
func (w *response) emit(final bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.wroteHeader = true
	h := w.header
	if w.sent != nil {
		h = w.sent
	}
	var extra [3]string
	ex := extra[:0]
	if w.contentLength < 0 && !w.noBody {
		switch {
		case w.closeAfter: // the body ends when the connection does
		case final && !w.hasTrailers():
			w.contentLength = int64(len(w.pre))
			ex = append(ex, "Content-Length: "+strconv.Itoa(len(w.pre)))
		case w.req.ProtoAtLeast(1, 1):
			w.chunked = true
			ex = append(ex, "Transfer-Encoding: chunked")
		default: // HTTP/1.0: the body ends when the connection does
			w.closeAfter = true
		}
	}
	if w.closeAfter || w.req.Close || w.c.srv.closing.Load() || hasToken(h["Connection"], "close") {
		w.closeAfter = true
		if !hasToken(h["Connection"], "close") && w.req.ProtoAtLeast(1, 1) { // HTTP/1.0 closes by default
			ex = append(ex, "Connection: close")
		}
	} else if !w.req.ProtoAtLeast(1, 1) {
		ex = append(ex, "Connection: keep-alive")
	}
	bw := w.c.bw
	writeStatusLine(bw, w.req, w.status)
	writeHeaders(bw, h, w)
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	for _, line := range ex {
		bw.WriteString(line)
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

func writeStatusLine(bw *bufio.Writer, req *http.Request, code int) {
	if req.ProtoAtLeast(1, 1) {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	bw.WriteString(statusLines[code]) // WriteHeader checked 100 <= code <= 999
}

// statusLines holds "200 OK\r\n" and the like, so that writing a status
// line allocates nothing.
var statusLines = func() (lines [1000]string) {
	for code := 100; code < len(lines); code++ {
		text := http.StatusText(code)
		if text == "" {
			text = "status code " + strconv.Itoa(code)
		}
		lines[code] = strconv.Itoa(code) + " " + text + "\r\n"
	}
	return lines
}()

// writeHeaders writes h as net/http does: invalid names are dropped, line
// breaks in values become spaces. For a final response, the framing
// headers the server decides (Transfer-Encoding when chunked) and
// trailers are left out.
func writeHeaders(bw *bufio.Writer, h http.Header, w *response) {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		if w != nil && (w.chunked && k == "Transfer-Encoding" || strings.HasPrefix(k, http.TrailerPrefix)) {
			continue
		}
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(strings.TrimSpace(v))
			bw.WriteString("\r\n")
		}
	}
}

// finish completes the response after the handler returned and reports
// whether the connection can be reused.
func (w *response) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	// What the handler left of the body is read before the headers go
	// out, so that they can say Connection: close when it is too much.
	if b := w.reqBody; b != nil && !b.finish() {
		w.closeAfter = true
		w.c.linger = true
	}
	if !w.wroteHeader {
		w.emit(true)
		w.flushPre()
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		w.writeTrailers()
		bw.WriteString("\r\n")
	}
	if w.contentLength >= 0 && !w.noBody && w.written < w.contentLength {
		w.closeAfter = true // the client waits for bytes that will not come
	}
	if err := bw.Flush(); err != nil {
		return false
	}
	return !w.closeAfter
}

// hasTrailers reports whether the handler declared trailers (a Trailer
// header) or may set some (http.TrailerPrefix): then the body is chunked
// whatever its length.
func (w *response) hasTrailers() bool {
	if w.sent != nil && len(w.sent["Trailer"]) > 0 {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// writeTrailers writes the trailers: the handler's headers named in the
// Trailer header it sent, and those set with http.TrailerPrefix.
func (w *response) writeTrailers() {
	t := http.Header{}
	if w.sent != nil {
		for _, v := range w.sent["Trailer"] {
			for name := range strings.SplitSeq(v, ",") {
				name = http.CanonicalHeaderKey(strings.TrimSpace(name))
				if vv, ok := w.header[name]; ok {
					t[name] = vv
				}
			}
		}
	}
	for k, vv := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			t[strings.TrimPrefix(k, http.TrailerPrefix)] = vv
		}
	}
	if len(t) > 0 {
		writeHeaders(w.c.bw, t, nil)
	}
}

// body is a request body as the handler sees it: it sends 100 Continue
// on the first read when the client asked for it, arms the connection
// watch at EOF and refuses reads once the handler returned.
type body struct {
	mu           sync.Mutex
	rc           io.ReadCloser
	w            *response
	sendContinue bool
	eof, done    bool
	// buf holds what buffer read ahead, from bufOff on; whole: all of
	// the body (else rc has the rest).
	buf    *[]byte
	bufOff int
	whole  bool
}

// bodyBufs recycles the buffers of chunked bodies (see body.buffer).
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.sendContinue {
		b.sendContinue = false
		w := b.w
		w.mu.Lock()
		if !w.wroteHeader && !w.hijacked {
			bw := w.c.bw
			bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := bw.Flush(); err != nil {
				w.mu.Unlock()
				return 0, err
			}
		}
		w.mu.Unlock()
	}
	if b.buf != nil {
		if buf := *b.buf; b.bufOff < len(buf) {
			n := copy(p, buf[b.bufOff:])
			b.bufOff += n
			return n, nil
		}
		if b.whole {
			return 0, io.EOF
		}
		b.release()
	}
	n, err := b.rc.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		b.w.c.armWatch()
	}
	return n, err
}

// buffer reads a chunked body whole before the handler runs when it is
// at most limit bytes, so that a malformed one is refused (the error)
// before anything is forwarded; the request then has a Content-Length
// (unless trailers came). A larger body streams: the handler reads what
// was buffered, then the rest from the connection.
func (b *body) buffer(limit int) error {
	if limit <= 0 {
		return nil
	}
	bp := bodyBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(len(buf), 512), limit-len(buf)))
		}
		n, err := b.Read(buf[len(buf):min(cap(buf), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			*bp = buf
			b.mu.Lock()
			b.buf, b.whole = bp, true
			b.mu.Unlock()
			if req := b.w.req; len(req.Trailer) == 0 {
				req.ContentLength, req.TransferEncoding = int64(len(buf)), nil
			}
			return nil
		}
		if err != nil {
			*bp = buf
			bodyBufs.Put(bp)
			return err
		}
	}
	*bp = buf
	b.mu.Lock()
	b.buf = bp
	b.mu.Unlock()
	return nil
}

// release returns the read-ahead buffer to the pool; b.mu is held.
func (b *body) release() {
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		bodyBufs.Put(b.buf)
		b.buf, b.bufOff, b.whole = nil, 0, false
	}
}

// Close is a no-op: the server reads what is left when the handler
// returns.
func (b *body) Close() error { return nil }

// finish ends the body when the handler returned: it reads and discards
// up to drainMax of what the handler left, and reports whether the
// connection is at the next request's start.
func (b *body) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	if b.whole || b.eof {
		b.release()
		return true
	}
	b.release()
	if b.sendContinue { // the client was never told to send it
		return false
	}
	_, err := io.CopyN(io.Discard, b.rc, drainMax+1)
	return err == io.EOF
}

// httpDate is the Date header value, formatted once per second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var cachedDate atomic.Pointer[dateText]
