package httpserver

import (
	"errors"
	"net"
	"sync"
)

// Merge returns one listener accepting from all of lns (the gateway's
// clear-text and TLS ports), so one server serves them with one set of
// connection caps and one drain. Closing it closes them all; Addr is the
// first one's. An accept error that is not temporary stops that
// listener and is returned once.
func Merge(lns ...net.Listener) net.Listener {
	if len(lns) == 1 {
		return lns[0]
	}
	m := &merged{lns: lns, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	for _, ln := range lns {
		go m.accept(ln)
	}
	return m
}

type merged struct {
	lns   []net.Listener
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func (m *merged) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var t interface{ Temporary() bool }
			select {
			case m.errs <- err:
			case <-m.done:
				return
			}
			if errors.As(err, &t) && t.Temporary() {
				continue
			}
			return
		}
		select {
		case m.conns <- c:
		case <-m.done:
			c.Close()
			return
		}
	}
}

func (m *merged) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *merged) Close() error {
	var errs []error
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			errs = append(errs, ln.Close())
		}
	})
	return errors.Join(errs...)
}

func (m *merged) Addr() net.Addr { return m.lns[0].Addr() }

// Addrs returns every merged listener's address, in order.
func (m *merged) Addrs() []net.Addr {
	out := make([]net.Addr, len(m.lns))
	for i, ln := range m.lns {
		out[i] = ln.Addr()
	}
	return out
}
