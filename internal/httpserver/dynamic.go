package httpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Dynamic is a listener whose ports open and close while a server serves
// it (Set): the Gateway API controller's per-Gateway listeners. A closed
// port stops taking connections; those it accepted keep being served.
// Accept fails only once Dynamic itself is closed, so a server serving it
// (alone or Merged) never stops because one port went away.
type Dynamic struct {
	host  string
	tls   *tls.Config
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	lns map[int]dynPort
}

type dynPort struct {
	ln  net.Listener
	tls bool
}

// NewDynamic returns a Dynamic binding its ports on host ("" = every
// address); TLS ports terminate TLS with tlsConfig (nil: none may be
// opened).
func NewDynamic(host string, tlsConfig *tls.Config) *Dynamic {
	return &Dynamic{host: host, tls: tlsConfig, conns: make(chan net.Conn), done: make(chan struct{}), lns: map[int]dynPort{}}
}

// Set makes the open ports exactly ports (port → TLS): new ones are
// opened, gone ones closed, a port whose TLS changed reopened. It
// returns every port that could not be opened; the others are served.
func (d *Dynamic) Set(ctx context.Context, ports map[int]bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
		return net.ErrClosed
	default:
	}
	for p, cur := range d.lns {
		if isTLS, ok := ports[p]; !ok || isTLS != cur.tls {
			cur.ln.Close()
			delete(d.lns, p)
		}
	}
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(ports)) {
		isTLS := ports[p]
		if _, ok := d.lns[p]; ok {
			continue
		}
		if isTLS && d.tls == nil {
			errs = append(errs, fmt.Errorf("port %d: TLS asked but the gateway has no TLS configuration (--tls-addr)", p))
			continue
		}
		ln, err := Listen(ctx, net.JoinHostPort(d.host, strconv.Itoa(p)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if isTLS {
			ln = tls.NewListener(ln, d.tls)
		}
		d.lns[p] = dynPort{ln: ln, tls: isTLS}
		go d.accept(ln)
	}
	return errors.Join(errs...)
}

// Ports returns the open ports, sorted.
func (d *Dynamic) Ports() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.lns))
}

func (d *Dynamic) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var t interface{ Temporary() bool }
			if errors.As(err, &t) && t.Temporary() {
				select {
				case <-time.After(5 * time.Millisecond):
					continue
				case <-d.done:
					return
				}
			}
			return // closed by Set or Close
		}
		select {
		case d.conns <- c:
		case <-d.done:
			c.Close()
			return
		}
	}
}

// Accept waits for a connection on any open port.
func (d *Dynamic) Accept() (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	case <-d.done:
		return nil, net.ErrClosed
	}
}

// Close closes every port; Accept then fails.
func (d *Dynamic) Close() error {
	d.once.Do(func() {
		close(d.done)
		d.mu.Lock()
		for p, cur := range d.lns {
			cur.ln.Close()
			delete(d.lns, p)
		}
		d.mu.Unlock()
	})
	return nil
}

// Addr is a placeholder: Dynamic has no one address (see Ports).
func (d *Dynamic) Addr() net.Addr { return &net.TCPAddr{IP: net.ParseIP(d.host)} }
