// Package store holds qrngd's durable state behind small interfaces: users,
// tenants and API keys, token revocations, refresh-token families, the
// hash-chained audit log and JWT signing keys.
//
// Two implementations exist: store/bolt (one bbolt file, fsync on, the
// production store) and store/mem (in-memory twins for tests). Both pass
// the conformance suite in store/storetest.
//
// Every method takes a context first. A write method returns nil only after
// its change is durable (for bolt: after the bbolt transaction committed and
// was fsynced), so a caller may acknowledge it to a client.
//
// Shared logic that both implementations need (validation, password
// hashing, API-key secrets, the audit chain, key derivation) lives in this
// package so that the two twins cannot drift apart.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them with "store/<impl>: ..." and %w;
// match with errors.Is.
var (
	// ErrNotFound: the user, tenant, key, token or family does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: an entry with that identity already exists.
	ErrExists = errors.New("store: already exists")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid: an argument failed validation; the message names it.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrBadCredentials: unknown username/client or wrong password/secret.
	// The two cases are deliberately indistinguishable.
	ErrBadCredentials = errors.New("store: bad credentials")
	// ErrDisabled: the credentials were right but the user is disabled.
	ErrDisabled = errors.New("store: disabled")
	// ErrRevoked: the API key or refresh-token family has been revoked.
	ErrRevoked = errors.New("store: revoked")
	// ErrExpired: the refresh-token family is past its expiry.
	ErrExpired = errors.New("store: expired")
	// ErrReused: a refresh token that was already rotated was presented
	// again. The whole family has been revoked (durably) before this error
	// is returned.
	ErrReused = errors.New("store: refresh token reused; family revoked")
	// ErrAuditBroken: the audit chain failed verification. The error is an
	// *AuditChainError naming the first bad sequence number.
	ErrAuditBroken = errors.New("store: audit chain broken")
)

// Users maps usernames to argon2id password hashes, scopes, tenant and a
// disabled flag. Usernames follow ValidateUsername.
type Users interface {
	// Create adds u with the given password. ErrExists if the username is
	// taken; ErrNotFound (wrapped) if u.Tenant is set and unknown.
	Create(ctx context.Context, u User, password string) error
	// Get returns the user. ErrNotFound if absent.
	Get(ctx context.Context, username string) (User, error)
	// List returns all users ordered by username.
	List(ctx context.Context) ([]User, error)
	// Update replaces Tenant, Scopes and Disabled of an existing user (the
	// password and Created are kept). ErrNotFound if absent.
	Update(ctx context.Context, u User) error
	// SetPassword replaces the password and sets PasswordChanged.
	// ErrNotFound if absent.
	SetPassword(ctx context.Context, username, password string) error
	// Delete removes the user. ErrNotFound if absent.
	Delete(ctx context.Context, username string) error
	// Authenticate checks the password in constant time (an unknown user
	// costs one full argon2id run too) and returns the user.
	// ErrBadCredentials for an unknown user or a wrong password; ErrDisabled
	// (only after a correct password) for a disabled user. A hash made with
	// other parameters than the current ones is transparently re-hashed.
	Authenticate(ctx context.Context, username, password string) (User, error)
}

// User is a user record. The password hash never leaves the store.
type User struct {
	Username string    `json:"username"`
	Tenant   string    `json:"tenant,omitempty"` // "" = not bound to a tenant
	Scopes   []string  `json:"scopes"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	// PasswordChanged is when SetPassword last replaced the password (zero:
	// never since Create). Sessions begun before it are ended by the token
	// service. Create and Update ignore it; re-hashing on login keeps it.
	PasswordChanged time.Time `json:"password_changed,omitzero"`
}

// Tenants holds the tenants that API keys and users belong to.
type Tenants interface {
	// Create adds t (ID validated by ValidateTenantID). ErrExists if taken.
	Create(ctx context.Context, t Tenant) error
	// Get returns the tenant. ErrNotFound if absent.
	Get(ctx context.Context, id string) (Tenant, error)
	// List returns all tenants ordered by ID.
	List(ctx context.Context) ([]Tenant, error)
}

// Tenant is a tenant record.
type Tenant struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
}

// APIKeys holds OAuth client credentials (client_id + secret). The secret
// is 256 bits from the injected random reader, returned once by Create and
// stored only as its SHA-256 hash (see HashSecret).
type APIKeys interface {
	// Create makes a key for spec.Tenant (which must exist: ErrNotFound) and
	// returns it with the secret. The secret is not retrievable later.
	Create(ctx context.Context, spec APIKeySpec) (APIKey, string, error)
	// Get returns the key. ErrNotFound if absent.
	Get(ctx context.Context, clientID string) (APIKey, error)
	// List returns the keys of tenant ("" = all tenants) ordered by client ID.
	List(ctx context.Context, tenant string) ([]APIKey, error)
	// Revoke marks the key revoked. ErrNotFound if absent; revoking twice
	// is not an error.
	Revoke(ctx context.Context, clientID string) error
	// Authenticate checks clientID+secret in constant time.
	// ErrBadCredentials for an unknown client or wrong secret; ErrRevoked
	// (only after a correct secret) for a revoked key.
	Authenticate(ctx context.Context, clientID, secret string) (APIKey, error)
}

// APIKeySpec describes a key to create.
type APIKeySpec struct {
	Tenant string   `json:"tenant"`
	Name   string   `json:"name,omitempty"` // operator's label, ≤ 128 bytes
	Scopes []string `json:"scopes"`
}

// APIKey is an API key record (without its secret).
type APIKey struct {
	ClientID  string    `json:"client_id"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name,omitempty"`
	Scopes    []string  `json:"scopes"`
	Created   time.Time `json:"created"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Revocations is the token revocation list: jti → expiry of the token.
// Entries are kept until their expiry has passed and Prune runs.
type Revocations interface {
	// Revoke records jti as revoked until expiry. It returns only after the
	// entry is durable. Concurrent calls are coalesced into one transaction.
	// Revoking a jti again is not an error; the later expiry wins.
	Revoke(ctx context.Context, jti string, expiry time.Time) error
	// IsRevoked answers from an in-memory index in O(1) without a
	// transaction. An entry stays revoked until pruned.
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// Prune removes entries whose expiry is at or before now and returns
	// how many stored entries it removed (a jti revoked again with a later
	// expiry may be stored, and counted, once per expiry).
	Prune(ctx context.Context, now time.Time) (int, error)
	// Len returns the number of distinct revoked jtis in the index.
	Len(ctx context.Context) (int, error)
}

// RefreshFamilies tracks refresh-token families for rotation with reuse
// detection. Token IDs are identifiers of refresh tokens (a JWT's jti, or
// the SHA-256 of an opaque token), never the bearer secret itself.
type RefreshFamilies interface {
	// Create stores a new family whose first token is f.Current.
	// ErrExists if the family ID or the token ID is already known.
	Create(ctx context.Context, f RefreshFamily) error
	// Rotate replaces the family's current token oldID by newID and returns
	// the updated family. ErrNotFound for an unknown oldID; ErrRevoked for a
	// revoked family; ErrExpired past ExpiresAt; ErrExists if newID is
	// known. If oldID was already rotated away, the family is revoked
	// (durably, reason "reuse") and the revoked family is returned with
	// ErrReused.
	Rotate(ctx context.Context, oldID, newID string) (RefreshFamily, error)
	// Lookup returns the family a token ID belongs to (current or rotated).
	Lookup(ctx context.Context, tokenID string) (RefreshFamily, error)
	// Revoke revokes the whole family. ErrNotFound if absent; revoking
	// twice keeps the first reason and time.
	Revoke(ctx context.Context, familyID, reason string) error
	// RevokeSubject revokes every family of subject (as Revoke does, in
	// one transaction) and returns all of that subject's stored families,
	// already revoked or expired ones included, so the caller can also
	// revoke the access tokens issued from them. Nothing found is not an
	// error.
	RevokeSubject(ctx context.Context, subject, reason string) ([]RefreshFamily, error)
	// Prune removes families (and their token IDs) whose ExpiresAt is at
	// or before now and returns how many families it removed.
	Prune(ctx context.Context, now time.Time) (int, error)
}

// RefreshFamily is a chain of refresh tokens issued from one login.
type RefreshFamily struct {
	ID           string    `json:"id"`
	Subject      string    `json:"subject"`
	Tenant       string    `json:"tenant,omitempty"`
	ClientID     string    `json:"client_id,omitempty"`
	Scopes       []string  `json:"scopes"`
	Created      time.Time `json:"created"`
	ExpiresAt    time.Time `json:"expires_at"` // absolute end of the family
	Current      string    `json:"current"`    // the only token ID that may rotate
	Generation   int       `json:"generation"` // rotations so far
	Revoked      bool      `json:"revoked"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	RevokeReason string    `json:"revoke_reason,omitempty"`
}

// Audit is the append-only, SHA-256 hash-chained audit log.
type Audit interface {
	// Append stamps e with the next sequence number and the store's clock,
	// chains it to the previous record and returns the stored record once
	// it is durable. Concurrent appends share one commit (group commit). If
	// ctx ends first, Append returns ctx's error and the record may or may
	// not have been written (it was not acknowledged).
	Append(ctx context.Context, e AuditEvent) (AuditRecord, error)
	// List returns up to limit (1..1000) records with Seq > after, in order.
	List(ctx context.Context, after uint64, limit int) ([]AuditRecord, error)
	// Verify walks the whole chain and returns the number of records
	// checked. An altered, removed or reordered record yields an
	// *AuditChainError (errors.Is ErrAuditBroken) naming the first bad seq.
	Verify(ctx context.Context) (uint64, error)
}

// SigningKeys stores JWT signing keys. Private material (Ed25519 seeds,
// P-256 scalars) comes from the injected random reader and is never logged.
type SigningKeys interface {
	// Current returns the active signing key for alg (AlgEdDSA or AlgES256).
	// ErrNotFound if none was created yet.
	Current(ctx context.Context, alg string) (SigningKey, error)
	// Rotate creates a new active key for alg. The previous active key
	// (of either alg: one key signs at a time, so switching algorithms
	// retires the old one) is retired now and stays published until
	// now+retireAfter (set retireAfter ≥ the longest token lifetime plus
	// leeway).
	Rotate(ctx context.Context, alg string, retireAfter time.Duration) (KeyInfo, error)
	// Get returns the public part of a key that is active or retired but
	// still published. ErrNotFound otherwise.
	Get(ctx context.Context, kid string) (KeyInfo, error)
	// Public lists the published keys (active and retired-but-unexpired),
	// ordered by creation, for the JWKS.
	Public(ctx context.Context) ([]KeyInfo, error)
	// Unpublish deletes every published key but keep (the active one
	// too), so that nothing they signed verifies any more, whatever the
	// clock does later: for a suspected key compromise, right after
	// Rotate. It returns the kids it unpublished, sorted.
	Unpublish(ctx context.Context, keep string) ([]string, error)
}
