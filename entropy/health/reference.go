package health

import "fmt"

// Reference runs the same tests as Tester with a plain per-sample loop that
// follows the pseudocode of SP 800-90B §4.4.1 and §4.4.2 line by line. It is
// the oracle the Tester is tested against; it is several times slower.
//
// A Reference is not safe for concurrent use.
type Reference struct {
	c       Cutoffs
	mask    byte
	n       uint64 // samples tested since New/Reset
	started bool   // RCT step 1 (A = next()) has run
	a       byte   // RCT: A
	b       uint64 // RCT: B
}

// NewReference returns a Reference for cfg, validated as by New.
func NewReference(cfg Config) (*Reference, error) {
	c, m, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return &Reference{c: c, mask: m}, nil
}

// Window returns the APT window W.
func (r *Reference) Window() int { return r.c.W }

// Cutoffs returns the cutoffs the Reference applies.
func (r *Reference) Cutoffs() Cutoffs { return r.c }

// Reset forgets the current RCT run and restarts the sample index at 0.
func (r *Reference) Reset() { r.n, r.started, r.a, r.b = 0, false, 0, 0 }

// Test is Tester.Test, one sample at a time.
func (r *Reference) Test(w []byte) Result {
	if len(w) != r.c.W {
		panic(fmt.Sprintf("entropy/health: Reference.Test: window of %d samples, want %d", len(w), r.c.W))
	}
	var res Result

	// §4.4.1 Repetition Count Test:
	//   1. A = next(); B = 1
	//   2. X = next(); if X == A { B++; if B >= C: failure } else { A = X; B = 1 }
	for i, s := range w {
		x := s & r.mask
		if !r.started {
			r.a, r.b, r.started = x, 1, true
			continue
		}
		if x == r.a {
			r.b++
			r.check(&res.RCT, &res.RCTIndex, r.b, uint64(r.c.RCT), uint64(r.c.RCTPermanent), i)
		} else {
			r.a, r.b = x, 1
		}
	}

	// §4.4.2 Adaptive Proportion Test, one window:
	//   1. A = next()  2. B = 1
	//   3. for i = 1 to W-1: if A == next() { B++; if B >= C: failure }
	a, b := w[0]&r.mask, uint64(1)
	for i := 1; i < r.c.W; i++ {
		if w[i]&r.mask == a {
			b++
			r.check(&res.APT, &res.APTIndex, b, uint64(r.c.APT), uint64(r.c.APTPermanent), i)
		}
	}

	r.n += uint64(len(w))
	return res
}

// check raises *o to the level count b reaches against cutoffs c
// (intermittent) and p (permanent), recording the index of the sample at
// offset i the first time a level is reached in this window.
func (r *Reference) check(o *Outcome, idx *uint64, b, c, p uint64, i int) {
	level := Pass
	switch {
	case b >= p:
		level = Permanent
	case b >= c:
		level = Intermittent
	}
	if level > *o {
		*o, *idx = level, r.n+uint64(i)
	}
}
