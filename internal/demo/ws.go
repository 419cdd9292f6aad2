package demo

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// MaxWSMessage caps one WebSocket message on /ws/echo, as /echo caps its
// body; a larger one closes the connection with 1009 (message too big).
const MaxWSMessage = 64 << 10

// wsWriteTimeout bounds writing one echoed message, so a client that
// stops reading cannot hold a handler forever.
const wsWriteTimeout = 10 * time.Second

// Reasons sent with close code 1001 (going away) when the demo ends a
// WebSocket connection.
const (
	wsReasonShutdown = "server shutting down"
	wsReasonLifetime = "connection lifetime reached"
	wsReasonIdle     = "idle timeout"
)

// wsEcho serves GET /ws/echo: every text or binary message comes back
// unchanged, like podinfo's /ws/echo. The connection ends with close code
// 1001 on idle (--stream-idle-timeout), at its lifetime
// (--stream-max-lifetime) and when the server shuts down, and with 1009
// on a message over MaxWSMessage.
func (s *Service) wsEcho(w http.ResponseWriter, r *http.Request) {
	// After the hijack the connection keeps the deadlines net/http set
	// for this request (--read-timeout, --write-timeout): clear them, the
	// idle and lifetime limits below bound the connection instead.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})

	var lastRead atomic.Int64 // unix nanoseconds of the last frame received
	lastRead.Store(time.Now().UnixNano())
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  s.cfg.WSOrigins,
		CompressionMode: websocket.CompressionDisabled,
		OnPingReceived: func(context.Context, []byte) bool {
			lastRead.Store(time.Now().UnixNano())
			return true
		},
	})
	if err != nil {
		return // Accept wrote the 4xx, e.g. 426 to a plain GET, 403 to a foreign Origin
	}
	if !s.addWSConn() {
		c.Close(websocket.StatusGoingAway, wsReasonShutdown)
		return
	}
	defer s.wsConns.Done()
	c.SetReadLimit(MaxWSMessage)

	// The request's context ends with the handler; ctx also ends when the
	// echo loop stops, which stops the limits goroutine.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	limits := make(chan struct{})
	go func() {
		defer close(limits)
		if reason := s.wsLimits(ctx, &lastRead); reason != "" {
			// Close sends the close frame and waits (5s at most) for the
			// client's reply, which the echo loop's read receives.
			c.Close(websocket.StatusGoingAway, reason)
		}
	}()
	err = echoMessages(ctx, c, &lastRead)
	cancel()
	<-limits
	c.CloseNow()
	var ce websocket.CloseError
	if !errors.As(err, &ce) && !errors.Is(err, context.Canceled) {
		s.log.Debug("websocket echo ended", slog.String("client", clientOf(r)), slog.Any("error", err))
	}
}

// echoMessages copies each message back until the connection ends, and
// returns why it ended (never nil).
func echoMessages(ctx context.Context, c *websocket.Conn, lastRead *atomic.Int64) error {
	for {
		typ, rd, err := c.Reader(ctx)
		if err != nil {
			return err
		}
		lastRead.Store(time.Now().UnixNano())
		wctx, cancel := context.WithTimeout(ctx, wsWriteTimeout)
		wr, err := c.Writer(wctx, typ)
		if err == nil {
			_, err = io.Copy(wr, rd) // rd fails with 1009 past the read limit
			if cerr := wr.Close(); err == nil {
				err = cerr
			}
		}
		cancel()
		if err != nil {
			return err
		}
	}
}

// wsLimits waits until ctx ends (""), or returns why the connection must
// close: shutdown, lifetime or idle.
func (s *Service) wsLimits(ctx context.Context, lastRead *atomic.Int64) string {
	var lifetime, idle <-chan time.Time
	if d := s.cfg.StreamMaxLifetime; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		lifetime = t.C
	}
	var idleTimer *time.Timer
	if d := s.cfg.StreamIdleTimeout; d > 0 {
		idleTimer = time.NewTimer(d)
		defer idleTimer.Stop()
		idle = idleTimer.C
	}
	for {
		select {
		case <-ctx.Done():
			return ""
		case <-s.stopping.Done():
			return wsReasonShutdown
		case <-lifetime:
			return wsReasonLifetime
		case <-idle:
			since := time.Since(time.Unix(0, lastRead.Load()))
			if since >= s.cfg.StreamIdleTimeout {
				return wsReasonIdle
			}
			idleTimer.Reset(s.cfg.StreamIdleTimeout - since)
		}
	}
}

// addWSConn counts a connection for Close to wait for, unless Close has
// begun (then the caller closes it at once).
func (s *Service) addWSConn() bool {
	s.wsMu.Lock()
	defer s.wsMu.Unlock()
	if s.wsClosed {
		return false
	}
	s.wsConns.Add(1)
	return true
}
