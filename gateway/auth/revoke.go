package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qrngd/qrngd/store"
)

// Revoked describes what RevokeToken revoked.
type Revoked struct {
	Type    string    `json:"type"` // "access_token" or "refresh_token"
	ID      string    `json:"id"`   // jti, or the refresh family ID
	Subject string    `json:"subject"`
	Tenant  string    `json:"tenant,omitempty"`
	Until   time.Time `json:"until"` // the revocation entry's expiry
}

// RevokeToken revokes an access token (by its jti, after checking its
// signature; an already expired token needs no revocation and is
// ErrInvalidToken) or a refresh token (its whole family), durably, and
// audits it with by as the actor. It serves the admin socket.
func (s *Service) RevokeToken(ctx context.Context, token, by string) (Revoked, error) {
	if wellFormedRefresh(token) {
		fam, err := s.st.Refresh().Lookup(ctx, refreshID(token))
		if err != nil {
			return Revoked{}, fmt.Errorf("gateway/auth: refresh token: %w", err)
		}
		if err := s.revokeFamily(ctx, fam, "revoked by "+by); err != nil {
			return Revoked{}, err
		}
		out := Revoked{Type: "refresh_token", ID: fam.ID, Subject: fam.Subject, Tenant: fam.Tenant,
			Until: fam.ExpiresAt.Add(s.opts.AccessTTL + s.opts.Leeway)}
		return out, s.auditRevoke(ctx, out, by)
	}
	c, err := s.verifySignature(ctx, token)
	if err != nil {
		return Revoked{}, err
	}
	if err := s.revokeClaims(ctx, c); err != nil {
		return Revoked{}, err
	}
	out := Revoked{Type: "access_token", ID: c.ID, Subject: c.Subject, Tenant: c.Tenant, Until: c.ExpiresAt.Add(s.opts.Leeway)}
	return out, s.auditRevoke(ctx, out, by)
}

// RevokeJTI revokes a jti the operator names without the token itself.
// until ≤ now means "for the longest time a token can live": AccessTTL
// plus leeway from now.
func (s *Service) RevokeJTI(ctx context.Context, jti string, until time.Time, by string) (Revoked, error) {
	if err := store.ValidateID("jti", jti); err != nil {
		return Revoked{}, err
	}
	if !until.After(s.now()) {
		until = s.now().Add(s.opts.AccessTTL + s.opts.Leeway)
	}
	if err := s.st.Revocations().Revoke(ctx, jti, until); err != nil {
		return Revoked{}, fmt.Errorf("gateway/auth: revoke %s: %w", jti, err)
	}
	out := Revoked{Type: "access_token", ID: jti, Until: until}
	return out, s.auditRevoke(ctx, out, by)
}

func (s *Service) auditRevoke(ctx context.Context, r Revoked, by string) error {
	_, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "token.revoke", Subject: r.Subject,
		Fields: map[string]string{"token_type": r.Type, "id": r.ID, "by": by, "until": r.Until.UTC().Format(time.RFC3339)}})
	if err != nil {
		return fmt.Errorf("gateway/auth: revoked %s but not audited: %w", r.ID, err)
	}
	return nil
}

// RevokeClient revokes an API key and every access token issued to it
// (an entry "cid:<client_id>" on the revocation list, kept until the
// longest-lived of those tokens has expired), and audits it.
func (s *Service) RevokeClient(ctx context.Context, clientID, by string) (store.APIKey, error) {
	k, err := s.st.APIKeys().Get(ctx, clientID)
	if err != nil {
		return k, fmt.Errorf("gateway/auth: key %s: %w", clientID, err)
	}
	if err := s.st.APIKeys().Revoke(ctx, clientID); err != nil {
		return k, fmt.Errorf("gateway/auth: revoke key %s: %w", clientID, err)
	}
	until := s.now().Add(s.opts.AccessTTL + s.opts.Leeway)
	if err := s.st.Revocations().Revoke(ctx, cidKey(clientID), until); err != nil {
		return k, fmt.Errorf("gateway/auth: revoke tokens of key %s: %w", clientID, err)
	}
	if _, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "key.revoke", Subject: clientID,
		Fields: map[string]string{"tenant": k.Tenant, "by": by, "tokens_revoked_until": until.UTC().Format(time.RFC3339)}}); err != nil {
		return k, fmt.Errorf("gateway/auth: revoked key %s but not audited: %w", clientID, err)
	}
	k.Revoked = true
	return k, nil
}

// EndSessions ends every login session of username at once: its refresh
// families are revoked, and so are the access tokens issued from them
// (their sid entries), and the event is audited with by as the actor.
// The admin socket calls it when a user is removed or gets a new
// password, so that neither a removed account nor whoever held the old
// password keeps access until the tokens expire. It returns how many
// sessions were still open.
func (s *Service) EndSessions(ctx context.Context, username, reason, by string) (int, error) {
	fams, err := s.st.Refresh().RevokeSubject(ctx, username, reason)
	if err != nil {
		return 0, fmt.Errorf("gateway/auth: end sessions of %s: %w", username, err)
	}
	now, open := s.now(), 0
	for _, f := range fams {
		until := f.ExpiresAt.Add(s.opts.AccessTTL + s.opts.Leeway)
		if !until.After(now) {
			continue // every token of this family has expired
		}
		if err := s.st.Revocations().Revoke(ctx, sidKey(f.ID), until); err != nil {
			return open, fmt.Errorf("gateway/auth: end session %s of %s: %w", f.ID, username, err)
		}
		open++
	}
	if _, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "session.end_all", Subject: username,
		Fields: map[string]string{"reason": reason, "by": by, "sessions": fmt.Sprint(open)}}); err != nil {
		return open, fmt.Errorf("gateway/auth: ended sessions of %s but not audited: %w", username, err)
	}
	return open, nil
}

// Prune removes expired revocation entries and refresh families and
// forgets idle rate-limit buckets. Run calls it periodically.
func (s *Service) Prune(ctx context.Context) (revocations, families int, err error) {
	now := s.now()
	revocations, err = s.st.Revocations().Prune(ctx, now)
	if err != nil {
		return 0, 0, fmt.Errorf("gateway/auth: prune revocations: %w", err)
	}
	families, err = s.st.Refresh().Prune(ctx, now)
	if err != nil {
		return revocations, 0, fmt.Errorf("gateway/auth: prune refresh families: %w", err)
	}
	for _, l := range s.limits {
		if l.ip != nil {
			l.ip.Sweep()
		}
		if l.principal != nil {
			l.principal.Sweep()
		}
	}
	return revocations, families, nil
}

// Run prunes every interval (≤ 0: 10 min) until ctx is done; it returns
// ctx's error. Failures are logged and retried at the next tick.
func (s *Service) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		r, f, err := s.Prune(ctx)
		if err != nil {
			s.log.ErrorContext(ctx, "prune failed", "err", err)
			continue
		}
		if r+f > 0 {
			s.log.InfoContext(ctx, "pruned expired entries", "revocations", r, "refresh_families", f)
		}
	}
}

// IsInvalidToken reports whether err is a token verification failure.
func IsInvalidToken(err error) bool { return errors.Is(err, ErrInvalidToken) }
