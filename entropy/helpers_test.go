package entropy_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/health"
)

// failsafe bounds every wait in these tests. Tests never sleep; a wait
// that reaches it means the engine is stuck, and the test fails.
const failsafe = 20 * time.Second

// fakeClock is a manual clock: time moves only on Advance.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced when timers are added
}

type fakeTimer struct {
	fc *fakeClock
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), changed: make(chan struct{})}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTimer(d time.Duration) entropy.ClockTimer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{fc: f, at: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	close(f.changed)
	f.changed = make(chan struct{})
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	f := t.fc
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.timers, t)
	if i < 0 {
		return false
	}
	f.timers = slices.Delete(f.timers, i, i+1)
	return true
}

// Advance moves time forward and fires the timers that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	keep := f.timers[:0]
	for _, t := range f.timers {
		if !t.at.After(f.now) {
			t.c <- f.now
		} else {
			keep = append(keep, t)
		}
	}
	clear(f.timers[len(keep):])
	f.timers = keep
}

// waitTimers blocks until at least n timers are pending.
func (f *fakeClock) waitTimers(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(failsafe)
	for {
		f.mu.Lock()
		have, ch := len(f.timers), f.changed
		f.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited %v for %d pending timers, have %d", failsafe, n, have)
		}
	}
}

// event is one hook call of the engine.
type event struct{ source, kind string }

// recorder collects engine events and lets tests wait for them.
type recorder struct {
	mu      sync.Mutex
	events  []event
	changed chan struct{}
	windows map[string][]uint64 // tap: absolute index of each conditioned window
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}), windows: make(map[string][]uint64)}
}

func (r *recorder) hook(source, kind string) {
	r.mu.Lock()
	r.events = append(r.events, event{source, kind})
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) tap(source string, index uint64, w []byte) {
	r.mu.Lock()
	r.windows[source] = append(r.windows[source], index)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// waitFor blocks until cond holds, re-checking at every recorded event.
func (r *recorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(failsafe)
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited %v for %s", failsafe, what)
		}
	}
}

// spinUntil polls cond, yielding the processor between checks, for states
// that raise no event (a fake source blocked at its limit, a waiter
// registered in the pool). It never sleeps.
func spinUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failsafe)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", failsafe, what)
		}
		runtime.Gosched()
	}
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) conditioned(source string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.windows[source])
}

// kinds lists the event kinds of one source, in order, but for the
// queue-full events of back-pressure.
func (r *recorder) kinds(source string) []string {
	var ks []string
	for _, e := range r.snapshot() {
		if e.source == source && e.kind != "queue-full" {
			ks = append(ks, e.kind)
		}
	}
	return ks
}

// count counts events of one source and kind.
func (r *recorder) count(source, kind string) int {
	n := 0
	for _, e := range r.snapshot() {
		if e.source == source && e.kind == kind {
			n++
		}
	}
	return n
}

// waitCount blocks until source has had at least n events of kind.
func (r *recorder) waitCount(t testing.TB, source, kind string, n int) {
	t.Helper()
	deadline := time.After(failsafe)
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if r.count(source, kind) >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("waited %v for %d %q events of %q; events: %v", failsafe, n, kind, source, r.kinds(source))
		}
	}
}

// testEngine is an engine on a fake clock with a recorder, running until
// the test ends.
type testEngine struct {
	*entropy.Engine
	clk *fakeClock
	rec *recorder
	ctx context.Context
}

func newTestEngine(t testing.TB, opts *entropy.Options) *testEngine {
	t.Helper()
	clk := newFakeClock()
	e, err := entropy.NewWithClock(opts, clk)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	e.SetHooks(rec.hook, rec.tap)
	te := &testEngine{Engine: e, clk: clk, rec: rec, ctx: t.Context()}
	t.Cleanup(func() { e.Close() })
	return te
}

func (te *testEngine) add(t testing.TB, src entropy.Source, hc *entropy.HealthConfig) {
	t.Helper()
	if err := te.AddSource(src, hc); err != nil {
		t.Fatal(err)
	}
}

// start runs the engine in the background; Close (at cleanup) stops it.
func (te *testEngine) start(t testing.TB) {
	t.Helper()
	go te.Run(te.ctx)
}

func (te *testEngine) sourceStatus(t testing.TB, name string) entropy.SourceStatus {
	t.Helper()
	for _, s := range te.Status().Sources {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no source %q in Status", name)
	return entropy.SourceStatus{}
}

// naiveResult is what the health tests must report for one window,
// computed by the plain definitions of SP 800-90B §4.4 (sample by sample),
// independently of health.Tester.
type naiveResult struct {
	rct, apt       health.Outcome
	rctIdx, aptIdx uint64
}

func (n naiveResult) worst() health.Outcome { return max(n.rct, n.apt) }

// naiveWindows runs the RCT over the whole stream and the APT over each
// window of c.W samples. Samples are compared masked to bits.
func naiveWindows(stream []byte, c health.Cutoffs, bits int) []naiveResult {
	mask := byte(1<<bits - 1)
	var out []naiveResult
	var a byte
	run := 0
	for w := 0; w+c.W <= len(stream); w += c.W {
		var r naiveResult
		ref := stream[w] & mask
		count := 0
		for i := w; i < w+c.W; i++ {
			s := stream[i] & mask
			if i > 0 && s == a {
				run++
			} else {
				a, run = s, 1
			}
			if run >= c.RCTPermanent && r.rct < health.Permanent {
				r.rct, r.rctIdx = health.Permanent, uint64(i)
			} else if run >= c.RCT && r.rct < health.Intermittent {
				r.rct, r.rctIdx = health.Intermittent, uint64(i)
			}
			if s == ref {
				count++
				if count == c.APT && r.apt < health.Intermittent {
					r.apt, r.aptIdx = health.Intermittent, uint64(i)
				}
				if count == c.APTPermanent {
					r.apt, r.aptIdx = health.Permanent, uint64(i)
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// cutoffsFor returns the cutoffs of an 8-bit source credited with h.
func cutoffsFor(t testing.TB, h float64, alphaLog2 int) health.Cutoffs {
	t.Helper()
	ht, err := health.New(health.Config{H: h, SampleBits: 8, AlphaLog2: alphaLog2})
	if err != nil {
		t.Fatal(err)
	}
	return ht.Cutoffs()
}
