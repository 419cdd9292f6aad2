//go:build unix

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether an idle connection is unusable: the peer
// closed or reset it, or sent bytes nobody asked for. It peeks without
// blocking (one recvfrom), the check net/http's Transport gets from its
// per-connection reader goroutine, which H1 does not have.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR):
		default: // EOF (n == 0), an error, or unexpected data
			closed = true
		}
		return true
	})
	return closed || err != nil
}
