// Package auth authenticates requests for the gateway's routes: API keys,
// HTTP basic authentication from htpasswd files, JSON Web Tokens and an
// external authorization service. Each Method checks one request and
// returns who it is (an Identity) or why not (an *Error); the gateway
// composes a route's methods, strips credentials and answers refusals.
package auth

import (
	"fmt"
	"net/http"
)

// Method is one configured way to authenticate. Implementations are safe
// for concurrent use.
type Method interface {
	// Name is the method's kind for metrics and logs: "apiKey", "basic",
	// "jwt" or "forward".
	Name() string
	// Authenticate checks r without modifying it. A refusal is an
	// *Error; a method never forwards anything upstream itself.
	Authenticate(r *http.Request) (*Identity, error)
	// Close stops the method's background work (key set refreshes).
	Close()
}

// Identity is who a Method accepted.
type Identity struct {
	// Principal names the client in logs and rate-limit keys: the API
	// key's name, the basic-auth user, the token's "sub", or what the
	// external service said (its X-Auth-User-like header), never a secret.
	Principal string
	// Claims are a JWT's verified claims (nil for other methods).
	Claims map[string]any
	// Set are headers to set on the request sent upstream (the key name,
	// forwarded claims, the external service's response headers),
	// replacing any the client sent.
	Set http.Header
}

// Refusal reasons (the metrics' reason label).
const (
	ReasonMissing      = "missing_credentials" // 401: nothing to check
	ReasonInvalid      = "invalid_credentials" // 401: wrong key, password, signature, malformed
	ReasonExpired      = "expired"             // 401: exp passed
	ReasonNotYetValid  = "not_yet_valid"       // 401: nbf or iat in the future
	ReasonIssuer       = "bad_issuer"          // 401
	ReasonAudience     = "bad_audience"        // 401
	ReasonAlgorithm    = "bad_algorithm"       // 401: none, HS without a secret, not allowed
	ReasonUnknownKey   = "unknown_key"         // 401: no key verifies (unknown kid)
	ReasonClaims       = "insufficient_claims" // 403: valid token, required claim missing
	ReasonDenied       = "denied"              // 401/403 from the external service
	ReasonUnavailable  = "unavailable"         // 503: external service or key set unreachable
	ReasonBusy         = "busy"                // 503: password checks saturated
	ReasonServiceError = "service_error"       // 503: the external service answered 5xx or garbage
)

// Error is a refused request: what the client gets and why.
type Error struct {
	// Status is 401, 403 or 503 (or, for forward auth, the service's
	// 3xx, 401 or 403).
	Status int
	// Reason is one of the Reason constants.
	Reason string
	// Challenge is the WWW-Authenticate value ("" for none).
	Challenge string
	// Header and Body, when set, are the external service's answer,
	// relayed to the client (Location, WWW-Authenticate, Set-Cookie...).
	Header http.Header
	Body   []byte
	// Err is the detail for the log; it never holds a credential.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%d): %v", e.Reason, e.Status, e.Err)
	}
	return fmt.Sprintf("%s (%d)", e.Reason, e.Status)
}

func (e *Error) Unwrap() error { return e.Err }
