// Package liveui serves the live view: a web page on the gateway's admin
// listener that shows services → versions → instances with their live
// traffic (package liveview's snapshots, pushed once a second over
// server-sent events) and offers the rollout controls (flip blue/green,
// step a canary, pause), which go through the same validated weight path
// as the admin API's PUT /routes/{name}/weights.
//
// Security (docs/liveview.md): with an admin token the page asks for it
// once (POST /ui/login) and then holds an HttpOnly, SameSite=Strict
// session cookie (Secure over TLS) with a server-side expiry; without a
// token, like the admin API, it answers only connections to loopback.
// Every control checks the session, that Origin is the admin listener's
// own, and a per-session CSRF token sent in the X-CSRF-Token header.
// Sessions and event-stream viewers are bounded.
package liveui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveview"
)

//go:embed assets
var assets embed.FS

// Source gives the snapshot the page shows: one gateway's
// (Gateway.LiveSnapshot), or on Kubernetes the merge of every replica's
// (liveview.Merge).
type Source interface {
	LiveSnapshot() *liveview.Snapshot
}

// Controls change a route's traffic. The gateway's own methods implement
// it for a file config (the admin API's validated path); on Kubernetes an
// implementation that writes the HTTPRoute takes its place. Errors that
// wrap admin.ErrNotFound, ErrInvalid and ErrConflict answer 404, 422 and
// 409.
type Controls interface {
	// UpdateWeights changes a route's weights, computed from the current
	// ones where they are kept (admin.WeightWriter).
	admin.WeightWriter
	// SetPaused holds (true) or releases a route's weights.
	SetPaused(route string, paused bool) error
}

// Options configure the live view.
type Options struct {
	// Source gives the snapshots (required).
	Source Source
	// Controls change weights (nil: the page only shows).
	Controls Controls
	// Token is the admin API's token: the page asks for it once. Nil,
	// the page answers only connections to a loopback address, which
	// get a session without asking.
	Token []byte
	// MaxViewers caps open event streams (default 64); more get 503.
	MaxViewers int
	// MaxSessions caps live sessions (default 256); when full, a login
	// gets 503 until one expires.
	MaxSessions int
	// SessionTTL is a session's lifetime from login (default 8h).
	SessionTTL time.Duration
	// Interval is how often a snapshot is pushed (default 1s).
	Interval time.Duration
	// WriteTimeout bounds each write to an event stream (default 10s): a
	// viewer that stops reading is dropped, not waited for.
	WriteTimeout time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
	// Now is the clock of session expiry (default time.Now).
	Now func() time.Time
}

// UI is the live view's handler. Close stops its push loop.
type UI struct {
	o        Options
	tokenSum *[sha256.Size]byte
	sessions *sessions
	hub      *hub
}

// CookieName is the session cookie's name.
const CookieName = "flotilla_live"

// New returns the live view. Mount it at /ui/ (admin.Options.UI does).
func New(o Options) *UI {
	if o.MaxViewers <= 0 {
		o.MaxViewers = 64
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 256
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	u := &UI{o: o, sessions: &sessions{m: map[string]*session{}, max: o.MaxSessions, ttl: o.SessionTTL, now: o.Now},
		hub: newHub(o.Source, o.MaxViewers, o.Interval, o.Logger)}
	if o.Token != nil {
		sum := sha256.Sum256(o.Token)
		u.tokenSum = &sum
	}
	return u
}

// Close ends the event streams and stops the push loop.
func (u *UI) Close() { u.hub.close() }

// ServeHTTP serves:
//
//	GET  /ui/                      the page (and its assets)
//	GET  /ui/session               {"csrf", "auth", "controls"}; {"login": true} without a session
//	POST /ui/login                 form token=<admin token>: a session cookie
//	POST /ui/logout                end the session
//	GET  /ui/snapshot              the snapshot (JSON)
//	GET  /ui/events                server-sent events: a snapshot a second
//	POST /ui/routes/{name}/flip    swap a two-backend route's weights
//	POST /ui/routes/{name}/step    {"backend": "green", "delta": 10}
//	POST /ui/routes/{name}/pause   {"paused": true}
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if u.tokenSum == nil && !loopback(r) {
		writeError(w, http.StatusForbidden, errors.New("the admin API has no token (--admin-token-file) and answers only on loopback"))
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/ui")
	switch {
	case path == "":
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	case path == "/" || path == "/app.js" || path == "/style.css":
		u.asset(w, r, path)
	case path == "/session":
		u.session(w, r)
	case path == "/login":
		u.login(w, r)
	case path == "/logout":
		u.control(w, r, func(s *session, id string) (any, error) {
			u.sessions.delete(id)
			return map[string]bool{"ok": true}, nil
		})
	case path == "/snapshot":
		u.snapshot(w, r)
	case path == "/events":
		u.events(w, r)
	case strings.HasPrefix(path, "/routes/"):
		u.routeControl(w, r, strings.TrimPrefix(path, "/routes/"))
	default:
		writeError(w, http.StatusNotFound, errors.New("not found"))
	}
}

func (u *UI) asset(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	name, ctype := "assets/index.html", "text/html; charset=utf-8"
	switch path {
	case "/app.js":
		name, ctype = "assets/app.js", "text/javascript; charset=utf-8"
	case "/style.css":
		name, ctype = "assets/style.css", "text/css; charset=utf-8"
	}
	b, err := assets.ReadFile(name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// sessionResponse is GET /ui/session's answer.
type sessionResponse struct {
	CSRF string `json:"csrf"`
	// Auth is "token" (logged in with the admin token) or "loopback".
	Auth string `json:"auth"`
	// Controls is false when the page only shows.
	Controls bool `json:"controls"`
	// Login: no session; log in with the admin token (CSRF is empty).
	Login bool `json:"login,omitempty"`
}

func (u *UI) session(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	s, _ := u.current(r)
	auth := "token"
	if u.tokenSum == nil {
		auth = "loopback"
		if s == nil { // loopback was checked: a session without asking
			// But not for another site's page, whose requests (no-cors,
			// cookies never sent back) would fill the session table.
			if err := checkOrigin(r, false); err != nil {
				writeError(w, http.StatusForbidden, err)
				return
			}
			var id string
			var err error
			if id, s, err = u.sessions.create(); err != nil {
				writeError(w, http.StatusServiceUnavailable, err)
				return
			}
			u.setCookie(w, r, id, s.expires)
		}
	}
	if s == nil { // not an error: the page shows the login form
		writeJSON(w, http.StatusOK, sessionResponse{Auth: auth, Login: true})
		return
	}
	writeJSON(w, http.StatusOK, sessionResponse{CSRF: s.csrf, Auth: auth, Controls: u.o.Controls != nil})
}

// MaxLoginBody caps the login form (bytes).
const MaxLoginBody = 4 << 10

// ParseLogin reads the login form's token: an
// application/x-www-form-urlencoded body with exactly one token field.
// Errors never contain the token.
func ParseLogin(contentType string, body io.Reader) ([]byte, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	if !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
		return nil, errors.New("login: want Content-Type application/x-www-form-urlencoded")
	}
	b, err := io.ReadAll(io.LimitReader(body, MaxLoginBody+1))
	if err != nil {
		return nil, errors.New("login: reading the form failed")
	}
	if len(b) > MaxLoginBody {
		return nil, errors.New("login: form larger than 4 KiB")
	}
	var tok []byte
	for field := range strings.SplitSeq(string(b), "&") {
		k, v, _ := strings.Cut(field, "=")
		if k != "token" {
			return nil, errors.New("login: want only the field token")
		}
		if tok != nil {
			return nil, errors.New("login: token given twice")
		}
		dec, err := url.QueryUnescape(v)
		if err != nil {
			return nil, errors.New("login: token is not form-encoded")
		}
		tok = []byte(dec)
	}
	if len(tok) == 0 {
		return nil, errors.New("login: token is empty")
	}
	return tok, nil
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	if err := checkOrigin(r, false); err != nil {
		writeError(w, http.StatusForbidden, err)
		return
	}
	if u.tokenSum == nil {
		writeError(w, http.StatusNotFound, errors.New("no login: the admin API has no token; this page answers only on loopback"))
		return
	}
	tok, err := ParseLogin(r.Header.Get("Content-Type"), r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	// A form the browser posted itself (no script) gets a redirect back
	// to the page; a fetch gets JSON.
	navigate := r.Header.Get("Sec-Fetch-Mode") == "navigate"
	sum := sha256.Sum256(tok)
	if subtle.ConstantTimeCompare(sum[:], u.tokenSum[:]) != 1 {
		u.o.Logger.Warn("live view login refused", slog.String("remote", r.RemoteAddr))
		if navigate {
			http.Redirect(w, r, "/ui/#wrong-token", http.StatusSeeOther)
			return
		}
		writeError(w, http.StatusUnauthorized, errors.New("wrong token"))
		return
	}
	id, s, err := u.sessions.create()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	u.setCookie(w, r, id, s.expires)
	if navigate {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, sessionResponse{CSRF: s.csrf, Auth: "token", Controls: u.o.Controls != nil})
}

func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, id string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/ui/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// current returns the request's session, nil when it has none, or it is
// unknown or expired.
func (u *UI) current(r *http.Request) (*session, string) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, ""
	}
	return u.sessions.get(c.Value), c.Value
}

// viewer checks a read's session; on failure it has answered.
func (u *UI) viewer(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET")
		return false
	}
	if s, _ := u.current(r); s == nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "no session: load /ui/ and log in", "login": true})
		return false
	}
	return true
}

func (u *UI) snapshot(w http.ResponseWriter, r *http.Request) {
	if !u.viewer(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, u.o.Source.LiveSnapshot())
}

// control checks a change's session, Origin and CSRF token, then runs
// do; on failure it has answered.
func (u *UI) control(w http.ResponseWriter, r *http.Request, do func(s *session, id string) (any, error)) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	s, id := u.current(r)
	if s == nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "no session or session expired: log in again", "login": true})
		return
	}
	if err := checkOrigin(r, true); err != nil {
		writeError(w, http.StatusForbidden, err)
		return
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		writeError(w, http.StatusForbidden, errors.New("missing or wrong X-CSRF-Token: reload the page"))
		return
	}
	out, err := do(s, id)
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// checkOrigin: a browser names the page that sent a request in Origin;
// it must be this listener's own (scheme and Host, which admin.Secure
// has checked against DNS rebinding). required: a missing Origin is
// refused too (every browser sends it on a fetch POST).
func checkOrigin(r *http.Request, required bool) error {
	o := r.Header.Get("Origin")
	if o == "" {
		if required {
			return errors.New("missing Origin: controls are for the live view page")
		}
		if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
			return errors.New("a request from another site")
		}
		return nil
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if !strings.EqualFold(o, scheme+"://"+r.Host) {
		return errors.New("the Origin header is not this admin listener's: controls are for the live view page")
	}
	return nil
}

func loopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, errBadControl):
		return http.StatusBadRequest
	case errors.Is(err, admin.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, admin.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, admin.ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(err, admin.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, errors.New("method not allowed"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// session is one logged-in page.
type session struct {
	csrf    string
	expires time.Time
}

// sessions are the live sessions by id, at most max.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	max int
	ttl time.Duration
	now func() time.Time
}

var errTooManySessions = errors.New("too many live view sessions; try again later")

func (ss *sessions) create() (string, *session, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	if len(ss.m) >= ss.max {
		for id, s := range ss.m {
			if !now.Before(s.expires) {
				delete(ss.m, id)
			}
		}
		if len(ss.m) >= ss.max {
			return "", nil, errTooManySessions
		}
	}
	id, csrf := randomToken(), randomToken()
	s := &session{csrf: csrf, expires: now.Add(ss.ttl)}
	ss.m[id] = s
	return id, s, nil
}

func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, id)
		return nil
	}
	return s
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// randomToken is 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
