package entropy

import (
	"crypto/aes"
	"crypto/cipher"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func testGate(t testing.TB, hc *HealthConfig, now time.Time) *gate {
	t.Helper()
	info := SourceInfo{Name: "g", SampleBits: 8, MinEntropy: 8, NominalRate: 1e6}
	cfg, err := hc.resolve("g")
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGate(info, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// windowMaker cuts a uniform stream (ChaCha8) into 512-sample windows and
// makes windows with an injected run.
type windowMaker struct{ c *rand.ChaCha8 }

func newWindowMaker(seed byte) *windowMaker {
	return &windowMaker{c: rand.NewChaCha8([32]byte{seed})}
}

func (m *windowMaker) good() []byte {
	w := make([]byte, 512)
	m.c.Read(w)
	return w
}

// withRun returns a good window whose samples 100..100+n-1 are all 0x5a,
// with different neighbours: an RCT run of exactly n.
func (m *windowMaker) withRun(n int) []byte {
	w := m.good()
	for i := 100; i < 100+n; i++ {
		w[i] = 0x5a
	}
	w[99], w[100+n] = 0x11, 0x22
	return w
}

func TestPoissonCritical(t *testing.T) { // internal: poissonCritical
	// Smallest k with P[Poisson(λ) ≥ k] ≤ 2^-20, from mpmath at 200 bits:
	// λ=1: P[X≥10]=1.11e-7, P[X≥9]=1.13e-6; λ=10: k=29; λ=107.5: k=161.
	tests := []struct {
		lambda float64
		want   int
	}{{0, 1}, {1, 10}, {10, 29}, {107.5, 161}}
	for _, tt := range tests {
		if got := poissonCritical(tt.lambda, 20); got != tt.want {
			t.Errorf("poissonCritical(%v, 20) = %d, want %d", tt.lambda, got, tt.want)
		}
	}
}

func TestGate_Policy(t *testing.T) {
	type step struct {
		win     string        // "good", "run4" (intermittent), "run6" (permanent), "restart"
		at      time.Duration // time of the step
		want    verdict
		wantIdx uint64 // for alarms: expected absolute sample index (0: unchecked)
	}
	const (
		st, use, inter, quar, dis = vStartup, vUse, vIntermittent, vQuarantine, vDisable
	)
	tests := []struct {
		name  string
		hc    *HealthConfig
		steps []step
	}{
		{"startup then use", nil, []step{
			{"good", 0, st, 0}, {"good", 0, st, 0}, {"good", 0, use, 0}, {"good", 0, use, 0},
		}},
		{"intermittent discards and retests", nil, []step{
			{"good", 0, st, 0}, {"good", 0, st, 0}, {"good", 0, use, 0},
			// run of 4 at samples 1636..1639 of window 3 (offset 1536+100)
			{"run4", 0, inter, 1536 + 100 + 3},
			{"good", 0, st, 0}, {"good", 0, st, 0}, {"good", 0, use, 0},
		}},
		{"intermittent during start-up restarts it", nil, []step{
			{"good", 0, st, 0}, {"run4", 0, inter, 512 + 103}, {"good", 0, st, 0}, {"good", 0, st, 0}, {"good", 0, use, 0},
		}},
		{"permanent quarantines at the cutoff sample", nil, []step{
			{"good", 0, st, 0}, {"good", 0, st, 0}, {"good", 0, use, 0},
			{"run6", 0, quar, 1536 + 100 + 5},
			{"restart", 0, 0, 0}, {"good", 0, st, 0}, {"good", 0, st, 0}, {"good", 0, use, 0},
		}},
		{"max intermittent within window quarantines", &HealthConfig{MaxIntermittent: 3}, []step{
			{"good", 0, st, 0}, {"good", 0, st, 0},
			{"run4", time.Second, inter, 0}, {"good", 2 * time.Second, st, 0},
			{"run4", 10 * time.Second, inter, 0},
			{"run4", 59 * time.Second, quar, 2560 + 103},
		}},
		{"alarms spread beyond the window do not quarantine", &HealthConfig{MaxIntermittent: 3}, []step{
			{"run4", 0, inter, 0}, {"run4", 40 * time.Second, inter, 0},
			{"run4", 80 * time.Second, inter, 0}, {"run4", 120 * time.Second, inter, 0},
			{"run4", 160 * time.Second, inter, 0}, {"good", 161 * time.Second, st, 0},
		}},
		{"quarantines within window disable", nil, []step{
			{"run6", 0, quar, 105}, {"restart", 0, 0, 0},
			{"run6", 10 * time.Minute, quar, 512 + 105}, {"restart", 0, 0, 0},
			{"run6", 59 * time.Minute, dis, 1024 + 105},
		}},
		{"quarantines spread over more than the window do not disable", nil, []step{
			{"run6", 0, quar, 0}, {"restart", 0, 0, 0},
			{"run6", 40 * time.Minute, quar, 0}, {"restart", 0, 0, 0},
			{"run6", 80 * time.Minute, quar, 0}, {"restart", 0, 0, 0},
			{"run6", 120 * time.Minute, quar, 0}, {"restart", 0, 0, 0},
			{"good", 121 * time.Minute, st, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			g := testGate(t, tt.hc, t0)
			m := newWindowMaker(42)
			for i, s := range tt.steps {
				var w []byte
				switch s.win {
				case "restart":
					g.restart()
					continue
				case "good":
					w = m.good()
				case "run4":
					w = m.withRun(4)
				case "run6":
					w = m.withRun(6)
				}
				v, f := g.window(w, t0.Add(s.at))
				if v != s.want {
					t.Fatalf("step %d (%s at %v): verdict %v, want %v (failure %q)", i, s.win, s.at, v, s.want, f.Reason)
				}
				if s.wantIdx != 0 && f.Index != s.wantIdx {
					t.Fatalf("step %d: failure at sample %d, want %d (%s)", i, f.Index, s.wantIdx, f.Reason)
				}
			}
		})
	}
}

func TestGate_Counters(t *testing.T) {
	g := testGate(t, nil, time.Time{})
	m := newWindowMaker(7)
	g.window(m.good(), time.Time{})
	g.window(m.withRun(4), time.Time{})
	g.window(m.withRun(6), time.Time{})
	if g.rct != (TestCounters{Intermittent: 1, Permanent: 1}) || g.apt != (TestCounters{}) {
		t.Fatalf("counters RCT %+v APT %+v, want RCT {1 1} APT {0 0}", g.rct, g.apt)
	}
	if g.discarded != 1024 {
		t.Fatalf("discarded = %d, want 1024", g.discarded)
	}
	// A window of one value fails the APT permanently too.
	g.restart()
	w := make([]byte, 512)
	g.window(w, time.Time{})
	if g.apt.Permanent != 1 || g.rct.Permanent != 2 {
		t.Fatalf("after a constant window: RCT %+v APT %+v", g.rct, g.apt)
	}
}

func TestGate_BinaryStartupIsOneWindow(t *testing.T) {
	info := SourceInfo{Name: "b", SampleBits: 1, MinEntropy: 1}
	cfg, _ := (*HealthConfig)(nil).resolve("b")
	g, err := newGate(info, cfg, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if g.w != 1024 || g.startupWindows != 1 {
		t.Fatalf("W = %d, start-up windows = %d; want 1024, 1", g.w, g.startupWindows)
	}
}

// TestGate_Soak_GoodSource30MBps drives the real health.Tester and failure
// policy with uniform 8-bit samples (AES-256-CTR keystream, generated on a
// second goroutine) as a source at 30 MB/s would produce them, on simulated
// time, and requires no quarantine. It covers ten minutes of such a source
// (1.8e10 samples, about 11 s on two loaded cores); -short covers one minute.
func TestGate_Soak_GoodSource30MBps(t *testing.T) {
	const rate = 30e6
	minutes := 10.0
	if testing.Short() {
		minutes = 1
	}
	total := int64(rate * 60 * minutes)
	const bufSize = 1 << 20 // 2048 windows
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := testGate(t, nil, t0)

	full := make(chan []byte, 4)
	free := make(chan []byte, 4)
	for range 4 {
		free <- make([]byte, bufSize)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		blk, _ := aes.NewCipher([]byte("qrngd soak test key, 32 bytes!!!"))
		ctr := cipher.NewCTR(blk, make([]byte, aes.BlockSize))
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			clear(b)
			ctr.XORKeyStream(b, b)
			select {
			case full <- b:
			case <-stop:
				return
			}
		}
	}()

	var tested int64
	verdicts := map[verdict]int64{}
	maxLimit := 0
	for tested < total {
		b := <-full
		for off := 0; off+512 <= len(b) && tested < total; off += 512 {
			now := t0.Add(time.Duration(float64(tested) / rate * float64(time.Second)))
			v, f := g.window(b[off:off+512], now)
			verdicts[v]++
			tested += 512
			if v == vIntermittent {
				maxLimit = max(maxLimit, g.lastThreshold)
			}
			if v == vQuarantine || v == vDisable {
				t.Fatalf("good source %s after %d samples (%.1f s): %s", v, tested, float64(tested)/rate, f.Reason)
			}
		}
		free <- b
	}
	expected := g.alarmRate * float64(tested)
	t.Logf("%.3g samples (%.0f s at 30 MB/s): %d intermittent alarms, expected %.1f (%.3g per sample); largest derived MaxIntermittent %d; %d windows used, %d start-up",
		float64(tested), float64(tested)/rate, g.intermittents, expected, g.alarmRate, maxLimit, verdicts[vUse], verdicts[vStartup])
	if g.nQuarantines != 0 {
		t.Fatalf("%d quarantines", g.nQuarantines)
	}
	// The alarm count is a Poisson variable: it must be within 6σ of its
	// mean, or the cutoffs or the rate behind the derived limit are wrong.
	if d := math.Abs(float64(g.intermittents) - expected); d > 6*math.Sqrt(expected)+3 {
		t.Errorf("%d intermittent alarms, expected %.1f ± %.1f", g.intermittents, expected, math.Sqrt(expected))
	}
}
