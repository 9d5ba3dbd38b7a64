package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/store"
)

// grant is what a token is issued for.
type grant struct {
	kind     string // "password", "refresh_token", "client_credentials"
	subject  string
	clientID string
	tenant   string
	scopes   []string
	aud      []string
	sid      string // refresh family, for login tokens
	remote   string
}

// issued is a signed access token with its claims.
type issued struct {
	token  string
	claims *Claims
	seq    uint64 // audit record
}

// issue mints an access token for g: jti from the pool (drbg), signed with
// the active key, and returns it only after its audit record (with the
// pool health snapshot) is durable.
func (s *Service) issue(ctx context.Context, g grant) (*issued, error) {
	jti, prov, err := s.randomID(ctx, JTIBytes)
	if err != nil {
		return nil, err
	}
	return s.issueWith(ctx, g, jti, prov)
}

func (s *Service) issueWith(ctx context.Context, g grant, jti string, prov entropy.Provenance) (*issued, error) {
	epoch := s.cache.begin() // before the key: an emergency rotation since keeps the token out of the cache
	key, err := s.signingKey(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   g.subject,
			Audience:  jwt.ClaimStrings(g.aud),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.opts.AccessTTL)),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ID:        jti,
		},
		Scope:    strings.Join(g.scopes, " "),
		ClientID: g.clientID,
		Tenant:   g.tenant,
		SID:      g.sid,
	}
	if c.ClientID == "" {
		c.ClientID = s.issuer // login tokens: qrngd itself is the client
	}
	signed, err := signToken(&s.hdrs, key, c)
	if err != nil {
		return nil, fmt.Errorf("gateway/auth: sign: %w", err)
	}
	f := make(map[string]string, 20) // these, the optional ones and poolFields': one allocation
	f["grant"] = g.kind
	f["jti"] = jti
	f["client_id"] = c.ClientID
	f["aud"] = strings.Join(g.aud, " ")
	f["scope"] = c.Scope
	f["exp"] = c.ExpiresAt.UTC().Format(time.RFC3339)
	f["kid"] = key.KID
	f["alg"] = key.Alg
	if g.tenant != "" {
		f["tenant"] = g.tenant
	}
	if g.sid != "" {
		f["sid"] = g.sid
	}
	if g.remote != "" {
		f["remote"] = g.remote
	}
	poolFields(s.ent.Status(), prov, f)
	rec, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "token.issue", Subject: g.subject, Fields: f})
	if err != nil {
		return nil, fmt.Errorf("gateway/auth: audit issuance: %w", err)
	}
	// The token is authentic by construction: its first presentation is a
	// cache hit instead of a signature verification.
	cc := *c
	cc.Audience = slices.Clone(c.Audience)
	s.cache.put(tokenKey(signed), &cc, now, epoch)
	return &issued{token: signed, claims: c, seq: rec.Seq}, nil
}

// Verify checks token and returns its claims: size ≤ 8 KiB, three parts,
// header typ at+jwt, alg EdDSA or ES256 matching the kid's key, kid from a
// strict charset and published, signature, exp required, nbf and iat with
// the configured leeway, iss, and that aud names resource (when resource
// is not empty), then that neither the jti nor its session is revoked.
// Every failure wraps ErrInvalidToken.
func (s *Service) Verify(ctx context.Context, token, resource string) (*Claims, error) {
	c, err := s.verifySignature(ctx, token)
	if err != nil {
		return nil, err
	}
	if resource != "" && !audHas(c.Audience, resource) {
		return nil, fmt.Errorf("%w: audience %v does not include %s", ErrInvalidToken, []string(c.Audience), resource)
	}
	if err := s.checkRevoked(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

func audHas(aud jwt.ClaimStrings, res string) bool {
	for _, a := range aud {
		if a == res {
			return true
		}
	}
	return false
}

// verifySignature does everything Verify does except audience and
// revocation. The returned claims are a copy the caller may keep and
// modify (the audience slice too): the cached claims are shared by every
// request presenting the same token.
func (s *Service) verifySignature(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: token is %d bytes, more than %d", ErrInvalidToken, len(token), MaxTokenBytes)
	}
	key := tokenKey(token)
	epoch := s.cache.begin() // before the key lookup in parse
	if c := s.cache.get(key); c != nil {
		if s.now().Before(c.ExpiresAt.Add(s.opts.Leeway)) {
			cp := *c
			cp.Audience = slices.Clone(c.Audience)
			return &cp, nil
		}
		s.cache.drop(key)
		return nil, fmt.Errorf("%w: token is expired", ErrInvalidToken)
	}
	c, err := s.parse(ctx, token)
	if err != nil {
		return nil, err
	}
	s.cache.put(key, c, s.now(), epoch)
	cp := *c
	cp.Audience = slices.Clone(c.Audience)
	return &cp, nil
}

// parse verifies a token not in the verified-token cache: parseOwn for
// the header qrngd writes, else parseGeneric.
func (s *Service) parse(ctx context.Context, token string) (*Claims, error) {
	if c, ok, err := s.parseOwn(ctx, token); ok {
		return c, err
	}
	return s.parseGeneric(ctx, token)
}

// parseGeneric verifies token as golang-jwt's Parser.ParseWithClaims does
// (it too decodes header and claims before checking the signature), with
// the signature checked by the kid's prepared key (publishedKey.verify)
// and the claims by checkClaims.
func (s *Service) parseGeneric(ctx context.Context, token string) (*Claims, error) {
	c := new(Claims)
	t, parts, err := s.parser.ParseUnverified(token, c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	alg := t.Method.Alg()
	if alg != store.AlgEdDSA && alg != store.AlgES256 {
		return nil, fmt.Errorf("%w: signing method %s is not accepted", ErrInvalidToken, alg)
	}
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, TokenType) && !strings.EqualFold(typ, "application/"+TokenType) {
		return nil, fmt.Errorf("%w: header typ %q is not %s", ErrInvalidToken, typ, TokenType)
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, fmt.Errorf("%w: header has no kid", ErrInvalidToken)
	}
	key, err := s.keys.verifyKey(ctx, kid, alg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if err := key.verify(token[:len(parts[0])+1+len(parts[1])], t.Signature); err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrInvalidToken, jwt.ErrTokenSignatureInvalid, err)
	}
	if err := s.checkClaims(c); err != nil {
		return nil, err
	}
	return c, nil
}

// sidKey is the revocation-list entry that revokes every access token of a
// refresh family (logout, refresh-token reuse).
func sidKey(sid string) string { return "sid:" + sid }

// cidKey is the revocation-list entry that revokes every access token
// issued to an API key (the key was revoked; client IDs are never reused).
func cidKey(clientID string) string { return "cid:" + clientID }

func (s *Service) checkRevoked(ctx context.Context, c *Claims) error {
	rev := s.st.Revocations()
	r, err := rev.IsRevoked(ctx, c.ID)
	if err == nil && !r && c.SID != "" {
		r, err = rev.IsRevoked(ctx, sidKey(c.SID))
	}
	if err == nil && !r && c.ClientID != "" && c.ClientID != s.issuer {
		r, err = rev.IsRevoked(ctx, cidKey(c.ClientID))
	}
	if err != nil {
		return fmt.Errorf("gateway/auth: revocation check: %w", err)
	}
	if r {
		return fmt.Errorf("%w: token revoked", ErrInvalidToken)
	}
	return nil
}

// revokeClaims revokes the token's jti until its expiry (plus leeway).
func (s *Service) revokeClaims(ctx context.Context, c *Claims) error {
	exp := s.now().Add(s.opts.AccessTTL)
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.Time
	}
	if err := s.st.Revocations().Revoke(ctx, c.ID, exp.Add(s.opts.Leeway)); err != nil {
		return fmt.Errorf("gateway/auth: revoke %s: %w", c.ID, err)
	}
	return nil
}

// revokeFamily revokes a refresh family and every access token issued
// from it.
func (s *Service) revokeFamily(ctx context.Context, f store.RefreshFamily, reason string) error {
	if err := s.st.Refresh().Revoke(ctx, f.ID, reason); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("gateway/auth: revoke family: %w", err)
	}
	until := f.ExpiresAt.Add(s.opts.AccessTTL + s.opts.Leeway)
	if err := s.st.Revocations().Revoke(ctx, sidKey(f.ID), until); err != nil {
		return fmt.Errorf("gateway/auth: revoke family tokens: %w", err)
	}
	return nil
}
