package entropy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qrngd/qrngd/entropy/condition"
	"github.com/qrngd/qrngd/entropy/health"
)

// Back-off between attempts after read errors and failed reconnects.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	// maxEmptyReads consecutive (0, nil) reads count as a read error, so a
	// source that returns nothing cannot spin the runner.
	maxEmptyReads = 16
	// readWindows is how many windows one Read may fill.
	readWindows = 64
)

var errNoData = errors.New("source returned no data")

// runner owns one source: it reads windows, applies the gate, conditions
// good windows and pushes full-entropy blocks to its queue.
type runner struct {
	e    *Engine
	src  Source
	info SourceInfo
	cfg  HealthConfig
	log  *slog.Logger

	gate            *gate // owned by the run goroutine after start
	cutoffs         health.Cutoffs
	falseAlarmEvery float64 // seconds at NominalRate; 0 if unknown
	acc             *condition.Accumulator
	q               chan [blockSize]byte

	resetCh chan struct{} // ResetSource → run goroutine

	state atomic.Value // State

	mu       sync.Mutex // guards the fields below and the gate counters in snap
	since    time.Time
	lastErr  string
	snap     gateSnap
	backoff  time.Duration
	resetReq bool

	flapping bool // reconnected and not yet through start-up (run goroutine only)

	samples     atomic.Uint64 // read
	bytes       atomic.Uint64 // conditioned bytes pushed
	conditioned atomic.Uint64 // samples absorbed by the conditioner
	queueFull   atomic.Bool   // blocked on a full queue
	reads       atomic.Uint64
}

// gateSnap is the part of the gate that Status shows, copied under mu.
type gateSnap struct {
	rct, apt     TestCounters
	discarded    uint64
	quarantines  uint64
	lastFailure  failure
	intermittent uint64
}

func newRunner(e *Engine, src Source, info SourceInfo, cfg HealthConfig) (*runner, error) {
	now := e.clock.Now()
	g, err := newGate(info, cfg, now)
	if err != nil {
		return nil, err
	}
	acc, err := condition.NewAccumulator(info.SampleBits, info.MinEntropy)
	if err != nil {
		return nil, fmt.Errorf("%w: source %q: %w", ErrInvalidConfig, info.Name, err)
	}
	r := &runner{
		e: e, src: src, info: info, cfg: cfg,
		log:     e.log.With("source", info.Name),
		gate:    g,
		acc:     acc,
		resetCh: make(chan struct{}, 1),
		since:   now,
	}
	r.cutoffs = g.t.Cutoffs()
	if info.NominalRate > 0 {
		r.falseAlarmEvery = g.t.ExpectedFalseAlarmInterval(info.NominalRate).Seconds()
	}
	r.state.Store(StateStartup)
	return r, nil
}

// State returns the source's state.
func (r *runner) State() State { return r.state.Load().(State) }

func (r *runner) setState(s State, why string) {
	old := r.State()
	r.mu.Lock()
	if old != s {
		r.since = r.e.clock.Now()
	}
	if why != "" {
		r.lastErr = why
	}
	r.mu.Unlock()
	r.state.Store(s)
	if old != s {
		lvl := slog.LevelInfo
		switch s {
		case StateQuarantined, StateDisconnected:
			lvl = slog.LevelWarn
		case StateDisabled:
			lvl = slog.LevelError
		}
		r.log.Log(context.Background(), lvl, "entropy source state", "from", string(old), "to", string(s), "reason", why)
		r.e.stateChanged()
		r.e.event(r.info.Name, string(s))
	}
}

// syncSnap copies the gate's counters for Status.
func (r *runner) syncSnap() {
	r.mu.Lock()
	r.snap = gateSnap{
		rct: r.gate.rct, apt: r.gate.apt, discarded: r.gate.discarded,
		quarantines: r.gate.nQuarantines, lastFailure: r.gate.lastFailure,
		intermittent: r.gate.intermittents,
	}
	r.mu.Unlock()
}

// run is the source's goroutine. It returns when ctx is done.
func (r *runner) run(ctx context.Context) {
	buf := make([]byte, r.gate.w*readWindows)
	// Raw samples determine the blocks conditioned from them (the HMAC key
	// is public): wipe the read buffer when the runner stops.
	defer clear(buf)
	for ctx.Err() == nil {
		switch r.State() {
		case StateQuarantined:
			if !r.waitQuarantine(ctx) {
				return
			}
		case StateDisabled:
			select {
			case <-ctx.Done():
				return
			case <-r.resetCh:
				r.restart("reset by operator")
			}
		case StateDisconnected:
			if !r.reconnect(ctx) {
				return
			}
		default:
			r.readLoop(ctx, buf)
		}
	}
}

// restart clears the conditioner and begins start-up testing on a fresh
// stream.
func (r *runner) restart(why string) {
	r.consumeReset()
	r.gate.restart()
	r.acc.Reset()
	r.setState(StateStartup, "")
	r.log.Info("entropy source start-up testing", "reason", why)
}

// drainReset forgets a reset signal sent before the source entered
// quarantine or disablement, so only a reset asked for while it is there
// ends it.
func (r *runner) drainReset() {
	select {
	case <-r.resetCh:
	default:
	}
	r.mu.Lock()
	r.resetReq = false
	r.mu.Unlock()
}

// consumeReset applies a pending operator reset to the gate history.
func (r *runner) consumeReset() {
	r.mu.Lock()
	req := r.resetReq
	r.resetReq = false
	r.mu.Unlock()
	if req {
		r.gate.resetHistory()
	}
}

func (r *runner) waitQuarantine(ctx context.Context) bool {
	t := r.e.clock.NewTimer(r.cfg.QuarantineFor)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		r.restart("quarantine over")
	case <-r.resetCh:
		r.restart("reset by operator")
	}
	return true
}

// sleep waits d on the engine clock; false if ctx ended first.
func (r *runner) sleep(ctx context.Context, d time.Duration) bool {
	t := r.e.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

func (r *runner) nextBackoff() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.backoff
	if d == 0 {
		d = minBackoff
	}
	r.backoff = min(2*d, maxBackoff)
	return d
}

func (r *runner) clearBackoff() {
	r.mu.Lock()
	r.backoff = 0
	r.mu.Unlock()
}

// reconnect handles StateDisconnected: Reconnect if the source can (after a
// back-off if it was lost again before passing start-up since the last
// reconnect, so a flapping device cannot spin the runner), else back off and
// try reading again.
func (r *runner) reconnect(ctx context.Context) bool {
	rc, ok := r.src.(Reconnector)
	if !ok {
		if !r.sleep(ctx, r.nextBackoff()) {
			return false
		}
		r.restart("retrying after disconnect")
		return true
	}
	if r.flapping {
		if !r.sleep(ctx, r.nextBackoff()) {
			return false
		}
	}
	for {
		err := rc.Reconnect(ctx)
		if err == nil {
			r.flapping = true // until start-up passes
			r.restart("reconnected")
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.setState(StateDisconnected, "reconnect: "+err.Error())
		if !r.sleep(ctx, r.nextBackoff()) {
			return false
		}
	}
}

// readLoop reads and tests windows while the source is in start-up or
// healthy, and returns on a state change or when ctx is done.
func (r *runner) readLoop(ctx context.Context, buf []byte) {
	w := r.gate.w
	fill, empty := 0, 0
	for ctx.Err() == nil {
		n, err := r.src.Read(ctx, buf[fill:])
		r.reads.Add(1)
		if n < 0 || n > len(buf)-fill {
			n, err = 0, fmt.Errorf("source returned %d samples for a %d-sample buffer", n, len(buf)-fill)
		}
		if n > 0 {
			empty = 0
			fill += n
			r.samples.Add(uint64(n))
		}
		now := r.e.clock.Now()
		off := 0
		for ; off+w <= fill; off += w {
			if !r.window(ctx, buf[off:off+w], now) {
				clear(buf)
				r.syncSnap()
				return
			}
		}
		fill = copy(buf, buf[off:fill])
		r.syncSnap()

		if err == nil && n == 0 {
			if empty++; empty < maxEmptyReads {
				continue
			}
			err = errNoData
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		// Samples after a failed read are not consecutive with those
		// before it: drop the partial window and the partial block, and
		// test the new stream from start-up.
		clear(buf)
		r.acc.Reset()
		if errors.Is(err, ErrDisconnected) {
			r.e.pool.flush(r)
			r.setState(StateDisconnected, err.Error())
			return
		}
		r.setState(StateStartup, "read: "+err.Error())
		r.gate.retest()
		if !r.sleep(ctx, r.nextBackoff()) {
			return
		}
		fill, empty = 0, 0
	}
}

// window applies the gate to one window and acts on the verdict. It
// returns false when the read loop must stop (state change or ctx done).
func (r *runner) window(ctx context.Context, w []byte, now time.Time) bool {
	v, f := r.gate.window(w, now)
	switch v {
	case vUse:
		if r.e.tap != nil {
			r.e.tap(r.info.Name, r.gate.tested-uint64(len(w)), w)
		}
		return r.condition(ctx, w)
	case vStartup:
		if r.gate.usable() {
			r.clearBackoff()
			r.flapping = false
			if r.State() != StateHealthy {
				r.setState(StateHealthy, "")
			}
		}
		return true
	case vIntermittent:
		// The partial block may hold samples from just before the alarm:
		// drop it too. Output is withheld until start-up testing passes
		// again; the state stays as it was (an α false alarm is expected
		// at device rates and says nothing about the source).
		r.acc.Reset()
		r.log.Debug("entropy source intermittent health-test alarm", "failure", f.Reason)
		r.syncSnap()
		r.e.event(r.info.Name, "intermittent")
		return true
	case vQuarantine:
		r.drainReset()
		r.acc.Reset()
		r.e.pool.flush(r)
		r.syncSnap()
		r.setState(StateQuarantined, f.Reason)
		return false
	default: // vDisable
		r.drainReset()
		r.acc.Reset()
		r.e.pool.flush(r)
		r.syncSnap()
		r.setState(StateDisabled, f.Reason)
		return false
	}
}

// condition absorbs a good window and pushes the blocks it completes,
// blocking (without spinning) while the queue is full.
func (r *runner) condition(ctx context.Context, w []byte) bool {
	r.conditioned.Add(uint64(len(w)))
	alive := true
	r.acc.Absorb(w, func(b *[condition.OutputBytes]byte) {
		if !alive {
			return
		}
		blk := *b
		select {
		case r.q <- blk:
		default:
			r.queueFull.Store(true)
			r.e.event(r.info.Name, "queue-full")
			select {
			case r.q <- blk:
			case <-ctx.Done():
				alive = false
			}
			r.queueFull.Store(false)
		}
		clear(blk[:])
		if alive {
			r.bytes.Add(blockSize)
			r.e.pool.notify()
		}
	})
	return alive
}

// status snapshots the source.
func (r *runner) status() SourceStatus {
	c := r.cutoffs
	r.mu.Lock()
	defer r.mu.Unlock()
	st := SourceStatus{
		SourceInfo:       r.info,
		State:            r.State(),
		Samples:          r.samples.Load(),
		Bytes:            r.bytes.Load(),
		DiscardedSamples: r.snap.discarded,
		RCT:              r.snap.rct,
		APT:              r.snap.apt,
		RCTCutoff:        c.RCT,
		APTCutoff:        c.APT,
		APTWindow:        c.W,
		AlphaLog2:        r.cfg.AlphaLog2,
		Quarantines:      r.snap.quarantines,
		LastError:        r.lastErr,
		Since:            r.since,
	}
	st.FalseAlarmEvery = r.falseAlarmEvery
	return st
}
