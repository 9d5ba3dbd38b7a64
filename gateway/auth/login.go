package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/store"
)

// RefreshPrefix starts every opaque refresh token.
const RefreshPrefix = "qrt_"

// refreshID is the identifier a refresh token is stored under: the hex
// SHA-256 of the token, so the store never holds the bearer secret.
func refreshID(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// wellFormedRefresh checks the shape of a refresh token before hashing.
func wellFormedRefresh(tok string) bool {
	b, ok := strings.CutPrefix(tok, RefreshPrefix)
	if !ok || len(b) != base64.RawURLEncoding.EncodedLen(RefreshBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(b)
	return err == nil
}

// sessionIDs draws jti, family ID and refresh token in one pool read.
func (s *Service) sessionIDs(ctx context.Context) (jti, fid, rt string, prov entropy.Provenance, err error) {
	b := make([]byte, JTIBytes+JTIBytes+RefreshBytes)
	defer clear(b)
	if prov, err = s.draw(ctx, b, entropy.ModeDRBG); err != nil {
		return "", "", "", prov, err
	}
	e := base64.RawURLEncoding.EncodeToString
	return e(b[:JTIBytes]), e(b[JTIBytes : 2*JTIBytes]), RefreshPrefix + e(b[2*JTIBytes:]), prov, nil
}

// tokenResponse is the body of /auth/login and /auth/refresh.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
}

// issueFailed answers a failed issuance: 503 when the pool could not
// serve, 500 otherwise (logged).
func (s *Service) issueFailed(w http.ResponseWriter, r *http.Request, err error, oauth bool) {
	if isEntropyErr(err) {
		w.Header().Set("Retry-After", "1")
		msg := "the entropy pool cannot serve under its policy; no token was issued"
		if oauth {
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", msg)
		} else {
			apiError(w, http.StatusServiceUnavailable, "entropy_unavailable", msg)
		}
		s.log.WarnContext(r.Context(), "token issuance refused: entropy unavailable", "err", err)
		return
	}
	s.log.ErrorContext(r.Context(), "token issuance failed", "err", err)
	if oauth {
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
	} else {
		apiError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// login serves POST /auth/login {"username","password"}.
func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodPost) || !s.allowIP(w, r, RouteLogin, false) {
		return
	}
	in, ok := s.readJSON(w, r, []string{"username", "password"})
	if !ok {
		return
	}
	name, pw := in["username"], in["password"]
	if err := store.ValidateUsername(name); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
		return
	}
	if err := store.ValidatePassword(pw); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
		return
	}
	if d := s.backoff.attempt("user:" + name); d > 0 { // charged as a failure until it succeeds
		s.refuseBackoff(w, d, false)
		return
	}
	ctx := r.Context()
	u, err := s.st.Users().Authenticate(ctx, name, pw)
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		s.log.InfoContext(ctx, "login failed", "username", name, "remote", clientIP(r))
		apiError(w, http.StatusUnauthorized, "invalid_credentials", "unknown username or wrong password")
		return
	case errors.Is(err, store.ErrDisabled):
		s.backoff.refund("user:" + name)
		apiError(w, http.StatusForbidden, "account_disabled", "this account is disabled")
		return
	case err != nil:
		s.backoff.refund("user:" + name)
		s.issueFailed(w, r, err, false)
		return
	}
	s.backoff.ok("user:" + name)
	jti, fid, rt, prov, err := s.sessionIDs(ctx)
	if err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	now := s.now()
	fam := store.RefreshFamily{ID: fid, Subject: u.Username, Tenant: u.Tenant, Scopes: u.Scopes,
		Created: now, ExpiresAt: now.Add(s.opts.RefreshTTL), Current: refreshID(rt)}
	if err := s.st.Refresh().Create(ctx, fam); err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	tok, err := s.issueWith(ctx, grant{kind: "password", subject: u.Username, tenant: u.Tenant, scopes: u.Scopes,
		aud: s.resources, sid: fid, remote: clientIP(r)}, jti, prov)
	if err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok.token, RefreshToken: rt, TokenType: "bearer",
		ExpiresIn: int64(s.opts.AccessTTL.Seconds()), Scope: tok.claims.Scope})
}

// refresh serves POST /auth/refresh {"refresh_token"}: rotation with reuse
// detection. A reused token revokes its whole family and every access
// token issued from it, and the event is audited.
func (s *Service) refresh(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodPost) || !s.allowIP(w, r, RouteRefresh, false) {
		return
	}
	in, ok := s.readJSON(w, r, []string{"refresh_token"})
	if !ok {
		return
	}
	old := in["refresh_token"]
	if !wellFormedRefresh(old) {
		apiError(w, http.StatusUnauthorized, "invalid_refresh_token", "the refresh token is malformed")
		return
	}
	ctx := r.Context()
	// Look first (read-only) so that the per-user limit and the account
	// check happen before the rotation: a refused request must not consume
	// the refresh token, or the client's retry would count as reuse.
	cur, err := s.st.Refresh().Lookup(ctx, refreshID(old))
	switch {
	case errors.Is(err, store.ErrNotFound):
		apiError(w, http.StatusUnauthorized, "invalid_refresh_token", "the refresh token is unknown, revoked or expired")
		return
	case err != nil:
		s.issueFailed(w, r, err, false)
		return
	}
	if !s.allowPrincipal(w, RouteRefresh, "user:"+cur.Subject, false) {
		return
	}
	// The user may have been removed, disabled or lost scopes since login,
	// moved to another tenant (the family carries the login's tenant),
	// removed and re-created under the same name (another account), or had
	// the password changed (as after a compromise): all but lost scopes end
	// the session rather than mint tokens for a stale tenant, a different
	// person or whoever held the old password.
	u, err := s.st.Users().Get(ctx, cur.Subject)
	if err != nil || !sessionValid(u, cur) {
		if err == nil || errors.Is(err, store.ErrNotFound) {
			if rerr := s.revokeFamily(ctx, cur, "user removed, disabled, re-created, moved or password changed"); rerr != nil {
				s.log.ErrorContext(ctx, "revoking the family of a removed user failed", "sid", cur.ID, "err", rerr)
			}
			apiError(w, http.StatusUnauthorized, "invalid_refresh_token", "the session has ended: the account was removed, disabled, moved to another tenant or given a new password")
			return
		}
		s.issueFailed(w, r, err, false)
		return
	}
	jti, _, rt, prov, err := s.sessionIDs(ctx)
	if err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	fam, err := s.st.Refresh().Rotate(ctx, refreshID(old), refreshID(rt))
	switch {
	case errors.Is(err, store.ErrReused):
		rerr := s.revokeFamily(ctx, fam, "reuse")
		_, aerr := s.st.Audit().Append(ctx, store.AuditEvent{Type: "token.refresh_reuse", Subject: fam.Subject,
			Fields: map[string]string{"sid": fam.ID, "remote": clientIP(r), "generation": strconv.Itoa(fam.Generation)}})
		if err := errors.Join(rerr, aerr); err != nil {
			s.log.ErrorContext(ctx, "refresh reuse: revoking or auditing failed", "sid", fam.ID, "err", err)
		}
		s.log.WarnContext(ctx, "refresh token reused; session revoked", "subject", fam.Subject, "sid", fam.ID, "remote", clientIP(r))
		apiError(w, http.StatusUnauthorized, "invalid_refresh_token", "refresh token reused; the session has been revoked")
		return
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrExpired):
		apiError(w, http.StatusUnauthorized, "invalid_refresh_token", "the refresh token is unknown, revoked or expired")
		return
	case err != nil:
		s.issueFailed(w, r, err, false)
		return
	}
	scopes := intersect(fam.Scopes, u.Scopes)
	tok, err := s.issueWith(ctx, grant{kind: "refresh_token", subject: fam.Subject, tenant: fam.Tenant, scopes: scopes,
		aud: s.resources, sid: fam.ID, remote: clientIP(r)}, jti, prov)
	if err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok.token, RefreshToken: rt, TokenType: "bearer",
		ExpiresIn: int64(s.opts.AccessTTL.Seconds()), Scope: tok.claims.Scope})
}

// logout serves POST /auth/logout with a Bearer token: it revokes the
// token and, for login tokens, its refresh family and the family's other
// access tokens.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	if !methodOnly(w, r, http.MethodPost) || !s.allowIP(w, r, RouteLogout, false) {
		return
	}
	tok, ok, err := bearer(r)
	if !ok || err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qrngd"`)
		apiError(w, http.StatusUnauthorized, "unauthenticated", "logout needs the access token as a Bearer credential")
		return
	}
	ctx := r.Context()
	c, err := s.verifyServed(ctx, tok)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qrngd", error="invalid_token"`)
		apiError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked")
		return
	}
	if !s.allowPrincipal(w, RouteLogout, "sub:"+c.Subject, false) {
		return
	}
	if err := s.revokeClaims(ctx, c); err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	if c.SID != "" {
		if err := s.st.Refresh().Revoke(ctx, c.SID, "logout"); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.issueFailed(w, r, err, false)
			return
		}
		until := s.now().Add(s.opts.RefreshTTL + s.opts.AccessTTL + s.opts.Leeway)
		if err := s.st.Revocations().Revoke(ctx, sidKey(c.SID), until); err != nil {
			s.issueFailed(w, r, err, false)
			return
		}
	}
	if _, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "token.logout", Subject: c.Subject,
		Fields: map[string]string{"jti": c.ID, "sid": c.SID, "remote": clientIP(r)}}); err != nil {
		s.issueFailed(w, r, err, false)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": true})
}

// verifyServed verifies a token whose aud names any resource of this
// qrngd, and that it is not revoked.
func (s *Service) verifyServed(ctx context.Context, tok string) (*Claims, error) {
	c, err := s.verifySignature(ctx, tok)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(c.Audience, s.serves) {
		return nil, ErrInvalidToken
	}
	if err := s.checkRevoked(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// sessionValid reports whether refresh family f may still be used by u,
// the current record of its subject: not disabled, in the same tenant,
// the same account (not re-created since) and no password change since.
func sessionValid(u store.User, f store.RefreshFamily) bool {
	return !u.Disabled && u.Tenant == f.Tenant && !u.Created.After(f.Created) && !u.PasswordChanged.After(f.Created)
}

func intersect(a, b []string) []string {
	out := make([]string, 0, len(a))
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
