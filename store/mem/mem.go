// Package mem is the in-memory twin of store/bolt: the same interfaces and
// the same behaviour (it passes store/storetest), nothing durable. Use it in
// tests of packages that need a store.
package mem

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/qrngd/qrngd/store"
)

// Options configures a DB. Rand is required.
type Options struct {
	// Rand supplies salts, API-key secrets, client IDs, kids and signing
	// seeds (the entropy pool in production). Required: there is no
	// fallback.
	Rand io.Reader
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Argon2 are the password-hash parameters; nil = store.DefaultArgon2Params.
	Argon2 *store.Argon2Params
	// MaxConcurrentHashes bounds concurrent argon2 runs; ≤ 0 = NumCPU.
	MaxConcurrentHashes int
}

// DB holds all stores in memory. Safe for concurrent use.
type DB struct {
	mu     sync.RWMutex
	closed bool
	now    func() time.Time
	rand   *store.Random
	hasher *store.PasswordHasher

	users    map[string]userRec
	tenants  map[string]store.Tenant
	apikeys  map[string]keyRec
	revoked  map[string]time.Time
	families map[string]store.RefreshFamily
	tokens   map[string]string // token ID -> family ID
	audit    []store.AuditRecord
	headSeq  uint64
	headHash store.Hash
	signing  map[string]signRec
}

type userRec struct {
	u    store.User
	hash string
}

type keyRec struct {
	k    store.APIKey
	hash [store.SecretHashBytes]byte
}

type signRec struct {
	info store.KeyInfo
	seed []byte
}

// New returns an empty DB.
func New(opts *Options) (*DB, error) {
	if opts == nil || opts.Rand == nil {
		return nil, fmt.Errorf("store/mem: %w: Options.Rand is required", store.ErrInvalid)
	}
	h, err := store.NewPasswordHasher(opts.Argon2, opts.MaxConcurrentHashes, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("store/mem: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &DB{
		now: now, rand: store.NewRandom(opts.Rand), hasher: h,
		users: map[string]userRec{}, tenants: map[string]store.Tenant{}, apikeys: map[string]keyRec{},
		revoked: map[string]time.Time{}, families: map[string]store.RefreshFamily{}, tokens: map[string]string{},
		signing: map[string]signRec{},
	}, nil
}

// Close marks the DB closed; later calls fail with store.ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.closed = true
	for _, r := range db.signing {
		clear(r.seed)
	}
	return nil
}

// Users returns the user store.
func (db *DB) Users() store.Users { return users{db} }

// Tenants returns the tenant store.
func (db *DB) Tenants() store.Tenants { return tenants{db} }

// APIKeys returns the API-key store.
func (db *DB) APIKeys() store.APIKeys { return apikeys{db} }

// Revocations returns the revocation list.
func (db *DB) Revocations() store.Revocations { return revocations{db} }

// Refresh returns the refresh-token families.
func (db *DB) Refresh() store.RefreshFamilies { return refresh{db} }

// Audit returns the audit log.
func (db *DB) Audit() store.Audit { return audit{db} }

// Keys returns the signing keys.
func (db *DB) Keys() store.SigningKeys { return signing{db} }

func errf(format string, a ...any) error { return fmt.Errorf("store/mem: "+format, a...) }

// begin checks ctx and closed; the caller holds the lock.
func (db *DB) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.closed {
		return errf("%w", store.ErrClosed)
	}
	return nil
}

func (db *DB) rlock(ctx context.Context) error {
	db.mu.RLock()
	if err := db.check(ctx); err != nil {
		db.mu.RUnlock()
		return err
	}
	return nil
}

func (db *DB) lock(ctx context.Context) error {
	db.mu.Lock()
	if err := db.check(ctx); err != nil {
		db.mu.Unlock()
		return err
	}
	return nil
}

func cloneUser(u store.User) store.User    { u.Scopes = store.Clone(u.Scopes); return u }
func cloneKey(k store.APIKey) store.APIKey { k.Scopes = store.Clone(k.Scopes); return k }
func cloneFam(f store.RefreshFamily) store.RefreshFamily {
	f.Scopes = store.Clone(f.Scopes)
	return f
}

// ---- users

type users struct{ db *DB }

func (s users) Create(ctx context.Context, u store.User, password string) error {
	if err := store.ValidateUser(u); err != nil {
		return errf("create user: %w", err)
	}
	if err := store.ValidatePassword(password); err != nil {
		return errf("create user %q: %w", u.Username, err)
	}
	hash, err := s.db.hasher.Hash(ctx, password)
	if err != nil {
		return errf("create user %q: %w", u.Username, err)
	}
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.users[u.Username]; ok {
		return errf("user %q: %w", u.Username, store.ErrExists)
	}
	if u.Tenant != "" {
		if _, ok := s.db.tenants[u.Tenant]; !ok {
			return errf("user %q: tenant %q: %w", u.Username, u.Tenant, store.ErrNotFound)
		}
	}
	now := s.db.now().UTC()
	u = cloneUser(u)
	u.Created, u.Updated, u.PasswordChanged = now, now, time.Time{}
	s.db.users[u.Username] = userRec{u: u, hash: hash}
	return nil
}

func (s users) Get(ctx context.Context, username string) (store.User, error) {
	if err := s.db.rlock(ctx); err != nil {
		return store.User{}, err
	}
	defer s.db.mu.RUnlock()
	r, ok := s.db.users[username]
	if !ok {
		return store.User{}, errf("user %q: %w", username, store.ErrNotFound)
	}
	return cloneUser(r.u), nil
}

func (s users) List(ctx context.Context) ([]store.User, error) {
	if err := s.db.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.RUnlock()
	out := make([]store.User, 0, len(s.db.users))
	for _, name := range slices.Sorted(maps.Keys(s.db.users)) {
		out = append(out, cloneUser(s.db.users[name].u))
	}
	return out, nil
}

func (s users) Update(ctx context.Context, u store.User) error {
	if err := store.ValidateUser(u); err != nil {
		return errf("update user: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	r, ok := s.db.users[u.Username]
	if !ok {
		return errf("user %q: %w", u.Username, store.ErrNotFound)
	}
	if u.Tenant != "" {
		if _, ok := s.db.tenants[u.Tenant]; !ok {
			return errf("user %q: tenant %q: %w", u.Username, u.Tenant, store.ErrNotFound)
		}
	}
	r.u.Tenant, r.u.Scopes, r.u.Disabled, r.u.Updated = u.Tenant, store.Clone(u.Scopes), u.Disabled, s.db.now().UTC()
	s.db.users[u.Username] = r
	return nil
}

func (s users) SetPassword(ctx context.Context, username, password string) error {
	if err := store.ValidatePassword(password); err != nil {
		return errf("set password of %q: %w", username, err)
	}
	if _, err := s.Get(ctx, username); err != nil {
		return err
	}
	hash, err := s.db.hasher.Hash(ctx, password)
	if err != nil {
		return errf("set password of %q: %w", username, err)
	}
	return s.setHash(ctx, username, hash, "")
}

// setHash stores hash; if ifOld is set, only when the current hash is ifOld.
func (s users) setHash(ctx context.Context, username, hash, ifOld string) error {
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	r, ok := s.db.users[username]
	if !ok {
		return errf("user %q: %w", username, store.ErrNotFound)
	}
	if ifOld != "" && r.hash != ifOld {
		return nil
	}
	r.hash, r.u.Updated = hash, s.db.now().UTC()
	if ifOld == "" { // SetPassword, not a re-hash of the same password
		r.u.PasswordChanged = r.u.Updated
	}
	s.db.users[username] = r
	return nil
}

func (s users) Delete(ctx context.Context, username string) error {
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.users[username]; !ok {
		return errf("user %q: %w", username, store.ErrNotFound)
	}
	delete(s.db.users, username)
	return nil
}

func (s users) Authenticate(ctx context.Context, username, password string) (store.User, error) {
	if err := s.db.rlock(ctx); err != nil {
		return store.User{}, err
	}
	r, ok := s.db.users[username]
	s.db.mu.RUnlock()
	rehash, err := s.db.hasher.Authenticate(ctx, ok, r.hash, password, r.u.Disabled)
	if err != nil {
		return store.User{}, authErr(username, err)
	}
	if rehash {
		if h, err := s.db.hasher.Hash(ctx, password); err == nil {
			_ = s.setHash(ctx, username, h, r.hash) // best effort; the login itself succeeded
		}
	}
	return cloneUser(r.u), nil
}

// ---- tenants

type tenants struct{ db *DB }

func (s tenants) Create(ctx context.Context, t store.Tenant) error {
	if err := store.ValidateTenantID(t.ID); err != nil {
		return errf("create tenant: %w", err)
	}
	if err := store.ValidateText("tenant name", t.Name, store.MaxNameBytes); err != nil {
		return errf("create tenant: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.tenants[t.ID]; ok {
		return errf("tenant %q: %w", t.ID, store.ErrExists)
	}
	t.Created = s.db.now().UTC()
	s.db.tenants[t.ID] = t
	return nil
}

func (s tenants) Get(ctx context.Context, id string) (store.Tenant, error) {
	if err := s.db.rlock(ctx); err != nil {
		return store.Tenant{}, err
	}
	defer s.db.mu.RUnlock()
	t, ok := s.db.tenants[id]
	if !ok {
		return store.Tenant{}, errf("tenant %q: %w", id, store.ErrNotFound)
	}
	return t, nil
}

func (s tenants) List(ctx context.Context) ([]store.Tenant, error) {
	if err := s.db.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.RUnlock()
	out := make([]store.Tenant, 0, len(s.db.tenants))
	for _, id := range slices.Sorted(maps.Keys(s.db.tenants)) {
		out = append(out, s.db.tenants[id])
	}
	return out, nil
}

// ---- API keys

type apikeys struct{ db *DB }

func (s apikeys) Create(ctx context.Context, spec store.APIKeySpec) (store.APIKey, string, error) {
	k, secret, hash, err := store.NewAPIKey(s.db.rand, spec)
	if err != nil {
		return store.APIKey{}, "", errf("create key: %w", err)
	}
	id := k.ClientID
	if err := s.db.lock(ctx); err != nil {
		return store.APIKey{}, "", err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.tenants[spec.Tenant]; !ok {
		return store.APIKey{}, "", errf("create key: tenant %q: %w", spec.Tenant, store.ErrNotFound)
	}
	if _, ok := s.db.apikeys[id]; ok {
		return store.APIKey{}, "", errf("key %q: %w", id, store.ErrExists)
	}
	k.Created = s.db.now().UTC()
	s.db.apikeys[id] = keyRec{k: k, hash: hash}
	return cloneKey(k), secret, nil
}

func (s apikeys) Get(ctx context.Context, clientID string) (store.APIKey, error) {
	if err := s.db.rlock(ctx); err != nil {
		return store.APIKey{}, err
	}
	defer s.db.mu.RUnlock()
	r, ok := s.db.apikeys[clientID]
	if !ok {
		return store.APIKey{}, errf("key %q: %w", clientID, store.ErrNotFound)
	}
	return cloneKey(r.k), nil
}

func (s apikeys) List(ctx context.Context, tenant string) ([]store.APIKey, error) {
	if err := s.db.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.RUnlock()
	out := []store.APIKey{}
	for _, id := range slices.Sorted(maps.Keys(s.db.apikeys)) {
		if k := s.db.apikeys[id].k; tenant == "" || k.Tenant == tenant {
			out = append(out, cloneKey(k))
		}
	}
	return out, nil
}

func (s apikeys) Revoke(ctx context.Context, clientID string) error {
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	r, ok := s.db.apikeys[clientID]
	if !ok {
		return errf("key %q: %w", clientID, store.ErrNotFound)
	}
	if !r.k.Revoked {
		r.k.Revoked, r.k.RevokedAt = true, s.db.now().UTC()
		s.db.apikeys[clientID] = r
	}
	return nil
}

func (s apikeys) Authenticate(ctx context.Context, clientID, secret string) (store.APIKey, error) {
	if err := s.db.rlock(ctx); err != nil {
		return store.APIKey{}, err
	}
	r, ok := s.db.apikeys[clientID]
	s.db.mu.RUnlock()
	match := store.SecretMatches(r.hash[:], secret) // zero hash when unknown: same work, no match
	if !ok || !match {
		return store.APIKey{}, errf("authenticate client: %w", store.ErrBadCredentials)
	}
	if r.k.Revoked {
		return store.APIKey{}, errf("client %q: %w", clientID, store.ErrRevoked)
	}
	return cloneKey(r.k), nil
}

// ---- revocations

type revocations struct{ db *DB }

func (s revocations) Revoke(ctx context.Context, jti string, expiry time.Time) error {
	if err := store.ValidateID("jti", jti); err != nil {
		return errf("revoke: %w", err)
	}
	if err := store.CheckExpiry(expiry); err != nil {
		return errf("revoke %q: %w", jti, err)
	}
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if old, ok := s.db.revoked[jti]; !ok || expiry.After(old) {
		s.db.revoked[jti] = expiry
	}
	return nil
}

func (s revocations) IsRevoked(ctx context.Context, jti string) (bool, error) {
	if err := s.db.rlock(ctx); err != nil {
		return false, err
	}
	defer s.db.mu.RUnlock()
	_, ok := s.db.revoked[jti]
	return ok, nil
}

func (s revocations) Prune(ctx context.Context, now time.Time) (int, error) {
	if err := s.db.lock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.Unlock()
	n := 0
	for jti, exp := range s.db.revoked {
		if !exp.After(now) {
			delete(s.db.revoked, jti)
			n++
		}
	}
	return n, nil
}

func (s revocations) Len(ctx context.Context) (int, error) {
	if err := s.db.rlock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.RUnlock()
	return len(s.db.revoked), nil
}

// ---- refresh families

type refresh struct{ db *DB }

func (s refresh) Create(ctx context.Context, f store.RefreshFamily) error {
	if err := store.ValidateFamily(f); err != nil {
		return errf("create family: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.families[f.ID]; ok {
		return errf("family %q: %w", f.ID, store.ErrExists)
	}
	if _, ok := s.db.tokens[f.Current]; ok {
		return errf("refresh token %q: %w", f.Current, store.ErrExists)
	}
	f = cloneFam(f)
	f.Created, f.Generation, f.Revoked, f.RevokedAt, f.RevokeReason = s.db.now().UTC(), 0, false, time.Time{}, ""
	s.db.families[f.ID] = f
	s.db.tokens[f.Current] = f.ID
	return nil
}

func (s refresh) Rotate(ctx context.Context, oldID, newID string) (store.RefreshFamily, error) {
	if err := store.ValidateID("token id", oldID); err != nil {
		return store.RefreshFamily{}, errf("rotate: %w", err)
	}
	if err := store.ValidateID("token id", newID); err != nil {
		return store.RefreshFamily{}, errf("rotate: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		return store.RefreshFamily{}, err
	}
	defer s.db.mu.Unlock()
	fid, ok := s.db.tokens[oldID]
	if !ok {
		return store.RefreshFamily{}, errf("refresh token %q: %w", oldID, store.ErrNotFound)
	}
	f := s.db.families[fid]
	now := s.db.now().UTC()
	switch {
	case f.Revoked:
		return cloneFam(f), errf("family %q: %w", fid, store.ErrRevoked)
	case !now.Before(f.ExpiresAt):
		return cloneFam(f), errf("family %q: %w", fid, store.ErrExpired)
	case f.Current != oldID:
		f.Revoked, f.RevokedAt, f.RevokeReason = true, now, "reuse"
		s.db.families[fid] = f
		return cloneFam(f), errf("family %q: %w", fid, store.ErrReused)
	}
	if _, ok := s.db.tokens[newID]; ok {
		return store.RefreshFamily{}, errf("refresh token %q: %w", newID, store.ErrExists)
	}
	f.Current = newID
	f.Generation++
	s.db.families[fid] = f
	s.db.tokens[newID] = fid
	return cloneFam(f), nil
}

func (s refresh) Lookup(ctx context.Context, tokenID string) (store.RefreshFamily, error) {
	if err := s.db.rlock(ctx); err != nil {
		return store.RefreshFamily{}, err
	}
	defer s.db.mu.RUnlock()
	fid, ok := s.db.tokens[tokenID]
	if !ok {
		return store.RefreshFamily{}, errf("refresh token %q: %w", tokenID, store.ErrNotFound)
	}
	return cloneFam(s.db.families[fid]), nil
}

func (s refresh) Revoke(ctx context.Context, familyID, reason string) error {
	if err := store.ValidateText("reason", reason, store.MaxReasonBytes); err != nil {
		return errf("revoke family: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		return err
	}
	defer s.db.mu.Unlock()
	f, ok := s.db.families[familyID]
	if !ok {
		return errf("family %q: %w", familyID, store.ErrNotFound)
	}
	if !f.Revoked {
		f.Revoked, f.RevokedAt, f.RevokeReason = true, s.db.now().UTC(), reason
		s.db.families[familyID] = f
	}
	return nil
}

func (s refresh) RevokeSubject(ctx context.Context, subject, reason string) ([]store.RefreshFamily, error) {
	if err := store.ValidateText("reason", reason, store.MaxReasonBytes); err != nil {
		return nil, errf("revoke families: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	var out []store.RefreshFamily
	for _, id := range slices.Sorted(maps.Keys(s.db.families)) {
		f := s.db.families[id]
		if f.Subject != subject {
			continue
		}
		if !f.Revoked {
			f.Revoked, f.RevokedAt, f.RevokeReason = true, s.db.now().UTC(), reason
			s.db.families[id] = f
		}
		out = append(out, cloneFam(f))
	}
	return out, nil
}

func (s refresh) Prune(ctx context.Context, now time.Time) (int, error) {
	if err := s.db.lock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.Unlock()
	n := 0
	for id, f := range s.db.families {
		if !f.ExpiresAt.After(now) {
			delete(s.db.families, id)
			n++
		}
	}
	for tok, fid := range s.db.tokens {
		if _, ok := s.db.families[fid]; !ok {
			delete(s.db.tokens, tok)
		}
	}
	return n, nil
}

// ---- audit

type audit struct{ db *DB }

func (s audit) Append(ctx context.Context, e store.AuditEvent) (store.AuditRecord, error) {
	if err := store.ValidateAuditEvent(e); err != nil {
		return store.AuditRecord{}, errf("audit append: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		return store.AuditRecord{}, err
	}
	defer s.db.mu.Unlock()
	r := store.Seal(e, s.db.headSeq+1, s.db.now(), s.db.headHash)
	s.db.audit = append(s.db.audit, r)
	s.db.headSeq, s.db.headHash = r.Seq, r.Hash
	return cloneRec(r), nil
}

func cloneRec(r store.AuditRecord) store.AuditRecord {
	if r.Fields != nil {
		r.Fields = maps.Clone(r.Fields)
	}
	return r
}

func (s audit) List(ctx context.Context, after uint64, limit int) ([]store.AuditRecord, error) {
	if limit < 1 || limit > store.MaxAuditList {
		return nil, errf("audit list: %w: limit %d outside 1..%d", store.ErrInvalid, limit, store.MaxAuditList)
	}
	if err := s.db.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(s.db.audit, after+1, func(r store.AuditRecord, seq uint64) int { return cmp.Compare(r.Seq, seq) })
	out := []store.AuditRecord{}
	for ; i < len(s.db.audit) && len(out) < limit; i++ {
		if s.db.audit[i].Seq > after {
			out = append(out, cloneRec(s.db.audit[i]))
		}
	}
	return out, nil
}

func (s audit) Verify(ctx context.Context) (uint64, error) {
	if err := s.db.rlock(ctx); err != nil {
		return 0, err
	}
	defer s.db.mu.RUnlock()
	var v store.ChainVerifier
	for _, r := range s.db.audit {
		if err := v.Check(r); err != nil {
			return v.N(), err
		}
	}
	return v.Finish(s.db.headSeq, s.db.headHash)
}

// ---- signing keys

type signing struct{ db *DB }

func (s signing) published(r signRec, now time.Time) bool {
	return r.info.RemoveAfter.IsZero() || now.Before(r.info.RemoveAfter)
}

func (s signing) Current(ctx context.Context, alg string) (store.SigningKey, error) {
	if err := store.CheckAlg(alg); err != nil {
		return store.SigningKey{}, errf("current key: %w", err)
	}
	if err := s.db.rlock(ctx); err != nil {
		return store.SigningKey{}, err
	}
	defer s.db.mu.RUnlock()
	for _, r := range s.db.signing {
		if r.info.Alg == alg && r.info.Retired.IsZero() {
			priv, pub, err := store.KeyFromSeed(alg, r.seed)
			if err != nil {
				return store.SigningKey{}, errf("key %q: %w", r.info.KID, err)
			}
			info := r.info
			info.PublicKey = pub
			return store.SigningKey{KeyInfo: info, Private: priv}, nil
		}
	}
	return store.SigningKey{}, errf("no %s signing key: %w", alg, store.ErrNotFound)
}

func (s signing) Rotate(ctx context.Context, alg string, retireAfter time.Duration) (store.KeyInfo, error) {
	if err := store.CheckAlg(alg); err != nil {
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	if retireAfter < 0 {
		return store.KeyInfo{}, errf("rotate key: %w: negative retireAfter", store.ErrInvalid)
	}
	seed, err := store.NewSeed(s.db.rand, alg)
	if err != nil {
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	kid, err := s.db.rand.RandomID(store.KIDBytes)
	if err != nil {
		clear(seed)
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	_, pub, err := store.KeyFromSeed(alg, seed)
	if err != nil {
		clear(seed)
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	if err := s.db.lock(ctx); err != nil {
		clear(seed)
		return store.KeyInfo{}, err
	}
	defer s.db.mu.Unlock()
	if _, ok := s.db.signing[kid]; ok {
		clear(seed)
		return store.KeyInfo{}, errf("key %q: %w", kid, store.ErrExists)
	}
	now := s.db.now().UTC()
	for id, r := range s.db.signing {
		switch {
		case r.info.Retired.IsZero():
			r.info.Retired, r.info.RemoveAfter = now, now.Add(retireAfter)
			s.db.signing[id] = r
		case !s.published(r, now):
			clear(r.seed)
			delete(s.db.signing, id)
		}
	}
	info := store.KeyInfo{KID: kid, Alg: alg, Created: now}
	s.db.signing[kid] = signRec{info: info, seed: seed}
	info.PublicKey = pub
	return info, nil
}

func (s signing) Unpublish(ctx context.Context, keep string) ([]string, error) {
	if err := s.db.lock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.Unlock()
	now := s.db.now().UTC()
	kids := []string{}
	for id, r := range s.db.signing {
		if id == keep || !s.published(r, now) {
			continue
		}
		clear(r.seed)
		delete(s.db.signing, id)
		kids = append(kids, id)
	}
	slices.Sort(kids)
	return kids, nil
}

func (s signing) Get(ctx context.Context, kid string) (store.KeyInfo, error) {
	if err := s.db.rlock(ctx); err != nil {
		return store.KeyInfo{}, err
	}
	defer s.db.mu.RUnlock()
	r, ok := s.db.signing[kid]
	if !ok || !s.published(r, s.db.now()) {
		return store.KeyInfo{}, errf("key %q: %w", kid, store.ErrNotFound)
	}
	return s.public(r)
}

func (s signing) public(r signRec) (store.KeyInfo, error) {
	_, pub, err := store.KeyFromSeed(r.info.Alg, r.seed)
	if err != nil {
		return store.KeyInfo{}, errf("key %q: %w", r.info.KID, err)
	}
	info := r.info
	info.PublicKey = pub
	return info, nil
}

func (s signing) Public(ctx context.Context) ([]store.KeyInfo, error) {
	if err := s.db.rlock(ctx); err != nil {
		return nil, err
	}
	defer s.db.mu.RUnlock()
	now := s.db.now()
	out := []store.KeyInfo{}
	for _, r := range s.db.signing {
		if s.published(r, now) {
			info, err := s.public(r)
			if err != nil {
				return nil, err
			}
			out = append(out, info)
		}
	}
	store.SortKeys(out)
	return out, nil
}

// authErr wraps an Authenticate failure; a username appears only when the
// password was right (an unknown name may be a mistyped password).
func authErr(username string, err error) error {
	if errors.Is(err, store.ErrBadCredentials) {
		return errf("authenticate: %w", err)
	}
	return errf("authenticate %q: %w", username, err)
}
