package sim_test

import (
	"math"
	"testing"

	"github.com/qrngd/qrngd/drivers/drivertest"
	"github.com/qrngd/qrngd/drivers/sim"
)

// These tests check the claim in the package documentation: run against a
// source simulating min-entropy H, the SP 800-90B Repetition Count and
// Adaptive Proportion tests with cutoffs for H alarm at the rate the
// distribution predicts, which is at most alpha. A large alpha makes the
// rates measurable in a few million samples. The cutoffs are computed here
// (SP 800-90B §4.4.1, §4.4.2) so the test does not depend on entropy/health.

// binomTail is P[X >= c] for X ~ Binomial(n, p).
func binomTail(n, c int, p float64) float64 {
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x + 1)); return v }
	s := 0.0
	for k := n; k >= c && k >= 0; k-- {
		s += math.Exp(lg(n) - lg(k) - lg(n-k) + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
	}
	return s
}

// aptCutoff is the smallest C with P[Binomial(W, 2^-H) >= C] <= alpha.
func aptCutoff(w int, h, alpha float64) int {
	c := 1
	for binomTail(w, c, math.Exp2(-h)) > alpha {
		c++
	}
	return c
}

func within(t *testing.T, what string, got int, trials int, rate float64) {
	t.Helper()
	mean := float64(trials) * rate
	sd := math.Sqrt(mean * (1 - rate))
	t.Logf("%s: %d alarms in %d trials; predicted %.1f", what, got, trials, mean)
	if math.Abs(float64(got)-mean) > 5*sd+1 {
		t.Errorf("%s: %d alarms in %d trials; want %.1f ± %.1f (5 sd)", what, got, trials, mean, 5*sd+1)
	}
}

func TestSource_HealthTests_RCT(t *testing.T) {
	const n = 1 << 22
	for _, tt := range []struct {
		bits  int
		h     float64
		alpha float64
	}{{8, 2, 0x1p-8}, {1, 0.5, 0x1p-6}, {4, 3, 0x1p-9}} {
		s := newSim(t, &sim.Options{Seed: 11, SampleBits: tt.bits, MinEntropy: tt.h})
		c := 1 + int(math.Ceil(-math.Log2(tt.alpha)/tt.h))
		x := drivertest.ReadFull(t, s, n)
		alarms, run := 0, 1
		for i := 1; i < n; i++ {
			if x[i] == x[i-1] {
				run++
				if run == c {
					alarms++
				}
			} else {
				run = 1
			}
		}
		// Expected runs reaching C per sample: sum over values v of
		// P(previous != v) * P(v)^C.
		p := math.Exp2(-tt.h)
		q := (1 - p) / float64(int(1)<<tt.bits-1)
		rate := (1-p)*math.Pow(p, float64(c)) + float64(int(1)<<tt.bits-1)*(1-q)*math.Pow(q, float64(c))
		within(t, "RCT", alarms, n, rate)
		// The bound the cutoff was chosen for: a run continues C-1 times
		// with probability at most alpha.
		if bound := math.Pow(p, float64(c-1)); bound > tt.alpha*(1+1e-9) {
			t.Errorf("p^(C-1) = %g > alpha %g", bound, tt.alpha)
		}
	}
}

func TestSource_HealthTests_APT(t *testing.T) {
	const n = 1 << 22
	for _, tt := range []struct {
		bits  int
		h     float64
		alpha float64
	}{{8, 2, 0x1p-5}, {1, 0.5, 0x1p-5}} {
		s := newSim(t, &sim.Options{Seed: 12, SampleBits: tt.bits, MinEntropy: tt.h})
		w := 512
		if tt.bits == 1 {
			w = 1024
		}
		c := aptCutoff(w, tt.h, tt.alpha)
		x := drivertest.ReadFull(t, s, n)
		alarms, windows := 0, n/w
		for i := 0; i+w <= n; i += w {
			b := 0
			for _, v := range x[i : i+w] {
				if v == x[i] {
					b++
				}
			}
			if b >= c {
				alarms++
			}
		}
		// Per window: the reference value is v with P(v), then the count is
		// 1 + Binomial(W-1, P(v)).
		p := math.Exp2(-tt.h)
		others := float64(int(1)<<tt.bits - 1)
		q := (1 - p) / others
		rate := p*binomTail(w-1, c-1, p) + others*q*binomTail(w-1, c-1, q)
		within(t, "APT", alarms, windows, rate)
		if rate > tt.alpha {
			t.Errorf("APT alarm rate %g > alpha %g", rate, tt.alpha)
		}
	}
}
