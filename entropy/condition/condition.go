// Package condition is the vetted conditioning component of qrngd's entropy
// sources and the entropy accounting that goes with it.
//
// The conditioning function is HMAC-SHA-256 (FIPS 198-1) under a fixed,
// public key, one of the vetted conditioning components of NIST SP 800-90B
// §3.1.5.1.1 (Table 1: for HMAC the narrowest internal width nw and the
// output length n_out both equal the hash output size, 256 bits for
// SHA-256). The key is not a secret: 90B's vetted HMAC conditioning does not
// rely on key secrecy, and a documented constant makes the component
// reproducible for an assessor. The key is the ASCII bytes of [KeyLabel].
//
// Output entropy is credited by the Output_Entropy function of 90B
// §3.1.5.1.2 ([OutputEntropy]); an output block counts as full entropy only
// when both
//
//   - the credited input entropy is at least n_out + 64 bits: SP 800-90C
//     (September 2025) §3.2.2.2, "The amount of entropy required for each use
//     of the conditioning function is output_len + 64 bits (see item 11 in
//     Sec. 2.6)"; and
//   - h_out = Output_Entropy(n_in, n_out, nw, h_in) ≥ (1 − ε)·n_out with
//     ε = 2^-32, the SP 800-90 series' definition of full entropy (NIST IR
//     8427; the NIST SP800-90B_EntropyAssessment tool's ea_conditioning
//     reports "SP 800-90C 2021 Full Entropy" when −log2(1 − h_out/n_out) ≥ 32).
//
// [SamplesPerBlock] turns that rule into the number of health-tested samples
// each 256-bit block needs; [Accumulator] feeds samples through the
// conditioner and emits a block each time that many have been absorbed.
//
// The package is a leaf: it imports nothing of the project.
package condition

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"math"
)

// Parameters of the HMAC-SHA-256 conditioning component (90B Table 1).
const (
	// OutputBits is n_out, the output length of one conditioning call.
	OutputBits = 256
	// OutputBytes is n_out in bytes: the size of one block.
	OutputBytes = OutputBits / 8
	// NarrowestWidth is nw, the narrowest internal width of HMAC-SHA-256.
	NarrowestWidth = 256
	// FullEntropyMarginBits is the entropy beyond n_out each conditioning
	// call needs before its output counts as full entropy (90C §3.2.2.2).
	FullEntropyMarginBits = 64
	// EpsilonLog2 is −log2 ε of the full-entropy definition, ε = 2^-32.
	EpsilonLog2 = 32
	// KeyLabel is the fixed HMAC key, used as its ASCII bytes.
	KeyLabel = "qrngd entropy/condition HMAC-SHA-256 key, version 1"
	// MaxSamplesPerBlock bounds how many samples may go into one block; it
	// keeps the inputs of [SamplesPerBlock] sane (H ≥ 320/2^20 bits).
	MaxSamplesPerBlock = 1 << 20
)

// ErrBadParameter reports an argument outside the domain of a function here.
var ErrBadParameter = errors.New("entropy/condition: bad parameter")

// Conditioner is the HMAC-SHA-256 conditioning function with the fixed key.
// It streams: Write any amount of input, then Sum one block, which also
// resets it. A Conditioner is not safe for concurrent use.
type Conditioner struct {
	mac hash.Hash
	n   int64 // input bytes since the last Sum
}

// New returns a Conditioner ready for input.
func New() *Conditioner {
	return &Conditioner{mac: hmac.New(sha256.New, []byte(KeyLabel))}
}

// Write absorbs input. It never fails.
func (c *Conditioner) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.mac.Write(p)
}

// Len reports the input bytes absorbed since the last Sum or Reset.
func (c *Conditioner) Len() int64 { return c.n }

// Sum writes the 32-byte output block for everything written since the last
// Sum or Reset into dst and resets the conditioner.
func (c *Conditioner) Sum(dst *[OutputBytes]byte) {
	c.mac.Sum(dst[:0])
	c.Reset()
}

// Reset drops any input absorbed so far.
func (c *Conditioner) Reset() {
	c.mac.Reset()
	c.n = 0
}

// Condition conditions input in one HMAC pass into dst. It is the one-shot
// form of Write + Sum.
func (c *Conditioner) Condition(dst *[OutputBytes]byte, input []byte) {
	c.Reset()
	c.mac.Write(input)
	c.mac.Sum(dst[:0])
	c.Reset()
}

// OutputEntropy is the Output_Entropy function of NIST SP 800-90B
// §3.1.5.1.2: the min-entropy credited to the n_out-bit output of a vetted
// conditioning component with narrowest internal width nw, given an n_in-bit
// input carrying h_in bits of min-entropy. In the standard's steps:
//
//  1. P_high = 2^(−h_in), P_low = (1 − P_high) / (2^n_in − 1)
//  2. n = min(n_out, nw)
//  3. ψ = 2^(n_in − n)·P_low + P_high
//  4. U = 2^(n_in − n) + sqrt(2·n·2^(n_in − n)·ln 2)
//  5. ω = U·P_low
//  6. return −log2(max(ψ, ω))
//
// As in NIST's reference tool (SP800-90B_EntropyAssessment,
// cpp/conditioning_main.cpp), nw is first capped at n_in (90B Appendix E) and
// ψ and ω are capped at 1. The computation runs in log2 space so that inputs
// of any length (2^n_in overflows a float64 past n_in = 1023) keep full
// float64 precision; 2^(n_in−n)·P_low is evaluated as
// 2^(−n)·(1 − 2^(−h_in))/(1 − 2^(−n_in)) with log1p.
//
// It returns NaN when an argument is outside the domain: n_in, n_out, nw ≥ 1
// and 0 < h_in ≤ n_in.
func OutputEntropy(nIn, nOut, nw int, hIn float64) float64 {
	if nIn < 1 || nOut < 1 || nw < 1 || !(hIn > 0) || hIn > float64(nIn) {
		return math.NaN()
	}
	nw = min(nw, nIn)
	n := min(nOut, nw)
	// log2(2^(n_in−n)·P_low) = −n + log2(1 − 2^−h_in) − log2(1 − 2^−n_in).
	a := -float64(n) + log2OneMinusPow2(hIn) - log2OneMinusPow2(float64(nIn))
	// log2 ψ = log2(2^a + 2^−h_in).
	logPsi := log2AddExp2(a, -hIn)
	// log2 ω = a + log2(1 + sqrt(2·n·ln2 / 2^(n_in−n))).
	k := float64(nIn - n)
	logOmega := a + math.Log1p(math.Sqrt(2*float64(n)*math.Ln2)*math.Exp2(-k/2))/math.Ln2
	m := max(logPsi, logOmega)
	if m > 0 { // ψ or ω above 1: capped, as in the reference tool
		m = 0
	}
	return -m
}

// log2OneMinusPow2 returns log2(1 − 2^−x) for x > 0.
func log2OneMinusPow2(x float64) float64 {
	return math.Log1p(-math.Exp2(-x)) / math.Ln2
}

// log2AddExp2 returns log2(2^x + 2^y).
func log2AddExp2(x, y float64) float64 {
	if x < y {
		x, y = y, x
	}
	return x + math.Log1p(math.Exp2(y-x))/math.Ln2
}

// IsFullEntropy reports whether h_out bits of min-entropy in an n_out-bit
// string are full entropy: h_out ≥ (1 − ε)·n_out with ε = 2^-32.
func IsFullEntropy(hOut float64, nOut int) bool {
	return nOut > 0 && hOut >= float64(nOut)*(1-math.Exp2(-EpsilonLog2))
}

// BlockIsFullEntropy reports whether one call of this package's conditioner
// (n_out = nw = 256) over nIn input bits carrying hIn bits of min-entropy
// yields a full-entropy block: hIn ≥ 256 + 64 (90C §3.2.2.2) and
// Output_Entropy(nIn, 256, 256, hIn) is full entropy.
func BlockIsFullEntropy(nIn int, hIn float64) bool {
	if hIn < OutputBits+FullEntropyMarginBits {
		return false
	}
	return IsFullEntropy(OutputEntropy(nIn, OutputBits, NarrowestWidth, hIn), OutputBits)
}

// SamplesPerBlock returns the smallest number of samples, each sampleBits
// wide (1..8) and credited with h bits of min-entropy (0 < h ≤ sampleBits),
// whose conditioning makes one full-entropy 256-bit block by
// [BlockIsFullEntropy]. n_in counts sampleBits bits per sample: the samples
// travel one per byte but only their low sampleBits bits can vary.
func SamplesPerBlock(sampleBits int, h float64) (int, error) {
	if sampleBits < 1 || sampleBits > 8 {
		return 0, fmt.Errorf("%w: sample width %d bits outside 1..8", ErrBadParameter, sampleBits)
	}
	if !(h > 0) || h > float64(sampleBits) {
		return 0, fmt.Errorf("%w: min-entropy %v per sample outside (0, %d]", ErrBadParameter, h, sampleBits)
	}
	// Smallest n with n·h ≥ 320, robust to the rounding of the division.
	const need = OutputBits + FullEntropyMarginBits
	n := max(1, int(math.Ceil(need/h)))
	for n > 1 && float64(n-1)*h >= need {
		n--
	}
	for float64(n)*h < need {
		n++
	}
	for ; n <= MaxSamplesPerBlock; n++ {
		if BlockIsFullEntropy(n*sampleBits, float64(n)*h) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: min-entropy %v per sample needs more than %d samples per block", ErrBadParameter, h, MaxSamplesPerBlock)
}

// Accumulator turns a stream of health-tested samples into full-entropy
// blocks: every [SamplesPerBlock] samples go through one conditioning call.
// It is not safe for concurrent use.
type Accumulator struct {
	c       *Conditioner
	per     int // samples per block
	pending int // samples absorbed into the current block
	hOut    float64
	blk     [OutputBytes]byte
}

// NewAccumulator returns an accumulator for samples of sampleBits bits
// credited with h bits of min-entropy each.
func NewAccumulator(sampleBits int, h float64) (*Accumulator, error) {
	per, err := SamplesPerBlock(sampleBits, h)
	if err != nil {
		return nil, err
	}
	return &Accumulator{
		c:    New(),
		per:  per,
		hOut: OutputEntropy(per*sampleBits, OutputBits, NarrowestWidth, float64(per)*h),
	}, nil
}

// SamplesPerBlock reports how many samples make one block.
func (a *Accumulator) SamplesPerBlock() int { return a.per }

// BlockEntropy reports the min-entropy credited to each block by
// [OutputEntropy] (at most 256, at least 256·(1 − 2^-32)).
func (a *Accumulator) BlockEntropy() float64 { return a.hOut }

// Pending reports the samples absorbed toward the next block.
func (a *Accumulator) Pending() int { return a.pending }

// Absorb feeds samples (one per byte) and calls emit with each completed
// block, in order. The block passed to emit is reused after emit returns; emit
// must copy what it keeps. Absorb returns the number of blocks emitted.
func (a *Accumulator) Absorb(samples []byte, emit func(block *[OutputBytes]byte)) int {
	blocks := 0
	for len(samples) > 0 {
		take := min(a.per-a.pending, len(samples))
		a.c.Write(samples[:take])
		a.pending += take
		samples = samples[take:]
		if a.pending == a.per {
			a.c.Sum(&a.blk)
			a.pending = 0
			blocks++
			emit(&a.blk)
		}
	}
	clear(a.blk[:])
	return blocks
}

// Reset drops the partial block. The engine calls it when a health-test
// alarm makes the samples before it suspect.
func (a *Accumulator) Reset() {
	a.c.Reset()
	a.pending = 0
}
