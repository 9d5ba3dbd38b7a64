package mcp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"

	"github.com/qrngd/qrngd/entropy"
)

// errBudget: rejection sampling drew far more bytes than it should; the
// source is broken (e.g. stuck at a constant), never a plausible outcome of
// a healthy one.
var errBudget = errors.New("gateway/mcp: rejection sampling exceeded its byte budget")

const maxChunk = 64 << 10

// drawer hands out unbiased values from an Entropy, reading in chunks and
// merging the provenance of every read.
type drawer struct {
	ctx    context.Context
	src    Entropy
	mode   entropy.Mode
	buf    []byte
	off    int
	want   int // bytes still expected by the caller's estimate
	budget int // bytes it may still read in total
	prov   entropy.Provenance
	reads  int
}

// newDrawer expects to need about estimate bytes; it may read up to
// 4*estimate+4096 before it gives up with errBudget.
func newDrawer(ctx context.Context, src Entropy, mode entropy.Mode, estimate int) *drawer {
	return &drawer{ctx: ctx, src: src, mode: mode, want: estimate, budget: 4*estimate + 4096, prov: entropy.Provenance{Mode: mode}}
}

func (d *drawer) read(p []byte) error {
	if len(p) > d.budget {
		return errBudget
	}
	d.budget -= len(p)
	prov, err := d.src.Read(d.ctx, p, d.mode)
	if err != nil {
		return err
	}
	d.merge(prov)
	return nil
}

func (d *drawer) merge(p entropy.Provenance) {
	d.reads++
	if p.Mode != "" {
		d.prov.Mode = p.Mode
	}
	d.prov.Degraded = d.prov.Degraded || p.Degraded
	for _, s := range p.Sources {
		if !slices.Contains(d.prov.Sources, s) {
			d.prov.Sources = append(d.prov.Sources, s)
		}
	}
}

// provenance of everything drawn so far (Sources never nil, for JSON).
func (d *drawer) provenance() entropy.Provenance {
	p := d.prov
	if p.Sources == nil {
		p.Sources = []string{}
	}
	return p
}

// fill reads a fresh chunk: the remaining estimate, at least 64 bytes.
func (d *drawer) fill(atLeast int) error {
	n := max(d.want, atLeast, 64)
	n = min(n, maxChunk)
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	d.off = 0
	if err := d.read(d.buf); err != nil {
		d.buf = d.buf[:0]
		return err
	}
	d.want = max(d.want-n, 0)
	return nil
}

// next returns k bytes as a big-endian integer (k in 1..8).
func (d *drawer) next(k int) (uint64, error) {
	if len(d.buf)-d.off < k {
		if err := d.fill(k); err != nil {
			return 0, err
		}
	}
	var x uint64
	for _, b := range d.buf[d.off : d.off+k] {
		x = x<<8 | uint64(b)
	}
	d.off += k
	return x, nil
}

// uintn returns a uniform value in [0, n), n >= 1, by rejection sampling:
// draw x from k whole bytes (2^(8k) >= n equally likely values), reject the
// lowest 2^(8k) mod n of them so the rest split into equal classes mod n.
// Each draw is accepted with probability > 1/2.
func (d *drawer) uintn(n uint64) (uint64, error) {
	if n <= 1 {
		return 0, nil
	}
	k := (bits.Len64(n-1) + 7) / 8
	var rem uint64
	if k == 8 {
		rem = -n % n // 2^64 mod n
	} else {
		rem = (uint64(1) << (8 * k)) % n
	}
	for {
		x, err := d.next(k)
		if err != nil {
			return 0, err
		}
		if x >= rem {
			return x % n, nil
		}
	}
}

// bytesPerDraw is the expected bytes one uintn(n) consumes, for estimates.
func bytesPerDraw(n uint64) int {
	if n <= 1 {
		return 0
	}
	return (bits.Len64(n-1) + 7) / 8
}

// shuffle permutes items in place by Fisher–Yates (Durstenfeld): for i from
// the end, swap i with a uniform j in [0, i]. With an unbiased uintn every
// one of the n! orders is equally likely.
func shuffle[T any](d *drawer, items []T) error {
	for i := len(items) - 1; i > 0; i-- {
		j, err := d.uintn(uint64(i) + 1)
		if err != nil {
			return err
		}
		items[i], items[j] = items[j], items[i]
	}
	return nil
}

// choose returns k distinct items in random order, uniformly among the
// n!/(n-k)! ordered selections: the first k steps of a forward Fisher–Yates
// on a copy.
func choose[T any](d *drawer, items []T, k int) ([]T, error) {
	a := slices.Clone(items)
	for i := 0; i < k; i++ {
		j, err := d.uintn(uint64(len(a) - i))
		if err != nil {
			return nil, err
		}
		a[i], a[i+int(j)] = a[i+int(j)], a[i]
	}
	return a[:k], nil
}

// uuidV4 formats 16 random bytes as an RFC 9562 §5.4 version-4 UUID: version
// nibble 0b0100 in octet 6, variant bits 0b10 in octet 8; 122 random bits.
func uuidV4(b []byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexd = "0123456789abcdef"
	out := make([]byte, 36)
	j := 0
	for i, c := range b[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexd[c>>4], hexd[c&15]
		j += 2
	}
	return string(out)
}

// passwordClass is one character class of generate_password.
type passwordClass struct {
	name  string
	chars string
}

// Symbols exclude quotes, backslash and backtick so passwords paste safely
// into shells and config files.
var passwordClasses = []passwordClass{
	{"lowercase", "abcdefghijklmnopqrstuvwxyz"},
	{"uppercase", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
	{"digits", "0123456789"},
	{"symbols", "!#$%&()*+,-./:;<=>?@[]^_{|}~"},
}

// maxPasswordAttempts bounds the whole-password rejection loop. The worst
// accepted configuration (length 8, all four classes) is accepted with
// probability about 0.5, so 200 attempts fail with probability < 2^-190.
const maxPasswordAttempts = 200

// password draws length characters uniformly from the union of classes and
// rejects the whole password unless every class occurs. The accepted
// passwords are then uniform over S, the set of length-L strings over the
// union that contain every class: each member of S had the same chance per
// attempt, and rejection conditions on S without favouring any member. The
// entropy is exactly log2|S| (see passwordEntropyBits). Patching a missing
// class into a random position instead would make strings with exactly one
// member of a class more likely than the rest — a bias this method avoids.
func password(d *drawer, classes []passwordClass, length int) (string, error) {
	var alphabet []byte
	for _, c := range classes {
		alphabet = append(alphabet, c.chars...)
	}
	out := make([]byte, length)
	for attempt := 0; attempt < maxPasswordAttempts; attempt++ {
		for i := range out {
			j, err := d.uintn(uint64(len(alphabet)))
			if err != nil {
				return "", err
			}
			out[i] = alphabet[j]
		}
		if hasEveryClass(out, classes) {
			return string(out), nil
		}
	}
	return "", fmt.Errorf("gateway/mcp: no password with every class after %d attempts; the entropy source looks broken", maxPasswordAttempts)
}

func hasEveryClass(p []byte, classes []passwordClass) bool {
	for _, c := range classes {
		found := false
		for _, b := range p {
			if containsByte(c.chars, b) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func containsByte(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// passwordSpace counts |S| by inclusion–exclusion over the classes left out:
// |S| = Σ_{T ⊆ classes} (-1)^|T| (N - Σ_{c∈T} n_c)^L.
func passwordSpace(sizes []int, length int) *big.Int {
	total := 0
	for _, s := range sizes {
		total += s
	}
	sum := new(big.Int)
	for mask := 0; mask < 1<<len(sizes); mask++ {
		left := total
		for i, s := range sizes {
			if mask&(1<<i) != 0 {
				left -= s
			}
		}
		term := new(big.Int).Exp(big.NewInt(int64(left)), big.NewInt(int64(length)), nil)
		if bits.OnesCount(uint(mask))%2 == 1 {
			sum.Sub(sum, term)
		} else {
			sum.Add(sum, term)
		}
	}
	return sum
}

// passwordEntropyBits is log2|S|, the entropy of a password drawn uniformly
// from S.
func passwordEntropyBits(sizes []int, length int) float64 {
	return log2Big(passwordSpace(sizes, length))
}

func log2Big(x *big.Int) float64 {
	if x.Sign() <= 0 {
		return 0
	}
	mant := new(big.Float)
	exp := new(big.Float).SetInt(x).MantExp(mant) // x = mant * 2^exp, 0.5 <= mant < 1
	m, _ := mant.Float64()
	return math.Log2(m) + float64(exp)
}
