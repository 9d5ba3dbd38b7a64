package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// authError is an OAuth 2.0 bearer-token failure (RFC 6750 §3.1).
type authError struct {
	status int    // 400, 401, 403, 500
	code   string // invalid_request, invalid_token, insufficient_scope, "" (no credentials), server_error
	desc   string // safe to show; never contains the token
	scope  string // scope to advertise
}

// wwwAuthenticate renders the challenge: resource_metadata (RFC 9728 §5.1)
// and scope always; error and error_description when there was a token to
// judge (RFC 6750 §3.1: a request without credentials gets no error code).
func (c *config) wwwAuthenticate(e *authError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bearer resource_metadata=%q, scope=%q", c.metadataURL, e.scope)
	if e.code != "" && e.code != "server_error" {
		fmt.Fprintf(&b, ", error=%q", e.code)
		if e.desc != "" {
			fmt.Fprintf(&b, ", error_description=%q", quoteSafe(e.desc))
		}
	}
	return b.String()
}

// quoteSafe keeps error_description inside RFC 6750's allowed characters
// (%x20-21 / %x23-5B / %x5D-7E).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}

// authenticate checks the bearer token of r: it must come in the
// Authorization header (never the query string), verify, be unexpired,
// name a subject, be issued for one of audiences and carry scope.
func (s *Server) authenticate(r *http.Request, audiences []string, scope string) (*auth.TokenInfo, *authError) {
	// RFC 6750 §2.3 allows access_token in the query; MCP forbids it
	// (authorization spec: "MUST NOT include access tokens in the URI query
	// string") because URLs end up in logs and Referer headers. It is a
	// malformed request, so 400 invalid_request (RFC 6750 §3.1), not 401:
	// the client must change how it sends the token, not fetch a new one.
	if r.URL.RawQuery != "" && r.URL.Query().Has("access_token") {
		return nil, &authError{status: http.StatusBadRequest, code: "invalid_request", scope: scope,
			desc: "access tokens are not accepted in the query string; use the Authorization: Bearer header"}
	}
	hdr := r.Header.Values("Authorization")
	if len(hdr) == 0 {
		return nil, &authError{status: http.StatusUnauthorized, scope: scope, desc: "missing bearer token"}
	}
	if len(hdr) > 1 {
		return nil, &authError{status: http.StatusBadRequest, code: "invalid_request", scope: scope, desc: "more than one Authorization header"}
	}
	scheme, token, ok := strings.Cut(hdr[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, &authError{status: http.StatusUnauthorized, scope: scope, desc: "missing bearer token"}
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return nil, &authError{status: http.StatusUnauthorized, code: "invalid_token", scope: scope, desc: "malformed bearer token"}
	}
	ti, err := s.cfg.Verifier(r.Context(), token, r)
	switch {
	case errors.Is(err, auth.ErrInvalidToken):
		return nil, &authError{status: http.StatusUnauthorized, code: "invalid_token", scope: scope, desc: "the access token is invalid, expired or revoked"}
	case errors.Is(err, auth.ErrOAuth):
		return nil, &authError{status: http.StatusBadRequest, code: "invalid_request", scope: scope, desc: "malformed token request"}
	case err != nil:
		s.cfg.Logger.Error("token verifier failed", "err", err) // the error must not hold the token
		return nil, &authError{status: http.StatusInternalServerError, code: "server_error", scope: scope, desc: "token verification is unavailable"}
	case ti == nil:
		return nil, &authError{status: http.StatusUnauthorized, code: "invalid_token", scope: scope, desc: "the access token is invalid"}
	}
	now := s.cfg.Now()
	switch {
	case ti.Expiration.IsZero():
		return nil, &authError{status: http.StatusUnauthorized, code: "invalid_token", scope: scope, desc: "the access token has no expiry"}
	case now.After(ti.Expiration.Add(s.cfg.ClockSkew)):
		return nil, &authError{status: http.StatusUnauthorized, code: "invalid_token", scope: scope, desc: "the access token expired"}
	case ti.UserID == "":
		return nil, &authError{status: http.StatusUnauthorized, code: "invalid_token", scope: scope, desc: "the access token names no subject"}
	}
	aud := audienceOf(ti)
	if !slices.ContainsFunc(audiences, func(a string) bool { return oauthex.MatchesResource(aud, a) }) {
		return nil, &authError{status: http.StatusUnauthorized, code: "invalid_token", scope: scope,
			desc: "the access token was not issued for " + audiences[0]}
	}
	if !slices.Contains(ti.Scopes, scope) {
		return nil, &authError{status: http.StatusForbidden, code: "insufficient_scope", scope: scope,
			desc: "the access token lacks scope " + scope}
	}
	return ti, nil
}

// audienceOf reads Extra[AudienceKey] as []string, string or []any.
func audienceOf(ti *auth.TokenInfo) []string {
	switch v := ti.Extra[AudienceKey].(type) {
	case []string:
		return v
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, a := range v {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func extraString(ti *auth.TokenInfo, key string) string {
	s, _ := ti.Extra[key].(string)
	return s
}

// originAllowed implements the Origin rule for /mcp and the REST bridge:
// no Origin header → allowed; otherwise it must be ResourceURL's origin or
// one of AllowedOrigins ("null" and malformed origins are refused).
//
// Browsers attach Origin to every cross-origin request and to every POST, so
// a page on a foreign origin (including a DNS-rebinding attack on a
// loopback listener) always shows its Origin and is refused here. Clients
// that send no Origin are not browsers (CLIs, agents, servers); they cannot
// be used as a confused deputy by a web page, and they still need a bearer
// token — which, unlike a cookie, no browser attaches on its own.
func (c *config) originAllowed(r *http.Request) bool {
	vals := r.Header.Values("Origin")
	if len(vals) == 0 {
		return true
	}
	if len(vals) > 1 {
		return false
	}
	o, ok := normalizeOrigin(vals[0])
	return ok && c.origins[o]
}

// cors handles the Origin rule and CORS for one endpoint. It reports false
// when it has answered: a foreign origin (403, via deny) or a preflight
// (204). An allowed Origin gets Access-Control-Allow-Origin (credentials
// are bearer tokens, never cookies, so Allow-Credentials is not sent) and
// the MCP headers a browser client must read.
func (c *config) cors(w http.ResponseWriter, r *http.Request, methods string, deny func()) bool {
	if !c.originAllowed(r) {
		deny()
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, WWW-Authenticate, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, X-Correlation-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return false
	}
	return true
}

func normalizeOrigin(s string) (string, bool) {
	if s == "" || s == "null" {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false
	}
	host := strings.ToLower(u.Host)
	if (u.Scheme == "https" && strings.HasSuffix(host, ":443")) || (u.Scheme == "http" && strings.HasSuffix(host, ":80")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	return u.Scheme + "://" + host, true
}

// protectedResourceMetadata serves RFC 9728 metadata for resource.
func (s *Server) protectedResourceMetadata(resource string) http.Handler {
	md := oauthex.ProtectedResourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{s.cfg.IssuerURL},
		ScopesSupported:        []string{ScopeTools},
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "qrngd MCP server",
	}
	body, err := json.Marshal(md)
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Public metadata: any origin may read it (browser-based clients
		// discover it cross-origin).
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(body)
	})
}

type tokenInfoKey struct{}

func withTokenInfo(ctx context.Context, ti *auth.TokenInfo) context.Context {
	return context.WithValue(ctx, tokenInfoKey{}, ti)
}

// verifiedTokenInfo is the TokenVerifier handed to the SDK's
// RequireBearerToken: the token was already verified by authenticate, so it
// only passes the result on. The SDK middleware then puts it where the
// transport looks for it (session-to-subject binding, RequestExtra).
func verifiedTokenInfo(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
	ti, _ := ctx.Value(tokenInfoKey{}).(*auth.TokenInfo)
	if ti == nil {
		return nil, auth.ErrInvalidToken
	}
	return ti, nil
}
