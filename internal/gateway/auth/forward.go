package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/config"
)

// ForwardBodyLimit caps the body of a refusal relayed from the
// authorization service; a longer one is cut.
const ForwardBodyLimit = 64 << 10

// forwardUserHeaders name the principal in a 2xx answer, first present
// wins: oauth2-proxy, Authelia/Traefik habits, nginx examples.
var forwardUserHeaders = []string{"X-Auth-Request-User", "X-Auth-User", "X-Forwarded-User"}

// forwardRelayHeaders are copied from a refusal (401, 403, 3xx) to the
// client.
var forwardRelayHeaders = []string{"Www-Authenticate", "Location", "Set-Cookie", "Content-Type"}

// Forward asks an external HTTP service about each request
// (config.ForwardAuth), as nginx's auth_request and Traefik's ForwardAuth
// do. It sends a GET to the URL with the client's headers (the
// RequestHeaders allow-list, or all but hop-by-hop ones), no body, and
// X-Forwarded-Method, -Proto, -Host, -Uri and -For describing the client's
// request (the client's own X-Forwarded-*, Forwarded and X-Real-Ip are
// never passed). Redirects are not followed: they are the service's answer.
// It fails closed: a 5xx, another status, a timeout or an unreachable
// service refuses the request with 503.
type Forward struct {
	// ClientIP returns the client address sent as X-Forwarded-For
	// (default: the host of r.RemoteAddr). The gateway sets it, before the
	// first request, to its trusted client address.
	ClientIP func(r *http.Request) string

	url        string // the service's URL
	logURL     string // the URL without user info or query, for errors
	timeout    time.Duration
	reqHeaders []string // canonical; nil: all but hop-by-hop
	respHeader []string // canonical
	transport  *http.Transport
	client     *http.Client
}

var _ Method = (*Forward)(nil)

// NewForward builds the client for c's service; it reads c.CAFile. It
// logs nothing (log is for symmetry with the other methods): every
// refusal is returned with its cause for the gateway to log once.
func NewForward(c *config.ForwardAuth, log *slog.Logger) (*Forward, error) {
	_ = log
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("forward auth: want an http:// or https:// URL, got %q", c.URL)
	}
	lu := *u
	lu.User, lu.RawQuery, lu.ForceQuery, lu.Fragment = nil, "", false, ""
	f := &Forward{
		ClientIP: forwardRemoteHost,
		url:      c.URL,
		logURL:   lu.String(),
		timeout:  c.Timeout,
	}
	if f.timeout <= 0 {
		f.timeout = config.DefaultForwardAuthTimeout
	}
	for _, h := range c.RequestHeaders {
		f.reqHeaders = append(f.reqHeaders, http.CanonicalHeaderKey(h))
	}
	for _, h := range c.ResponseHeaders {
		f.respHeader = append(f.respHeader, http.CanonicalHeaderKey(h))
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("forward auth: ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("forward auth: ca file %s: no PEM certificates", c.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	f.transport = &http.Transport{
		Proxy: nil, // never the environment's proxy: the service is ours
		DialContext: (&net.Dialer{
			Timeout:   f.timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    f.timeout,
		ResponseHeaderTimeout:  f.timeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// The client's Accept-Encoding is not passed; without it the
		// service answers plainly and a relayed body needs no decoding.
		DisableCompression: true,
	}
	f.client = &http.Client{
		Transport: f.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return f, nil
}

// Name implements Method.
func (f *Forward) Name() string { return "forward" }

// Close implements Method: it closes idle connections to the service.
func (f *Forward) Close() { f.transport.CloseIdleConnections() }

// Authenticate implements Method.
func (f *Forward) Authenticate(r *http.Request) (*Identity, error) {
	ctx, cancel := context.WithTimeout(r.Context(), f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, f.unavailable(ReasonUnavailable, err)
	}
	req.Header = f.requestHeader(r)
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the URL with the query
		}
		switch {
		case r.Context().Err() != nil:
			err = fmt.Errorf("client gone: %w", err)
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("no answer within %s: %w", f.timeout, err)
		}
		return nil, f.unavailable(ReasonUnavailable, err)
	}
	defer resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		return f.admitted(resp.Header), nil
	case s == http.StatusUnauthorized || s == http.StatusForbidden || s >= 300 && s < 400 && s != http.StatusNotModified:
		// 304 answers a conditional request the client never made to
		// the service: not a decision, so it falls to the default.
		body, err := io.ReadAll(io.LimitReader(resp.Body, ForwardBodyLimit))
		if err != nil {
			return nil, f.unavailable(ReasonUnavailable, fmt.Errorf("reading its %d answer: %w", s, err))
		}
		e := &Error{Status: s, Reason: ReasonDenied, Header: http.Header{}, Err: fmt.Errorf("forward auth %s: answered %d", f.logURL, s)}
		for _, h := range forwardRelayHeaders {
			if v := resp.Header.Values(h); len(v) > 0 {
				e.Header[h] = append([]string(nil), v...)
			}
		}
		if len(body) > 0 {
			e.Body = body
		}
		return nil, e
	default:
		return nil, f.unavailable(ReasonServiceError, fmt.Errorf("answered %d", s))
	}
}

func (f *Forward) admitted(h http.Header) *Identity {
	id := &Identity{}
	for _, n := range forwardUserHeaders {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			id.Principal = v
			break
		}
	}
	for _, n := range f.respHeader {
		if v := h.Values(n); len(v) > 0 {
			if id.Set == nil {
				id.Set = http.Header{}
			}
			id.Set[n] = append([]string(nil), v...)
		}
	}
	return id
}

func (f *Forward) unavailable(reason string, err error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Reason: reason, Err: fmt.Errorf("forward auth %s: %w", f.logURL, err)}
}

// forwardHopByHop are the headers that describe one connection, not the
// request (RFC 9110 section 7.6.1), plus those that describe a body the
// check does not send; Proxy-* are matched by prefix.
var forwardHopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Expect": true,
	"Accept-Encoding": true, // see DisableCompression
}

// forwardNeverSent are the client's claims about where it comes from; the
// gateway states them itself.
func forwardNeverSent(name string) bool {
	return strings.HasPrefix(name, "X-Forwarded-") || name == "Forwarded" || name == "X-Real-Ip"
}

func (f *Forward) requestHeader(r *http.Request) http.Header {
	out := http.Header{}
	if f.reqHeaders != nil {
		for _, n := range f.reqHeaders {
			if v := r.Header[n]; len(v) > 0 && !forwardNeverSent(n) && !forwardHopByHop[n] {
				out[n] = append([]string(nil), v...)
			}
		}
	} else {
		// Headers the client named in Connection are hop-by-hop too.
		conn := map[string]bool{}
		for _, v := range r.Header.Values("Connection") {
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n != "" {
					conn[http.CanonicalHeaderKey(n)] = true
				}
			}
		}
		for n, v := range r.Header {
			if forwardHopByHop[n] || conn[n] || strings.HasPrefix(n, "Proxy-") || forwardNeverSent(n) {
				continue
			}
			out[n] = append([]string(nil), v...)
		}
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	out.Set("X-Forwarded-Method", r.Method)
	out.Set("X-Forwarded-Proto", proto)
	out.Set("X-Forwarded-Host", r.Host)
	out.Set("X-Forwarded-Uri", r.URL.RequestURI())
	clientIP := forwardRemoteHost
	if f.ClientIP != nil {
		clientIP = f.ClientIP
	}
	if ip := clientIP(r); ip != "" {
		out.Set("X-Forwarded-For", ip)
	}
	return out
}

func forwardRemoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
