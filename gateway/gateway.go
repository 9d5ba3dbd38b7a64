// Package gateway is the HTTP face of qrngd: a Gin router with its
// middleware (recovery, correlation IDs, access log, body limit, security
// headers, metrics), the REST handlers for random data and source status, the
// probes, and the Prometheus exposition.
//
// Routes (DESIGN.md "External contract"):
//
//	GET  /healthz      liveness; no auth
//	GET  /readyz       200 when the pool can serve under its policy, else 503
//	                   {"error":{"code":"not_ready",...}} + Retry-After; no auth
//	GET  /health       seed shape: status, version, qrng {sources, policy},
//	                   pool, features; always 200; no auth, no serials
//	GET  /metrics      Prometheus exposition of Options.Registry; no auth
//	GET  /v1/random    scope random:read; ?bytes=1..1048576 (required)
//	                   &format=hex|base64|binary (hex) &mode=drbg|full|pr (drbg)
//	GET  /v1/sources   scope sources:read; per-source status
//
// Every error is {"error":{"code","message"}} with its status: 400
// invalid_parameter (naming the parameter; unknown and repeated /v1 query
// parameters included), 401/403 from the Authorizer, 404 not_found, 405
// method_not_allowed (with Allow), 413 request_too_large, 500 internal, 503
// not_ready / insufficient_entropy / unavailable / busy (with Retry-After). Every
// response carries Cache-Control: no-store and X-Correlation-ID.
//
// Gin stays inside this package: New returns a plain http.Handler, and other
// components (auth, MCP) join through Options.Routes as http.Handlers.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/qrngd/qrngd/entropy"
)

// MaxRandomBytes is the largest N that GET /v1/random accepts.
const MaxRandomBytes = 1 << 20

// Scopes the built-in /v1 routes require of the Authorizer.
const (
	ScopeRandomRead  = "random:read"
	ScopeSourcesRead = "sources:read"
)

// Entropy is what the gateway needs of the entropy engine
// (*entropy.Engine satisfies it).
type Entropy interface {
	Read(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error)
	Status() entropy.Status
}

// Authorizer is the authentication seam. For every route that declares a
// scope, the gateway calls Authorize before the handler runs.
//
// Authorize returns the caller, or an error wrapping one of:
//   - ErrUnauthenticated: no credentials presented (401, WWW-Authenticate
//     challenge without an error code, RFC 6750 §3.1);
//   - ErrInvalidToken: credentials presented but invalid, expired or revoked
//     (401, challenge with error="invalid_token");
//   - ErrInsufficientScope: valid credentials lacking scope (403, challenge
//     with error="insufficient_scope").
//
// Any other error is a server fault (500, logged, not shown to the client).
//
// A nil Options.Authorizer means NO AUTHENTICATION: every route is open.
// cmd/qrngd always wires gateway/auth; only a dev configuration with the
// explicit key auth.disabled: true runs without, and production refuses it.
type Authorizer interface {
	Authorize(r *http.Request, scope string) (*Principal, error)
}

// Challenger is an optional capability of an Authorizer: it supplies the
// WWW-Authenticate value for a 401 or 403 (e.g. to add the RFC 9728
// resource_metadata parameter). Without it the gateway sends
// `Bearer realm="qrngd"` plus the RFC 6750 error parameters.
type Challenger interface {
	Challenge(r *http.Request, scope string, err error) string
}

// Principal is an authenticated caller.
type Principal struct {
	Subject  string   // user or client
	ClientID string   // OAuth client, if any
	Scopes   []string // granted scopes
}

// Sentinel errors of the auth seam; see Authorizer.
var (
	ErrUnauthenticated   = errors.New("gateway: no credentials")
	ErrInvalidToken      = errors.New("gateway: invalid token")
	ErrInsufficientScope = errors.New("gateway: insufficient scope")
)

// Route is an extra handler mounted by another component (auth, MCP).
type Route struct {
	Methods []string     // e.g. GET, POST
	Path    string       // Gin path; must not collide with built-in routes
	Scope   string       // required scope; "" for none (the handler does its own auth)
	Handler http.Handler // receives the request with the body limit applied
	// MaxBodyBytes overrides Options.MaxRequestBytes for this route (0 =
	// the gateway's limit), e.g. for /mcp, which bounds its bodies itself.
	MaxBodyBytes int64
}

// Options configure a Gateway. Entropy is required; zero values of the other
// fields mean their defaults.
type Options struct {
	Entropy    Entropy
	Logger     *slog.Logger         // default: discard
	Version    string               // reported by /health; default "dev"
	Registry   *prometheus.Registry // gateway metrics register here; default a new registry
	Authorizer Authorizer           // nil = no authentication (dev only); see Authorizer

	MaxRequestBytes int64         // request body limit; default 64 KiB
	ReadTimeout     time.Duration // bound on one engine read in modes drbg and pr; default 5 s
	FullWait        time.Duration // bound on one engine read in mode full; default 5 s
	RetryAfter      time.Duration // Retry-After on 503; default 1 s (sent in whole seconds, at least 1)
	Features        []string      // extra features listed by /health (e.g. "auth", "mcp")
	// MaxInFlightBytes bounds the memory GET /v1/random answers hold at
	// once (the random bytes plus their hex or base64 encoding, held until
	// the client has read the answer); a request that cannot get its share
	// within ReadTimeout/FullWait gets 503 busy with Retry-After. Default
	// 64 MiB; at least 3 MiB (one 1 MiB hex answer).
	MaxInFlightBytes int64
	Routes           []Route // extra routes
	// LogErrorsOnly logs only requests answered 4xx or 5xx (metrics still
	// count every request): for hosts where an access-log line per
	// successful request (10,000 a second at full token load) is too much
	// for the journal. Issuances and admin changes stay in the audit log.
	LogErrorsOnly bool

	// Limit, if set, is called after the Authorizer accepted a request on a
	// route with a scope (the /v1 routes and extra routes with Scope), with
	// the accepted principal: per-principal rate limiting. It returns false
	// when it refused the request, having written the whole response (429
	// with Retry-After); the handler then does not run.
	Limit func(w http.ResponseWriter, r *http.Request, p *Principal) bool
}

// Gateway is the HTTP handler of qrngd.
type Gateway struct {
	engine     *gin.Engine
	ent        Entropy
	log        *slog.Logger
	errorsOnly bool // LogErrorsOnly
	version    string
	auth       Authorizer
	limit      func(http.ResponseWriter, *http.Request, *Principal) bool
	maxBody    int64
	routeBody  map[string]int64 // per-route body limits (Route.MaxBodyBytes) by Gin path
	readTO     time.Duration
	fullWait   time.Duration
	retryAfter string
	features   []string
	metrics    *metrics
	bufs       sync.Pool // *[]byte of cap MaxRandomBytes
	inflight   *semaphore.Weighted
}

// maxRandomWeight is the in-flight weight of the largest /v1/random answer:
// 1 MiB of bytes plus 2 MiB of hex.
const maxRandomWeight = 3 * MaxRandomBytes

var errOptions = errors.New("gateway: invalid options")

// New validates opts and builds the router.
func New(opts *Options) (*Gateway, error) {
	if opts == nil || opts.Entropy == nil {
		return nil, fmt.Errorf("%w: Entropy is required", errOptions)
	}
	o := *opts
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.MaxRequestBytes == 0 {
		o.MaxRequestBytes = 64 << 10
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.FullWait == 0 {
		o.FullWait = 5 * time.Second
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = time.Second
	}
	if o.MaxInFlightBytes == 0 {
		o.MaxInFlightBytes = 64 << 20
	}
	switch {
	case o.MaxRequestBytes < 0:
		return nil, fmt.Errorf("%w: MaxRequestBytes %d is negative", errOptions, o.MaxRequestBytes)
	case o.ReadTimeout < 0 || o.FullWait < 0 || o.RetryAfter < 0:
		return nil, fmt.Errorf("%w: negative duration", errOptions)
	case o.MaxInFlightBytes < maxRandomWeight:
		return nil, fmt.Errorf("%w: MaxInFlightBytes %d is below %d, the size of one 1 MiB hex answer", errOptions, o.MaxInFlightBytes, maxRandomWeight)
	}
	retry := int64((o.RetryAfter + time.Second - 1) / time.Second)
	g := &Gateway{
		ent:        o.Entropy,
		log:        o.Logger,
		errorsOnly: o.LogErrorsOnly,
		version:    o.Version,
		auth:       o.Authorizer,
		limit:      o.Limit,
		maxBody:    o.MaxRequestBytes,
		routeBody:  map[string]int64{},
		readTO:     o.ReadTimeout,
		fullWait:   o.FullWait,
		retryAfter: fmt.Sprint(max(retry, 1)),
		features:   append([]string{"random", "sources", "metrics"}, o.Features...),
		inflight:   semaphore.NewWeighted(o.MaxInFlightBytes),
	}
	g.bufs.New = func() any { b := make([]byte, MaxRandomBytes); return &b }
	m, err := newMetrics(o.Registry, o.Entropy)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	if err := g.routes(o.Routes); err != nil {
		return nil, err
	}
	return g, nil
}

// ServeHTTP serves one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.engine.ServeHTTP(w, r) }

func (g *Gateway) routes(extra []Route) (err error) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	// No proxy is trusted: ClientIP is the peer address.
	if err := e.SetTrustedProxies(nil); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	e.Use(g.correlate, g.observe, g.recovery, g.secure, g.limitBody)
	e.NoRoute(func(c *gin.Context) { g.fail(c, http.StatusNotFound, "not_found", "no route "+c.Request.URL.Path) })
	e.NoMethod(func(c *gin.Context) {
		g.fail(c, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("method %s not allowed on %s (allowed: %s)", c.Request.Method, c.Request.URL.Path, c.Writer.Header().Get("Allow")))
	})

	for _, m := range []string{http.MethodGet, http.MethodHead} {
		e.Handle(m, "/healthz", g.healthz)
		e.Handle(m, "/readyz", g.readyz)
	}
	e.GET("/health", g.health)
	e.GET("/metrics", gin.WrapH(g.metrics.handler))
	e.GET("/v1/random", g.require(ScopeRandomRead), g.random)
	e.GET("/v1/sources", g.require(ScopeSourcesRead), g.sources)

	// Gin panics on conflicting routes; report that as an error naming the route.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: route conflict: %v", errOptions, p)
		}
	}()
	for i, rt := range extra {
		if rt.Handler == nil || !strings.HasPrefix(rt.Path, "/") || len(rt.Methods) == 0 {
			return fmt.Errorf("%w: Routes[%d] %q needs Methods, a Path starting with / and a Handler", errOptions, i, rt.Path)
		}
		if rt.MaxBodyBytes < 0 {
			return fmt.Errorf("%w: Routes[%d] %q: MaxBodyBytes %d is negative", errOptions, i, rt.Path, rt.MaxBodyBytes)
		}
		if rt.MaxBodyBytes > 0 {
			g.routeBody[rt.Path] = rt.MaxBodyBytes
		}
		hs := []gin.HandlerFunc{}
		if rt.Scope != "" {
			hs = append(hs, g.require(rt.Scope))
		}
		hs = append(hs, gin.WrapH(rt.Handler))
		for _, m := range rt.Methods {
			e.Handle(m, rt.Path, hs...)
		}
	}
	g.engine = e
	return nil
}

// ctxKey is the type of the gateway's context keys.
type ctxKey int

const (
	keyCorrelation ctxKey = iota
	keyPrincipal
)

// CorrelationID returns the request's correlation ID (X-Correlation-ID).
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(keyCorrelation).(string)
	return s
}

// PrincipalFrom returns the caller the Authorizer accepted, if any.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(keyPrincipal).(*Principal)
	return p, ok && p != nil
}
