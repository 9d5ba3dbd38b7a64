package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"math/big"
	"slices"
	"testing"
)

// TestEd25519_MatchesStdlib: the token paths' Ed25519 (curve25519-voi)
// makes the same signature bytes as crypto/ed25519 and accepts exactly
// what crypto/ed25519 accepts, for valid, tampered, non-canonical and
// small-order inputs.
func TestEd25519_MatchesStdlib(t *testing.T) {
	if useStdEd25519 {
		t.Skip("FIPS 140-3 mode: crypto/ed25519 is used directly")
	}
	// L, the order of the base point (RFC 8032 §5.1).
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := func(b []byte) *big.Int { r := slices.Clone(b); slices.Reverse(r); return new(big.Int).SetBytes(r) }
	toLE := func(n *big.Int) []byte { b := n.FillBytes(make([]byte, 32)); slices.Reverse(b); return b }
	type tc struct {
		name     string
		pub, msg []byte
		sig      []byte
	}
	var cases []tc
	for i := range 64 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, i*13)
		rand.Read(msg)
		want := ed25519.Sign(priv, msg)
		if got := edSign(priv, msg); !bytes.Equal(got, want) {
			t.Fatalf("message %d: signature %x, crypto/ed25519 makes %x", i, got, want)
		}
		cases = append(cases, tc{"valid", pub, msg, want})
		bad := slices.Clone(want)
		bad[i%64] ^= 1 << (i % 8)
		cases = append(cases, tc{"flipped bit", pub, msg, bad})
		if len(msg) > 0 {
			m := slices.Clone(msg)
			m[0] ^= 0x80
			cases = append(cases, tc{"other message", pub, m, want})
		}
		// S + L satisfies the equation but is not canonical (RFC 8032 §5.1.7 rejects it).
		nc := slices.Clone(want)
		copy(nc[32:], toLE(new(big.Int).Add(le(want[32:]), l)))
		cases = append(cases, tc{"S+L", pub, msg, nc})
		cases = append(cases, tc{"short", pub, msg, want[:63]})
	}
	// Identity A and R with S = 0: the cofactorless equation holds for any
	// message; crypto/ed25519 accepts it.
	id := make([]byte, 32)
	id[0] = 1
	cases = append(cases, tc{"small-order A and R", id, []byte("m"), append(slices.Clone(id), make([]byte, 32)...)})

	for i, c := range cases {
		want := len(c.pub) == ed25519.PublicKeySize && ed25519.Verify(c.pub, c.msg, c.sig)
		k, err := newEdPublicKey(c.pub)
		if err != nil {
			t.Fatalf("case %d (%s): %v", i, c.name, err)
		}
		if got := k.verify(c.msg, c.sig); got != want {
			t.Errorf("case %d (%s): verify %v, crypto/ed25519 says %v", i, c.name, got, want)
		}
	}
	if _, err := newEdPublicKey(make([]byte, 31)); err == nil {
		t.Error("a 31-byte public key was accepted")
	}
}

// BenchmarkEd25519 compares the token paths' Ed25519 with crypto/ed25519
// in the same run.
//
//	go test -run '^$' -bench 'Ed25519' ./gateway/auth/
func BenchmarkEd25519(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 420) // a qrngd access token's signing input
	sig := ed25519.Sign(priv, msg)
	k, err := newEdPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Sign", func(b *testing.B) {
		for b.Loop() {
			edSign(priv, msg)
		}
	})
	b.Run("Sign_CryptoEd25519", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(priv, msg)
		}
	})
	b.Run("Verify", func(b *testing.B) {
		for b.Loop() {
			if !k.verify(msg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
	b.Run("Verify_CryptoEd25519", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify failed")
			}
		}
	})
}
