package health

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// ErrInvalidConfig is wrapped by every error New and NewReference return.
var ErrInvalidConfig = errors.New("entropy/health: invalid config")

// Limits on Config.
const (
	DefaultAlphaLog2      = 20 // α = 2^-20, the low end of SP 800-90B §4.3 item 3's recommendation
	MinAlphaLog2          = 20
	MaxAlphaLog2          = 40
	MaxPermanentAlphaLog2 = 80 // allows α² for α = 2^-40
	// MinH is the smallest accepted min-entropy per sample. Below it the RCT
	// cutoff runs to tens of thousands of samples and the source is of no use.
	MinH = 0.001
)

// Config describes one noise source to a Tester.
type Config struct {
	// H is the assessed min-entropy per sample in bits, MinH <= H <= SampleBits.
	H float64
	// SampleBits is the sample width, 1..8. Samples arrive one per byte in
	// the low SampleBits bits; the other bits are ignored.
	SampleBits int
	// AlphaLog2 sets the intermittent false-positive probability
	// α = 2^-AlphaLog2. 0 means DefaultAlphaLog2; otherwise 20..40.
	AlphaLog2 int
	// PermanentAlphaLog2 sets the false-positive probability of the
	// permanent-failure cutoffs. 0 means 2*AlphaLog2 (α²); otherwise it must
	// be greater than AlphaLog2 and at most 80.
	PermanentAlphaLog2 int
}

// Cutoffs are the cutoffs a Tester applies, all in samples.
type Cutoffs struct {
	RCT          int // intermittent Repetition Count cutoff, 1 + ⌈AlphaLog2/H⌉
	RCTPermanent int // permanent Repetition Count cutoff, 1 + ⌈PermanentAlphaLog2/H⌉
	APT          int // intermittent Adaptive Proportion cutoff
	APTPermanent int // permanent Adaptive Proportion cutoff
	W            int // Adaptive Proportion window
}

// Outcome is the result of one health test over one window, ordered by
// severity.
type Outcome uint8

const (
	Pass         Outcome = iota // no cutoff reached
	Intermittent                // the α cutoff was reached
	Permanent                   // the permanent (smaller α) cutoff was reached
)

func (o Outcome) String() string {
	switch o {
	case Pass:
		return "pass"
	case Intermittent:
		return "intermittent"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Result is the outcome of both tests over one window.
//
// RCTIndex and APTIndex are absolute sample indices (counted from 0 since
// New or the last Reset) of the sample at which the test first reached its
// reported outcome within the window; they are 0 when the outcome is Pass.
type Result struct {
	RCT, APT           Outcome
	RCTIndex, APTIndex uint64
}

// Worst returns the more severe of the two outcomes.
func (r Result) Worst() Outcome { return max(r.RCT, r.APT) }

// resolve validates c, applies defaults and computes the cutoffs.
func (c Config) resolve() (Cutoffs, byte, error) {
	if c.SampleBits < 1 || c.SampleBits > 8 {
		return Cutoffs{}, 0, fmt.Errorf("%w: SampleBits = %d, want 1..8", ErrInvalidConfig, c.SampleBits)
	}
	if !(c.H >= MinH && c.H <= float64(c.SampleBits)) {
		return Cutoffs{}, 0, fmt.Errorf("%w: H = %v, want %v <= H <= SampleBits (%d)", ErrInvalidConfig, c.H, MinH, c.SampleBits)
	}
	a := c.AlphaLog2
	if a == 0 {
		a = DefaultAlphaLog2
	}
	if a < MinAlphaLog2 || a > MaxAlphaLog2 {
		return Cutoffs{}, 0, fmt.Errorf("%w: AlphaLog2 = %d, want %d..%d (or 0 for %d)", ErrInvalidConfig, c.AlphaLog2, MinAlphaLog2, MaxAlphaLog2, DefaultAlphaLog2)
	}
	pa := c.PermanentAlphaLog2
	if pa == 0 {
		pa = 2 * a
	}
	if pa <= a || pa > MaxPermanentAlphaLog2 {
		return Cutoffs{}, 0, fmt.Errorf("%w: PermanentAlphaLog2 = %d, want AlphaLog2 (%d) < PermanentAlphaLog2 <= %d (or 0 for 2*AlphaLog2)", ErrInvalidConfig, c.PermanentAlphaLog2, a, MaxPermanentAlphaLog2)
	}
	w := Window(c.SampleBits)
	cut := Cutoffs{
		RCT:          RCTCutoff(c.H, a),
		RCTPermanent: RCTCutoff(c.H, pa),
		APT:          APTCutoff(c.H, a, w),
		APTPermanent: APTCutoff(c.H, pa, w),
		W:            w,
	}
	return cut, byte(1<<c.SampleBits - 1), nil
}

// Tester runs the SP 800-90B §4.4 continuous health tests, the Repetition
// Count Test and the Adaptive Proportion Test, on the samples of one noise
// source, one APT window at a time. It processes eight samples per machine
// word and gives exactly the results of Reference.
//
// A Tester is not safe for concurrent use.
type Tester struct {
	c     Cutoffs
	h     float64
	mask  uint64 // sample mask in every byte
	n     uint64 // samples tested since New/Reset
	have  bool   // an RCT run is in progress (n > 0)
	last  byte   // RCT: value of the current run (masked)
	run   uint64 // RCT: length B of the current run
	small bool   // RCT cutoff <= 8: a run inside one word can fail
}

// New returns a Tester for the source cfg describes. Errors wrap
// ErrInvalidConfig and name the offending field.
func New(cfg Config) (*Tester, error) {
	c, m, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return &Tester{c: c, h: cfg.H, mask: uint64(m) * lsb, small: c.RCT <= 8}, nil
}

// Window returns the APT window W: the number of samples Test takes.
func (t *Tester) Window() int { return t.c.W }

// Cutoffs returns the cutoffs the Tester applies.
func (t *Tester) Cutoffs() Cutoffs { return t.c }

// Reset forgets the current RCT run and restarts the sample index at 0, as
// for a freshly opened source.
func (t *Tester) Reset() {
	t.n, t.have, t.last, t.run = 0, false, 0, 0
}

const (
	lsb  = 0x0101010101010101
	msb  = 0x8080808080808080
	low7 = 0x7f7f7f7f7f7f7f7f
)

// zeroBytes returns 0x80 in every byte of x that is zero and 0 elsewhere,
// exactly (no borrow between bytes).
func zeroBytes(x uint64) uint64 {
	return ^(((x & low7) + low7) | x | low7)
}

// Test runs both tests over exactly one APT window of samples, w, one
// sample per byte in the low SampleBits bits. It panics if len(w) is not
// Window(): a caller that slices its reads wrongly has a bug that must not
// pass silently.
//
// The RCT run carries over from the previous window; the APT starts afresh
// with w[0] as its reference sample. The whole window is always processed,
// so a stuck source reaches the permanent cutoff even after an intermittent
// alarm. A window whose Result is not Pass must be discarded.
func (t *Tester) Test(w []byte) Result {
	if len(w) != t.c.W {
		panic(fmt.Sprintf("entropy/health: Tester.Test: window of %d samples, want %d", len(w), t.c.W))
	}
	var res Result
	mask := t.mask

	// carry holds the previous sample for the RCT; with no previous sample,
	// w[0] is its own predecessor and the run starts at B = 0 + 1.
	first := uint64(w[0]) & mask & 0xff
	carry, b := uint64(t.last), t.run
	if !t.have {
		carry, b = first, 0
	}
	ref := first * lsb // APT reference A in every byte
	count := 0         // APT: samples equal to A, w[0] included
	cut, small := uint64(t.c.RCT), t.small
	for off := 0; ; off += 8 {
		var n int
		off, carry, b, n = scan(w, off, mask, ref, carry, b, cut, small)
		count += n
		if off >= len(w) {
			break
		}
		// This word may raise an RCT alarm: walk it sample by sample.
		x := binary.LittleEndian.Uint64(w[off:off+8]) & mask
		count += bits.OnesCount64(zeroBytes(x ^ ref))
		b = t.walkRCT(&res, x, carry, b, off)
		carry = x >> 56
		if res.RCT == Permanent {
			// Nothing worse can happen in this window: only track the run.
			cut, small = math.MaxUint64/2, false
		}
	}

	if count >= t.c.APT {
		level, nth := Intermittent, t.c.APT
		if count >= t.c.APTPermanent {
			level, nth = Permanent, t.c.APTPermanent
		}
		res.APT, res.APTIndex = level, t.n+uint64(nthMatch(w, ref, mask, nth))
	}

	t.last, t.run, t.have = byte(carry), b, true
	t.n += uint64(len(w))
	return res
}

// scan processes the words of w from offset off while no RCT run can reach
// cut within them: it counts the samples equal to the APT reference (ref,
// broadcast) and advances the RCT run. It returns the offset of the first
// word that may raise an RCT alarm (len(w) if none), the previous sample
// (carry) and run length b before that word, and the APT count of the
// words before it.
func scan(w []byte, off int, mask, ref, carry, b, cut uint64, small bool) (int, uint64, uint64, int) {
	count := 0
	for ; off+8 <= len(w); off += 8 {
		x := binary.LittleEndian.Uint64(w[off:off+8]) & mask
		// eq has 0x80 in byte j when sample j equals sample j-1.
		eq := zeroBytes(x ^ (x<<8 | carry))
		if eq != 0 {
			ne := ^eq & msb
			if ne == 0 { // all eight samples continue the run
				if b+8 >= cut {
					return off, carry, b, count
				}
				b += 8
			} else {
				// lead samples continue the carried run before one differs.
				lead := uint64(bits.TrailingZeros64(ne) >> 3)
				if b+lead >= cut || small && hasRun(eq, int(cut)-1) {
					return off, carry, b, count
				}
				b = 1 + uint64(bits.LeadingZeros64(ne)>>3)
			}
		} else {
			b = 1
		}
		carry = x >> 56
		count += bits.OnesCount64(zeroBytes(x ^ ref))
	}
	return len(w), carry, b, count
}

// walkRCT runs the RCT sample by sample over the eight samples in x (the
// word at window offset off, prev the sample before it) starting from run
// length b, records alarms in res and returns the run length after the word.
func (t *Tester) walkRCT(res *Result, x, prev, b uint64, off int) uint64 {
	rctC, rctP := uint64(t.c.RCT), uint64(t.c.RCTPermanent)
	p := byte(prev)
	for j := range 8 {
		s := byte(x >> (8 * j))
		if s != p {
			b, p = 1, s
			continue
		}
		b++
		if b >= rctP {
			if res.RCT < Permanent {
				res.RCT, res.RCTIndex = Permanent, t.n+uint64(off+j)
			}
		} else if b >= rctC && res.RCT < Intermittent {
			res.RCT, res.RCTIndex = Intermittent, t.n+uint64(off+j)
		}
	}
	return b
}

// hasRun reports whether eq (0x80 per flagged byte) has k consecutive
// flagged bytes, 1 <= k <= 8.
func hasRun(eq uint64, k int) bool {
	r := eq
	for j := 1; j < k && r != 0; j++ {
		r &= eq >> (8 * j)
	}
	return r != 0
}

// nthMatch returns the window offset of the n-th sample (1-based) of w
// whose masked value equals the byte broadcast in ref. The caller has
// checked that there are at least n.
func nthMatch(w []byte, ref, mask uint64, n int) int {
	off := 0
	for ; off+8 <= len(w); off += 8 {
		z := zeroBytes(binary.LittleEndian.Uint64(w[off:off+8])&mask ^ ref)
		c := bits.OnesCount64(z)
		if c >= n {
			for range n - 1 {
				z &= z - 1
			}
			return off + bits.TrailingZeros64(z)>>3
		}
		n -= c
	}
	panic("entropy/health: internal error: APT match not found")
}

// FalseAlarmsPerSample returns the expected number of intermittent alarms
// (RCT or APT) per sample for an IID source whose min-entropy is exactly H,
// derived from the cutoffs:
//
//   - RCT: a run reaches C at a given sample when the C-1 samples before it
//     equal it and the one before those differs: p^(C-1)·(1-p), p = 2^-H.
//     This is exact for a source uniform over 2^H values and close to
//     the standard's bound 2^(-H(C-1)) ≤ α otherwise.
//   - APT: a window fails when at least C-1 of its other W-1 samples equal
//     the reference sample, P[Binomial(W-1, p) ≥ C-1] per window (exact
//     for a uniform source; the cutoff itself is set with the slightly more
//     conservative Binomial(W, p)), divided by W.
//
// The two rates are added (alarms are rare and almost independent). Alarms
// of a real source with H below its true entropy are rarer.
func (t *Tester) FalseAlarmsPerSample() float64 {
	return t.alarmRate(t.c.RCT, t.c.APT)
}

// PermanentFalseAlarmsPerSample is FalseAlarmsPerSample for the permanent
// cutoffs.
func (t *Tester) PermanentFalseAlarmsPerSample() float64 {
	return t.alarmRate(t.c.RCTPermanent, t.c.APTPermanent)
}

func (t *Tester) alarmRate(rctC, aptC int) float64 {
	p := math.Exp2(-t.h)
	rct := math.Exp(float64(rctC-1)*math.Log(p) + math.Log1p(-p))
	apt := math.Exp(logBinomUpperTail(t.h, t.c.W-1, aptC-1)) / float64(t.c.W)
	return rct + apt
}

// ExpectedFalseAlarmInterval returns the mean time between intermittent
// false alarms at samplesPerSecond, 1/(FalseAlarmsPerSample·rate), capped
// at the largest time.Duration. It returns 0 if samplesPerSecond is not
// positive.
func (t *Tester) ExpectedFalseAlarmInterval(samplesPerSecond float64) time.Duration {
	return interval(t.FalseAlarmsPerSample(), samplesPerSecond)
}

// ExpectedPermanentFalseAlarmInterval is ExpectedFalseAlarmInterval for
// the permanent cutoffs.
func (t *Tester) ExpectedPermanentFalseAlarmInterval(samplesPerSecond float64) time.Duration {
	return interval(t.PermanentFalseAlarmsPerSample(), samplesPerSecond)
}

func interval(perSample, samplesPerSecond float64) time.Duration {
	if !(samplesPerSecond > 0) {
		return 0
	}
	s := 1 / (perSample * samplesPerSecond)
	if !(s < float64(math.MaxInt64)/float64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}
