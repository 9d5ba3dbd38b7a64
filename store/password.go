package store

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id parameters. They are written into every stored
// hash in the PHC string format
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt b64>$<hash b64>
//
// (unpadded standard base64), so they can change without invalidating
// existing hashes: verification uses the parameters in the string, and a
// successful login with outdated parameters re-hashes with the current ones.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultArgon2Params is RFC 9106 §4's second recommended option
// (argon2id, m = 64 MiB, t = 3, p = 4, 128-bit salt, 256-bit tag). On a
// 2-core host one hash takes on the order of 100–200 ms and 64 MiB, which is
// why PasswordHasher bounds how many run at once.
var DefaultArgon2Params = Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}

// TestArgon2Params are tiny parameters for tests only (m = 64 KiB, t = 1).
var TestArgon2Params = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on parameters, both for configuration and for hashes read back
// from the database (a tampered hash must not make a login allocate 4 GiB).
const (
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 64
	minSaltLen        = 8
	maxSaltLen        = 64
	minKeyLen         = 16
	maxKeyLen         = 64
)

// Validate reports the first parameter out of bounds.
func (p Argon2Params) Validate() error {
	switch {
	case p.Threads < 1:
		return fmt.Errorf("%w: argon2 threads must be ≥ 1", ErrInvalid)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgonMemoryKiB:
		return fmt.Errorf("%w: argon2 memory %d KiB outside %d..%d", ErrInvalid, p.Memory, 8*uint32(p.Threads), maxArgonMemoryKiB)
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("%w: argon2 time %d outside 1..%d", ErrInvalid, p.Time, maxArgonTime)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("%w: argon2 salt length %d outside %d..%d", ErrInvalid, p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("%w: argon2 key length %d outside %d..%d", ErrInvalid, p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// PasswordHasher hashes and verifies argon2id passwords. At most
// MaxConcurrent hashes run at once (each holds Memory KiB); further callers
// wait, honouring ctx. Safe for concurrent use.
type PasswordHasher struct {
	params Argon2Params
	rand   *Random
	sem    chan struct{}
}

// NewPasswordHasher returns a hasher with params (nil = DefaultArgon2Params)
// drawing salts from rand. maxConcurrent ≤ 0 means runtime.NumCPU().
func NewPasswordHasher(params *Argon2Params, maxConcurrent int, rand io.Reader) (*PasswordHasher, error) {
	p := DefaultArgon2Params
	if params != nil {
		p = *params
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if rand == nil {
		return nil, fmt.Errorf("%w: password hasher needs a random reader", ErrInvalid)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	return &PasswordHasher{params: p, rand: NewRandom(rand), sem: make(chan struct{}, maxConcurrent)}, nil
}

// Params returns the parameters new hashes use.
func (h *PasswordHasher) Params() Argon2Params { return h.params }

func (h *PasswordHasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *PasswordHasher) release() { <-h.sem }

// Hash returns the PHC string for password with a fresh salt.
func (h *PasswordHasher) Hash(ctx context.Context, password string) (string, error) {
	if err := ValidatePassword(password); err != nil {
		return "", err
	}
	salt := make([]byte, h.params.SaltLen)
	if err := h.rand.ReadFull(salt); err != nil {
		return "", fmt.Errorf("store: password salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return encodePHC(h.params, salt, key), nil
}

// Verify checks password against the PHC string encoded in constant time.
// It reports whether it matched and whether the hash should be re-made
// with the current parameters.
func (h *PasswordHasher) Verify(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	p, salt, want, err := decodePHC(encoded)
	if err != nil {
		return false, false, err
	}
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes] // keep the work constant; it cannot match anyway
		defer func() { ok = false }()
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	ok = subtle.ConstantTimeCompare(got, want) == 1
	rehash = p.Memory != h.params.Memory || p.Time != h.params.Time || p.Threads != h.params.Threads ||
		uint32(len(salt)) != h.params.SaltLen || uint32(len(want)) != h.params.KeyLen
	return ok, rehash, nil
}

// dummySalt salts the throw-away computation of VerifyDummy; it needs no
// randomness because its result is never stored or compared.
var dummySalt = []byte("qrngd-dummy-salt")

// Authenticate applies the Users.Authenticate rules to a looked-up user
// record, for every Users implementation: an unknown user (found false)
// costs one dummy argon2id run and gets ErrBadCredentials, exactly like a
// wrong password; ErrDisabled comes only after a correct password. rehash
// reports a hash made with other parameters than the current ones.
func (h *PasswordHasher) Authenticate(ctx context.Context, found bool, encoded, password string, disabled bool) (rehash bool, err error) {
	if !found {
		if err := h.VerifyDummy(ctx, password); err != nil {
			return false, err
		}
		return false, ErrBadCredentials
	}
	match, rehash, err := h.Verify(ctx, encoded, password)
	switch {
	case err != nil:
		return false, err
	case !match:
		return false, ErrBadCredentials
	case disabled:
		return false, ErrDisabled
	}
	return rehash, nil
}

// VerifyDummy spends the same work as Verify with the current parameters
// and matches nothing; use it for unknown users so that response time does
// not reveal which usernames exist.
func (h *PasswordHasher) VerifyDummy(ctx context.Context, password string) error {
	if len(password) > MaxPasswordBytes {
		password = password[:MaxPasswordBytes]
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	salt := dummySalt
	if uint32(len(salt)) != h.params.SaltLen {
		salt = make([]byte, h.params.SaltLen)
		copy(salt, dummySalt)
	}
	argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return nil
}

var b64 = base64.RawStdEncoding

func encodePHC(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodePHC parses and bounds a stored hash.
func decodePHC(s string) (Argon2Params, []byte, []byte, error) {
	bad := func(why string) (Argon2Params, []byte, []byte, error) {
		return Argon2Params{}, nil, nil, fmt.Errorf("%w: stored password hash: %s", ErrInvalid, why)
	}
	if len(s) > 512 {
		return bad("too long")
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("not a PHC string")
	}
	if parts[1] != "argon2id" {
		return bad("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported argon2 version")
	}
	var p Argon2Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return bad("malformed parameters")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("malformed parameter " + k)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return bad("too many lanes")
			}
			p.Threads = uint8(n)
		default:
			return bad("unknown parameter " + k)
		}
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return bad("salt is not base64")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return bad("hash is not base64")
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.Validate(); err != nil {
		return bad(err.Error())
	}
	return p, salt, key, nil
}
