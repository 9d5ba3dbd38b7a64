package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/store"
)

// keyring caches the active signing key and the published public keys.
// The store is the source of truth; the cache is refreshed on rotation and
// on a lookup of a kid it does not hold (after the kid passed validKID).
type keyring struct {
	ks     store.SigningKeys
	alg    string
	retire time.Duration
	now    func() time.Time

	mu     sync.RWMutex
	signer *store.SigningKey
	pub    map[string]*publishedKey
	hdr    map[string]*publishedKey // by headerSegment
	miss   map[string]time.Time
	// gen counts rotations: a key looked up in the store before one
	// (possibly as active, RemoveAfter zero) is not cached after it.
	gen uint64
	// lastTry is the last scheduled rotation attempt.
	lastTry time.Time
}

func newKeyring(ks store.SigningKeys, alg string, retire time.Duration, now func() time.Time) *keyring {
	return &keyring{ks: ks, alg: alg, retire: retire, now: now, pub: map[string]*publishedKey{}, hdr: map[string]*publishedKey{}, miss: map[string]time.Time{}}
}

// validKID accepts 1..64 characters of [A-Za-z0-9_-] (base64url), the
// only form qrngd issues. It runs before any lookup, so a kid carrying
// path, SQL or control characters never reaches the store.
func validKID(kid string) bool {
	if len(kid) == 0 || len(kid) > 64 {
		return false
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// current returns the active signing key, creating the first one (seed
// from the store's random reader, i.e. the pool) if none exists.
func (k *keyring) current(ctx context.Context) (*store.SigningKey, error) {
	k.mu.RLock()
	sk := k.signer
	k.mu.RUnlock()
	if sk != nil {
		return sk, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.signer != nil {
		return k.signer, nil
	}
	cur, err := k.ks.Current(ctx, k.alg)
	if errors.Is(err, store.ErrNotFound) {
		if _, err = k.ks.Rotate(ctx, k.alg, k.retire); err != nil {
			return nil, fmt.Errorf("gateway/auth: create signing key: %w", err)
		}
		// That retired the other algorithm's active key (an auth.alg
		// switch), which a verification may have cached as active.
		k.forget()
		cur, err = k.ks.Current(ctx, k.alg)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway/auth: signing key: %w", err)
	}
	pk, err := newPublishedKey(cur.KeyInfo)
	if err != nil {
		return nil, err
	}
	k.signer = &cur
	k.publish(pk)
	return k.signer, nil
}

// rotate makes a new active key; the old one stays published.
func (k *keyring) rotate(ctx context.Context) (store.KeyInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rotateLocked(ctx)
}

// rotateIfActive rotates if kid is still the active key and no rotation
// was attempted in the last minute (a failing store is not retried on
// every issuance). rotated is false when nothing was done.
func (k *keyring) rotateIfActive(ctx context.Context, kid string, now time.Time) (info store.KeyInfo, rotated bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.signer == nil || k.signer.KID != kid || now.Sub(k.lastTry) < time.Minute {
		return store.KeyInfo{}, false, nil
	}
	k.lastTry = now
	info, err = k.rotateLocked(ctx)
	return info, err == nil, err
}

// rotateUnpublish rotates and unpublishes every other key at once. Once
// the store has the new key, the old ones are unpublished whatever else
// failed; info.KID is empty only if nothing changed.
func (k *keyring) rotateUnpublish(ctx context.Context) (store.KeyInfo, []string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	info, err := k.rotateLocked(ctx)
	if info.KID == "" {
		return info, nil, err
	}
	// The new key is active: the compromised ones must go now even if the
	// caller (an operator's qrngctl) gave up meanwhile.
	kids, uerr := k.ks.Unpublish(context.WithoutCancel(ctx), info.KID)
	k.forget()
	if uerr != nil {
		return info, nil, errors.Join(err, fmt.Errorf("gateway/auth: key %s is active but the previous keys are still published: %w", info.KID, uerr))
	}
	return info, kids, err
}

// rotateLocked makes a new active key in the store. If that succeeded
// (info.KID set) the keyring no longer holds the old key, even when
// loading the new one failed (then the next current loads it).
func (k *keyring) rotateLocked(ctx context.Context) (store.KeyInfo, error) {
	info, err := k.ks.Rotate(ctx, k.alg, k.retire)
	if err != nil {
		return store.KeyInfo{}, fmt.Errorf("gateway/auth: rotate signing key: %w", err)
	}
	// The old key is not zeroed here: a concurrent issuance may still be
	// signing with it. It becomes garbage once those calls return.
	k.signer = nil
	k.forget()
	cur, err := k.ks.Current(context.WithoutCancel(ctx), k.alg)
	if err != nil {
		return info, fmt.Errorf("gateway/auth: key %s is active but could not be loaded: %w", info.KID, err)
	}
	k.signer = &cur
	return info, nil
}

// publishedKey is a key of the JWKS, prepared for verification.
type publishedKey struct {
	store.KeyInfo
	ed  *edPublicKey // AlgEdDSA
	hdr string       // the header segment qrngd writes for it
}

func newPublishedKey(info store.KeyInfo) (*publishedKey, error) {
	hdr, err := headerSegment(info.KID, info.Alg)
	if err != nil {
		return nil, fmt.Errorf("gateway/auth: key %s: %w", info.KID, err)
	}
	pk := &publishedKey{KeyInfo: info, hdr: hdr}
	if info.Alg == store.AlgEdDSA {
		pub, _ := info.PublicKey.(ed25519.PublicKey)
		ed, err := newEdPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("gateway/auth: key %s: %w", info.KID, err)
		}
		pk.ed = ed
	}
	return pk, nil
}

// forget drops every cached public key after the store's set changed (a
// rotation, an unpublish), and makes lookups begun before it not cache
// what they read (k.mu held).
func (k *keyring) forget() {
	k.gen++
	k.pub = map[string]*publishedKey{}
	k.hdr = map[string]*publishedKey{}
}

// publish caches pk (k.mu held).
func (k *keyring) publish(pk *publishedKey) {
	k.pub[pk.KID] = pk
	k.hdr[pk.hdr] = pk
}

// byHeader returns the cached key whose header segment is hdr, or nil.
func (k *keyring) byHeader(hdr string) *publishedKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.hdr[hdr]
}

// verify checks sig over the JWS signing input text with the key's
// algorithm (the token's alg was matched to the key's by verifyKey).
func (k *publishedKey) verify(text string, sig []byte) error {
	if k.Alg == store.AlgEdDSA {
		if !k.ed.verify([]byte(text), sig) {
			return jwt.ErrEd25519Verification
		}
		return nil
	}
	return signingMethod(k.Alg).Verify(text, sig, k.PublicKey)
}

// verifyKey returns the public key for kid if it is published and of alg.
func (k *keyring) verifyKey(ctx context.Context, kid, alg string) (*publishedKey, error) {
	if !validKID(kid) {
		return nil, errors.New("kid has characters outside [A-Za-z0-9_-] or a bad length")
	}
	now := k.now()
	k.mu.RLock()
	pk, ok := k.pub[kid]
	missAt, missed := k.miss[kid]
	gen := k.gen
	k.mu.RUnlock()
	if !ok {
		// Negative cache: an unknown kid is looked up at most once a second.
		if missed && now.Sub(missAt) < time.Second {
			return nil, errors.New("unknown kid")
		}
		info, err := k.ks.Get(ctx, kid)
		if err == nil {
			pk, err = newPublishedKey(info)
		}
		if err != nil {
			k.mu.Lock()
			if len(k.miss) > 1024 {
				clear(k.miss)
			}
			k.miss[kid] = now
			k.mu.Unlock()
			if errors.Is(err, store.ErrNotFound) {
				return nil, errors.New("unknown kid")
			}
			return nil, err
		}
		k.mu.Lock()
		if k.gen == gen { // else a rotation since may have retired it
			k.publish(pk)
		}
		k.mu.Unlock()
	}
	if !pk.RemoveAfter.IsZero() && !now.Before(pk.RemoveAfter) {
		return nil, errors.New("signing key no longer published")
	}
	if pk.Alg != alg {
		return nil, fmt.Errorf("kid %s is an %s key, token says %s", kid, pk.Alg, alg)
	}
	return pk, nil
}

// JWK is one key of the JWKS (RFC 7517, RFC 8037 for OKP).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKSet is the document served at /.well-known/jwks.json.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

func toJWK(info store.KeyInfo) (JWK, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	j := JWK{Kid: info.KID, Alg: info.Alg, Use: "sig"}
	switch pk := info.PublicKey.(type) {
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(pk)
	case *ecdsa.PublicKey:
		raw, err := pk.Bytes() // 0x04 | X | Y
		if err != nil || len(raw) != 65 {
			return JWK{}, fmt.Errorf("gateway/auth: key %s: not an uncompressed P-256 point", info.KID)
		}
		j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(raw[1:33]), b64(raw[33:])
	default:
		return JWK{}, fmt.Errorf("gateway/auth: key %s: unsupported public key %T", info.KID, pk)
	}
	return j, nil
}

// set returns the published keys as a JWKS.
func (k *keyring) set(ctx context.Context) (JWKSet, error) {
	infos, err := k.ks.Public(ctx)
	if err != nil {
		return JWKSet{}, fmt.Errorf("gateway/auth: public keys: %w", err)
	}
	out := JWKSet{Keys: make([]JWK, 0, len(infos))}
	for _, info := range infos {
		j, err := toJWK(info)
		if err != nil {
			return JWKSet{}, err
		}
		out.Keys = append(out.Keys, j)
	}
	return out, nil
}

func signingMethod(alg string) jwt.SigningMethod {
	if alg == store.AlgES256 {
		return jwt.SigningMethodES256
	}
	return jwt.SigningMethodEdDSA
}

// RotateSigningKey makes a new active signing key (seed from the store's
// random reader: the pool) and audits it with by as the actor. The
// previous key stays in the JWKS until the tokens it signed have expired.
func (s *Service) RotateSigningKey(ctx context.Context, by string) (store.KeyInfo, error) {
	info, err := s.keys.rotate(ctx)
	if err != nil {
		return info, err
	}
	return info, s.auditRotation(ctx, info, by)
}

// RotateSigningKeyUnpublish is RotateSigningKey for a suspected key
// compromise: every previous key leaves the JWKS at once, so no token
// signed by one verifies any more (here or anywhere that refreshes the
// JWKS), and the verified-token cache is emptied. Holders of those tokens
// must obtain new ones. It returns the new key and the unpublished kids.
func (s *Service) RotateSigningKeyUnpublish(ctx context.Context, by string) (store.KeyInfo, []string, error) {
	info, kids, err := s.keys.rotateUnpublish(ctx)
	s.cache.clear()
	if info.KID == "" {
		return info, nil, err
	}
	// The key rotated: audit it even if the rest failed or the caller left.
	if _, aerr := s.st.Audit().Append(context.WithoutCancel(ctx), store.AuditEvent{Type: "signing_key.rotate", Subject: info.KID,
		Fields: map[string]string{"alg": info.Alg, "by": by, "unpublished": strings.Join(kids, " ")}}); aerr != nil {
		err = errors.Join(err, fmt.Errorf("gateway/auth: key %s rotated, %d keys unpublished, but not audited: %w", info.KID, len(kids), aerr))
	}
	if err != nil {
		return info, kids, err
	}
	s.log.WarnContext(ctx, "signing keys unpublished: their tokens are refused", "kid", info.KID, "unpublished", kids, "by", by)
	return info, kids, nil
}

func (s *Service) auditRotation(ctx context.Context, info store.KeyInfo, by string) error {
	if _, err := s.st.Audit().Append(ctx, store.AuditEvent{Type: "signing_key.rotate", Subject: info.KID,
		Fields: map[string]string{"alg": info.Alg, "by": by}}); err != nil {
		return fmt.Errorf("gateway/auth: key %s rotated but not audited: %w", info.KID, err)
	}
	return nil
}

// signingKey returns the active signing key, first rotating it when
// Options.KeyRotation is set and the key is that old. The age comes from
// the key's creation time in the store, so the schedule holds across
// restarts. If rotation fails the old key keeps signing (it is still
// valid) and the failure is logged; it is retried a minute later.
func (s *Service) signingKey(ctx context.Context) (*store.SigningKey, error) {
	key, err := s.keys.current(ctx)
	if err != nil || s.opts.KeyRotation <= 0 || s.now().Sub(key.Created) < s.opts.KeyRotation {
		return key, err
	}
	info, rotated, err := s.keys.rotateIfActive(ctx, key.KID, s.now())
	if err != nil {
		s.log.ErrorContext(ctx, "scheduled signing-key rotation failed; the current key keeps signing", "kid", key.KID, "err", err)
		return key, nil
	}
	if rotated {
		s.log.InfoContext(ctx, "signing key rotated on schedule", "kid", info.KID, "alg", info.Alg, "previous", key.KID)
		if err := s.auditRotation(ctx, info, "schedule"); err != nil {
			s.log.ErrorContext(ctx, "scheduled rotation not audited", "kid", info.KID, "err", err)
		}
	}
	return s.keys.current(ctx)
}

// SigningKeys lists the published signing keys (active first is not
// implied: ordered by creation); Retired is zero for the active one.
func (s *Service) SigningKeys(ctx context.Context) ([]store.KeyInfo, error) {
	infos, err := s.keys.ks.Public(ctx)
	if err != nil {
		return nil, fmt.Errorf("gateway/auth: public keys: %w", err)
	}
	return infos, nil
}
