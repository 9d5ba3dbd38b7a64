package health

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestNew_Invalid(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"SampleBits=0", Config{H: 1, SampleBits: 0}, "SampleBits"},
		{"SampleBits=9", Config{H: 1, SampleBits: 9}, "SampleBits"},
		{"H=0", Config{H: 0, SampleBits: 8}, "H"},
		{"H=NaN", Config{H: math.NaN(), SampleBits: 8}, "H"},
		{"H>SampleBits", Config{H: 2.5, SampleBits: 2}, "H"},
		{"H<MinH", Config{H: MinH / 2, SampleBits: 1}, "H"},
		{"AlphaLog2=19", Config{H: 1, SampleBits: 8, AlphaLog2: 19}, "AlphaLog2"},
		{"AlphaLog2=41", Config{H: 1, SampleBits: 8, AlphaLog2: 41}, "AlphaLog2"},
		{"AlphaLog2<0", Config{H: 1, SampleBits: 8, AlphaLog2: -20}, "AlphaLog2"},
		{"Permanent=Alpha", Config{H: 1, SampleBits: 8, AlphaLog2: 30, PermanentAlphaLog2: 30}, "PermanentAlphaLog2"},
		{"Permanent<Alpha", Config{H: 1, SampleBits: 8, PermanentAlphaLog2: 10}, "PermanentAlphaLog2"},
		{"Permanent=81", Config{H: 1, SampleBits: 8, PermanentAlphaLog2: 81}, "PermanentAlphaLog2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New(%+v) error = %v, want ErrInvalidConfig", tc.cfg, err)
			}
			if !strings.Contains(err.Error(), tc.field+" = ") || !strings.HasPrefix(err.Error(), "entropy/health: ") {
				t.Errorf("error %q does not name %s with the package prefix", err, tc.field)
			}
			if _, err := NewReference(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewReference accepted %+v", tc.cfg)
			}
		})
	}
}

func TestNew_Cutoffs(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want Cutoffs
	}{
		// Defaults: α = 2^-20, permanent α² = 2^-40.
		{Config{H: 2, SampleBits: 8}, Cutoffs{RCT: 11, RCTPermanent: 21, APT: 177, APTPermanent: APTCutoff(2, 40, 512), W: 512}},
		{Config{H: 1, SampleBits: 1}, Cutoffs{RCT: 21, RCTPermanent: 41, APT: 589, APTPermanent: APTCutoff(1, 40, 1024), W: 1024}},
		{Config{H: 8, SampleBits: 8, AlphaLog2: 40, PermanentAlphaLog2: 80},
			Cutoffs{RCT: 6, RCTPermanent: 11, APT: APTCutoff(8, 40, 512), APTPermanent: APTCutoff(8, 80, 512), W: 512}},
		{Config{H: 0.2, SampleBits: 1, AlphaLog2: 20, PermanentAlphaLog2: 30},
			Cutoffs{RCT: 101, RCTPermanent: 151, APT: 941, APTPermanent: APTCutoff(0.2, 30, 1024), W: 1024}},
	} {
		tt, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := tt.Cutoffs(); got != tc.want {
			t.Errorf("New(%+v).Cutoffs() = %+v, want %+v", tc.cfg, got, tc.want)
		}
		if tt.Window() != tc.want.W {
			t.Errorf("Window() = %d, want %d", tt.Window(), tc.want.W)
		}
		r, _ := NewReference(tc.cfg)
		if r.Cutoffs() != tc.want || r.Window() != tc.want.W {
			t.Errorf("NewReference(%+v).Cutoffs() = %+v", tc.cfg, r.Cutoffs())
		}
	}
}

// pair drives a Tester and a Reference in lockstep and fails on the first
// window where they disagree.
type pair struct {
	t   *testing.T
	cfg Config
	f   *Tester
	r   *Reference
	win int
}

func newPair(t *testing.T, cfg Config) *pair {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReference(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{t: t, cfg: cfg, f: f, r: r}
}

// run tests data window by window and returns the Results (both agree).
func (p *pair) run(data []byte) []Result {
	p.t.Helper()
	w := p.f.Window()
	var out []Result
	for off := 0; off+w <= len(data); off += w {
		got, want := p.f.Test(data[off:off+w]), p.r.Test(data[off:off+w])
		if got != want {
			p.t.Fatalf("%+v window %d: Tester %+v, Reference %+v", p.cfg, p.win, got, want)
		}
		p.win++
		out = append(out, got)
	}
	return out
}

func (p *pair) reset() { p.f.Reset(); p.r.Reset() }

// Data generators; the high bits are random so that masking is exercised.
func genRandom(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// genSticky repeats the previous sample with probability q, otherwise draws
// from an alphabet of k values: long runs of every length.
func genSticky(rng *rand.Rand, n int, q float64, k, sampleBits int) []byte {
	b := make([]byte, n)
	v := byte(0)
	high := ^byte(1<<sampleBits - 1)
	for i := range b {
		if rng.Float64() >= q {
			v = byte(rng.IntN(k))
		}
		b[i] = v | byte(rng.Uint32())&high // random bits above the sample
	}
	return b
}

// genBiased draws v with probability pv, otherwise a uniform byte.
func genBiased(rng *rand.Rand, n int, v byte, pv float64) []byte {
	b := make([]byte, n)
	for i := range b {
		if rng.Float64() < pv {
			b[i] = v
		} else {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

// genStuck is random data that becomes constant v from sample at on.
func genStuck(rng *rand.Rand, n, at int, v byte) []byte {
	b := genRandom(rng, n)
	for i := at; i < n; i++ {
		b[i] = v
	}
	return b
}

// TestTester_MatchesReference compares outcomes and indices of the fast
// Tester and the Reference window by window, for every sample width, over
// H values that make alarms frequent and rare, on data with every kind of
// defect, including Resets in between.
func TestTester_MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alarms := map[string]int{}
	for sb := 1; sb <= 8; sb++ {
		hs := []float64{float64(sb), float64(sb) / 2, float64(sb) / 7, 0.3}
		for _, h := range hs {
			if h > float64(sb) {
				continue
			}
			for _, alpha := range []int{20, 40} {
				cfg := Config{H: h, SampleBits: sb, AlphaLog2: alpha}
				p := newPair(t, cfg)
				w := p.f.Window()
				c := p.f.Cutoffs()
				gens := map[string][]byte{
					"random":     genRandom(rng, 16*w),
					"sticky.9":   genSticky(rng, 16*w, 0.9, 4, sb),
					"sticky.99":  genSticky(rng, 16*w, 0.99, 1<<sb, sb),
					"sticky.5":   genSticky(rng, 16*w, 0.5, 2, sb),
					"biased":     genBiased(rng, 16*w, 0x55, 0.2),
					"biased.6":   genBiased(rng, 16*w, 0xaa, 0.6),
					"stuck":      genStuck(rng, 16*w, 3*w+rng.IntN(w), byte(rng.Uint32())),
					"stuckEarly": genStuck(rng, 16*w, rng.IntN(16), 7),
					"long runs":  runs(rng, 16*w, []int{c.RCT - 1, c.RCT, c.RCT + 1, c.RCTPermanent - 1, c.RCTPermanent, 3 * w}),
				}
				for name, data := range gens {
					p.reset()
					for _, r := range p.run(data) {
						if r.RCT != Pass {
							alarms[name+"/RCT/"+r.RCT.String()]++
						}
						if r.APT != Pass {
							alarms[name+"/APT/"+r.APT.String()]++
						}
					}
				}
			}
		}
	}
	// The data must actually exercise every alarm kind.
	for _, k := range []string{"stuck/RCT/permanent", "stuck/APT/permanent", "sticky.99/RCT/intermittent",
		"long runs/RCT/intermittent", "long runs/RCT/permanent", "biased.6/APT/intermittent", "biased.6/APT/permanent"} {
		if alarms[k] == 0 {
			t.Errorf("no %s alarm in the data: the comparison does not cover it", k)
		}
	}
	t.Logf("alarms seen: %v", alarms)
}

// runs fills n samples with runs of the given lengths (cycled), separated
// by short varied stretches, each run at a different alignment.
func runs(rng *rand.Rand, n int, lengths []int) []byte {
	b := make([]byte, 0, n)
	v := byte(0)
	for i := 0; len(b) < n; i++ {
		l := lengths[i%len(lengths)]
		v = ^v // differs from the previous run's value
		for range l {
			b = append(b, v)
		}
		for range 1 + rng.IntN(13) { // a gap of distinct, alternating samples
			b = append(b, byte(len(b)%2+2))
		}
	}
	return b[:n]
}

// clean returns n samples counting modulo 2^sampleBits (0101... for
// binary samples): no two adjacent samples are equal and every value takes
// an equal share, so neither test fires at the H values the tests use.
func clean(n, sampleBits int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % (1 << sampleBits))
	}
	return b
}

// TestTester_StuckIndex: a source whose samples become the constant v at
// sample N. The run of v starts at N (or at N-1 when sample N-1 already is
// v), so the RCT fires intermittently at N-1+C (N-2+C) and permanently at
// N-1+Cp (N-2+Cp). The run spans window boundaries.
func TestTester_StuckIndex(t *testing.T) {
	for _, tc := range []struct {
		cfg       Config
		n         int
		prevEqual bool
	}{
		{Config{H: 8, SampleBits: 8}, 700, false},                   // C = 4, Cp = 6: fires inside the first words
		{Config{H: 8, SampleBits: 8}, 510, false},                   // run starts 2 samples before a window boundary
		{Config{H: 8, SampleBits: 8}, 509, true},                    // run starts at 508
		{Config{H: 2, SampleBits: 8}, 1000, false},                  // C = 11, Cp = 21
		{Config{H: 0.5, SampleBits: 4}, 1001, true},                 // C = 41, Cp = 81
		{Config{H: 1, SampleBits: 1}, 1020, false},                  // binary, W = 1024, C = 21: run spans the boundary
		{Config{H: 0.1, SampleBits: 1, AlphaLog2: 40}, 3, false},    // C = 401, Cp = 801
		{Config{H: 0.05, SampleBits: 1, AlphaLog2: 40}, 1000, true}, // C = 801, Cp = 1601: spans three windows
	} {
		t.Run(fmt.Sprintf("%+v/N=%d/prevEqual=%v", tc.cfg, tc.n, tc.prevEqual), func(t *testing.T) {
			p := newPair(t, tc.cfg)
			c := p.f.Cutoffs()
			w := c.W
			total := (tc.n + c.RCTPermanent + 2*w) / w * w
			data := clean(total, tc.cfg.SampleBits)
			v := byte(1)
			if tc.cfg.SampleBits > 1 {
				v = byte(1<<tc.cfg.SampleBits - 1)
			}
			// Ensure sample N-1 differs from v (or equals it) and N-2 differs.
			for i := tc.n; i < total; i++ {
				data[i] = v
			}
			data[tc.n-1] = v ^ 1
			if tc.n >= 2 {
				data[tc.n-2] = v ^ 1
			}
			start := tc.n
			if tc.prevEqual {
				data[tc.n-1] = v
				start = tc.n - 1
			}
			if tc.cfg.SampleBits == 1 && start >= 1 {
				// Binary: v^1 before the run; keep the clean alternation before it.
				data[start-1] = v ^ 1
			}
			wantI := uint64(start + c.RCT - 1)
			wantP := uint64(start + c.RCTPermanent - 1)

			var gotI, gotP []uint64
			for k, r := range p.run(data) {
				switch r.RCT {
				case Intermittent:
					gotI = append(gotI, r.RCTIndex)
				case Permanent:
					gotP = append(gotP, r.RCTIndex)
				}
				lo, hi := uint64(k*w), uint64((k+1)*w)
				// Every window from the intermittent index on must alarm
				// at its first run sample at or after the cutoff.
				switch {
				case hi <= wantI:
					if r.RCT != Pass {
						t.Errorf("window %d: RCT %v at %d before the run reaches C", k, r.RCT, r.RCTIndex)
					}
				case lo <= wantP && wantP < hi:
					if r.RCT != Permanent || r.RCTIndex != wantP {
						t.Errorf("window %d: RCT %v at %d, want permanent at %d", k, r.RCT, r.RCTIndex, wantP)
					}
				case lo <= wantI && wantI < hi:
					if r.RCT != Intermittent || r.RCTIndex != wantI {
						t.Errorf("window %d: RCT %v at %d, want intermittent at %d", k, r.RCT, r.RCTIndex, wantI)
					}
				case lo > wantP:
					if r.RCT != Permanent || r.RCTIndex != lo {
						t.Errorf("window %d: RCT %v at %d, want permanent at its first sample %d", k, r.RCT, r.RCTIndex, lo)
					}
				default: // wantI < lo <= wantP: still intermittent from the first sample
					if r.RCT != Intermittent || r.RCTIndex != lo {
						t.Errorf("window %d: RCT %v at %d, want intermittent at its first sample %d", k, r.RCT, r.RCTIndex, lo)
					}
				}
			}
			if len(gotP) == 0 {
				t.Errorf("no permanent alarm (intermittent at %v); want one at %d", gotI, wantP)
			}
		})
	}
}

// TestTester_RunLengths: isolated runs of exactly C-1, C, Cp-1 and Cp
// samples at every alignment within a word and across a window boundary.
func TestTester_RunLengths(t *testing.T) {
	for _, cfg := range []Config{
		{H: 8, SampleBits: 8}, // C = 4, Cp = 6 (runs inside one word)
		{H: 7.5, SampleBits: 8, AlphaLog2: 40, PermanentAlphaLog2: 80}, // C = 7, Cp = 12
		{H: 3, SampleBits: 3}, // C = 8, Cp = 15
		{H: 1, SampleBits: 2}, // C = 21, Cp = 41
		{H: 1, SampleBits: 1}, // binary
	} {
		p := newPair(t, cfg)
		c := p.f.Cutoffs()
		w := c.W
		for _, tc := range []struct {
			length int
			want   Outcome
		}{{c.RCT - 1, Pass}, {c.RCT, Intermittent}, {c.RCTPermanent - 1, Intermittent}, {c.RCTPermanent, Permanent}} {
			for _, startAt := range []int{100, 101, 102, 103, 104, 105, 106, 107, w - tc.length/2, w - 1} {
				t.Run(fmt.Sprintf("%+v/len=%d/start=%d", cfg, tc.length, startAt), func(t *testing.T) {
					p.t = t
					p.reset()
					data := clean(3*w, cfg.SampleBits)
					v := data[startAt]
					for i := startAt; i < startAt+tc.length; i++ {
						data[i] = v
					}
					data[startAt+tc.length] = v ^ 1 // ends the run (clean data differs before it)
					if cfg.SampleBits == 1 {
						data[startAt-1] = v ^ 1
						for i := startAt + tc.length; i < 3*w; i++ {
							data[i] = byte(i-startAt-tc.length+1)&1 ^ v
						}
					}
					var worst Outcome
					var idx uint64
					for _, r := range p.run(data) {
						if r.RCT > worst {
							worst, idx = r.RCT, r.RCTIndex
						}
					}
					var wantIdx uint64
					switch tc.want {
					case Intermittent:
						wantIdx = uint64(startAt + c.RCT - 1)
					case Permanent:
						wantIdx = uint64(startAt + c.RCTPermanent - 1)
					}
					if worst != tc.want || idx != wantIdx {
						t.Errorf("run of %d: worst RCT %v at %d, want %v at %d", tc.length, worst, idx, tc.want, wantIdx)
					}
				})
			}
		}
	}
}

// TestTester_APTIndex: a window whose reference sample v recurs at chosen
// positions raises the APT exactly at the (C-1)-th recurrence (the C-th
// sample equal to v, counting the reference) and permanently at the
// (Cp-1)-th.
func TestTester_APTIndex(t *testing.T) {
	for _, cfg := range []Config{
		{H: 8, SampleBits: 8},
		{H: 4, SampleBits: 6, AlphaLog2: 30},
		{H: 1, SampleBits: 8},
		{H: 0.8, SampleBits: 1},
	} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			p := newPair(t, cfg)
			c := p.f.Cutoffs()
			w := c.W
			rng := rand.New(rand.NewPCG(3, 4))
			for _, recur := range []int{c.APT - 2, c.APT - 1, c.APTPermanent - 2, c.APTPermanent - 1, w - 1} {
				if recur > w-1 {
					continue
				}
				// Place the reference v at w[0] and at `recur` random positions;
				// every other sample differs from v.
				data := make([]byte, 2*w)
				copy(data[:w], clean(w, cfg.SampleBits)) // filler for the first window
				win := data[w:]
				v := byte(0)
				pos := rng.Perm(w - 1)[:recur]
				mark := make([]bool, w)
				for _, q := range pos {
					mark[q+1] = true
				}
				other := byte(1)
				for i := range win {
					if i == 0 || mark[i] {
						win[i] = v
					} else {
						win[i] = other | byte(rng.Uint32())&^byte(1<<cfg.SampleBits-1)
						if cfg.SampleBits > 1 {
							other = other%byte(1<<cfg.SampleBits-1) + 1 // cycles 1..max, never v
						}
					}
				}
				// Expected: the offsets of the n-th equal sample.
				var seen []int
				for i := range win {
					if i == 0 || mark[i] {
						seen = append(seen, i)
					}
				}
				want, wantIdx := Pass, uint64(0)
				if len(seen) >= c.APTPermanent {
					want, wantIdx = Permanent, uint64(w+seen[c.APTPermanent-1])
				} else if len(seen) >= c.APT {
					want, wantIdx = Intermittent, uint64(w+seen[c.APT-1])
				}
				p.reset()
				res := p.run(data)
				if res[1].APT != want || res[1].APTIndex != wantIdx {
					t.Errorf("%d recurrences: APT %v at %d, want %v at %d", recur, res[1].APT, res[1].APTIndex, want, wantIdx)
				}
				if res[0].APT != Pass {
					t.Errorf("clean window: APT %v", res[0].APT)
				}
			}
		})
	}
}

// TestTester_Masking: bits above SampleBits are ignored by both tests.
func TestTester_Masking(t *testing.T) {
	for sb := 1; sb <= 7; sb++ {
		cfg := Config{H: float64(sb), SampleBits: sb}
		p := newPair(t, cfg)
		rng := rand.New(rand.NewPCG(uint64(sb), 9))
		data := genRandom(rng, p.f.Window())
		for i := range data {
			data[i] = data[i]&^byte(1<<sb-1) | 1 // constant 1 in the sample bits
		}
		r := p.run(data)[0]
		if r.RCT != Permanent || r.APT != Permanent {
			t.Errorf("SampleBits %d: constant low bits under random high bits: %+v, want permanent", sb, r)
		}
	}
}

func TestTester_Reset(t *testing.T) {
	cfg := Config{H: 8, SampleBits: 8} // C = 4
	p := newPair(t, cfg)
	w := p.f.Window()
	data := clean(w, 8)
	data[w-1], data[w-2] = 9, 9 // run of 2 at the end of the window
	p.run(data)
	next := clean(w, 8)
	next[0], next[1] = 9, 9 // continues to 4 without Reset
	if r := p.run(next)[0]; r.RCT != Intermittent || r.RCTIndex != uint64(w+1) {
		t.Errorf("without Reset: %+v, want intermittent at %d", r, w+1)
	}
	p.reset()
	p.run(data)
	p.reset() // the run of 2 is forgotten and indices restart
	if r := p.run(next)[0]; r.RCT != Pass {
		t.Errorf("after Reset: %+v, want pass", r)
	}
	next[2], next[3] = 9, 9
	p.reset()
	if r := p.run(next)[0]; r.RCT != Intermittent || r.RCTIndex != 3 {
		t.Errorf("after Reset: %+v, want intermittent at 3", r)
	}
}

func TestTester_Test_WrongLength(t *testing.T) {
	f, _ := New(Config{H: 8, SampleBits: 8})
	r, _ := NewReference(Config{H: 8, SampleBits: 8})
	for name, fn := range map[string]func(){
		"Tester short":    func() { f.Test(make([]byte, 511)) },
		"Tester long":     func() { f.Test(make([]byte, 1024)) },
		"Reference short": func() { r.Test(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			fn()
		})
	}
}

func TestOutcome_String(t *testing.T) {
	for o, want := range map[Outcome]string{Pass: "pass", Intermittent: "intermittent", Permanent: "permanent", 7: "Outcome(7)"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q", o, o.String())
		}
	}
	if (Result{RCT: Intermittent, APT: Permanent}).Worst() != Permanent {
		t.Error("Worst")
	}
}

// TestTester_FalseAlarms checks the false-alarm helpers against the
// formulas computed independently, and the intermittent rate against the
// alarms a uniform binary source really raises.
func TestTester_FalseAlarms(t *testing.T) {
	for _, cfg := range []Config{{H: 1, SampleBits: 1}, {H: 8, SampleBits: 8}, {H: 3.3, SampleBits: 4, AlphaLog2: 30}} {
		f, _ := New(cfg)
		c := f.Cutoffs()
		p := math.Exp2(-cfg.H)
		for _, tc := range []struct {
			name       string
			got        float64
			rctC, aptC int
		}{
			{"intermittent", f.FalseAlarmsPerSample(), c.RCT, c.APT},
			{"permanent", f.PermanentFalseAlarmsPerSample(), c.RCTPermanent, c.APTPermanent},
		} {
			// APT tail by direct summation of binomial terms.
			tail, n := 0.0, c.W-1
			for k := tc.aptC - 1; k <= n; k++ {
				lg, _ := math.Lgamma(float64(n + 1))
				lk, _ := math.Lgamma(float64(k + 1))
				lnk, _ := math.Lgamma(float64(n - k + 1))
				tail += math.Exp(lg - lk - lnk + float64(k)*math.Log(p) + float64(n-k)*math.Log(1-p))
			}
			want := math.Pow(p, float64(tc.rctC-1))*(1-p) + tail/float64(c.W)
			if math.Abs(tc.got-want) > 1e-9*want {
				t.Errorf("%+v %s: %g per sample, want %g", cfg, tc.name, tc.got, want)
			}
		}
		// The rate respects α: RCT ≤ 2^-(H(C-1)) ≤ α and APT ≤ α/W.
		alpha := math.Exp2(-20)
		if cfg.AlphaLog2 != 0 {
			alpha = math.Exp2(-float64(cfg.AlphaLog2))
		}
		if r := f.FalseAlarmsPerSample(); r > alpha*(1+1/float64(c.W)) {
			t.Errorf("%+v: %g false alarms per sample exceeds α = %g", cfg, r, alpha)
		}
		rate := 1e6
		want := time.Duration(float64(time.Second) / (f.FalseAlarmsPerSample() * rate))
		if got := f.ExpectedFalseAlarmInterval(rate); got != want {
			t.Errorf("ExpectedFalseAlarmInterval(1e6) = %v, want %v", got, want)
		}
		if f.ExpectedPermanentFalseAlarmInterval(rate) <= f.ExpectedFalseAlarmInterval(rate) {
			t.Error("permanent alarms are not rarer than intermittent ones")
		}
		if f.ExpectedFalseAlarmInterval(0) != 0 {
			t.Error("interval at rate 0 is not 0")
		}
	}
	// A permanent rate so low the interval saturates.
	f, _ := New(Config{H: 8, SampleBits: 8, AlphaLog2: 40, PermanentAlphaLog2: 80})
	if got := f.ExpectedPermanentFalseAlarmInterval(1); got != time.Duration(math.MaxInt64) {
		t.Errorf("saturated interval = %v", got)
	}

	// Monte Carlo: a uniform binary source with H = 1 credited in full.
	// RCT C = 21: p^20·(1-p) = 2^-21 alarms per sample; APT adds ~1e-9.
	// 2^27 samples → about 64 alarm windows expected.
	const n = 1 << 27
	f, _ = New(Config{H: 1, SampleBits: 1})
	rng := rand.New(rand.NewPCG(5, 6))
	buf := make([]byte, f.Window())
	alarms := 0
	for range n / len(buf) {
		for i := 0; i < len(buf); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if f.Test(buf).Worst() != Pass {
			alarms++
		}
	}
	expected := f.FalseAlarmsPerSample() * n
	// Poisson(64): [38, 96] holds with probability > 0.999; a rate wrong by
	// a factor of two (128 or 32 expected) puts the count outside.
	if float64(alarms) < expected-3.2*math.Sqrt(expected) || float64(alarms) > expected+4*math.Sqrt(expected) {
		t.Errorf("%d alarm windows in %d samples, helper predicts %.1f", alarms, n, expected)
	}
	t.Logf("%d alarm windows in %d samples, helper predicts %.1f", alarms, n, expected)
}

// FuzzTester compares Tester and Reference on arbitrary input, cut into
// windows, for the sample width, H and α the fuzzer picks, with a Reset
// at a fuzzer-chosen window.
func FuzzTester(f *testing.F) {
	f.Add([]byte{}, uint8(8), uint8(255), uint8(0), uint8(0))
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 2}, uint8(8), uint8(255), uint8(20), uint8(3))
	f.Add([]byte{0, 0, 0, 1, 1, 1}, uint8(1), uint8(128), uint8(5), uint8(1))
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"), uint8(3), uint8(200), uint8(0), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, sb, hq, alpha, resetAt uint8) {
		bits := int(sb%8) + 1
		h := float64(bits) * (float64(hq) + 1) / 256
		if h < MinH {
			h = MinH
		}
		cfg := Config{H: h, SampleBits: bits, AlphaLog2: 20 + int(alpha%21)}
		p := newPair(t, cfg)
		if len(data) > 64<<10 {
			data = data[:64<<10]
		}
		// Expand the input to at least 3 windows by repeating it with a
		// varying offset so short inputs still make runs and windows.
		w := p.f.Window()
		buf := make([]byte, 0, 3*w)
		for k := 0; len(buf) < 3*w || len(buf) < len(data); k++ {
			if len(data) == 0 {
				buf = append(buf, byte(k))
				continue
			}
			buf = append(buf, data...)
			buf = append(buf, byte(k))
		}
		buf = buf[:len(buf)/w*w]
		r := int(resetAt) % (len(buf) / w)
		p.run(buf[:r*w])
		p.reset()
		p.run(buf[r*w:])
	})
}
