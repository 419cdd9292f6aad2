package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
)

// Options protect the admin API: it can change live weights, reload the
// config and (with pprof) profile the process.
type Options struct {
	// Token, when set, must come as "Authorization: Bearer <token>" on
	// every endpoint except the open ones (GET /healthz, /readyz,
	// /metrics: the kubelet and Prometheus send no token). Unset, the API
	// answers only connections to a loopback address (403 otherwise): on
	// loopback, reaching the port already takes a shell in the pod or a
	// `kubectl port-forward`. Read it with ReadToken.
	Token []byte
	// Hosts are host names accepted in the Host header besides IP
	// literals and "localhost" (default: none). Any other name is refused
	// with 403, so a web page cannot reach the API through DNS rebinding.
	Hosts []string
	// Pprof serves Go's profiles under /debug/pprof/, behind the token
	// (default off: a CPU profile costs CPU, and /debug/pprof/cmdline
	// shows the command line).
	Pprof bool
	// UI, when set, serves /ui and everything under /ui/ (the live view,
	// package liveui) after the Host check but without the bearer token:
	// a browser cannot send one, so the UI checks its own session
	// cookie, Origin and CSRF token, and the token or loopback rule.
	UI http.Handler
}

// OpenPaths are served without a token (GET and HEAD only).
var OpenPaths = []string{"/healthz", "/readyz", "/metrics"}

// MinTokenLen is the shortest token ReadToken accepts: 16 bytes of a
// random base64 or hex token are 96 to 128 bits.
const MinTokenLen = 16

// ReadToken reads a bearer token from a file (a mounted Secret), dropping
// trailing white space (echo adds a newline). The token must be a
// b64token (RFC 6750 §2.1: letters, digits, -._~+/ then '=' padding) of
// at least MinTokenLen bytes. Errors never contain the token.
func ReadToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tok := []byte(strings.TrimRight(string(b), " \t\r\n"))
	if err := checkToken(tok); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tok, nil
}

func checkToken(tok []byte) error {
	if len(tok) < MinTokenLen {
		return fmt.Errorf("token is %d bytes, want at least %d (openssl rand -hex 32)", len(tok), MinTokenLen)
	}
	pad := false
	for i, c := range tok {
		switch {
		case c == '=' && i > 0:
			pad = true
		case !pad && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0):
		default:
			return fmt.Errorf("byte %d of the token is not allowed in a bearer token (letters, digits, -._~+/ then '=')", i+1)
		}
	}
	return nil
}

// Secure wraps the admin API h: the Host check on every request, the
// bearer token (or a loopback connection) on all but OpenPaths, and
// /debug/pprof/ when o.Pprof. It panics on an invalid o.Token (read it
// with ReadToken).
func Secure(h http.Handler, o Options) http.Handler {
	if o.Token != nil {
		if err := checkToken(o.Token); err != nil {
			panic("admin.Secure: " + err.Error())
		}
	}
	s := &secure{next: h, pprof: http.NotFoundHandler(), ui: o.UI, hosts: map[string]bool{"localhost": true}}
	if o.Token != nil {
		sum := sha256.Sum256(o.Token)
		s.tokenSum = &sum
	}
	for _, n := range o.Hosts {
		s.hosts[strings.ToLower(strings.TrimSuffix(n, "."))] = true
	}
	if o.Pprof {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		s.pprof = mux
	}
	return s
}

type secure struct {
	next, pprof http.Handler
	ui          http.Handler // nil: no live view
	tokenSum    *[sha256.Size]byte
	hosts       map[string]bool
}

func (s *secure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		writeError(w, http.StatusForbidden, errors.New("host not allowed: use an IP address, localhost or a name given to --admin-hosts"))
		return
	}
	if s.ui != nil && (r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/")) {
		s.ui.ServeHTTP(w, r)
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && isOpen(r.URL.Path) {
		s.next.ServeHTTP(w, r)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
		s.pprof.ServeHTTP(w, r)
		return
	}
	s.next.ServeHTTP(w, r)
}

func isOpen(p string) bool {
	for _, o := range OpenPaths {
		if p == o {
			return true
		}
	}
	return false
}

// hostAllowed: an IP literal or an allowed name, with an optional port. A
// DNS rebinding attack needs a name the attacker controls; IP literals
// cannot be rebound, and the kubelet and Prometheus use the pod's IP.
func (s *secure) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "" {
		return false
	}
	if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")) != nil {
		return true
	}
	return s.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
}

// authorized checks the bearer token, or without one that the connection
// came to a loopback address; on failure it has answered.
func (s *secure) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.tokenSum == nil {
		// Without a token, the loopback check is all there is; a web page
		// can still make a browser send a "simple" POST to 127.0.0.1
		// (CSRF): requests that change something are refused when a
		// browser says they come from a page.
		if r.Method != http.MethodGet && r.Method != http.MethodHead &&
			(r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") == "cross-site" || r.Header.Get("Sec-Fetch-Site") == "same-site") {
			writeError(w, http.StatusForbidden, errors.New("a browser request from a web page cannot change the gateway; use flotilla gateway admin"))
			return false
		}
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
				return true
			}
		}
		writeError(w, http.StatusForbidden, errors.New("the admin API has no token (--admin-token-file) and answers only on loopback"))
		return false
	}
	const realm = `Bearer realm="flotilla-admin"`
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", realm)
		writeError(w, http.StatusUnauthorized, errors.New("want Authorization: Bearer <token> (flotilla gateway admin --admin-token-file)"))
		return false
	}
	// Hashing first makes the comparison's time independent of the
	// token's length as well as its bytes.
	sum := sha256.Sum256([]byte(strings.TrimLeft(tok, " ")))
	if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
		w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, errors.New("invalid token"))
		return false
	}
	return true
}
