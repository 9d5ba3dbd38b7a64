package health

import (
	"fmt"
	"math"
)

// rctEpsilon is the relative tolerance RCTCutoff uses to recognise an
// integer quotient alphaLog2/h that float64 division misses (20/0.2 is
// 100.00000000000001 in float64, so a bare math.Ceil would give 102, not 101).
//
// It is safe for every H written with up to six decimal places: for
// h = d/10^k and alphaLog2 <= 80 the exact quotient alphaLog2*10^k/d is
// either an integer or at least 1/d away from one, and 1/d is far larger
// than rctEpsilon*quotient. The test suite checks this against exact
// rational arithmetic on a grid of H values.
const rctEpsilon = 1e-9

// maxRCTCutoff bounds RCTCutoff so that the int conversion cannot overflow.
const maxRCTCutoff = 1 << 40

// Window returns the Adaptive Proportion Test window size W of SP 800-90B
// §4.4.2: 1024 for a binary noise source (sampleBits == 1), 512 otherwise.
func Window(sampleBits int) int {
	if sampleBits == 1 {
		return 1024
	}
	return 512
}

// RCTCutoff returns the Repetition Count Test cutoff of SP 800-90B §4.4.1,
//
//	C = 1 + ⌈alphaLog2 / h⌉
//
// for a false-positive probability α = 2^-alphaLog2 and an assessed
// min-entropy of h bits per sample. A run of C identical consecutive
// samples fails the test on its C-th sample.
//
// A quotient within a relative 1e-9 of an integer is taken as that integer,
// so that decimal H values such as 0.2 or 0.3 give the cutoff their exact
// value implies (see rctEpsilon).
//
// RCTCutoff panics if h is not finite and positive, if alphaLog2 < 1, or
// if the cutoff would exceed 2^40; New validates its Config before calling it.
func RCTCutoff(h float64, alphaLog2 int) int {
	checkArgs("RCTCutoff", h, alphaLog2)
	q := float64(alphaLog2) / h
	if !(q <= maxRCTCutoff) {
		panic(fmt.Sprintf("entropy/health: RCTCutoff: alphaLog2/h = %d/%v is too large", alphaLog2, h))
	}
	if r := math.Round(q); math.Abs(q-r) <= rctEpsilon*r {
		return 1 + int(r)
	}
	return 1 + int(math.Ceil(q))
}

// APTCutoff returns the Adaptive Proportion Test cutoff of SP 800-90B §4.4.2
// (footnote to Table 2),
//
//	C = 1 + CRITBINOM(W, 2^-h, 1 - α),
//
// that is the smallest C with P[X ≥ C] ≤ α for X ~ Binomial(W, p = 2^-h),
// α = 2^-alphaLog2, W = window.
//
// The upper tail is summed from k = W downwards in log space with
// log-gamma probability masses, so α = 2^-80 is as accurate as α = 2^-20;
// accumulating the lower CDF up to 1 - α in float64 is off by one at
// α = 2^-40 for several H (tests compare against exact big-number sums).
//
// When even P[X ≥ W] = p^W exceeds α (W·h < alphaLog2, i.e. H below
// alphaLog2/W, such as H < 0.0196 at α = 2^-20 and W = 1024), no cutoff
// within the window meets α and APTCutoff returns W: the test then fires
// only on a window whose samples are all equal, with a false-positive
// probability of p^W > α per window (FalseAlarmsPerSample reports it).
//
// APTCutoff panics if h is not finite and positive, alphaLog2 < 1 or
// window < 1; New validates its Config before calling it.
func APTCutoff(h float64, alphaLog2 int, window int) int {
	checkArgs("APTCutoff", h, alphaLog2)
	if window < 1 {
		panic(fmt.Sprintf("entropy/health: APTCutoff: window %d < 1", window))
	}
	logAlpha := -float64(alphaLog2) * math.Ln2
	lp, lq := logP(h)
	lgN, _ := math.Lgamma(float64(window) + 1)
	tail := math.Inf(-1) // log P[X >= k+1]
	for k := window; k >= 0; k-- {
		tail = logAddExp(tail, logBinomPMF(lgN, window, k, lp, lq))
		if tail > logAlpha {
			// P[X >= k] > α, P[X >= k+1] <= α (or k = W).
			return min(k+1, window)
		}
	}
	// Unreachable: P[X >= 0] = 1 > α.
	return window
}

// logBinomUpperTail returns ln P[X ≥ c] for X ~ Binomial(n, 2^-h), summed
// from k = n downwards in log space. It returns -Inf when c > n.
func logBinomUpperTail(h float64, n, c int) float64 {
	lp, lq := logP(h)
	lgN, _ := math.Lgamma(float64(n) + 1)
	tail := math.Inf(-1)
	for k := n; k >= max(c, 0); k-- {
		tail = logAddExp(tail, logBinomPMF(lgN, n, k, lp, lq))
	}
	return tail
}

// logP returns ln p and ln(1-p) for p = 2^-h.
func logP(h float64) (lp, lq float64) {
	return -h * math.Ln2, math.Log1p(-math.Exp2(-h))
}

// logBinomPMF returns ln P[X = k] for X ~ Binomial(n, p); lgN is ln n!,
// lp = ln p, lq = ln(1-p).
func logBinomPMF(lgN float64, n, k int, lp, lq float64) float64 {
	lgK, _ := math.Lgamma(float64(k) + 1)
	lgNK, _ := math.Lgamma(float64(n-k) + 1)
	v := lgN - lgK - lgNK + float64(k)*lp
	if n-k > 0 {
		v += float64(n-k) * lq
	}
	return v
}

// logAddExp returns ln(e^a + e^b) without overflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

func checkArgs(fn string, h float64, alphaLog2 int) {
	if !(h > 0) || math.IsInf(h, 1) {
		panic(fmt.Sprintf("entropy/health: %s: h = %v must be finite and > 0", fn, h))
	}
	if alphaLog2 < 1 {
		panic(fmt.Sprintf("entropy/health: %s: alphaLog2 = %d must be >= 1", fn, alphaLog2))
	}
}
