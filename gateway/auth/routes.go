package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/store"
)

// Routes returns the endpoints to mount through gateway.Options.Routes.
// They authenticate themselves (Scope ""):
//
//	POST /auth/login, /auth/refresh, /auth/logout
//	POST /oauth/token, /oauth/revoke, /oauth/introspect
//	GET  /.well-known/jwks.json, /.well-known/oauth-authorization-server
//	GET  /v1/keys, POST /v1/keys, DELETE /v1/keys/:client_id  (tokens:admin, tenant-scoped)
func (s *Service) Routes() []gateway.Route {
	post := []string{http.MethodPost}
	get := []string{http.MethodGet}
	return []gateway.Route{
		{Methods: post, Path: "/auth/login", Handler: http.HandlerFunc(s.login)},
		{Methods: post, Path: "/auth/refresh", Handler: http.HandlerFunc(s.refresh)},
		{Methods: post, Path: "/auth/logout", Handler: http.HandlerFunc(s.logout)},
		{Methods: post, Path: "/oauth/token", Handler: http.HandlerFunc(s.token)},
		{Methods: post, Path: "/oauth/revoke", Handler: http.HandlerFunc(s.revoke)},
		{Methods: post, Path: "/oauth/introspect", Handler: http.HandlerFunc(s.introspect)},
		{Methods: get, Path: "/.well-known/jwks.json", Handler: http.HandlerFunc(s.jwks)},
		{Methods: get, Path: "/.well-known/oauth-authorization-server", Handler: http.HandlerFunc(s.metadata)},
		{Methods: []string{http.MethodGet, http.MethodPost}, Path: "/v1/keys", Handler: http.HandlerFunc(s.keysAPI)},
		{Methods: []string{http.MethodDelete}, Path: "/v1/keys/:client_id", Handler: http.HandlerFunc(s.keysAPI)},
	}
}

// adminCaller authenticates a Bearer token for the API resource with scope
// tokens:admin.
func (s *Service) adminCaller(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	tok, ok, err := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qrngd"`)
		apiError(w, http.StatusUnauthorized, "unauthenticated", "this request needs a bearer token with scope "+ScopeTokensAdmin)
		return nil, false
	}
	var c *Claims
	if err == nil {
		c, err = s.Verify(r.Context(), tok, s.api)
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qrngd", error="invalid_token"`)
		apiError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return nil, false
	}
	if !c.HasScope(ScopeTokensAdmin) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qrngd", error="insufficient_scope", scope="`+ScopeTokensAdmin+`"`)
		apiError(w, http.StatusForbidden, "insufficient_scope", "this request needs scope "+ScopeTokensAdmin)
		return nil, false
	}
	return c, s.allowPrincipal(w, RouteKeys, "sub:"+c.Subject, false)
}

// keysAPI lets a tenant's admin manage that tenant's API keys:
//
//	GET    /v1/keys            list (a tenant admin sees only its tenant; a
//	                           global admin sees all, or ?tenant=ID)
//	POST   /v1/keys            {"name","scope"[,"tenant"]} → key + client_secret (shown once);
//	                           scopes must be a subset of the caller's
//	DELETE /v1/keys/{client_id} revoke; another tenant's key is 404
func (s *Service) keysAPI(w http.ResponseWriter, r *http.Request) {
	if !s.allowIP(w, r, RouteKeys, false) {
		return
	}
	c, ok := s.adminCaller(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		tenant := c.Tenant
		if q := r.URL.Query().Get("tenant"); q != "" && tenant == "" {
			tenant = q
		}
		keys, err := s.st.APIKeys().List(ctx, tenant)
		if err != nil {
			s.internal(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	case http.MethodPost:
		in, ok := s.readJSON(w, r, []string{"scope"}, "name", "tenant")
		if !ok {
			return
		}
		tenant := c.Tenant
		if t := in["tenant"]; t != "" {
			if c.Tenant != "" && t != c.Tenant {
				apiError(w, http.StatusForbidden, "forbidden", "a tenant admin can only create keys for its own tenant")
				return
			}
			tenant = t
		}
		if tenant == "" {
			apiError(w, http.StatusBadRequest, "bad_request", "tenant is required")
			return
		}
		scopes := strings.Fields(in["scope"])
		for _, sc := range scopes {
			if !c.HasScope(sc) {
				apiError(w, http.StatusForbidden, "forbidden", "cannot grant scope "+strconvQuote(sc)+" the caller does not hold")
				return
			}
		}
		key, secret, err := s.st.APIKeys().Create(ctx, store.APIKeySpec{Tenant: tenant, Name: in["name"], Scopes: scopes})
		switch {
		case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrNotFound):
			apiError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		case err != nil:
			s.internal(w, r, err)
			return
		}
		if _, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "key.create", Subject: key.ClientID,
			Fields: map[string]string{"tenant": key.Tenant, "by": c.Subject, "scope": strings.Join(key.Scopes, " ")}}); err != nil {
			s.internal(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"key": key, "client_secret": secret})
	case http.MethodDelete:
		id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		k, err := s.st.APIKeys().Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) || err == nil && c.Tenant != "" && k.Tenant != c.Tenant {
			apiError(w, http.StatusNotFound, "not_found", "no such key")
			return
		}
		if err == nil {
			_, err = s.RevokeClient(ctx, id, c.Subject)
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"revoked": id})
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		apiError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET, POST or DELETE")
	}
}

func (s *Service) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "request failed", "err", err)
	apiError(w, http.StatusInternalServerError, "internal", "internal error")
}

// Demo credentials seeded in dev mode.
const (
	DemoUsername = "demo"
	DemoPassword = "demo123"
)

// SeedDemo creates the dev-only user demo/demo123 holding every scope, or
// gives an existing demo user every scope again. Call it only in dev mode;
// CheckProduction refuses a store holding it.
func SeedDemo(ctx context.Context, users store.Users) error {
	u := store.User{Username: DemoUsername, Scopes: slices.Clone(AllScopes)}
	err := users.Create(ctx, u, DemoPassword)
	if errors.Is(err, store.ErrExists) {
		err = users.Update(ctx, u)
	}
	if err != nil {
		return fmt.Errorf("gateway/auth: seed demo user: %w", err)
	}
	return nil
}

// CheckProduction is the production-mode gate: it refuses configuration
// keys that carry plaintext passwords (plaintextKeys, e.g.
// ["auth.users[0].password"], as found by the config loader) and a store
// holding the demo user, and names what to remove.
func CheckProduction(ctx context.Context, users store.Users, plaintextKeys []string) error {
	if len(plaintextKeys) > 0 {
		return fmt.Errorf("%w: plaintext passwords in the configuration (%s); create users with qrngctl user add",
			ErrProduction, strings.Join(plaintextKeys, ", "))
	}
	_, err := users.Get(ctx, DemoUsername)
	switch {
	case err == nil:
		return fmt.Errorf("%w: the demo user %q exists; remove it with qrngctl user rm %s", ErrProduction, DemoUsername, DemoUsername)
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("gateway/auth: production check: %w", err)
	}
	return nil
}
