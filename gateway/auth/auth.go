// Package auth is qrngd's token issuer and verifier: JWT access tokens
// (EdDSA by default, ES256 available) whose jti comes from the entropy pool,
// the login/refresh/logout endpoints, the OAuth 2.0 token, revocation
// (RFC 7009) and introspection (RFC 7662) endpoints, the JWKS and the
// RFC 8414 authorization-server metadata, and the gateway's Authorizer.
//
// All durable state lives in package store (users, tenants, API keys,
// revocations, refresh-token families, the audit log, signing keys). Every
// token issuance appends an audit record carrying the entropy pool's health
// snapshot and answers only after that record is durable; when the pool
// cannot serve, issuance answers 503 instead of minting from weaker
// randomness.
//
// Handlers are plain http.Handlers returned by Routes for mounting through
// gateway.Options.Routes; Gin stays in package gateway.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/ratelimit"
	"github.com/qrngd/qrngd/store"
)

// Scopes qrngd knows.
const (
	ScopeRandomRead   = "random:read"
	ScopeSourcesRead  = "sources:read"
	ScopeSourcesAdmin = "sources:admin"
	ScopeMCPTools     = "mcp:tools"
	ScopeTokensAdmin  = "tokens:admin"
)

// AllScopes lists every scope, in the order metadata advertises them.
var AllScopes = []string{ScopeRandomRead, ScopeSourcesRead, ScopeSourcesAdmin, ScopeMCPTools, ScopeTokensAdmin}

// TokenType is the JWT header typ of access tokens (RFC 9068 §2.1).
const TokenType = "at+jwt"

// MaxTokenBytes bounds a presented token; larger ones are refused (401)
// before any parsing.
const MaxTokenBytes = 8 << 10

// Sentinel errors. Verification failures wrap ErrInvalidToken (and
// gateway.ErrInvalidToken when they reach the gateway).
var (
	// ErrInvalidOptions is wrapped by New.
	ErrInvalidOptions = errors.New("gateway/auth: invalid options")
	// ErrInvalidToken: the token is malformed, badly signed, expired, not
	// yet valid, for another issuer or audience, or revoked.
	ErrInvalidToken = errors.New("gateway/auth: invalid token")
	// ErrInvalidTarget: the requested resource is not served by this qrngd.
	ErrInvalidTarget = errors.New("gateway/auth: invalid target")
	// ErrEntropy: the pool could not supply randomness under its policy;
	// issuance is refused (503). Wraps entropy.ErrInsufficientEntropy.
	ErrEntropy = errors.New("gateway/auth: entropy unavailable")
	// ErrProduction is wrapped by CheckProduction.
	ErrProduction = errors.New("gateway/auth: not allowed in production mode")
)

// Entropy is what auth needs of the entropy engine (*entropy.Engine
// satisfies it).
type Entropy interface {
	Read(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error)
	Status() entropy.Status
}

// Stores are the stores auth uses; *bolt.DB and *mem.DB provide them.
type Stores interface {
	Users() store.Users
	Tenants() store.Tenants
	APIKeys() store.APIKeys
	Revocations() store.Revocations
	Refresh() store.RefreshFamilies
	Audit() store.Audit
	Keys() store.SigningKeys
}

// Route names for Options.Limits.
const (
	RouteLogin      = "login"
	RouteRefresh    = "refresh"
	RouteLogout     = "logout"
	RouteToken      = "token"
	RouteRevoke     = "revoke"
	RouteIntrospect = "introspect"
	RouteKeys       = "keys"
	RouteDiscovery  = "discovery" // JWKS and RFC 8414 metadata
	RouteAPI        = "api"       // /v1 and /mcp, through LimitAPI
)

// RouteLimit configures rate limiting of one route: a token bucket per
// client IP and one per authenticated principal (username or client_id).
// nil Options mean the route's defaults; Off disables limiting entirely.
type RouteLimit struct {
	IP        *ratelimit.Options
	Principal *ratelimit.Options
	Off       bool
}

// Backoff configures the per-username / per-client back-off after failed
// logins and client authentications: after Free failures within Window,
// each further failure locks the name for Base·2^(n−Free−1), capped at Max.
// A success clears the count.
type Backoff struct {
	Free    int           // default 5
	Base    time.Duration // default 1 s
	Max     time.Duration // default 15 min
	Window  time.Duration // default 15 min
	MaxKeys int           // names tracked at once; default 100000
	Off     bool
}

// Options configure a Service. Issuer, Entropy and Store are required.
type Options struct {
	// Issuer is the iss of every token and the base of the endpoint URLs in
	// the metadata, e.g. "https://qrng.example.com" (absolute http(s) URL,
	// no query or fragment, no trailing slash).
	Issuer string
	// APIResource is the URL of the REST API resource (default: Issuer).
	APIResource string
	// MCPResource is the URL of the MCP endpoint (default: Issuer + "/mcp").
	// Requests whose path lies under its path are checked against it.
	MCPResource string
	// ResourceMetadataURL, if set, is added to WWW-Authenticate challenges
	// as resource_metadata (RFC 9728) for requests under the MCP path.
	ResourceMetadataURL string

	Entropy Entropy
	Store   Stores
	Logger  *slog.Logger // default: discard

	// Alg signs new tokens: store.AlgEdDSA (default) or store.AlgES256.
	Alg string
	// AccessTTL is the access-token lifetime (default 15 min; 1 min..24 h).
	AccessTTL time.Duration
	// RefreshTTL is the absolute lifetime of a login's refresh-token family
	// (default 24 h; AccessTTL..90 days).
	RefreshTTL time.Duration
	// Leeway is the clock skew tolerated on exp, nbf and iat (default 30 s;
	// 0..60 s).
	Leeway time.Duration
	// KeyRetire is how long a rotated-out signing key stays published
	// (default AccessTTL + Leeway + 1 min).
	KeyRetire time.Duration
	// KeyRotation rotates the signing key at the first issuance after the
	// active key is this old (0: only when RotateSigningKey is called;
	// else at least 1 h and at least KeyRetire).
	KeyRotation time.Duration

	// EntropyTimeout bounds one draw from the pool (default 2 s).
	EntropyTimeout time.Duration
	// MaxBodyBytes bounds request bodies of the auth endpoints (default
	// 16 KiB); larger bodies get 413.
	MaxBodyBytes int64

	// Limits per route name (Route* constants); missing routes use defaults.
	Limits map[string]RouteLimit
	// Backoff after failed logins and client authentications.
	Backoff Backoff

	// VerifiedCache bounds how many verified and issued tokens are
	// remembered so a token presented again, or first presented after
	// being issued here, skips the signature check (default 16384, about
	// 0.5 KiB each; negative disables the cache).
	VerifiedCache int

	// Now is the clock (a test seam); default time.Now.
	Now func() time.Time
}

// Service issues and verifies tokens and serves the auth endpoints. It is
// safe for concurrent use.
type Service struct {
	opts      Options
	log       *slog.Logger
	now       func() time.Time
	st        Stores
	ent       Entropy
	issuer    string
	api, mcp  string
	mcpPath   string
	resources []string

	parser    *jwt.Parser    // decoding (and, in tests, golang-jwt's own verification)
	validator *jwt.Validator // the claim rules parse applies after the signature
	keys      *keyring
	hdrs      headerCache // encoded JWS header of the active key

	cache   *verifiedCache
	limits  map[string]*routeLimiter
	backoff *backoff
}

// New validates opts and returns a Service. It does no I/O: the first
// signing key is created on first use (drawn from the pool through the
// store's random reader), so a pool still in start-up does not block boot.
func New(opts *Options) (*Service, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: Options are required", ErrInvalidOptions)
	}
	o := *opts
	if o.Entropy == nil {
		return nil, fmt.Errorf("%w: Entropy is required", ErrInvalidOptions)
	}
	if o.Store == nil {
		return nil, fmt.Errorf("%w: Store is required", ErrInvalidOptions)
	}
	iss, err := checkURL("Issuer", o.Issuer)
	if err != nil {
		return nil, err
	}
	if o.APIResource == "" {
		o.APIResource = iss
	}
	if o.MCPResource == "" {
		o.MCPResource = iss + "/mcp"
	}
	api, err := checkURL("APIResource", o.APIResource)
	if err != nil {
		return nil, err
	}
	mcpRes, err := checkURL("MCPResource", o.MCPResource)
	if err != nil {
		return nil, err
	}
	mu, _ := url.Parse(mcpRes)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Alg == "" {
		o.Alg = store.AlgEdDSA
	}
	if err := store.CheckAlg(o.Alg); err != nil {
		return nil, fmt.Errorf("%w: Alg: %v", ErrInvalidOptions, err)
	}
	if o.AccessTTL == 0 {
		o.AccessTTL = 15 * time.Minute
	}
	if o.AccessTTL < time.Minute || o.AccessTTL > 24*time.Hour {
		return nil, fmt.Errorf("%w: AccessTTL %v outside 1m..24h", ErrInvalidOptions, o.AccessTTL)
	}
	if o.RefreshTTL == 0 {
		o.RefreshTTL = 24 * time.Hour
	}
	if o.RefreshTTL < o.AccessTTL || o.RefreshTTL > 90*24*time.Hour {
		return nil, fmt.Errorf("%w: RefreshTTL %v outside AccessTTL..90 days", ErrInvalidOptions, o.RefreshTTL)
	}
	if o.Leeway == 0 {
		o.Leeway = 30 * time.Second
	}
	if o.Leeway < 0 || o.Leeway > 60*time.Second {
		return nil, fmt.Errorf("%w: Leeway %v outside 0..60s", ErrInvalidOptions, o.Leeway)
	}
	if o.KeyRetire == 0 {
		o.KeyRetire = o.AccessTTL + o.Leeway + time.Minute
	}
	if o.KeyRetire < o.AccessTTL+o.Leeway {
		return nil, fmt.Errorf("%w: KeyRetire %v shorter than AccessTTL + Leeway", ErrInvalidOptions, o.KeyRetire)
	}
	if o.KeyRotation != 0 && (o.KeyRotation < time.Hour || o.KeyRotation < o.KeyRetire) {
		return nil, fmt.Errorf("%w: KeyRotation %v must be 0 or at least 1h and at least KeyRetire %v", ErrInvalidOptions, o.KeyRotation, o.KeyRetire)
	}
	if o.EntropyTimeout == 0 {
		o.EntropyTimeout = 2 * time.Second
	}
	if o.EntropyTimeout < 0 {
		return nil, fmt.Errorf("%w: EntropyTimeout is negative", ErrInvalidOptions)
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 16 << 10
	}
	if o.MaxBodyBytes < 1024 || o.MaxBodyBytes > 1<<20 {
		return nil, fmt.Errorf("%w: MaxBodyBytes %d outside 1024..1048576", ErrInvalidOptions, o.MaxBodyBytes)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.VerifiedCache == 0 {
		o.VerifiedCache = 1 << 14
	}
	s := &Service{
		cache:     newVerifiedCache(o.VerifiedCache),
		opts:      o,
		log:       o.Logger,
		now:       o.Now,
		st:        o.Store,
		ent:       o.Entropy,
		issuer:    iss,
		api:       api,
		mcp:       mcpRes,
		mcpPath:   strings.TrimSuffix(mu.Path, "/"),
		resources: dedupe(api, mcpRes),
	}
	claimRules := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(iss),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
	}
	s.parser = jwt.NewParser(append(claimRules,
		jwt.WithValidMethods([]string{store.AlgEdDSA, store.AlgES256}),
		jwt.WithStrictDecoding())...)
	s.validator = jwt.NewValidator(claimRules...)
	s.keys = newKeyring(o.Store.Keys(), o.Alg, o.KeyRetire, o.Now)
	if s.limits, err = buildLimits(o.Limits, o.Now); err != nil {
		return nil, err
	}
	if s.backoff, err = newBackoff(o.Backoff, o.Now); err != nil {
		return nil, err
	}
	return s, nil
}

func dedupe(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// checkURL requires an absolute http(s) URL without query, fragment,
// user info or trailing slash, and returns it unchanged.
func checkURL(field, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: %s is required", ErrInvalidOptions, field)
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %s %q: %v", ErrInvalidOptions, field, s, err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return "", fmt.Errorf("%w: %s %q must be an absolute http(s) URL", ErrInvalidOptions, field, s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(s, "#") || strings.HasSuffix(s, "?"):
		return "", fmt.Errorf("%w: %s %q must not have a query, fragment or user info", ErrInvalidOptions, field, s)
	case strings.HasSuffix(u.Path, "/"):
		return "", fmt.Errorf("%w: %s %q must not end with a slash", ErrInvalidOptions, field, s)
	}
	return s, nil
}

// Issuer returns the iss of issued tokens.
func (s *Service) Issuer() string { return s.issuer }

// Resources returns the resource URLs this qrngd serves (API, MCP): the
// aud of tokens issued without a resource parameter.
func (s *Service) Resources() []string { return append([]string(nil), s.resources...) }

// serves reports whether res is one of this qrngd's resources.
func (s *Service) serves(res string) bool {
	for _, r := range s.resources {
		if r == res {
			return true
		}
	}
	return false
}
