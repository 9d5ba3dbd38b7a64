package drbg

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
)

// dfKey is K of Block_Cipher_df step 8: the leftmost keylen bits of
// 0x00010203…1D1E1F.
var dfKey = func() cipher.Block {
	var k [KeyLen]byte
	for i := range k {
		k[i] = byte(i)
	}
	b, err := aes.NewCipher(k[:])
	if err != nil {
		panic("entropy/drbg: " + err.Error()) // unreachable
	}
	return b
}()

// dfChains is the number of BCC invocations Block_Cipher_df needs for
// keylen + outlen = 384 bits (step 9).
const dfChains = SeedLen / BlockLen

// dfState is the working memory of Block_Cipher_df (SP 800-90A Rev. 1, §10.3.2)
// with BCC (§10.3.3). The three BCC chains over IV_i || S run side by side, so
// S is streamed once and never materialized.
type dfState struct {
	chain [dfChains][BlockLen]byte // BCC chaining values, then temp = K' || X
	buf   [BlockLen]byte           // partial block of S
	n     int                      // bytes in buf
}

// derive sets out = Block_Cipher_df(a || b || c, 384). The caller bounds the
// input lengths (3 × MaxInputLen fits the 32-bit L easily).
func (s *dfState) derive(out *[SeedLen]byte, a, b, c []byte) {
	// Steps 7 and 9, first block of each BCC: chaining_value = E(K, 0 ^ IV_i),
	// IV_i = i (32 bits, big-endian) || 0^(outlen-32).
	for i := range s.chain {
		clear(s.chain[i][:])
		binary.BigEndian.PutUint32(s.chain[i][:4], uint32(i))
		dfKey.Encrypt(s.chain[i][:], s.chain[i][:])
	}
	s.n = 0
	// Steps 2-5: S = L || N || input_string || 0x80 || 0-padding to outlen.
	var ln [8]byte
	binary.BigEndian.PutUint32(ln[:4], uint32(len(a)+len(b)+len(c)))
	binary.BigEndian.PutUint32(ln[4:], SeedLen)
	s.write(ln[:])
	s.write(a)
	s.write(b)
	s.write(c)
	s.buf[s.n] = 0x80
	s.n++
	if s.n < BlockLen {
		clear(s.buf[s.n:])
		s.n = BlockLen
	}
	s.block()

	// Steps 10-11: K = leftmost keylen bits of temp, X = the next outlen bits.
	// (temp is exactly the three chaining values.)
	var k [KeyLen]byte
	copy(k[:16], s.chain[0][:])
	copy(k[16:], s.chain[1][:])
	kb, err := aes.NewCipher(k[:])
	clear(k[:])
	if err != nil {
		panic("entropy/drbg: " + err.Error()) // unreachable
	}
	// Steps 12-14: X = E(K, X) three times; the 384 bits are the output
	// (no_of_bits_to_return = 384, below max_number_of_bits = 512 of step 1).
	x := s.chain[2][:]
	for i := 0; i < SeedLen; i += BlockLen {
		kb.Encrypt(out[i:i+BlockLen], x)
		x = out[i : i+BlockLen]
	}
	*s = dfState{}
}

// write appends p to S, running the BCC chains on every full block.
func (s *dfState) write(p []byte) {
	for len(p) > 0 {
		m := copy(s.buf[s.n:], p)
		s.n += m
		p = p[m:]
		if s.n == BlockLen {
			s.block()
		}
	}
}

// block feeds the full block in buf to every BCC chain:
// chaining_value = E(K, chaining_value ^ block).
func (s *dfState) block() {
	for i := range s.chain {
		c := s.chain[i][:]
		for j := range c {
			c[j] ^= s.buf[j]
		}
		dfKey.Encrypt(c, c)
	}
	s.n = 0
}
