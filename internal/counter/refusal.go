package counter

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// maxRefusal bounds how much of a refusal is kept: Redis' protected-mode
// reply is about 1,000 bytes; a server that is not Redis could send more.
const maxRefusal = 2048

// RefusedError is the reason Redis gave for refusing a connection: the error
// reply it sent before closing, without the leading "-", e.g. "DENIED Redis
// is running in protected mode because ..." or "ERR max number of clients
// reached". It wraps the error the close itself gave (io.EOF, a reset).
type RefusedError struct {
	Reason string
	Err    error
}

func (e *RefusedError) Error() string { return e.Reason }
func (e *RefusedError) Unwrap() error { return e.Err }

// refusalConn remembers an error reply that opens the stream. Redis refuses a
// connection it will not serve by sending one error reply and closing at
// once, before reading any command: "-DENIED ..." in protected mode (no
// password set and a client from another host), "-ERR max number of clients
// reached". The client library writes its handshake, reads the close, and
// reports the close (EOF, "connection reset by peer"): the reply that said
// why is lost. refusalConn turns a read or write error that follows such a
// reply, with nothing in between, into a *RefusedError carrying it.
//
// An error reply followed by anything else was an answer, not a refusal
// (a Redis without HELLO answers "-ERR unknown command" and goes on): the
// connection settles, and from then on Read is the plain Read plus one
// atomic load. A stream that opens with anything but "-" settles at once.
type refusalConn struct {
	net.Conn

	settled atomic.Bool // the stream did not open with a refusal
	mu      sync.Mutex  // guards head and reason while not settled
	// head is the first line so far, while it is an error reply: "-" and
	// at most maxRefusal+1 bytes, enough to tell it is too long.
	head   []byte
	reason string // the complete first line, if it was an error reply
}

func newRefusalConn(c net.Conn) *refusalConn { return &refusalConn{Conn: c} }

// Read implements net.Conn.
func (c *refusalConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.settled.Load() {
		return n, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observe(p[:n])
	if err != nil {
		err = c.wrap(err)
	}
	return n, err
}

// Write implements net.Conn. Writing the handshake to a connection Redis has
// already closed fails too ("broken pipe"); the reply read so far says why.
func (c *refusalConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && !c.settled.Load() {
		c.mu.Lock()
		defer c.mu.Unlock()
		err = c.wrap(err)
	}
	return n, err
}

// wrap returns err as a *RefusedError if the stream so far is one error
// reply (or the start of one). Called with mu held.
func (c *refusalConn) wrap(err error) error {
	reason := c.reason
	if reason == "" && len(c.head) > 0 {
		reason = cleanReason(c.head) // the stream ended inside the line
	}
	if reason == "" || c.settled.Load() {
		return err
	}
	return &RefusedError{Reason: reason, Err: err}
}

// observe follows the stream's first bytes. Called with mu held.
func (c *refusalConn) observe(b []byte) {
	if len(b) == 0 || c.settled.Load() {
		return
	}
	if c.reason != "" || len(c.head) == 0 && b[0] != '-' {
		c.settle() // an answer, not a refusal
		return
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		c.head = append(c.head, b[:min(len(b), max(0, maxRefusal+2-len(c.head)))]...)
		return
	}
	if len(b) > i+1 {
		c.settle() // more followed the error reply: it was an answer
		return
	}
	line := append(c.head, b[:i]...)
	c.reason, c.head = cleanReason(bytes.TrimSuffix(line, []byte("\r"))), nil
}

// settle forgets the head: this stream is not a refusal. Called with mu held.
func (c *refusalConn) settle() {
	c.head, c.reason = nil, ""
	c.settled.Store(true)
}

// cleanReason turns an error reply's line into one printable line: the "-"
// dropped, control characters and invalid UTF-8 turned into spaces, at most
// maxRefusal bytes. It is shown to people (HTTP answers, logs) and comes
// from the network.
func cleanReason(line []byte) string {
	line = bytes.TrimPrefix(line, []byte("-"))
	truncated := len(line) > maxRefusal
	if truncated {
		line = line[:maxRefusal]
	}
	var b strings.Builder
	for len(line) > 0 {
		r, size := utf8.DecodeRune(line)
		if r == utf8.RuneError && size <= 1 || !unicode.IsPrint(r) {
			r = ' '
		}
		b.WriteRune(r)
		line = line[size:]
	}
	s := strings.TrimSpace(b.String())
	if truncated {
		s += " …"
	}
	return s
}

// dialRecordingRefusals dials as rueidis does by default (TCP, TLS when
// configured) and wraps the connection in a refusalConn.
func dialRecordingRefusals(ctx context.Context, addr string, d *net.Dialer, cfg *tls.Config) (net.Conn, error) {
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	return newRefusalConn(c), nil
}
