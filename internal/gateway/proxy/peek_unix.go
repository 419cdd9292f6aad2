//go:build unix

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// peeker tells whether an idle connection is unusable: the peer closed or
// reset it, or sent bytes nobody asked for. It peeks without blocking
// (one recvfrom), the check net/http's Transport gets from its
// per-connection reader goroutine, which H1 does not have. It is built
// once per connection so that a check allocates nothing.
type peeker struct {
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	buf    [1]byte
	closed bool
}

func newPeeker(c net.Conn) *peeker {
	// A TLS connection: peek at the socket under it. An idle connection
	// has nothing to read; a close_notify or FIN means the upstream
	// closed it.
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{rc: rc}
	p.fn = p.peek
	return p
}

func (p *peeker) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// EAGAIN: nothing to read, the connection is fine. Anything else is
	// EOF (n == 0), an error or unexpected data.
	p.closed = !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR)
	return true
}

// peerClosed reports whether the connection should not be written to.
func (p *peeker) peerClosed() bool {
	if p == nil {
		return false
	}
	p.closed = false
	if err := p.rc.Read(p.fn); err != nil {
		return true
	}
	return p.closed
}
