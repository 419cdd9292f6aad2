package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrBadGRPCTimeout: a gRPC request whose grpc-timeout header is not
// 1 to 8 digits and a unit (H, M, S, m, u, n), per the gRPC over HTTP/2
// spec; answered with gRPC status INTERNAL, as grpc-go's server does.
var ErrBadGRPCTimeout = errors.New("malformed grpc-timeout")

// gRPC status codes (google.golang.org/grpc/codes) the gateway answers.
const (
	grpcCanceled          = 1
	grpcUnknown           = 2
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// IsGRPC reports whether r is a gRPC call: Content-Type application/grpc,
// alone or with a +codec or parameters. gRPC-Web (application/grpc-web)
// is not: its errors and trailers travel in the body.
func IsGRPC(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	if len(ct) == 0 || !strings.HasPrefix(ct[0], "application/grpc") {
		return false
	}
	rest := ct[0][len("application/grpc"):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// grpcCode maps what the gateway answers to a gRPC status: the HTTP to
// gRPC mapping of the gRPC spec (doc/http-grpc-status-mapping.md), made
// precise where the gateway knows more than a status: its timeout is the
// call's deadline, a body over the cap is a resource limit, a route
// without the method does not implement it.
func grpcCode(status int, code string) int {
	switch code {
	case "bad_grpc_timeout":
		return grpcInternal
	case "request_too_large", "rate_limited":
		return grpcResourceExhausted
	case "upstream_timeout":
		return grpcDeadlineExceeded
	case "client_closed_request":
		return grpcCanceled
	}
	switch status {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return grpcUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	case http.StatusGatewayTimeout:
		return grpcDeadlineExceeded
	case http.StatusRequestEntityTooLarge:
		return grpcResourceExhausted
	}
	return grpcUnknown
}

// writeGRPCError answers a gRPC call the gateway refuses or failed:
// HTTP 200 and trailers-only (the status in the one HEADERS frame), as
// gRPC clients expect; an HTML or JSON body would be a protocol error to
// them. The message is the gateway's stable error code and request ID.
func writeGRPCError(w http.ResponseWriter, status int, code, requestID string) {
	h := w.Header()
	h["Content-Type"] = []string{"application/grpc"}
	h["Grpc-Status"] = []string{strconv.Itoa(grpcCode(status, code))}
	msg := "flotilla gateway: " + code + " (HTTP " + strconv.Itoa(status) + ")"
	if requestID != "" {
		h["X-Request-Id"] = []string{requestID}
		msg += ", request_id " + requestID // validated: [A-Za-z0-9._-] only
	}
	h["Grpc-Message"] = []string{msg} // printable ASCII without '%': no percent-encoding needed
	delete(h, "Content-Length")
	w.WriteHeader(http.StatusOK)
}

// parseGRPCTimeout parses a grpc-timeout value: 1 to 8 digits and a unit.
func parseGRPCTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, ErrBadGRPCTimeout
	}
	n := int64(0)
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, ErrBadGRPCTimeout
		}
		n = n*10 + int64(c-'0')
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, ErrBadGRPCTimeout
	}
	if unit >= time.Minute && n > int64(1<<62)/int64(unit) {
		return 1 << 62, nil // 99999999H does not fit a Duration: no deadline worth the name
	}
	return time.Duration(n) * unit, nil
}

// formatGRPCTimeout encodes d as a grpc-timeout value, rounding up to the
// finest unit that fits 8 digits.
func formatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		d = time.Nanosecond
	}
	for _, u := range []struct {
		d time.Duration
		c string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		n := (d + u.d - 1) / u.d
		if n < 1e8 {
			return strconv.FormatInt(int64(n), 10) + u.c
		}
	}
	return strconv.FormatInt(int64((d+time.Hour-1)/time.Hour), 10) + "H"
}
