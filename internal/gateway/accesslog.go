package gateway

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLog writes one JSON object per line, built by hand into a pooled
// buffer and written through a 32 KiB buffer flushed every second, as
// nginx's `access_log … buffer=32k flush=1s` does: a write syscall and a
// reflective encoder per request cost about as much as proxying it.
type accessLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	pool sync.Pool
	stop chan struct{}
	done chan struct{}
}

func newAccessLog(w io.Writer, flushEvery time.Duration) *accessLog {
	a := &accessLog{w: bufio.NewWriterSize(w, 32<<10), stop: make(chan struct{}), done: make(chan struct{})}
	a.pool.New = func() any { b := make([]byte, 0, 512); return &b }
	go func() {
		defer close(a.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				a.flush()
			case <-a.stop:
				a.flush()
				return
			}
		}
	}()
	return a
}

func (a *accessLog) flush() {
	a.mu.Lock()
	a.w.Flush()
	a.mu.Unlock()
}

// close stops the flusher and writes what is buffered.
func (a *accessLog) close() {
	close(a.stop)
	<-a.done
}

// entry is one access log line's fields.
type entry struct {
	time                                    time.Time
	requestID, route, backend, method, host string
	path, proto, clientIP, userAgent        string
	endpoint, traceparent, failure          string
	principal, policy                       string
	status, attempts                        int
	bytes                                   int64
	duration                                time.Duration
	proxied                                 bool
}

func (a *accessLog) write(e *entry) {
	bp := a.pool.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = e.time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","msg":"access"`...)
	b = appendField(b, "request_id", e.requestID)
	b = appendField(b, "route", e.route)
	b = appendField(b, "backend", e.backend)
	b = appendField(b, "method", e.method)
	b = appendField(b, "host", e.host)
	b = appendField(b, "path", e.path)
	b = appendField(b, "proto", e.proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.duration.Microseconds())/1000, 'f', -1, 64)
	b = appendField(b, "client_ip", e.clientIP)
	b = appendField(b, "user_agent", e.userAgent)
	if e.proxied {
		b = appendField(b, "endpoint", e.endpoint)
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(e.attempts), 10)
		b = appendField(b, "traceparent", e.traceparent)
	}
	if e.failure != "" {
		b = appendField(b, "error", e.failure)
	}
	if e.principal != "" {
		b = appendField(b, "principal", e.principal)
	}
	if e.policy != "" {
		b = appendField(b, "policy", e.policy)
	}
	b = append(b, "}\n"...)
	a.mu.Lock()
	a.w.Write(b)
	a.mu.Unlock()
	*bp = b
	a.pool.Put(bp)
}

func appendField(b []byte, key, value string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendJSONString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD, so a
// hostile path or user agent cannot break the line.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
