package health

import (
	"math"
	"math/big"
	"testing"
)

// TestCutoffs_PublishedTable checks the cutoffs of SP 800-90B for α = 2^-20
// (Table 2 and the RCT example of §4.4.1).
func TestCutoffs_PublishedTable(t *testing.T) {
	if got := RCTCutoff(2, 20); got != 11 {
		t.Errorf("RCTCutoff(2, 20) = %d, want 11 (SP 800-90B §4.4.1 example)", got)
	}
	for _, tc := range []struct {
		h    float64
		w, c int
	}{
		{0.2, 1024, 941}, {0.4, 1024, 840}, {0.6, 1024, 748}, {0.8, 1024, 664}, {1, 1024, 589},
		{0.5, 512, 410}, {1, 512, 311}, {2, 512, 177}, {4, 512, 62}, {8, 512, 13},
	} {
		if got := APTCutoff(tc.h, 20, tc.w); got != tc.c {
			t.Errorf("APTCutoff(%v, 20, %d) = %d, want %d", tc.h, tc.w, got, tc.c)
		}
		// The oracle of TestAPTCutoff_Exact agrees with the table too.
		num := int(math.Round(tc.h * 10))
		if got, _, _ := exactAPTCutoff(num, 10, 20, tc.w); got != tc.c {
			t.Errorf("oracle for H = %v, W = %d: %d, want %d", tc.h, tc.w, got, tc.c)
		}
	}
}

func TestWindow(t *testing.T) {
	for bits, want := range map[int]int{1: 1024, 2: 512, 4: 512, 8: 512} {
		if got := Window(bits); got != want {
			t.Errorf("Window(%d) = %d, want %d", bits, got, want)
		}
	}
}

// TestRCTCutoff_Exact compares RCTCutoff with exact integer arithmetic for
// every H = num/1000 in (0, 8] and every α from 2^-20 to 2^-80, which
// includes all the cases where alphaLog2/H is an integer that float64
// division misses (20/0.2, 30/0.3, 70/0.7, ...).
func TestRCTCutoff_Exact(t *testing.T) {
	const den = 1000
	bad := 0
	for num := 1; num <= 8*den; num++ {
		h := float64(num) / den
		for a := 20; a <= 80; a++ {
			want := 1 + (a*den+num-1)/num // 1 + ceil(a / (num/den))
			if got := RCTCutoff(h, a); got != want {
				if bad++; bad <= 10 {
					t.Errorf("RCTCutoff(%v, %d) = %d, want %d", h, a, got, want)
				}
			}
		}
	}
	// The oracle tells a bare math.Ceil apart: some decimal H need the epsilon.
	naive := 0
	for num := 1; num <= 8*den; num++ {
		h := float64(num) / den
		for a := 20; a <= 80; a++ {
			if 1+int(math.Ceil(float64(a)/h)) != 1+(a*den+num-1)/num {
				naive++
			}
		}
	}
	if naive == 0 {
		t.Error("a bare math.Ceil(alphaLog2/h) matches the exact cutoffs everywhere: the grid does not exercise the epsilon")
	}
	t.Logf("bare math.Ceil is wrong in %d of %d cases", naive, 8*den*61)
}

func TestCutoffs_PanicOnBadArgs(t *testing.T) {
	for name, f := range map[string]func(){
		"RCT h=0":       func() { RCTCutoff(0, 20) },
		"RCT h=NaN":     func() { RCTCutoff(math.NaN(), 20) },
		"RCT h=Inf":     func() { RCTCutoff(math.Inf(1), 20) },
		"RCT alpha=0":   func() { RCTCutoff(1, 0) },
		"RCT too large": func() { RCTCutoff(1e-300, 20) },
		"APT h<0":       func() { APTCutoff(-1, 20, 512) },
		"APT window=0":  func() { APTCutoff(1, 20, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

// exactP returns 2^(-num/den) to prec bits: the den-th root of 2^-num by
// Newton's method from the float64 estimate.
func exactP(num, den int, prec uint) *big.Float {
	c := new(big.Float).SetPrec(prec).SetMantExp(big.NewFloat(1), -num)
	x := new(big.Float).SetPrec(prec).SetFloat64(math.Exp2(-float64(num) / float64(den)))
	if den == 1 {
		return c
	}
	d := new(big.Float).SetPrec(prec).SetInt64(int64(den))
	dm1 := new(big.Float).SetPrec(prec).SetInt64(int64(den - 1))
	for range 8 { // quadratic convergence: 53 bits -> > 8000 bits
		// x = ((den-1)·x + c / x^(den-1)) / den
		xp := powFloat(x, den-1, prec)
		t := new(big.Float).SetPrec(prec).Quo(c, xp)
		u := new(big.Float).SetPrec(prec).Mul(dm1, x)
		u.Add(u, t)
		x = u.Quo(u, d)
	}
	return x
}

func powFloat(x *big.Float, n int, prec uint) *big.Float {
	r := new(big.Float).SetPrec(prec).SetInt64(1)
	b := new(big.Float).SetPrec(prec).Set(x)
	for ; n > 0; n >>= 1 {
		if n&1 == 1 {
			r.Mul(r, b)
		}
		b.Mul(b, b)
	}
	return r
}

// exactAPTCutoff is the smallest C with P[X >= C] <= 2^-alphaLog2 for
// X ~ Binomial(w, 2^(-num/den)), capped at w, computed with 512-bit floats:
// an oracle independent of APTCutoff's log-gamma sum. It also returns the
// tail P[X >= C] and P[X >= C-1] relative to α, to show the margin.
func exactAPTCutoff(num, den, alphaLog2, w int) (c int, lo, hi float64) {
	const prec = 512
	p := exactP(num, den, prec)
	one := new(big.Float).SetPrec(prec).SetInt64(1)
	q := new(big.Float).SetPrec(prec).Sub(one, p)
	ratio := new(big.Float).SetPrec(prec).Quo(q, p) // (1-p)/p
	alpha := new(big.Float).SetPrec(prec).SetMantExp(one, -alphaLog2)

	pmf := powFloat(p, w, prec) // P[X = w]
	tail := new(big.Float).SetPrec(prec)
	prev := new(big.Float).SetPrec(prec) // P[X >= k+1]
	for k := w; k >= 0; k-- {
		prev.Set(tail)
		tail.Add(tail, pmf)
		if tail.Cmp(alpha) > 0 {
			c = min(k+1, w)
			lo, _ = new(big.Float).Quo(prev, alpha).Float64()
			hi, _ = new(big.Float).Quo(tail, alpha).Float64()
			return c, lo, hi
		}
		// P[X = k-1] = P[X = k] · k/(w-k+1) · (1-p)/p
		pmf.Mul(pmf, ratio)
		pmf.Mul(pmf, new(big.Float).SetPrec(prec).SetInt64(int64(k)))
		pmf.Quo(pmf, new(big.Float).SetPrec(prec).SetInt64(int64(w-k+1)))
	}
	panic("unreachable")
}

// naiveAPTCutoff is the float64 CRITBINOM that accumulates the lower CDF
// up to 1-α: the method SP 800-90B implementations get wrong at α = 2^-40.
func naiveAPTCutoff(h float64, alphaLog2, w int) int {
	p := math.Exp2(-h)
	target := 1 - math.Exp2(-float64(alphaLog2))
	cdf := 0.0
	for k := 0; k <= w; k++ {
		lg, _ := math.Lgamma(float64(w) + 1)
		lk, _ := math.Lgamma(float64(k) + 1)
		lnk, _ := math.Lgamma(float64(w-k) + 1)
		cdf += math.Exp(lg - lk - lnk + float64(k)*math.Log(p) + float64(w-k)*math.Log1p(-p))
		if cdf >= target {
			return k + 1
		}
	}
	return w
}

type hFrac struct{ num, den int }

func (h hFrac) float() float64 { return float64(h.num) / float64(h.den) }

// TestAPTCutoff_Exact compares APTCutoff with the 512-bit oracle on a grid
// of H for both window sizes and α = 2^-20, 2^-30, 2^-40 (plus 2^-60 and
// 2^-80, the permanent cutoffs) — including the cases where the float64
// lower-CDF method is off by one.
func TestAPTCutoff_Exact(t *testing.T) {
	var binary, nonBinary []hFrac
	for n := 1; n <= 20; n++ { // 0.05 .. 1 in steps of 0.05
		binary = append(binary, hFrac{n, 20})
	}
	binary = append(binary, hFrac{1, 100}, hFrac{3, 100}, hFrac{33, 100}, hFrac{99, 100}, hFrac{1, 3})
	for n := 1; n <= 32; n++ { // 0.25 .. 8 in steps of 0.25
		nonBinary = append(nonBinary, hFrac{n, 4})
	}
	nonBinary = append(nonBinary, hFrac{1, 10}, hFrac{7, 10}, hFrac{23, 10}, hFrac{79, 10}, hFrac{5, 3}, hFrac{7, 1})
	alphas := []int{20, 30, 40, 60, 80}
	if testing.Short() {
		alphas = []int{20, 40}
	}
	for _, g := range []struct {
		w  int
		hs []hFrac
	}{{1024, binary}, {512, nonBinary}} {
		for _, h := range g.hs {
			for _, a := range alphas {
				want, lo, hi := exactAPTCutoff(h.num, h.den, a, g.w)
				if got := APTCutoff(h.float(), a, g.w); got != want {
					t.Errorf("APTCutoff(%d/%d, %d, %d) = %d, want %d (P[X>=C]/α = %.6g, P[X>=C-1]/α = %.6g)",
						h.num, h.den, a, g.w, got, want, lo, hi)
				}
			}
		}
	}
}

// TestAPTCutoff_LowerCDFPitfall pins the cases the reference notes as wrong
// with the naive float64 method, so that the oracle demonstrably tells the
// two methods apart and APTCutoff sides with the oracle.
func TestAPTCutoff_LowerCDFPitfall(t *testing.T) {
	naiveWrong := 0
	for _, tc := range []struct {
		h hFrac
		w int
	}{
		{hFrac{5, 1}, 512}, {hFrac{6, 1}, 512},
		{hFrac{4, 10}, 1024}, {hFrac{5, 10}, 1024}, {hFrac{7, 10}, 1024}, {hFrac{8, 10}, 1024}, {hFrac{9, 10}, 1024},
	} {
		want, _, _ := exactAPTCutoff(tc.h.num, tc.h.den, 40, tc.w)
		if got := APTCutoff(tc.h.float(), 40, tc.w); got != want {
			t.Errorf("APTCutoff(%v, 40, %d) = %d, exact %d", tc.h.float(), tc.w, got, want)
		}
		if naive := naiveAPTCutoff(tc.h.float(), 40, tc.w); naive != want {
			naiveWrong++
			t.Logf("W=%d H=%v α=2^-40: naive lower-CDF cutoff %d, exact %d", tc.w, tc.h.float(), naive, want)
		}
	}
	if naiveWrong == 0 {
		t.Error("the naive lower-CDF cutoff is right in every pitfall case: the oracle no longer discriminates")
	}
}

// TestAPTCutoff_CapAtWindow: when even an all-equal window is likelier
// than α, the cutoff is W (documented behaviour).
func TestAPTCutoff_CapAtWindow(t *testing.T) {
	// H = 0.01, W = 1024: P[X = W] = 2^-10.24 > 2^-20.
	if got := APTCutoff(0.01, 20, 1024); got != 1024 {
		t.Errorf("APTCutoff(0.01, 20, 1024) = %d, want 1024", got)
	}
	// Just above the boundary W·h = alphaLog2 the cap no longer applies
	// and the answer agrees with the oracle.
	want, _, _ := exactAPTCutoff(2, 100, 20, 1024)
	if got := APTCutoff(0.02, 20, 1024); got != want {
		t.Errorf("APTCutoff(0.02, 20, 1024) = %d, want %d", got, want)
	}
}
