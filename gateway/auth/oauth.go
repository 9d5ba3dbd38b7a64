package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/qrngd/qrngd/store"
)

// caller is whoever authenticated to an OAuth endpoint: an API key
// (client credentials) or the bearer of an access token.
type caller struct {
	subject  string
	clientID string
	tenant   string
	scopes   []string
}

// mayManage reports whether c may see or revoke a token of (subject,
// tenant): its own tokens (same subject in the same tenant: a username
// may equal another tenant's client_id), or any token of its tenant with
// tokens:admin (a caller bound to no tenant with tokens:admin manages
// every tenant).
func (c *caller) mayManage(subject, tenant string) bool {
	if c.subject == subject && c.tenant == tenant {
		return true
	}
	return slices.Contains(c.scopes, ScopeTokensAdmin) && (c.tenant == "" || c.tenant == tenant)
}

// clientCredentials extracts client_id and client_secret from HTTP Basic
// (RFC 6749 §2.3.1: both form-urlencoded inside) or from the form body.
// present is false when neither carries credentials.
func clientCredentials(r *http.Request, form map[string]string) (id, secret string, basic, present bool, msg string) {
	bid, bsec, hasBasic := r.BasicAuth()
	_, pid := form["client_id"]
	_, psec := form["client_secret"]
	switch {
	case hasBasic && psec:
		return "", "", true, true, "client credentials sent both in the Authorization header and the body; use one method"
	case hasBasic:
		var err1, err2 error
		id, err1 = url.QueryUnescape(bid)
		secret, err2 = url.QueryUnescape(bsec)
		if err1 != nil || err2 != nil {
			return "", "", true, true, "malformed client credentials in the Authorization header"
		}
		if pid && form["client_id"] != id {
			return "", "", true, true, "client_id in the body differs from the one in the Authorization header"
		}
		return id, secret, true, true, ""
	case psec:
		return form["client_id"], form["client_secret"], false, true, ""
	}
	return "", "", false, false, ""
}

// authClient authenticates an API key with per-client back-off. On failure
// it has written the RFC 6749 error.
func (s *Service) authClient(w http.ResponseWriter, r *http.Request, form map[string]string, route string) (*caller, bool) {
	id, secret, basic, present, msg := clientCredentials(r, form)
	fail := func(status int, code, desc string) (*caller, bool) {
		if basic || status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="qrngd", charset="UTF-8"`)
		}
		oauthError(w, status, code, desc)
		return nil, false
	}
	switch {
	case msg != "":
		return fail(http.StatusBadRequest, "invalid_request", msg)
	case !present:
		return fail(http.StatusUnauthorized, "invalid_client", "client authentication required (client_secret_basic or client_secret_post)")
	case store.ValidateID("client_id", id) != nil || len(secret) == 0 || len(secret) > 256:
		return fail(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if d := s.backoff.wait("client:" + id); d > 0 {
		s.refuseBackoff(w, d, true)
		return nil, false
	}
	k, err := s.st.APIKeys().Authenticate(r.Context(), id, secret)
	switch {
	case errors.Is(err, store.ErrBadCredentials), errors.Is(err, store.ErrRevoked):
		s.backoff.fail("client:" + id)
		s.log.InfoContext(r.Context(), "client authentication failed", "client_id", id, "remote", clientIP(r))
		return fail(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	case err != nil:
		s.log.ErrorContext(r.Context(), "client authentication", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
		return nil, false
	}
	s.backoff.ok("client:" + id)
	if !s.allowPrincipal(w, route, "client:"+id, true) {
		return nil, false
	}
	return &caller{subject: k.ClientID, clientID: k.ClientID, tenant: k.Tenant, scopes: k.Scopes}, true
}

// authCaller accepts a Bearer access token or client credentials.
func (s *Service) authCaller(w http.ResponseWriter, r *http.Request, form map[string]string, route string) (*caller, bool) {
	tok, ok, err := bearer(r)
	if !ok {
		return s.authClient(w, r, form, route)
	}
	var c *Claims
	if err == nil {
		c, err = s.verifyServed(r.Context(), tok)
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qrngd", error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return nil, false
	}
	if !s.allowPrincipal(w, route, "sub:"+c.Subject, true) {
		return nil, false
	}
	return &caller{subject: c.Subject, clientID: c.ClientID, tenant: c.Tenant, scopes: c.Scopes()}, true
}

// token serves POST /oauth/token (client_credentials).
func (s *Service) token(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodPost) || !s.allowIP(w, r, RouteToken, true) {
		return
	}
	form, ok := s.readForm(w, r, "grant_type", "scope", "resource", "client_id", "client_secret")
	if !ok {
		return
	}
	switch gt := form["grant_type"]; gt {
	case "client_credentials":
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported here (users log in at /auth/login)")
		return
	}
	cl, ok := s.authClient(w, r, form, RouteToken)
	if !ok {
		return
	}
	scopes := cl.scopes
	if sc, ok := form["scope"]; ok {
		req := strings.Fields(sc)
		if len(req) == 0 || len(sc) > 1024 {
			oauthError(w, http.StatusBadRequest, "invalid_scope", "scope is empty or too long")
			return
		}
		for _, x := range req {
			if !slices.Contains(cl.scopes, x) {
				oauthError(w, http.StatusBadRequest, "invalid_scope", "scope "+strconvQuote(x)+" is not granted to this client")
				return
			}
		}
		slices.Sort(req)
		scopes = slices.Compact(req)
	}
	aud := s.resources
	if res, ok := form["resource"]; ok {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" || !s.serves(res) {
			oauthError(w, http.StatusBadRequest, "invalid_target", "resource "+strconvQuote(truncate(res, 200))+" is not served by this server")
			return
		}
		aud = []string{res}
	}
	tok, err := s.issue(r.Context(), grant{kind: "client_credentials", subject: cl.subject, clientID: cl.clientID,
		tenant: cl.tenant, scopes: scopes, aud: aud, remote: clientIP(r)})
	if err != nil {
		s.issueFailed(w, r, err, true)
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok.token, TokenType: "Bearer",
		ExpiresIn: int64(s.opts.AccessTTL.Seconds()), Scope: tok.claims.Scope})
}

// tokenRequest reads the common part of a revocation or introspection
// request (RFC 7009 §2.1, RFC 7662 §2.1): POST, per-IP limit, an
// authenticated caller and a non-empty token. On false it has answered.
func (s *Service) tokenRequest(w http.ResponseWriter, r *http.Request, route string) (*caller, string, bool) {
	if !methodOnly(w, r, http.MethodPost) || !s.allowIP(w, r, route, true) {
		return nil, "", false
	}
	form, ok := s.readForm(w, r, "token", "token_type_hint", "client_id", "client_secret")
	if !ok {
		return nil, "", false
	}
	cl, ok := s.authCaller(w, r, form, route)
	if !ok {
		return nil, "", false
	}
	tok := form["token"]
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return nil, "", false
	}
	return cl, tok, true
}

// revoke serves POST /oauth/revoke (RFC 7009). Unknown, malformed and
// already invalid tokens answer 200, as §2.2 requires; a token the caller
// may not manage (another subject, or another tenant) is refused.
func (s *Service) revoke(w http.ResponseWriter, r *http.Request) {
	cl, tok, ok := s.tokenRequest(w, r, RouteRevoke)
	if !ok {
		return
	}
	ctx := r.Context()
	var subject, typ, id string
	var do func() error
	if wellFormedRefresh(tok) {
		fam, err := s.st.Refresh().Lookup(ctx, refreshID(tok))
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.issueFailed(w, r, err, true)
				return
			}
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		if !cl.mayManage(fam.Subject, fam.Tenant) {
			oauthError(w, http.StatusForbidden, "unauthorized_client", "this token was not issued to the caller or its tenant")
			return
		}
		subject, typ, id = fam.Subject, "refresh_token", fam.ID
		do = func() error { return s.revokeFamily(ctx, fam, "revoked by "+cl.subject) }
	} else {
		c, err := s.verifySignature(ctx, tok)
		if err != nil { // invalid or expired: nothing to revoke
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		if !cl.mayManage(c.Subject, c.Tenant) {
			oauthError(w, http.StatusForbidden, "unauthorized_client", "this token was not issued to the caller or its tenant")
			return
		}
		subject, typ, id = c.Subject, "access_token", c.ID
		do = func() error { return s.revokeClaims(ctx, c) }
	}
	if err := do(); err != nil {
		s.issueFailed(w, r, err, true)
		return
	}
	if _, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "token.revoke", Subject: subject,
		Fields: map[string]string{"token_type": typ, "id": id, "by": cl.subject, "remote": clientIP(r)}}); err != nil {
		s.issueFailed(w, r, err, true)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// introspection is an RFC 7662 response.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Tenant    string   `json:"tenant,omitempty"`
}

// introspect serves POST /oauth/introspect (RFC 7662). The caller must
// authenticate; tokens it may not manage answer {"active":false}.
func (s *Service) introspect(w http.ResponseWriter, r *http.Request) {
	cl, tok, ok := s.tokenRequest(w, r, RouteIntrospect)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.inspect(r.Context(), cl, tok))
}

func (s *Service) inspect(ctx context.Context, cl *caller, tok string) introspection {
	inactive := introspection{}
	if wellFormedRefresh(tok) {
		fam, err := s.st.Refresh().Lookup(ctx, refreshID(tok))
		if err != nil || fam.Revoked || fam.Current != refreshID(tok) || !s.now().Before(fam.ExpiresAt) ||
			!cl.mayManage(fam.Subject, fam.Tenant) {
			return inactive
		}
		if u, err := s.st.Users().Get(ctx, fam.Subject); err != nil || !sessionValid(u, fam) {
			return inactive // /auth/refresh would refuse it
		}
		return introspection{Active: true, Scope: strings.Join(fam.Scopes, " "), Username: fam.Subject, Sub: fam.Subject,
			TokenType: "refresh_token", Exp: fam.ExpiresAt.Unix(), Iat: fam.Created.Unix(), Iss: s.issuer, Tenant: fam.Tenant,
			ClientID: s.issuer}
	}
	c, err := s.verifyServed(ctx, tok)
	if err != nil || !cl.mayManage(c.Subject, c.Tenant) {
		return inactive
	}
	out := introspection{Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "Bearer",
		Exp: c.ExpiresAt.Unix(), Iat: c.IssuedAt.Unix(), Nbf: c.NotBefore.Unix(), Sub: c.Subject,
		Aud: c.Audience, Iss: c.Issuer, Jti: c.ID, Tenant: c.Tenant}
	if c.ClientID == s.issuer {
		out.Username = c.Subject
	}
	return out
}

// jwks serves GET /.well-known/jwks.json.
func (s *Service) jwks(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodGet) || !s.allowIP(w, r, RouteDiscovery, false) {
		return
	}
	// Make sure the active key exists so verifiers can fetch it before
	// the first token is issued.
	if _, err := s.keys.current(r.Context()); err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	set, err := s.keys.set(r.Context())
	if err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

// Metadata is the RFC 8414 authorization-server metadata document.
type Metadata struct {
	Issuer                           string   `json:"issuer"`
	TokenEndpoint                    string   `json:"token_endpoint"`
	JWKSURI                          string   `json:"jwks_uri"`
	RevocationEndpoint               string   `json:"revocation_endpoint"`
	IntrospectionEndpoint            string   `json:"introspection_endpoint"`
	ScopesSupported                  []string `json:"scopes_supported"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	GrantTypesSupported              []string `json:"grant_types_supported"`
	TokenEndpointAuthMethods         []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods []string `json:"introspection_endpoint_auth_methods_supported"`
}

// Metadata returns the RFC 8414 document. Besides the advertised client
// authentication methods, /oauth/revoke and /oauth/introspect also accept
// a Bearer access token (users revoking or inspecting their own tokens);
// "bearer" is not a registered method name, so it is not advertised.
func (s *Service) Metadata() Metadata {
	auths := []string{"client_secret_basic", "client_secret_post"}
	return Metadata{
		Issuer:                           s.issuer,
		TokenEndpoint:                    s.issuer + "/oauth/token",
		JWKSURI:                          s.issuer + "/.well-known/jwks.json",
		RevocationEndpoint:               s.issuer + "/oauth/revoke",
		IntrospectionEndpoint:            s.issuer + "/oauth/introspect",
		ScopesSupported:                  slices.Clone(AllScopes),
		ResponseTypesSupported:           []string{},
		GrantTypesSupported:              []string{"client_credentials"},
		TokenEndpointAuthMethods:         auths,
		RevocationEndpointAuthMethods:    slices.Clone(auths),
		IntrospectionEndpointAuthMethods: slices.Clone(auths),
	}
}

func (s *Service) metadata(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodGet) || !s.allowIP(w, r, RouteDiscovery, false) {
		return
	}
	writeJSON(w, http.StatusOK, s.Metadata())
}

func strconvQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}
