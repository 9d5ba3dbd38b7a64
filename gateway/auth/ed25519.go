package auth

import (
	"crypto/ed25519"
	"crypto/fips140"
	"errors"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// Ed25519 on the token paths runs on curve25519-voi: on the appliance's
// CPUs it signs in about half the time of crypto/ed25519 and, with a
// public key expanded once per kid (≈ 1.5 KiB of precomputed multiples),
// verifies in about half the time too (BENCHMARKS.md). Signatures are the
// same bytes (Ed25519 is deterministic: TestEd25519_MatchesStdlib), and
// verification uses voi's crypto/ed25519-compatible rules (cofactorless
// equation, canonical S, small-order points as the standard library
// treats them), so a token verifies here exactly when it verifies with
// crypto/ed25519 or any JWT library given the JWKS.
//
// When Go's FIPS 140-3 mode is on (GODEBUG=fips140=on), both stay on
// crypto/ed25519, the validated module.
var useStdEd25519 = fips140.Enabled()

var voiStdlib = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// edSign signs msg with priv (the 64-byte seed‖public form both libraries
// use).
func edSign(priv ed25519.PrivateKey, msg []byte) []byte {
	if useStdEd25519 {
		return ed25519.Sign(priv, msg)
	}
	return voi.Sign(voi.PrivateKey(priv), msg)
}

// edPublicKey is a published Ed25519 key ready for repeated verification.
type edPublicKey struct {
	pub ed25519.PublicKey
	x   *voi.ExpandedPublicKey // nil in FIPS mode
}

var errEdKey = errors.New("not a valid Ed25519 public key")

func newEdPublicKey(pub ed25519.PublicKey) (*edPublicKey, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errEdKey
	}
	k := &edPublicKey{pub: pub}
	if !useStdEd25519 {
		x, err := voi.NewExpandedPublicKey(voi.PublicKey(pub))
		if err != nil {
			return nil, errEdKey
		}
		k.x = x
	}
	return k, nil
}

func (k *edPublicKey) verify(msg, sig []byte) bool {
	if k.x == nil {
		return ed25519.Verify(k.pub, msg, sig)
	}
	return voi.VerifyExpandedWithOptions(k.x, msg, sig, voiStdlib)
}
