package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/ratelimit"
)

// Sentinel errors.
var (
	// ErrInvalidOptions is wrapped by New when Options are incomplete or wrong.
	ErrInvalidOptions = errors.New("gateway/mcp: invalid options")
	// ErrAudit is wrapped when the audit log refuses a record; the call's
	// result is then withheld.
	ErrAudit = errors.New("gateway/mcp: audit log unavailable")
)

// Scope every MCP request needs (tokens carry it in their space-separated
// "scope" claim; the verifier puts it in TokenInfo.Scopes).
const ScopeTools = "mcp:tools"

// AudienceKey is the TokenInfo.Extra key under which a Verifier puts the
// token's "aud" claim, as []string (a string or []any are accepted too).
// The resource's URL must be among them (RFC 8707, RFC 9068 §4).
const AudienceKey = "aud"

// ClientIDKey is the optional TokenInfo.Extra key of the "client_id" claim;
// it is copied into audit records.
const ClientIDKey = "client_id"

// Entropy is the seam to the entropy engine (entropy.Engine has these methods).
// Read fills p under mode and reports provenance; it returns an error wrapping
// entropy.ErrInsufficientEntropy when the pool cannot serve.
type Entropy interface {
	Read(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error)
	Status() entropy.Status
}

// Auditor records one tool call. A store-backed implementation lives in
// store/; a failing Append withholds the call's result (fail closed).
type Auditor interface {
	Append(ctx context.Context, rec AuditRecord) error
}

// AuditRecord describes one tool call, successful or not. It never holds the
// arguments or the result themselves (both may be secrets), only a hash and
// a size.
type AuditRecord struct {
	Time          time.Time          `json:"time"`
	Tool          string             `json:"tool"`
	Transport     string             `json:"transport"` // "mcp" or "rest"
	Subject       string             `json:"subject"`
	ClientID      string             `json:"client_id,omitempty"`
	SessionID     string             `json:"session_id,omitempty"`
	CorrelationID string             `json:"correlation_id"`
	ArgsSHA256    string             `json:"args_sha256"` // hex SHA-256 of the raw arguments JSON
	ResultBytes   int                `json:"result_bytes"`
	Duration      time.Duration      `json:"duration_ns"`
	Outcome       string             `json:"outcome"` // ok, invalid_arguments, forbidden, rate_limited, unavailable, error
	Error         string             `json:"error,omitempty"`
	Provenance    entropy.Provenance `json:"provenance"`
}

// Options configure a Server. Entropy, Verifier, Audit, ResourceURL and
// IssuerURL are required.
type Options struct {
	Entropy  Entropy
	Verifier auth.TokenVerifier // checks signature, exp, iss, revocation; fills TokenInfo
	Audit    Auditor
	Logger   *slog.Logger // nil: discard

	// ResourceURL is the canonical URL of the MCP endpoint, e.g.
	// "https://qrng.example.com/mcp": tokens' aud must name it, and the
	// protected-resource metadata is served at
	// /.well-known/oauth-protected-resource<path of ResourceURL>.
	ResourceURL string
	// IssuerURL is qrngd's own authorization server (its "iss").
	IssuerURL string
	// BridgeAudiences are further audiences accepted on the REST bridge
	// (/mcp/tools, /mcp/execute) besides ResourceURL, e.g. the audience of
	// tokens from /auth/login. /mcp itself accepts only ResourceURL.
	BridgeAudiences []string

	// AllowedOrigins lists browser origins ("https://app.example.com") allowed
	// to call; the origin of ResourceURL is always allowed. Requests without
	// an Origin header are allowed (non-browser clients).
	AllowedOrigins []string

	// Stateless serves every request with a throw-away session and no
	// Mcp-Session-Id, so several instances can sit behind a load balancer.
	// GET streams and resumption are then unavailable.
	Stateless bool
	// JSONResponse answers POSTs with application/json instead of an SSE stream.
	JSONResponse bool
	// SessionIdleTimeout closes idle stateful sessions (default 15 min).
	SessionIdleTimeout time.Duration
	// EventStoreMaxBytes bounds the SSE replay buffer over all sessions
	// (default 8 MiB).
	EventStoreMaxBytes int
	// DisableLoopbackHostCheck turns off the SDK's DNS-rebinding guard that
	// refuses non-loopback Host headers on loopback listeners. Needed when a
	// reverse proxy on the same host forwards the public Host; Origin
	// validation and bearer tokens still apply.
	DisableLoopbackHostCheck bool

	// RateLimit applies per token subject to tool calls (nil: 10/s, burst 20,
	// 10000 subjects).
	RateLimit *ratelimit.Options
	// SessionRateLimit applies per token subject to initialize requests, so
	// one principal cannot pile up sessions (nil: 1 per 10 s, burst 10).
	// Together with SessionIdleTimeout it bounds the sessions held.
	SessionRateLimit *ratelimit.Options
	// ToolScopes overrides the scope a tool requires (default ScopeTools).
	ToolScopes map[string]string

	// MaxBodyBytes bounds request bodies (default 1 MiB); larger get 413.
	MaxBodyBytes int64
	// ClockSkew tolerated on token expiry (default 30 s).
	ClockSkew time.Duration
	// Version is reported as serverInfo.version.
	Version string

	// Now is the clock for token expiry and audit timestamps; a test seam.
	Now func() time.Time
}

const (
	defaultMaxBodyBytes       = 1 << 20
	defaultSessionIdleTimeout = 15 * time.Minute
	defaultEventStoreMaxBytes = 8 << 20
	defaultClockSkew          = 30 * time.Second
)

// validated options with defaults applied and URLs parsed.
type config struct {
	Options
	resource      *url.URL
	metadataURL   string // path-form RFC 9728 URL
	metadataPath  string // its path
	selfOrigin    string
	origins       map[string]bool
	bridgeAud     []string
	toolScopes    map[string]string
	rateLimitOpts ratelimit.Options
	sessionLimit  ratelimit.Options
}

func newConfig(opts *Options) (*config, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: options are required", ErrInvalidOptions)
	}
	c := &config{Options: *opts}
	switch {
	case c.Entropy == nil:
		return nil, fmt.Errorf("%w: Entropy is nil", ErrInvalidOptions)
	case c.Verifier == nil:
		return nil, fmt.Errorf("%w: Verifier is nil", ErrInvalidOptions)
	case c.Audit == nil:
		return nil, fmt.Errorf("%w: Audit is nil", ErrInvalidOptions)
	case c.MaxBodyBytes < 0:
		return nil, fmt.Errorf("%w: MaxBodyBytes %d is negative", ErrInvalidOptions, c.MaxBodyBytes)
	case c.SessionIdleTimeout < 0:
		return nil, fmt.Errorf("%w: SessionIdleTimeout %v is negative", ErrInvalidOptions, c.SessionIdleTimeout)
	case c.EventStoreMaxBytes < 0:
		return nil, fmt.Errorf("%w: EventStoreMaxBytes %d is negative", ErrInvalidOptions, c.EventStoreMaxBytes)
	case c.ClockSkew < 0:
		return nil, fmt.Errorf("%w: ClockSkew %v is negative", ErrInvalidOptions, c.ClockSkew)
	}
	var err error
	if c.resource, err = parseHTTPURL("ResourceURL", c.ResourceURL); err != nil {
		return nil, err
	}
	if c.resource.Path == "" || c.resource.Path == "/" {
		return nil, fmt.Errorf("%w: ResourceURL %q needs the endpoint path (e.g. /mcp)", ErrInvalidOptions, c.ResourceURL)
	}
	if _, err := parseHTTPURL("IssuerURL", c.IssuerURL); err != nil {
		return nil, err
	}
	c.selfOrigin = c.resource.Scheme + "://" + strings.ToLower(c.resource.Host)
	c.metadataPath = "/.well-known/oauth-protected-resource" + strings.TrimSuffix(c.resource.Path, "/")
	c.metadataURL = c.selfOrigin + c.metadataPath
	c.origins = map[string]bool{c.selfOrigin: true}
	for _, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%w: AllowedOrigins entry %q is not an origin like https://host[:port]", ErrInvalidOptions, o)
		}
		c.origins[u.Scheme+"://"+strings.ToLower(u.Host)] = true
	}
	c.bridgeAud = append([]string{c.ResourceURL}, c.BridgeAudiences...)
	c.toolScopes = map[string]string{}
	for name, sc := range c.ToolScopes {
		if sc == "" || strings.ContainsAny(sc, " \"\\") {
			return nil, fmt.Errorf("%w: ToolScopes[%q] = %q is not a scope token", ErrInvalidOptions, name, sc)
		}
		c.toolScopes[name] = sc
	}
	if c.RateLimit != nil {
		c.rateLimitOpts = *c.RateLimit
	}
	c.sessionLimit = ratelimit.Options{Rate: 0.1, Burst: 10}
	if c.SessionRateLimit != nil {
		c.sessionLimit = *c.SessionRateLimit
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = defaultMaxBodyBytes
	}
	if c.SessionIdleTimeout == 0 {
		c.SessionIdleTimeout = defaultSessionIdleTimeout
	}
	if c.EventStoreMaxBytes == 0 {
		c.EventStoreMaxBytes = defaultEventStoreMaxBytes
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = defaultClockSkew
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c, nil
}

func parseHTTPURL(field, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, fmt.Errorf("%w: %s %q is not an absolute URL", ErrInvalidOptions, field, s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("%w: %s %q: scheme must be https (or http for development)", ErrInvalidOptions, field, s)
	}
	if u.Fragment != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("%w: %s %q must have no query or fragment", ErrInvalidOptions, field, s)
	}
	return u, nil
}
