package store

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Random serialises reads from a shared random source (the entropy pool in
// production) and always reads fully: a short or failed read is an error,
// never a silent fallback to another generator.
type Random struct {
	mu sync.Mutex
	r  io.Reader
}

// NewRandom wraps r; a *Random is returned as is.
func NewRandom(r io.Reader) *Random {
	if lr, ok := r.(*Random); ok {
		return lr
	}
	return &Random{r: r}
}

// ReadFull fills p or fails.
func (l *Random) ReadFull(p []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := io.ReadFull(l.r, p); err != nil {
		return fmt.Errorf("store: random source: %w", err)
	}
	return nil
}

// Read implements io.Reader with ReadFull semantics.
func (l *Random) Read(p []byte) (int, error) {
	if err := l.ReadFull(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// RandomID returns n random bytes from r as unpadded base64url.
func (l *Random) RandomID(n int) (string, error) {
	b := make([]byte, n)
	if err := l.ReadFull(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// API-key material.
const (
	ClientIDPrefix  = "qk_"
	clientIDBytes   = 12 // 96 bits: unique, not secret
	SecretBytes     = 32 // 256 bits
	SecretHashBytes = sha256.Size
)

// NewAPIKeySecret draws a client ID and a 256-bit secret from r and returns
// them with the secret's hash, the only form of it that is stored.
func NewAPIKeySecret(r *Random) (clientID, secret string, hash [SecretHashBytes]byte, err error) {
	id, err := r.RandomID(clientIDBytes)
	if err != nil {
		return "", "", hash, err
	}
	raw := make([]byte, SecretBytes)
	defer clear(raw)
	if err := r.ReadFull(raw); err != nil {
		return "", "", hash, err
	}
	secret = base64.RawURLEncoding.EncodeToString(raw)
	return ClientIDPrefix + id, secret, HashSecret(secret), nil
}

// NewAPIKey validates spec and draws the key's client ID and secret from r:
// the part of APIKeys.Create every implementation shares. The returned key
// has no Created time yet; hash is what the store keeps of the secret.
func NewAPIKey(r *Random, spec APIKeySpec) (k APIKey, secret string, hash [SecretHashBytes]byte, err error) {
	if err := ValidateTenantID(spec.Tenant); err != nil {
		return k, "", hash, err
	}
	if err := ValidateText("key name", spec.Name, MaxNameBytes); err != nil {
		return k, "", hash, err
	}
	if err := ValidateScopes(spec.Scopes); err != nil {
		return k, "", hash, err
	}
	id, secret, hash, err := NewAPIKeySecret(r)
	if err != nil {
		return k, "", hash, err
	}
	return APIKey{ClientID: id, Tenant: spec.Tenant, Name: spec.Name, Scopes: Clone(spec.Scopes)}, secret, hash, nil
}

// HashSecret is how API-key secrets are stored: SHA-256 of the secret
// string. A slow password hash would add nothing here: the secret is 256
// uniformly random bits, so it cannot be guessed or looked up in a
// dictionary even by someone holding the hash, and a fast hash keeps
// /oauth/token cheap instead of handing attackers a CPU amplifier.
func HashSecret(secret string) [SecretHashBytes]byte { return sha256.Sum256([]byte(secret)) }

// SecretMatches compares secret against a stored hash in constant time.
// Secrets longer than 256 bytes never match (but are still hashed).
func SecretMatches(stored []byte, secret string) bool {
	if len(secret) > 256 {
		secret = secret[:256]
		h := HashSecret(secret)
		subtle.ConstantTimeCompare(stored, h[:])
		return false
	}
	h := HashSecret(secret)
	return subtle.ConstantTimeCompare(stored, h[:]) == 1
}

// Signing algorithms, named as in JWS (RFC 7518/8037).
const (
	AlgEdDSA = "EdDSA" // Ed25519
	AlgES256 = "ES256" // ECDSA P-256 with SHA-256
)

// SeedBytes is the length of the private material stored for every alg:
// an Ed25519 seed (RFC 8032) or a P-256 scalar (big-endian).
const SeedBytes = 32

// KeyInfo is the public view of a signing key.
type KeyInfo struct {
	KID         string    `json:"kid"`
	Alg         string    `json:"alg"`
	PublicKey   any       `json:"-"`                     // ed25519.PublicKey or *ecdsa.PublicKey
	Created     time.Time `json:"created"`               // became active
	Retired     time.Time `json:"retired,omitzero"`      // stopped signing; zero = active
	RemoveAfter time.Time `json:"remove_after,omitzero"` // unpublished from then on
}

// SigningKey is an active key with its private half. Its String, GoString,
// LogValue and JSON forms never include private material. Call Zero when
// done with it.
type SigningKey struct {
	KeyInfo
	// Private is ed25519.PrivateKey (AlgEdDSA) or *ecdsa.PrivateKey (AlgES256).
	Private any
}

func (k SigningKey) String() string {
	return fmt.Sprintf("signing key %s (%s, private key redacted)", k.KID, k.Alg)
}

// GoString keeps %#v from printing the private key.
func (k SigningKey) GoString() string { return k.String() }

// LogValue keeps slog from printing the private key.
func (k SigningKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", k.KID), slog.String("alg", k.Alg))
}

// MarshalJSON emits only the public information.
func (k SigningKey) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"kid":%q,"alg":%q}`, k.KID, k.Alg), nil
}

// Zero overwrites the private key bytes held by k (best effort for ECDSA,
// whose internal state Go does not expose).
func (k *SigningKey) Zero() {
	switch p := k.Private.(type) {
	case ed25519.PrivateKey:
		clear(p)
	case *ecdsa.PrivateKey:
		if p.D != nil {
			p.D.SetInt64(0)
		}
	}
	k.Private = nil
}

// NewSeed draws private material for alg from r. For ES256 it redraws in
// the (probability ~2^-32) case that the scalar is not a valid P-256 key.
func NewSeed(r *Random, alg string) ([]byte, error) {
	if err := CheckAlg(alg); err != nil {
		return nil, err
	}
	seed := make([]byte, SeedBytes)
	for range 8 {
		if err := r.ReadFull(seed); err != nil {
			clear(seed)
			return nil, err
		}
		if alg == AlgEdDSA {
			return seed, nil
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed); err == nil {
			k.D.SetInt64(0)
			return seed, nil
		}
	}
	clear(seed)
	return nil, fmt.Errorf("store: could not draw a valid %s key", alg)
}

// CheckAlg accepts AlgEdDSA and AlgES256.
func CheckAlg(alg string) error {
	if alg != AlgEdDSA && alg != AlgES256 {
		return fmt.Errorf("%w: signing algorithm %q (want %s or %s)", ErrInvalid, alg, AlgEdDSA, AlgES256)
	}
	return nil
}

// KeyFromSeed derives the key pair. The caller should clear seed afterwards.
func KeyFromSeed(alg string, seed []byte) (priv, pub any, err error) {
	if len(seed) != SeedBytes {
		return nil, nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalid, len(seed), SeedBytes)
	}
	switch alg {
	case AlgEdDSA:
		k := ed25519.NewKeyFromSeed(seed)
		return k, k.Public(), nil
	case AlgES256:
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed)
		if err != nil {
			return nil, nil, fmt.Errorf("store: ES256 seed: %w", err)
		}
		return k, &k.PublicKey, nil
	}
	return nil, nil, CheckAlg(alg)
}

// KIDBytes is the random length of a key ID (base64url-encoded: 16 chars).
const KIDBytes = 12

// SortKeys orders keys by creation time, then kid.
func SortKeys(keys []KeyInfo) {
	slices.SortFunc(keys, func(a, b KeyInfo) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.KID, b.KID)
	})
}
