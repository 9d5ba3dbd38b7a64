package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/qrngd/qrngd/gateway"
)

// bearer extracts the token of an "Authorization: Bearer <token>" header.
// ok is false when no Authorization header is present; a present but
// malformed or oversized header yields an error.
func bearer(r *http.Request) (tok string, ok bool, err error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", true, fmt.Errorf("%w: more than one Authorization header", ErrInvalidToken)
	}
	h := vals[0]
	if len(h) > MaxTokenBytes+16 {
		return "", true, fmt.Errorf("%w: Authorization header longer than %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false, nil // another scheme (e.g. Basic): no bearer token
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		return "", true, fmt.Errorf("%w: empty bearer token", ErrInvalidToken)
	}
	if len(tok) > MaxTokenBytes {
		return "", true, fmt.Errorf("%w: token is %d bytes, more than %d", ErrInvalidToken, len(tok), MaxTokenBytes)
	}
	return tok, true, nil
}

// ResourceFor returns the resource a request addresses: the MCP resource
// for paths under its path, the API resource otherwise.
func (s *Service) ResourceFor(r *http.Request) string {
	if s.mcpPath != "" && (r.URL.Path == s.mcpPath || strings.HasPrefix(r.URL.Path, s.mcpPath+"/")) {
		return s.mcp
	}
	return s.api
}

// Authorize implements gateway.Authorizer: a Bearer access token whose aud
// names the resource the request addresses and whose scope includes scope.
func (s *Service) Authorize(r *http.Request, scope string) (*gateway.Principal, error) {
	tok, ok, err := bearer(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", gateway.ErrInvalidToken, err)
	}
	if !ok {
		return nil, gateway.ErrUnauthenticated
	}
	c, err := s.Verify(r.Context(), tok, s.ResourceFor(r))
	if err != nil {
		if errors.Is(err, ErrInvalidToken) {
			return nil, fmt.Errorf("%w: %w", gateway.ErrInvalidToken, err)
		}
		return nil, err
	}
	if scope != "" && !c.HasScope(scope) {
		return nil, fmt.Errorf("%w: token lacks scope %s", gateway.ErrInsufficientScope, scope)
	}
	return &gateway.Principal{Subject: c.Subject, ClientID: c.ClientID, Scopes: c.Scopes()}, nil
}

// Challenge implements gateway.Challenger: the RFC 6750 challenge, with the
// RFC 9728 resource_metadata parameter for MCP requests when configured.
func (s *Service) Challenge(r *http.Request, scope string, err error) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="qrngd"`)
	if s.opts.ResourceMetadataURL != "" && s.ResourceFor(r) == s.mcp {
		fmt.Fprintf(&b, `, resource_metadata=%q`, s.opts.ResourceMetadataURL)
	}
	switch {
	case errors.Is(err, gateway.ErrInsufficientScope):
		fmt.Fprintf(&b, `, error="insufficient_scope", scope=%q`, scope)
	case errors.Is(err, gateway.ErrInvalidToken):
		b.WriteString(`, error="invalid_token"`)
	}
	return b.String()
}

// VerifyMCP has the go-sdk auth.TokenVerifier shape: it verifies token
// (signature, exp, iss, revocation, and that aud names one of this
// qrngd's resources; the MCP server narrows that to its own URL) and
// returns UserID = sub, Scopes, Expiration and Extra["aud"] ([]string),
// Extra["client_id"] and Extra["tenant"]. Failures wrap
// sdkauth.ErrInvalidToken.
func (s *Service) VerifyMCP(ctx context.Context, token string, _ *http.Request) (*sdkauth.TokenInfo, error) {
	c, err := s.verifySignature(ctx, token)
	if err == nil {
		served := false
		for _, a := range c.Audience {
			served = served || s.serves(a)
		}
		if !served {
			err = fmt.Errorf("%w: audience %v names no resource of this server", ErrInvalidToken, []string(c.Audience))
		}
	}
	if err == nil {
		err = s.checkRevoked(ctx, c)
	}
	if err != nil {
		if errors.Is(err, ErrInvalidToken) {
			return nil, fmt.Errorf("%w: %w", sdkauth.ErrInvalidToken, err)
		}
		return nil, err
	}
	return &sdkauth.TokenInfo{
		UserID:     c.Subject,
		Scopes:     c.Scopes(),
		Expiration: c.ExpiresAt.Time,
		Extra: map[string]any{
			"aud":       []string(c.Audience),
			"client_id": c.ClientID,
			"tenant":    c.Tenant,
		},
	}, nil
}

// MCPVerifier returns VerifyMCP as an sdkauth.TokenVerifier.
func (s *Service) MCPVerifier() sdkauth.TokenVerifier { return s.VerifyMCP }

var (
	_ gateway.Authorizer = (*Service)(nil)
	_ gateway.Challenger = (*Service)(nil)
)
