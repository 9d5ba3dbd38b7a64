package entropy

import (
	"fmt"
	"math"
	"time"

	"github.com/qrngd/qrngd/entropy/health"
)

// Failure-handling defaults (HealthConfig zero values).
const (
	DefaultAlphaLog2          = health.DefaultAlphaLog2
	DefaultMinIntermittent    = 5 // floor of the derived MaxIntermittent
	DefaultIntermittentWindow = time.Minute
	DefaultQuarantineFor      = 30 * time.Second
	DefaultMaxQuarantines     = 3
	DefaultQuarantineWindow   = time.Hour
	// MaxIntermittentLimit bounds HealthConfig.MaxIntermittent.
	MaxIntermittentLimit = 1 << 20
	// StartupSamples is the least number of samples that must pass the
	// health tests before a source's output is used (SP 800-90B §4.3 item 4).
	StartupSamples = 1024
)

// resolve applies the defaults to hc (nil means all defaults) and validates
// it. name is used in error messages.
func (hc *HealthConfig) resolve(name string) (HealthConfig, error) {
	var c HealthConfig
	if hc != nil {
		c = *hc
	}
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: source %q: HealthConfig.%s = %v, want %s", ErrInvalidConfig, name, field, v, want)
	}
	switch {
	case c.MaxIntermittent < 0 || c.MaxIntermittent > MaxIntermittentLimit:
		return c, bad("MaxIntermittent", c.MaxIntermittent, fmt.Sprintf("0 (derived) or 1..%d", MaxIntermittentLimit))
	case c.IntermittentWindow < 0:
		return c, bad("IntermittentWindow", c.IntermittentWindow, "≥ 0")
	case c.QuarantineFor < 0:
		return c, bad("QuarantineFor", c.QuarantineFor, "≥ 0")
	case c.MaxQuarantines < 0 || c.MaxQuarantines > 1000:
		return c, bad("MaxQuarantines", c.MaxQuarantines, "0 (default) or 1..1000")
	case c.QuarantineWindow < 0:
		return c, bad("QuarantineWindow", c.QuarantineWindow, "≥ 0")
	}
	if c.AlphaLog2 == 0 {
		c.AlphaLog2 = DefaultAlphaLog2
	}
	if c.PermanentAlphaLog2 == 0 {
		c.PermanentAlphaLog2 = 2 * c.AlphaLog2
	}
	if c.IntermittentWindow == 0 {
		c.IntermittentWindow = DefaultIntermittentWindow
	}
	if c.QuarantineFor == 0 {
		c.QuarantineFor = DefaultQuarantineFor
	}
	if c.MaxQuarantines == 0 {
		c.MaxQuarantines = DefaultMaxQuarantines
	}
	if c.QuarantineWindow == 0 {
		c.QuarantineWindow = DefaultQuarantineWindow
	}
	return c, nil
}

// verdict is what the failure policy makes of one tested window.
type verdict uint8

const (
	vStartup      verdict = iota // passed; spent on start-up testing, not used
	vUse                         // passed; may be conditioned
	vIntermittent                // alarm: window discarded, start-up testing again
	vQuarantine                  // permanent cutoff or too many alarms: quarantine
	vDisable                     // quarantine limit reached: disabled until reset
)

func (v verdict) String() string {
	return [...]string{"startup", "use", "intermittent", "quarantine", "disable"}[v]
}

// failure describes the alarm behind a verdict other than vStartup/vUse.
type failure struct {
	Test    string // "RCT", "APT" or "RCT+APT"
	Outcome health.Outcome
	Index   uint64 // absolute index of the sample that reached the cutoff
	Reason  string
}

func (f failure) String() string { return f.Reason }

// checkpoint records how many samples had been tested at a time.
type checkpoint struct {
	at     time.Time
	tested uint64
}

// gate is the failure policy of one source around its health.Tester, as in
// ESDM: start-up testing over ⌈1024/W⌉ windows before any sample is used; an
// intermittent (α) alarm discards its window and re-runs start-up testing; a
// permanent (α²) cutoff, or MaxIntermittent alarms within
// IntermittentWindow, quarantines; MaxQuarantines quarantines within
// QuarantineWindow disable. It is synchronous and takes the time as an
// argument, so it is tested (and soaked) without goroutines or clocks.
type gate struct {
	t   *health.Tester
	cfg HealthConfig
	w   int

	startupWindows int
	startupLeft    int    // passing windows still needed before output is used
	base           uint64 // absolute index of the tester's sample 0
	tested         uint64 // samples tested since the gate was made

	alarmRate   float64      // expected intermittent alarms per sample (good source)
	alarms      []time.Time  // intermittent alarms within IntermittentWindow
	quarantines []time.Time  // quarantines within QuarantineWindow
	checkpoints []checkpoint // tested-sample counts over the last IntermittentWindow

	rct, apt       TestCounters
	discarded      uint64
	nQuarantines   uint64
	lastFailure    failure
	intermittents  uint64 // all intermittent alarms, for logs and tests
	lastThreshold  int
	windowsPassed  uint64
	windowsTested  uint64
	startupsPassed uint64
}

func newGate(info SourceInfo, cfg HealthConfig, now time.Time) (*gate, error) {
	t, err := health.New(health.Config{
		H:                  info.MinEntropy,
		SampleBits:         info.SampleBits,
		AlphaLog2:          cfg.AlphaLog2,
		PermanentAlphaLog2: cfg.PermanentAlphaLog2,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: source %q: %w", ErrInvalidConfig, info.Name, err)
	}
	w := t.Window()
	g := &gate{
		t:              t,
		cfg:            cfg,
		w:              w,
		startupWindows: (StartupSamples + w - 1) / w,
		alarmRate:      t.FalseAlarmsPerSample(),
	}
	g.startupLeft = g.startupWindows
	g.checkpoints = []checkpoint{{at: now}}
	return g, nil
}

// window applies the tests and the policy to one window of exactly W
// samples seen at now.
func (g *gate) window(w []byte, now time.Time) (verdict, failure) {
	res := g.t.Test(w)
	g.tested += uint64(len(w))
	g.windowsTested++
	g.checkpoint(now)

	worst := res.Worst()
	if worst == health.Pass {
		g.windowsPassed++
		if g.startupLeft > 0 {
			g.startupLeft--
			if g.startupLeft == 0 {
				g.startupsPassed++
			}
			return vStartup, failure{}
		}
		return vUse, failure{}
	}

	count := func(c *TestCounters, o health.Outcome) {
		switch o {
		case health.Intermittent:
			c.Intermittent++
		case health.Permanent:
			c.Permanent++
		}
	}
	count(&g.rct, res.RCT)
	count(&g.apt, res.APT)
	g.discarded += uint64(len(w))
	g.startupLeft = g.startupWindows

	f := g.describe(res, worst)
	g.lastFailure = f
	if worst == health.Permanent {
		return g.quarantine(now, f)
	}

	g.intermittents++
	cut := now.Add(-g.cfg.IntermittentWindow)
	g.alarms = trimBefore(g.alarms, cut)
	g.alarms = append(g.alarms, now)
	limit := g.maxIntermittent(now)
	g.lastThreshold = limit
	if len(g.alarms) >= limit {
		f.Reason = fmt.Sprintf("%d intermittent alarms within %s (limit %d); last: %s", len(g.alarms), g.cfg.IntermittentWindow, limit, f.Reason)
		g.lastFailure = f
		return g.quarantine(now, f)
	}
	return vIntermittent, f
}

// describe names the test(s) that reached worst and the earliest sample
// index at which one did.
func (g *gate) describe(res health.Result, worst health.Outcome) failure {
	c := g.t.Cutoffs()
	var f failure
	f.Outcome = worst
	rct, apt := res.RCT == worst, res.APT == worst
	switch {
	case rct && apt:
		f.Test, f.Index = "RCT+APT", min(res.RCTIndex, res.APTIndex)
	case rct:
		f.Test, f.Index = "RCT", res.RCTIndex
	default:
		f.Test, f.Index = "APT", res.APTIndex
	}
	f.Index += g.base
	cut := map[string]string{
		"RCT":     fmt.Sprintf("RCT cutoff %d", pick(worst, c.RCT, c.RCTPermanent)),
		"APT":     fmt.Sprintf("APT cutoff %d/%d", pick(worst, c.APT, c.APTPermanent), c.W),
		"RCT+APT": fmt.Sprintf("RCT cutoff %d, APT cutoff %d/%d", pick(worst, c.RCT, c.RCTPermanent), pick(worst, c.APT, c.APTPermanent), c.W),
	}[f.Test]
	f.Reason = fmt.Sprintf("%s %s failure at sample %d (%s)", f.Test, worst, f.Index, cut)
	return f
}

func pick(o health.Outcome, intermittent, permanent int) int {
	if o == health.Permanent {
		return permanent
	}
	return intermittent
}

func (g *gate) quarantine(now time.Time, f failure) (verdict, failure) {
	g.nQuarantines++
	g.alarms = g.alarms[:0]
	g.quarantines = trimBefore(g.quarantines, now.Add(-g.cfg.QuarantineWindow))
	g.quarantines = append(g.quarantines, now)
	if len(g.quarantines) >= g.cfg.MaxQuarantines {
		f.Reason = fmt.Sprintf("%d quarantines within %s: disabled until reset; last: %s", len(g.quarantines), g.cfg.QuarantineWindow, f.Reason)
		g.lastFailure = f
		return vDisable, f
	}
	return vQuarantine, f
}

// restart begins start-up testing on a fresh stream (after a quarantine,
// a reconnect or a read error): the tester forgets its RCT run.
func (g *gate) restart() {
	g.base = g.tested
	g.t.Reset()
	g.startupLeft = g.startupWindows
}

// retest withholds output until start-up testing passes again, keeping the
// RCT run (after a read error: a stuck source must not escape the
// permanent cutoff by failing reads).
func (g *gate) retest() { g.startupLeft = g.startupWindows }

// resetHistory forgets past alarms and quarantines (operator reset).
func (g *gate) resetHistory() {
	g.alarms = g.alarms[:0]
	g.quarantines = g.quarantines[:0]
}

// usable reports whether start-up testing has passed since the last alarm.
func (g *gate) usable() bool { return g.startupLeft == 0 }

// checkpoint records the tested-sample count about 16 times per
// IntermittentWindow and keeps one entry at or before the window's start.
func (g *gate) checkpoint(now time.Time) {
	last := g.checkpoints[len(g.checkpoints)-1]
	if now.Sub(last.at) < g.cfg.IntermittentWindow/16 {
		return
	}
	g.checkpoints = append(g.checkpoints, checkpoint{at: now, tested: g.tested})
	cut := now.Add(-g.cfg.IntermittentWindow)
	i := 0
	for i+1 < len(g.checkpoints) && !g.checkpoints[i+1].at.After(cut) {
		i++
	}
	g.checkpoints = append(g.checkpoints[:0], g.checkpoints[i:]...)
}

// maxIntermittent is HealthConfig.MaxIntermittent, or when that is 0 the
// derived limit: the smallest k such that a good source (alarm rate from
// the cutoffs, health.Tester.FalseAlarmsPerSample) raises k or more alarms
// over the samples it had tested in the last IntermittentWindow with
// probability at most 2^-AlphaLog2 (Poisson tail), and at least
// DefaultMinIntermittent. At device rates false alarms are certain (8-bit
// samples with H = 8 at 30 MB/s raise about 1.8 a second), so a fixed count
// would quarantine good hardware; the derived limit scales with the samples
// actually tested.
func (g *gate) maxIntermittent(now time.Time) int {
	if g.cfg.MaxIntermittent > 0 {
		return g.cfg.MaxIntermittent
	}
	start := g.checkpoints[0].tested // at or before now − IntermittentWindow, or the gate's birth
	lambda := g.alarmRate * float64(g.tested-start)
	return max(DefaultMinIntermittent, poissonCritical(lambda, g.cfg.AlphaLog2))
}

// poissonCritical returns the smallest k with P[X ≥ k] ≤ 2^-alphaLog2 for
// X ~ Poisson(lambda), summing the upper tail in log space.
func poissonCritical(lambda float64, alphaLog2 int) int {
	if !(lambda > 0) {
		return 1
	}
	logAlpha := -float64(alphaLog2) * math.Ln2
	logPMF := func(k int) float64 {
		lg, _ := math.Lgamma(float64(k) + 1)
		return float64(k)*math.Log(lambda) - lambda - lg
	}
	// Tail terms beyond hi are negligible against 2^-80.
	hi := int(lambda + 40*math.Sqrt(lambda) + 200)
	tail := math.Inf(-1) // log P[X ≥ k+1]
	for k := hi; k >= 0; k-- {
		next := logAddExp(tail, logPMF(k)) // log P[X ≥ k]
		if next > logAlpha {
			return k + 1
		}
		tail = next
	}
	return 0
}

func logAddExp(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// trimBefore drops the leading times not after cut.
func trimBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}
