// Package config is the gateway's routing configuration: pure data, a
// strict YAML decoder and Validate. It imports only the standard library and
// a YAML decoder, so every other gateway package can depend on it.
//
// Start-up settings (listen and admin addresses, access log) are flags of
// `flotilla gateway`, not part of this file: the file is the routing
// config, which can be reloaded while the gateway runs.
package config

import "time"

// APIVersion and Kind identify the file format; both are required.
const (
	APIVersion = "flotilla.dev/v1alpha1"
	Kind       = "Gateway"
)

// Config is one gateway routing configuration.
type Config struct {
	// APIVersion must be "flotilla.dev/v1alpha1".
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	// Kind must be "Gateway".
	Kind string `yaml:"kind" json:"kind"`
	// Defaults apply to every route that does not set its own value.
	Defaults Defaults `yaml:"defaults" json:"defaults"`
	// Backends are the named upstream groups routes send traffic to.
	Backends []Backend `yaml:"backends" json:"backends"`
	// TLS is the HTTPS listener's certificates and policy; required when
	// the gateway runs with --tls-addr.
	TLS *TLS `yaml:"tls" json:"tls,omitempty"`
	// Redis is the store of global rate limits; required when a route
	// has one.
	Redis *Redis `yaml:"redis" json:"redis,omitempty"`
	// Routes are matched by precedence (see Match), not by their order in
	// the file; the order only breaks exact ties.
	Routes []Route `yaml:"routes" json:"routes"`
}

// Defaults are route settings used where a route leaves them unset.
type Defaults struct {
	// Timeout bounds a whole proxied exchange, retries included, until the
	// response headers arrive (default 30s).
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Retries is the retry policy (default: 2 retries for idempotent
	// requests and failed connects).
	Retries *Retries `yaml:"retries" json:"retries,omitempty"`
	// Paths is how request paths are normalized before matching; it is a
	// gateway-wide setting, routes cannot override it (default: merge
	// slashes, reject encoded slashes).
	Paths Paths `yaml:"paths" json:"paths"`
	// Streams bounds long-lived streams (default: idle 5m, lifetime 24h).
	Streams *Streams `yaml:"streams" json:"streams,omitempty"`
	// IPRules apply to every route without its own (default none).
	IPRules *IPRules `yaml:"ipRules" json:"ipRules,omitempty"`
	// CORS applies to every route without its own (default none).
	CORS *CORS `yaml:"cors" json:"cors,omitempty"`
	// Auth applies to every route without its own (default none).
	Auth *Auth `yaml:"auth" json:"auth,omitempty"`
	// RateLimits apply to every route without its own (default none).
	RateLimits []RateLimit `yaml:"rateLimits" json:"rateLimits,omitempty"`
}

// Backend is a named group of upstream endpoints: one Kubernetes Service,
// one version of an app.
type Backend struct {
	// Name identifies the backend in routes, metrics and the admin API.
	// Required; [a-z0-9] and '-', '_', '.'.
	Name string `yaml:"name" json:"name"`
	// Addresses are host:port endpoints. An IP literal is used as is; a DNS
	// name is re-resolved every ResolveInterval and every address it
	// returns becomes an endpoint (a headless Service). Exactly one of
	// Addresses and Kubernetes is set.
	Addresses []string `yaml:"addresses" json:"addresses,omitempty"`
	// Kubernetes finds the endpoints in a Service's EndpointSlices, watched
	// through the API server: no DNS cache between a pod turning ready or
	// terminating and the gateway knowing it. Exactly one of Addresses and
	// Kubernetes is set.
	Kubernetes *KubernetesService `yaml:"kubernetes" json:"kubernetes,omitempty"`
	// ResolveInterval is how often DNS names are resolved again (default 5s).
	ResolveInterval time.Duration `yaml:"resolveInterval" json:"resolveInterval"`
	// Protocol to speak upstream: "http1" (default), "h2c" (HTTP/2
	// without TLS), "https" (HTTP/1.1 over TLS) or "h2" (HTTP/2 over TLS).
	// gRPC needs h2c or h2.
	Protocol string `yaml:"protocol" json:"protocol"`
	// TLS configures TLS to the upstream for protocols https and h2
	// (default: the system's root CAs, SNI the address's host name, no
	// client certificate; TLS 1.2 at least).
	TLS *BackendTLS `yaml:"tls" json:"tls,omitempty"`
	// Balance picks the endpoint for each request.
	Balance Balance `yaml:"balance" json:"balance"`
	// HealthCheck, when set, probes every endpoint actively.
	HealthCheck *HealthCheck `yaml:"healthCheck" json:"healthCheck,omitempty"`
	// Outlier ejects endpoints that fail consecutive requests (default:
	// 5 transport failures, 30s base ejection, 5m maximum, at most 50% of
	// the endpoints, panic routing below 50% available).
	Outlier *Outlier `yaml:"outlier" json:"outlier,omitempty"`
	// MaxInFlight caps concurrent requests per endpoint; a full endpoint is
	// skipped and when every endpoint is full the request gets 503
	// (default 0: no cap).
	MaxInFlight int `yaml:"maxInFlight" json:"maxInFlight"`
}

// KubernetesService names a Service whose EndpointSlices
// (discovery.k8s.io/v1, labelled kubernetes.io/service-name) are the
// backend's endpoints. Ready endpoints take requests; endpoints that are
// terminating but still serving take new requests only while none is
// ready (Kubernetes' own rule), and requests in flight to them finish;
// others are left out.
type KubernetesService struct {
	// Service is the Service's name; required.
	Service string `yaml:"service" json:"service"`
	// Namespace is the Service's namespace (default: the gateway's own,
	// from $POD_NAMESPACE or the service account's namespace file). The
	// gateway needs get, list and watch on endpointslices there.
	Namespace string `yaml:"namespace" json:"namespace,omitempty"`
	// Port is the Service port's name ("http") or number ("8080"); each
	// slice's port of that name, or that number, is used. Required: a
	// Service may expose several ports.
	Port string `yaml:"port" json:"port"`
}

// Upstream protocols.
const (
	ProtocolHTTP1 = "http1"
	ProtocolH2C   = "h2c"
	ProtocolHTTPS = "https"
	ProtocolH2    = "h2"
)

// UsesTLS reports whether the backend's protocol runs over TLS.
func (b *Backend) UsesTLS() bool { return b.Protocol == ProtocolHTTPS || b.Protocol == ProtocolH2 }

// BackendTLS is how the gateway verifies an upstream and proves itself to
// it. The files are read when the config is validated (start-up and every
// reload): a missing or malformed file fails the load, naming the backend
// and field, and the last good config keeps serving.
type BackendTLS struct {
	// CAFile is a PEM bundle of the CAs that may sign the upstream's
	// certificate (default: the system's roots). An internal or legacy
	// app's private CA goes here; never turn verification off.
	CAFile string `yaml:"caFile" json:"caFile,omitempty"`
	// ServerName is sent as SNI and must match the upstream's certificate
	// (default: the host of the address dialled; for an address given as a
	// DNS name, that name, also after it resolved to IPs; for kubernetes
	// discovery, <service>.<namespace>.svc).
	ServerName string `yaml:"serverName" json:"serverName,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// upstreams that require mutual TLS (default none). Both or neither.
	CertFile string `yaml:"certFile" json:"certFile,omitempty"`
	KeyFile  string `yaml:"keyFile" json:"keyFile,omitempty"`
	// SubjectAltNames, when set, replace the server name check: the
	// upstream's certificate, still verified against the CAs, must carry
	// at least one of these DNS names or URIs (a SPIFFE ID); SNI is still
	// ServerName. Default: none (the certificate must match ServerName).
	SubjectAltNames []SubjectAltName `yaml:"subjectAltNames" json:"subjectAltNames,omitempty"`

	// CAPEM, CertPEM and KeyPEM give the CA bundle and the client
	// certificate and key in memory instead of files (the Gateway API
	// controller's, from ConfigMaps and Secrets); each excludes its file.
	// Never read from YAML nor shown by the admin API.
	CAPEM   []byte `yaml:"-" json:"-"`
	CertPEM []byte `yaml:"-" json:"-"`
	KeyPEM  []byte `yaml:"-" json:"-"`

	// What the files held when validated: compared on reload (a changed
	// file makes a new backend pool), never shown by the admin API.
	caPEM, certPEM, keyPEM []byte
}

// SubjectAltName is one name an upstream's certificate may carry:
// exactly one of Hostname (a DNS name, "*." wildcards in the certificate
// match as usual) and URI.
type SubjectAltName struct {
	Hostname string `yaml:"hostname" json:"hostname,omitempty"`
	URI      string `yaml:"uri" json:"uri,omitempty"`
}

// Material returns the PEM contents Validate read: the CA bundle (nil:
// system roots) and the client certificate and key (nil: none).
func (t *BackendTLS) Material() (ca, cert, key []byte) {
	if t == nil {
		return nil, nil, nil
	}
	return t.caPEM, t.certPEM, t.keyPEM
}

// Balancing policies.
const (
	RoundRobin     = "round_robin"
	LeastRequest   = "least_request"
	Random         = "random"
	ConsistentHash = "consistent_hash"
)

// Balance selects a load-balancing policy.
type Balance struct {
	// Policy is round_robin (default), least_request (power of two
	// choices), random or consistent_hash.
	Policy string `yaml:"policy" json:"policy"`
	// HashOn is the key for consistent_hash; exactly one field must be set.
	HashOn *HashOn `yaml:"hashOn" json:"hashOn,omitempty"`
}

// HashOn names the request property consistent hashing keys on. A request
// without it is balanced round robin.
type HashOn struct {
	// Header is a request header name.
	Header string `yaml:"header" json:"header,omitempty"`
	// Cookie is a cookie name.
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	// ClientIP keys on the client's address: the TCP peer, or behind a
	// trusted proxy (`flotilla gateway --trusted-proxies`) the client it
	// names in X-Forwarded-For.
	ClientIP bool `yaml:"clientIP" json:"clientIP,omitempty"`
}

// HealthCheck configures active HTTP health checks.
type HealthCheck struct {
	// Path is requested with GET (default "/healthz").
	Path string `yaml:"path" json:"path"`
	// Interval between checks of one endpoint (default 5s).
	Interval time.Duration `yaml:"interval" json:"interval"`
	// Timeout of one check (default 1s); must be below Interval.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// HealthyThreshold is how many passes in a row make an unhealthy
	// endpoint healthy, and end a passive ejection early (default 1).
	HealthyThreshold int `yaml:"healthyThreshold" json:"healthyThreshold"`
	// UnhealthyThreshold is how many failures in a row make a healthy
	// endpoint unhealthy (default 2).
	UnhealthyThreshold int `yaml:"unhealthyThreshold" json:"unhealthyThreshold"`
	// ExpectedStatuses are the passing status codes (default 200..399).
	ExpectedStatuses []int `yaml:"expectedStatuses" json:"expectedStatuses,omitempty"`
}

// Outlier configures passive outlier detection over real requests, and
// how a backend balances when too few of its endpoints are available.
//
// What counts as an endpoint's failure is chosen so that a client cannot
// make the gateway eject endpoints: by default only failures the endpoint
// cannot have chosen (connect refused, reset, timeout, a broken response:
// what the gateway itself answers 502 or 504 for), never a status the
// application answered, since any client can ask the demo app for
// /status/503. MaxEjectionPercent and the rule that the last available
// endpoint is never ejected bound what real failures can take out.
type Outlier struct {
	// ConsecutiveFailures in a row eject an endpoint (default 5; Envoy's
	// consecutive_5xx: 5). A request that does not count as a failure
	// ends the run.
	ConsecutiveFailures int `yaml:"consecutiveFailures" json:"consecutiveFailures"`
	// CountStatuses are upstream response statuses that count as
	// failures besides transport failures, 400..599 (default none).
	// [502, 503, 504] is Envoy's consecutive_gateway_failure; only set
	// statuses here that clients cannot provoke at will.
	CountStatuses []int `yaml:"countStatuses" json:"countStatuses,omitempty"`
	// BaseEjection is the first ejection's length; each further ejection
	// doubles it (default 30s; Envoy's base_ejection_time: 30s).
	BaseEjection time.Duration `yaml:"baseEjection" json:"baseEjection"`
	// MaxEjection caps the ejection length (default 5m; Envoy's
	// max_ejection_time: 300s).
	MaxEjection time.Duration `yaml:"maxEjection" json:"maxEjection"`
	// MaxEjectionPercent caps the share of a backend's endpoints ejected
	// at once, 0..100 (default 50; Envoy's max_ejection_percent: 10).
	// At least one endpoint may be ejected when it is above 0, but never
	// the last available one; 0 turns ejection off.
	MaxEjectionPercent *int `yaml:"maxEjectionPercent" json:"maxEjectionPercent,omitempty"`
	// PanicThreshold, 0..100 (default 50; Envoy's healthy_panic_threshold:
	// 50%): when fewer than this percentage of a backend's endpoints are
	// available (failing active checks or ejected), the ejections are
	// lifted: requests are balanced over every endpoint that passes its
	// active checks. An endpoint failing them is never picked. 0 turns
	// panic routing off.
	PanicThreshold *int `yaml:"panicThreshold" json:"panicThreshold,omitempty"`
}

// Route is one routing rule: a match, what to do to the request, and where
// to send it (backends) or a redirect.
type Route struct {
	// Name identifies the route in metrics, logs and the admin API.
	// Required and unique.
	Name string `yaml:"name" json:"name"`
	// Match selects requests; every set condition must hold.
	Match Match `yaml:"match" json:"match"`
	// Rewrite changes the path or host sent upstream.
	Rewrite *Rewrite `yaml:"rewrite" json:"rewrite,omitempty"`
	// Redirect answers with a redirect instead of proxying; exclusive with
	// Backends.
	Redirect *Redirect `yaml:"redirect" json:"redirect,omitempty"`
	// DirectResponse answers from the gateway itself, without proxying;
	// exclusive with Backends and Redirect. The shipped configs use it to
	// keep the apps' probes, metrics and control endpoints off the entry
	// port.
	DirectResponse *DirectResponse `yaml:"directResponse" json:"directResponse,omitempty"`
	// RequestHeaders edits the request sent upstream.
	RequestHeaders *HeaderOps `yaml:"requestHeaders" json:"requestHeaders,omitempty"`
	// ResponseHeaders edits the response sent to the client.
	ResponseHeaders *HeaderOps `yaml:"responseHeaders" json:"responseHeaders,omitempty"`
	// Backends receive the traffic, split by weight (a canary).
	Backends []BackendRef `yaml:"backends" json:"backends,omitempty"`
	// Sticky, when set, pins a client to the backend it first got with a
	// cookie, so a canary user stays on the canary.
	Sticky *Sticky `yaml:"sticky" json:"sticky,omitempty"`
	// Mirror copies a share of requests to a shadow backend.
	Mirror *Mirror `yaml:"mirror" json:"mirror,omitempty"`
	// Mirrors copy requests to several shadow backends, each sampled on
	// its own (default none); a route has mirror or mirrors, not both.
	// Gateway API's RequestMirror filters, more than one in a rule.
	Mirrors []Mirror `yaml:"mirrors" json:"mirrors,omitempty"`
	// Timeout overrides Defaults.Timeout.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// TryTimeout bounds each try (the first and every retry) until its
	// response headers arrive; a try that runs out answers 504 and is not
	// retried (the upstream may have acted on it). Default 0: none, only
	// Timeout bounds the exchange. Gateway API's timeouts.backendRequest.
	TryTimeout time.Duration `yaml:"tryTimeout" json:"tryTimeout,omitempty"`
	// Retries overrides Defaults.Retries.
	Retries *Retries `yaml:"retries" json:"retries,omitempty"`
	// HTTPSRedirect, when set, answers requests that came over clear text
	// with a redirect to the same URL over HTTPS; HTTPS requests proceed.
	HTTPSRedirect *HTTPSRedirect `yaml:"httpsRedirect" json:"httpsRedirect,omitempty"`
	// MaxBodyBytes caps this route's request bodies below the gateway's
	// --max-body-bytes; larger ones get 413 (default 0: the gateway's cap).
	MaxBodyBytes int64 `yaml:"maxBodyBytes" json:"maxBodyBytes,omitempty"`
	// Streams bounds long-lived exchanges (WebSocket, gRPC streams, SSE)
	// once the response headers arrived; overrides Defaults.Streams
	// field by field.
	Streams *Streams `yaml:"streams" json:"streams,omitempty"`
	// IPRules admit or refuse clients by address; replaces
	// Defaults.IPRules as a whole (default: the defaults', else none).
	IPRules *IPRules `yaml:"ipRules" json:"ipRules,omitempty"`
	// CORS answers preflights and adds the Access-Control-* headers;
	// replaces Defaults.CORS as a whole (default: the defaults', else none).
	CORS *CORS `yaml:"cors" json:"cors,omitempty"`
	// Auth is who may pass; replaces Defaults.Auth as a whole (default:
	// the defaults', else anyone). `auth: {}` is not valid: to open a
	// route under default auth, give it `public: true`.
	Auth *Auth `yaml:"auth" json:"auth,omitempty"`
	// Public exempts the route from Defaults.Auth.
	Public bool `yaml:"public" json:"public,omitempty"`
	// RateLimits cap how often a client may use the route; replace
	// Defaults.RateLimits as a whole (default: the defaults'). Each one
	// must admit a request.
	RateLimits []RateLimit `yaml:"rateLimits" json:"rateLimits,omitempty"`
}

// Streams bounds an exchange after its response headers arrived, when the
// route timeout no longer runs: an upgraded connection (WebSocket) and a
// streamed response body (gRPC streams, server-sent events).
//
// Envoy's stream_idle_timeout defaults to 5m and its max_stream_duration
// to none; nginx's proxy_read_timeout (60s) closes a WebSocket that is
// quiet for a minute, which is why WebSocket apps ping. Flotilla takes
// Envoy's idle default and caps the lifetime at a day so that no
// connection outlives every rollout: clients reconnect, and a restart
// never waits on a stream that never ends.
type Streams struct {
	// IdleTimeout closes a stream when no byte moved in either direction
	// for this long (default 5m; 0 in a route: the default).
	IdleTimeout time.Duration `yaml:"idleTimeout" json:"idleTimeout"`
	// MaxLifetime closes a stream this long after its response headers
	// arrived, however busy (default 24h).
	MaxLifetime time.Duration `yaml:"maxLifetime" json:"maxLifetime"`
}

// Path match types.
const (
	PathExact  = "Exact"
	PathPrefix = "Prefix"
	PathRegex  = "Regex"
)

// Value match types for headers, query parameters and cookies.
const (
	MatchExact   = "Exact"
	MatchRegex   = "Regex"
	MatchPresent = "Present"
)

// Match is the condition a request must meet. The zero Match matches
// everything.
type Match struct {
	// Hosts are exact ("flaskapp.test") or wildcard ("*.example.com",
	// one or more labels) host names, without port. Empty: any host.
	Hosts []string `yaml:"hosts" json:"hosts,omitempty"`
	// Path matches the request path (default: Prefix "/").
	Path *PathMatch `yaml:"path" json:"path,omitempty"`
	// Methods, when set, must contain the request method.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// MethodsAs404: a request whose method Methods does not list is not
	// matched, like a path that differs (404 when nothing else matches,
	// Gateway API's rule), instead of 405 Method Not Allowed with Allow.
	MethodsAs404 bool `yaml:"methodsAs404" json:"methodsAs404,omitempty"`
	// Scheme, "http" or "https", matches only requests that came over
	// clear text (--addr) or over TLS (--tls-addr); empty: both. The
	// Gateway API controller sets it for routes attached only to HTTP or
	// only to HTTPS listeners.
	Scheme string `yaml:"scheme" json:"scheme,omitempty"`
	// Ports, when set, match only requests that arrived on one of these
	// local ports of the gateway process. The Gateway API controller sets
	// them when every Gateway has its own listeners (docs/gateway-api.md).
	Ports []int `yaml:"ports" json:"ports,omitempty"`
	// Headers must all match.
	Headers []ValueMatch `yaml:"headers" json:"headers,omitempty"`
	// Query parameters must all match.
	Query []ValueMatch `yaml:"query" json:"query,omitempty"`
	// Cookies must all match (A/B tests by cookie).
	Cookies []ValueMatch `yaml:"cookies" json:"cookies,omitempty"`
}

// PathMatch matches the URL path.
type PathMatch struct {
	// Type is Exact, Prefix (default; matches whole segments: "/flask"
	// matches "/flask" and "/flask/x", not "/flasky") or Regex (RE2,
	// anchored at both ends).
	Type string `yaml:"type" json:"type"`
	// Value is the path or the regular expression.
	Value string `yaml:"value" json:"value"`
}

// ValueMatch matches one named header, query parameter or cookie.
type ValueMatch struct {
	// Name of the header (case-insensitive), parameter or cookie.
	Name string `yaml:"name" json:"name"`
	// Type is Exact (default), Regex (RE2, anchored) or Present.
	Type string `yaml:"type" json:"type"`
	// Value to compare with; unused for Present.
	Value string `yaml:"value" json:"value,omitempty"`
}

// Path rewrite types.
const (
	RewriteReplacePrefix = "ReplacePrefix"
	RewriteReplaceFull   = "ReplaceFull"
	RewriteRegex         = "Regex"
)

// Rewrite changes the request before it goes upstream.
type Rewrite struct {
	// Path rewrites the path.
	Path *PathRewrite `yaml:"path" json:"path,omitempty"`
	// Host replaces the Host header sent upstream (default: the client's
	// Host is kept, as ingress-nginx does).
	Host string `yaml:"host" json:"host,omitempty"`
}

// PathRewrite rewrites the URL path.
type PathRewrite struct {
	// Type is ReplacePrefix (the matched Prefix is replaced by Value; needs
	// a Prefix path match), ReplaceFull (the path becomes Value) or Regex
	// (Pattern's match is replaced by Value, which may use $1, ${name}: the
	// ingress-nginx rewrite-target).
	Type string `yaml:"type" json:"type"`
	// Value is the replacement.
	Value string `yaml:"value" json:"value"`
	// Pattern is the RE2 regular expression for Regex (default: the route's
	// Regex path match).
	Pattern string `yaml:"pattern" json:"pattern,omitempty"`
}

// Redirect answers the request with a redirect. Unset fields keep the
// request's value.
type Redirect struct {
	// Scheme, "http" or "https".
	Scheme string `yaml:"scheme" json:"scheme,omitempty"`
	// Host name of the target.
	Host string `yaml:"host" json:"host,omitempty"`
	// Port of the target (0: the default for the scheme).
	Port int `yaml:"port" json:"port,omitempty"`
	// ListenerPort is the port the route's listener takes requests on
	// (Gateway API): a redirect naming neither scheme nor port keeps it,
	// left out of the URL when it is the scheme's default (0: the Host
	// header's port).
	ListenerPort int `yaml:"listenerPort" json:"listenerPort,omitempty"`
	// Path replaces the whole path.
	Path string `yaml:"path" json:"path,omitempty"`
	// ReplacePrefix replaces the part of the path the route's Prefix path
	// match matched, keeping the rest (Gateway API's ReplacePrefixMatch):
	// with match /old and replacePrefix /new, /old/x goes to /new/x.
	// Needs a Prefix path match; exclusive with Path.
	ReplacePrefix string `yaml:"replacePrefix" json:"replacePrefix,omitempty"`
	// StatusCode is 301, 302 (default), 303, 307 or 308.
	StatusCode int `yaml:"statusCode" json:"statusCode,omitempty"`
}

// HTTPSRedirect sends clear-text clients to HTTPS.
type HTTPSRedirect struct {
	// Port of the HTTPS URL (default 443, left out of the URL).
	Port int `yaml:"port" json:"port,omitempty"`
	// StatusCode is 301, 302, 307 or 308 (default 308: the method and
	// body are kept).
	StatusCode int `yaml:"statusCode" json:"statusCode,omitempty"`
}

// DirectResponse is a fixed answer served by the gateway: a route whose
// paths must never reach a backend (Envoy's direct_response).
type DirectResponse struct {
	// Status is the status code, 200..599; required.
	Status int `yaml:"status" json:"status"`
	// Body is sent as text/plain, at most MaxDirectBody bytes (default:
	// empty). Must be empty for 204 and 304.
	Body string `yaml:"body" json:"body,omitempty"`
}

// MaxDirectBody caps DirectResponse.Body (4 KiB): a fixed answer, not a
// file server.
const MaxDirectBody = 4 << 10

// HeaderOps edits headers: Remove first, then Set, then Add.
type HeaderOps struct {
	// Add appends values.
	Add map[string]string `yaml:"add" json:"add,omitempty"`
	// Set replaces values.
	Set map[string]string `yaml:"set" json:"set,omitempty"`
	// Remove deletes headers.
	Remove []string `yaml:"remove" json:"remove,omitempty"`
}

// BackendRef sends a share of a route's traffic to a backend.
type BackendRef struct {
	// Name of a backend in Config.Backends.
	Name string `yaml:"name" json:"name"`
	// Weight is the relative share, 0..100 (default 1); 0 sends nothing,
	// which is how blue/green keeps the idle colour routed but unused.
	Weight *int `yaml:"weight" json:"weight,omitempty"`
	// RequestHeaders edits the request sent to this backend only, after
	// the route's requestHeaders (default none). Gateway API's filters on
	// a backendRef.
	RequestHeaders *HeaderOps `yaml:"requestHeaders" json:"requestHeaders,omitempty"`
}

// Sticky pins a client to a backend of the route with a cookie.
type Sticky struct {
	// Cookie name (default "flotilla-backend").
	Cookie string `yaml:"cookie" json:"cookie"`
	// TTL is the cookie's Max-Age (default 1h).
	TTL time.Duration `yaml:"ttl" json:"ttl"`
}

// Mirror copies requests to a shadow backend; its responses are discarded
// and it never slows or fails the primary request.
type Mirror struct {
	// Backend is the shadow backend's name.
	Backend string `yaml:"backend" json:"backend"`
	// Percent of requests mirrored, 0..100 (default 100).
	Percent *float64 `yaml:"percent" json:"percent,omitempty"`
}

// Retries is a retry policy. A request is retried on another endpoint only
// when it provably never reached the upstream (the connect failed, or not
// a byte was written; any method), or, for idempotent methods without a
// body, on a RetryOn status. A request that may have been seen is never
// sent again: a GET can count a visit.
type Retries struct {
	// Attempts is the number of retries after the first try, 0..10
	// (default 2 when no retries block is given at all; 0 disables).
	Attempts int `yaml:"attempts" json:"attempts"`
	// Backoff is the base of the jittered exponential backoff between
	// tries (default 25ms): full jitter over base×2^n, n capped at 3.
	Backoff time.Duration `yaml:"backoff" json:"backoff"`
	// MinBackoff is the least wait before each retry, added to the
	// jittered backoff (default 0: a retry may follow at once). Gateway
	// API's retry.backoff is such a minimum.
	MinBackoff time.Duration `yaml:"minBackoff" json:"minBackoff,omitempty"`
	// Budget caps the retrying requests in flight to this fraction of the
	// requests in flight per backend, 0..1, with at least 3 allowed
	// (default 0.2); 1 lets every request retry.
	Budget *float64 `yaml:"budget" json:"budget,omitempty"`
	// RetryOn lists upstream status codes that are retried for idempotent
	// requests (default none: only failures without a response).
	RetryOn []int `yaml:"retryOn" json:"retryOn,omitempty"`
}
