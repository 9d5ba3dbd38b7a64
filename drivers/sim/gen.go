package sim

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"math"
)

// Implementation of the distribution described in the package
// documentation. Full-entropy samples are keystream bytes masked to n bits.
// Each sample with H < n costs 8 keystream bytes: 32 bits decide whether it
// is the most likely value (u32 < floor(2^32 * 2^-H)), 32 bits pick one of
// the other 2^n-1 values by Lemire's multiply; a draw in the biased sliver
// is replaced from a separate redraw stream, so the result is exactly
// uniform and the main stream stays aligned to the sample index.

type gen struct {
	ks      cipher.Stream
	mask    byte
	uniform bool
	mcv     byte   // most likely value when !uniform
	thresh  uint64 // P(mcv) = thresh / 2^32
	others  uint32 // 2^n - 1
	reject  uint32 // 2^32 mod others: Lemire's rejection bound
	buf     [8 << 10]byte
	redraw  *words // fresh words for the rare rejected draws
}

func keyFor(label string, seed uint64) []byte {
	h := sha256.New()
	h.Write([]byte(label))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	return h.Sum(nil)
}

func newStream(label string, seed uint64) cipher.Stream {
	blk, err := aes.NewCipher(keyFor(label, seed))
	if err != nil { // unreachable: the key is 32 bytes
		panic(err)
	}
	return cipher.NewCTR(blk, make([]byte, aes.BlockSize))
}

func newGen(seed uint64, sampleBits int, h float64) *gen {
	g := &gen{
		ks:      newStream("qrngd/sim/samples", seed),
		mask:    byte(1<<sampleBits - 1),
		uniform: h >= float64(sampleBits),
		others:  uint32(1<<sampleBits - 1),
		redraw:  newWords("qrngd/sim/redraw", seed),
	}
	g.reject = -g.others % g.others
	g.mcv = keyFor("qrngd/sim/most-likely", seed)[0] & g.mask
	if !g.uniform {
		t := math.Floor(math.Ldexp(math.Exp2(-h), 32))
		g.thresh = uint64(min(t, math.MaxUint32))
	}
	return g
}

// fill writes len(p) samples. The samples depend only on the seed and
// their index, never on how reads are sized.
func (g *gen) fill(p []byte) {
	if g.uniform {
		clear(p)
		g.ks.XORKeyStream(p, p)
		if g.mask != 0xff {
			m := uint64(g.mask) * 0x0101010101010101
			i := 0
			for ; i+8 <= len(p); i += 8 {
				binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])&m)
			}
			for ; i < len(p); i++ {
				p[i] &= g.mask
			}
		}
		return
	}
	// 8 keystream bytes per sample: the low 32 bits decide the most likely
	// value, the high 32 bits pick one of the others (Lemire multiply; a
	// draw in the biased sliver is replaced from the redraw stream).
	n := uint64(g.others)
	for len(p) > 0 {
		c := min(len(p), len(g.buf)/8)
		k := g.buf[:8*c]
		clear(k)
		g.ks.XORKeyStream(k, k)
		for j := range p[:c] {
			w := binary.LittleEndian.Uint64(k[8*j:])
			if w&0xffffffff < g.thresh {
				p[j] = g.mcv
				continue
			}
			m := (w >> 32) * n
			for uint32(m) < g.reject {
				m = uint64(g.redraw.u32()) * n
			}
			v := byte(m >> 32)
			if v >= g.mcv {
				v++
			}
			p[j] = v
		}
		p = p[c:]
	}
}

// words is a buffered stream of 32-bit words.
type words struct {
	ks  cipher.Stream
	buf [1024]byte
	off int
}

func newWords(label string, seed uint64) *words {
	w := &words{ks: newStream(label, seed)}
	w.off = len(w.buf)
	return w
}

func (w *words) u32() uint32 {
	if w.off+4 > len(w.buf) {
		clear(w.buf[:])
		w.ks.XORKeyStream(w.buf[:], w.buf[:])
		w.off = 0
	}
	v := binary.LittleEndian.Uint32(w.buf[w.off:])
	w.off += 4
	return v
}

// coin draws the bias fault's decisions from its own stream, so that
// injecting bias never shifts the sample stream.
type coin struct{ w *words }

func newCoin(seed uint64) *coin { return &coin{newWords("qrngd/sim/bias", seed)} }

// below reports u32 < t for a fresh u32.
func (c *coin) below(t uint64) bool { return uint64(c.w.u32()) < t }
