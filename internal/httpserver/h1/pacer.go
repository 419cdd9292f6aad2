package h1

import (
	"errors"
	"net"
	"time"
)

// pacer bounds how slowly a client may send a request body or take a
// response. Only the time an operation waits on the client counts (the
// time between operations is the handler's, or the upstream's): no byte
// for progress fails the operation, and so does a window of that time in
// which fewer than minBytes moved. A client trickling a byte now and then
// cannot hold a connection, where a progress timeout alone would let it.
type pacer struct {
	progress time.Duration
	minBytes int64 // per window; 0: no minimum
	window   time.Duration

	winStart, lastByte, returned time.Time
	winBytes                     int64
	set                          time.Time // the deadline on the socket
}

// errTooSlow and errStalled fail a paced operation; both are timeouts.
var (
	errTooSlow = slowError("client too slow: under the minimum data rate")
	errStalled = slowError("client sent or took nothing within the timeout")
)

type slowError string

func (e slowError) Error() string   { return string(e) }
func (e slowError) Timeout() bool   { return true }
func (e slowError) Temporary() bool { return false }

var _ net.Error = slowError("")

// start begins pacing at now: rate is in bytes per second (<= 0: none).
func (p *pacer) start(now time.Time, progress time.Duration, rate int, window time.Duration) {
	p.progress, p.window, p.minBytes = progress, window, 0
	if rate > 0 {
		p.minBytes = max(int64(float64(rate)*window.Seconds()), 1)
	}
	p.winStart, p.lastByte, p.returned, p.winBytes = now, now, now, 0
	p.set = time.Time{}
}

// before is called as an operation starts: the time since the last one
// returned is not the client's and is discounted.
func (p *pacer) before(now time.Time) (time.Time, error) {
	if gap := now.Sub(p.returned); gap > 0 {
		p.winStart = p.winStart.Add(gap)
		p.lastByte = p.lastByte.Add(gap)
		p.returned = now
	}
	return p.deadline(now)
}

// deadline checks the bounds at now and returns the deadline the
// operation needs.
func (p *pacer) deadline(now time.Time) (time.Time, error) {
	if now.Sub(p.lastByte) >= p.progress {
		return time.Time{}, errStalled
	}
	end := p.lastByte.Add(p.progress)
	if p.minBytes > 0 {
		if now.Sub(p.winStart) >= p.window {
			if p.winBytes < p.minBytes {
				return time.Time{}, errTooSlow
			}
			p.winStart, p.winBytes = now, 0
		}
		if w := p.winStart.Add(p.window); w.Before(end) {
			end = w
		}
	}
	return end, nil
}

// needSet reports whether the socket's deadline must move to d: when d
// is earlier, when the socket's has passed, or when d is more than a
// second later (pushing it on every operation would cost more than an
// early timeout, which is retried).
func (p *pacer) needSet(now, d time.Time) bool {
	if d.Before(p.set) || !now.Before(p.set) || d.Sub(p.set) > time.Second {
		p.set = d
		return true
	}
	return false
}

func (p *pacer) after(now time.Time, n int) {
	if n > 0 {
		p.winBytes += int64(n)
		p.lastByte = now
	}
	p.returned = now
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
