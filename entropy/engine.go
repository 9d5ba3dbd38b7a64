package entropy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qrngd/qrngd/entropy/drbg"
)

// Options configure an Engine. The zero value of each field means its default.
type Options struct {
	Policy            Policy        // default PolicyFailClosed
	MinHealthySources int           // default 1
	PoolCapacity      int           // bytes of full-entropy blocks held; default 1 MiB
	ReseedInterval    time.Duration // DRBG reseed interval; default 1 min
	FullWait          time.Duration // how long ModeFull waits for pool bytes; default 2 s
	OSRNG             io.Reader     // the OS RNG, used only under PolicyOS; default crypto/rand.Reader there
	Logger            *slog.Logger  // default: discard
}

// HealthConfig configures health testing and failure handling of one source.
// The zero value of each field means its default.
type HealthConfig struct {
	AlphaLog2          int // alpha = 2^-AlphaLog2, 20..40; default 20
	PermanentAlphaLog2 int // permanent-failure cutoff; default 2*AlphaLog2 (alpha squared)
	// MaxIntermittent is how many intermittent alarms within
	// IntermittentWindow quarantine the source. 0 (the default) derives it
	// from the samples the source tested in the window: the count a good
	// source exceeds with probability at most alpha, and at least 5.
	MaxIntermittent    int
	IntermittentWindow time.Duration // default 1 min
	QuarantineFor      time.Duration // how long a quarantine lasts before start-up testing again; default 30 s
	MaxQuarantines     int           // quarantines within QuarantineWindow that disable; default 3
	QuarantineWindow   time.Duration // default 1 h
}

// Engine defaults and limits.
const (
	DefaultPoolCapacity   = 1 << 20
	DefaultReseedInterval = time.Minute
	DefaultFullWait       = 2 * time.Second
	// MaxReadBytes bounds one Read request.
	MaxReadBytes = 1 << 24
	// MaxSources bounds the sources of one engine.
	MaxSources = 64
)

// More sentinel errors of the entropy core.
var (
	// ErrInvalidConfig: Options, HealthConfig or a SourceInfo is invalid; the
	// wrapping error names the field.
	ErrInvalidConfig = errors.New("entropy: invalid configuration")
	// ErrUnknownSource: no source has the given name.
	ErrUnknownSource = errors.New("entropy: unknown source")
	// ErrInvalidRequest: a request the engine cannot take (mode, size, state).
	ErrInvalidRequest = errors.New("entropy: invalid request")
)

// Engine owns the sources, their health tests and conditioners, the pool and
// the DRBGs.
//
// Each source has a goroutine (started by Run) that reads it in windows of
// the APT window size W, tests each window (health.Tester) and applies the
// failure policy:
//
//   - Start-up: ⌈1024/W⌉ windows must pass before any sample is used. The
//     start-up windows themselves are never used. A source failing start-up
//     never feeds the pool.
//   - Intermittent alarm (α cutoff): the window is discarded (counted in
//     DiscardedSamples), the partial conditioner block dropped, and start-up
//     testing re-runs on fresh samples. The state stays as it was (healthy
//     stays healthy: at device rates α false alarms are expected), but the
//     source's output is withheld until the re-test passes. Blocks it queued
//     before the alarm stay in the pool.
//   - Permanent cutoff (α²), or MaxIntermittent alarms within
//     IntermittentWindow: quarantined for QuarantineFor, its queued blocks
//     dropped; then start-up testing again with a fresh RCT run.
//   - MaxQuarantines quarantines within QuarantineWindow: disabled until
//     ResetSource.
//   - ErrDisconnected: disconnected, queued blocks dropped; Reconnect (if the
//     source is a Reconnector, else back off and read again), then start-up.
//     A device lost again before passing start-up, a failed Reconnect and
//     any other read error back off 1 s, doubling to 30 s, until start-up
//     passes. Other read errors drop the partial window and re-run start-up
//     testing, keeping the RCT run (a stuck source cannot escape the
//     permanent cutoff by failing reads).
//
// Sample indexes in LastError count the samples tested since AddSource,
// from 0.
//
// Good windows go through the source's conditioner (entropy/condition:
// HMAC-SHA-256, one 256-bit full-entropy block per SamplesPerBlock samples)
// into the source's bounded queue; a full queue blocks the goroutine, which
// then stops reading the source (no polling; PoolCapacity is shared equally
// between the queues). The pool makes each output block from the healthy
// sources holding blocks: with one such source (MinHealthySources 1) its
// block as is; with several, SHA-256 over two blocks of each (512 credited
// bits apiece, so any one good source keeps the output full entropy by SP
// 800-90B §3.1.5.1.2); with fewer healthy sources than MinHealthySources,
// policy os adds 64 bytes of OSRNG to that hash and flags the output
// Degraded, policy fail-closed refuses with ErrInsufficientEntropy. A set
// of CTR_DRBG instances (entropy/drbg; 2×GOMAXPROCS, 4..16, each with its
// own lock), each seeded independently from the pool, serves ModeDRBG and
// ModePR.
type Engine struct {
	opts  Options
	log   *slog.Logger
	clock clock
	pool  *pool
	boot  time.Time

	mu      sync.Mutex
	runners []*runner
	byName  map[string]*runner
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when the runners have returned

	closedFlag atomic.Bool
	closeCh    chan struct{}

	chMu    sync.Mutex
	changed chan struct{} // closed and replaced on every source state change

	shards  []*shard
	rr      atomic.Uint32
	reseeds atomic.Uint64

	// Test seams, set before Run.
	hook func(source, kind string)                   // state changes and events
	tap  func(source string, index uint64, w []byte) // windows sent to the conditioner
}

// shard is one CTR_DRBG instance with its own lock, so concurrent large
// requests do not queue behind one mutex.
type shard struct {
	mu       sync.Mutex
	idx      int
	d        *drbg.CTR
	seededAt time.Time
	prov     provenance
}

// New validates opts and returns an engine with no sources.
func New(opts *Options) (*Engine, error) {
	return newEngine(opts, realClock{})
}

func newEngine(opts *Options, c clock) (*Engine, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: Options.%s = %v, want %s", ErrInvalidConfig, field, v, want)
	}
	switch o.Policy {
	case "":
		o.Policy = PolicyFailClosed
	case PolicyFailClosed, PolicyOS:
	default:
		return nil, bad("Policy", fmt.Sprintf("%q", o.Policy), fmt.Sprintf("%q or %q", PolicyFailClosed, PolicyOS))
	}
	switch {
	case o.MinHealthySources < 0 || o.MinHealthySources > MaxSources:
		return nil, bad("MinHealthySources", o.MinHealthySources, fmt.Sprintf("0 (default 1) or 1..%d", MaxSources))
	case o.PoolCapacity != 0 && (o.PoolCapacity < 2*mixShare*blockSize || o.PoolCapacity > 1<<30):
		return nil, bad("PoolCapacity", o.PoolCapacity, fmt.Sprintf("0 (default %d) or %d..%d bytes", DefaultPoolCapacity, 2*mixShare*blockSize, 1<<30))
	case o.ReseedInterval < 0:
		return nil, bad("ReseedInterval", o.ReseedInterval, "≥ 0")
	case o.FullWait < 0 || o.FullWait > 10*time.Minute:
		return nil, bad("FullWait", o.FullWait, "0 (default) .. 10m")
	}
	if o.MinHealthySources == 0 {
		o.MinHealthySources = 1
	}
	if o.PoolCapacity == 0 {
		o.PoolCapacity = DefaultPoolCapacity
	}
	if o.ReseedInterval == 0 {
		o.ReseedInterval = DefaultReseedInterval
	}
	if o.FullWait == 0 {
		o.FullWait = DefaultFullWait
	}
	if o.Policy == PolicyOS && o.OSRNG == nil {
		o.OSRNG = rand.Reader
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		opts:    o,
		log:     o.Logger,
		clock:   c,
		pool:    newPool(&o),
		boot:    c.Now(),
		byName:  make(map[string]*runner),
		done:    make(chan struct{}),
		closeCh: make(chan struct{}),
		changed: make(chan struct{}),
	}
	n := min(16, max(4, 2*runtime.GOMAXPROCS(0)))
	for i := range n {
		e.shards = append(e.shards, &shard{idx: i})
	}
	return e, nil
}

// stateChanged wakes WaitReady callers.
func (e *Engine) stateChanged() {
	e.chMu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.chMu.Unlock()
}

// WaitReady blocks until the pool can serve under its policy (Status'
// Pool.Ready: enough sources passed start-up testing, or policy os), or
// until ctx is done or the engine is closed. A daemon calls it before
// reporting readiness.
func (e *Engine) WaitReady(ctx context.Context) error {
	for {
		e.chMu.Lock()
		ch := e.changed
		e.chMu.Unlock()
		_, err := e.servable()
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-e.closeCh:
			return ErrClosed
		}
	}
}

func (e *Engine) event(source, kind string) {
	if e.hook != nil {
		e.hook(source, kind)
	}
}

// AddSource adds a source before Run. hc may be nil for defaults. The engine
// owns the source from then on and closes it in Close.
func (e *Engine) AddSource(src Source, hc *HealthConfig) error {
	if src == nil {
		return fmt.Errorf("%w: nil source", ErrInvalidConfig)
	}
	info := src.Info()
	if err := info.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cfg, err := hc.resolve(info.Name)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case e.started:
		return fmt.Errorf("%w: AddSource(%q) after Run", ErrInvalidRequest, info.Name)
	case len(info.Name) > 255:
		return fmt.Errorf("%w: source name of %d bytes, at most 255", ErrInvalidConfig, len(info.Name))
	case e.byName[info.Name] != nil:
		return fmt.Errorf("%w: duplicate source name %q", ErrInvalidConfig, info.Name)
	case len(e.runners) >= MaxSources:
		return fmt.Errorf("%w: more than %d sources", ErrInvalidConfig, MaxSources)
	}
	r, err := newRunner(e, src, info, cfg)
	if err != nil {
		return err
	}
	e.runners = append(e.runners, r)
	e.byName[info.Name] = r
	return nil
}

// queueBlocks is each source's queue capacity in blocks: the pool capacity
// shared equally, at least two shares.
func (e *Engine) queueBlocks(n int) int {
	return max(2*mixShare, e.opts.PoolCapacity/blockSize/max(1, n))
}

// Run reads every source until ctx is done or Close is called, then waits
// for the source goroutines to return. It returns nil then. Run may be
// called once.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if e.started {
		e.mu.Unlock()
		return fmt.Errorf("%w: Run called twice", ErrInvalidRequest)
	}
	e.started = true
	runCtx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	per := e.queueBlocks(len(e.runners))
	for _, r := range e.runners {
		r.q = make(chan [blockSize]byte, per)
	}
	srcs := append([]*runner(nil), e.runners...)
	e.pool.srcs.Store(&srcs)
	var wg sync.WaitGroup
	for _, r := range e.runners {
		wg.Go(func() { r.run(runCtx) })
	}
	e.mu.Unlock()
	e.log.Info("entropy engine running", "sources", len(e.runners), "policy", string(e.opts.Policy), "min_healthy_sources", e.opts.MinHealthySources)

	<-runCtx.Done()
	wg.Wait()
	cancel()
	close(e.done)
	return nil
}

// servable reports why the engine cannot serve now, or nil. Under
// PolicyOS it always can (degraded says whether the OS RNG stands in).
func (e *Engine) servable() (degraded bool, err error) {
	if e.closedFlag.Load() {
		return false, ErrClosed
	}
	h := e.pool.healthy()
	if h >= e.opts.MinHealthySources {
		return false, nil
	}
	if e.opts.Policy == PolicyOS {
		return true, nil
	}
	return false, fmt.Errorf("%w: %d healthy sources, policy %s needs %d", ErrInsufficientEntropy, h, e.opts.Policy, e.opts.MinHealthySources)
}

// Read fills p under mode and reports where the bytes came from. It returns
// an error wrapping ErrInsufficientEntropy when the pool cannot serve. On
// every error p is zeroed, so a caller that ignores the error never passes
// on stale or partial output. The empty mode means ModeDRBG.
//
//   - ModeDRBG: CTR_DRBG output from one of several instances, seeded from
//     the pool at first use and reseeded once ReseedInterval has passed, or
//     as soon as a pool block is at hand when the instance was seeded with
//     OS RNG input (policy os) and the sources are back; split into 64 KiB
//     generate calls.
//   - ModePR: prediction resistance: every generate call of at most 64 KiB
//     is preceded by a reseed with a fresh pool block.
//   - ModeFull: full-entropy pool blocks, waiting at most FullWait in all.
func (e *Engine) Read(ctx context.Context, p []byte, mode Mode) (Provenance, error) {
	if len(p) > MaxReadBytes {
		clear(p)
		return Provenance{}, fmt.Errorf("%w: %d bytes requested, at most %d", ErrInvalidRequest, len(p), MaxReadBytes)
	}
	if mode == "" {
		mode = ModeDRBG
	}
	switch mode {
	case ModeDRBG, ModePR, ModeFull:
	default:
		clear(p)
		return Provenance{}, fmt.Errorf("%w: mode %q, want %q, %q or %q", ErrInvalidRequest, mode, ModeDRBG, ModeFull, ModePR)
	}
	if err := ctx.Err(); err != nil {
		clear(p)
		return Provenance{Mode: mode}, err
	}
	degraded, err := e.servable()
	if err != nil {
		clear(p)
		return Provenance{Mode: mode}, err
	}
	if len(p) == 0 {
		return Provenance{Mode: mode, Sources: []string{}, Degraded: degraded}, nil
	}
	var prov provenance
	if mode == ModeFull {
		prov, err = e.readFull(ctx, p)
	} else {
		prov, err = e.readDRBG(ctx, p, mode == ModePR, degraded)
	}
	if err != nil {
		clear(p)
		return Provenance{Mode: mode}, err
	}
	return Provenance{Mode: mode, Sources: prov.sorted(), Degraded: prov.degraded || degraded}, nil
}

// waitBlock makes one pool block, waiting until deadline.
func (e *Engine) waitBlock(ctx context.Context, dst *[blockSize]byte, prov *provenance, deadline <-chan time.Time) error {
	err := e.pool.block(ctx, e.closeCh, dst, prov, deadline)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case e.closedFlag.Load():
		return ErrClosed
	}
	return err
}

func (e *Engine) readFull(ctx context.Context, p []byte) (provenance, error) {
	var prov provenance
	t := e.clock.NewTimer(e.opts.FullWait)
	defer t.Stop()
	var blk [blockSize]byte
	defer clear(blk[:])
	for off := 0; off < len(p); off += blockSize {
		if err := e.waitBlock(ctx, &blk, &prov, t.C()); err != nil {
			if errors.Is(err, ErrInsufficientEntropy) {
				err = fmt.Errorf("%w: full-entropy pool delivered %d of %d bytes within %s", ErrInsufficientEntropy, off, len(p), e.opts.FullWait)
			}
			return prov, err
		}
		copy(p[off:], blk[:])
	}
	return prov, nil
}

// pickShard locks and returns a DRBG instance, preferring an idle one.
func (e *Engine) pickShard() *shard {
	n := len(e.shards)
	start := int(e.rr.Add(1) % uint32(n))
	for i := range n {
		if s := e.shards[(start+i)%n]; s.mu.TryLock() {
			return s
		}
	}
	s := e.shards[start]
	s.mu.Lock()
	return s
}

// seed instantiates s from the pool: 32 bytes of entropy input and a 16-byte
// nonce from two pool blocks, personalized with the shard and boot time.
// s.mu is held.
func (e *Engine) seed(ctx context.Context, s *shard, deadline <-chan time.Time) error {
	var ent, nonce [blockSize]byte
	defer clear(ent[:])
	defer clear(nonce[:])
	var prov provenance
	if err := e.waitBlock(ctx, &ent, &prov, deadline); err != nil {
		return fmt.Errorf("seeding the DRBG: %w", err)
	}
	if err := e.waitBlock(ctx, &nonce, &prov, deadline); err != nil {
		return fmt.Errorf("seeding the DRBG: %w", err)
	}
	pers := fmt.Appendf(nil, "qrngd entropy engine ctr-drbg shard=%d boot=%d", s.idx, e.boot.UnixNano())
	d, err := drbg.New(ent[:], nonce[:drbg.MinNonce], pers)
	if err != nil {
		return fmt.Errorf("seeding the DRBG: %w", err)
	}
	s.d, s.seededAt, s.prov = d, e.clock.Now(), prov
	return nil
}

// reseed reseeds s with one pool block. s.mu is held.
func (e *Engine) reseed(ctx context.Context, s *shard, deadline <-chan time.Time) error {
	var ent [blockSize]byte
	defer clear(ent[:])
	var prov provenance
	if err := e.waitBlock(ctx, &ent, &prov, deadline); err != nil {
		return fmt.Errorf("reseeding the DRBG: %w", err)
	}
	if err := s.d.Reseed(ent[:], nil); err != nil {
		return fmt.Errorf("reseeding the DRBG: %w", err)
	}
	s.seededAt, s.prov = e.clock.Now(), prov
	e.reseeds.Add(1)
	return nil
}

// degraded is the servable verdict of this request: when it is false but
// the instance was (re)seeded with OS RNG input under policy os, the sources
// are back and the instance is reseeded from a pool block at hand first.
func (e *Engine) readDRBG(ctx context.Context, p []byte, pr, degraded bool) (provenance, error) {
	s := e.pickShard()
	defer s.mu.Unlock()
	if e.closedFlag.Load() {
		return provenance{}, ErrClosed
	}
	var deadline <-chan time.Time
	var stop []func() bool
	wait := func() <-chan time.Time {
		if deadline == nil {
			t := e.clock.NewTimer(e.opts.FullWait)
			deadline = t.C()
			stop = append(stop, t.Stop)
		}
		return deadline
	}
	defer func() {
		for _, f := range stop {
			f()
		}
	}()
	if s.d == nil {
		if err := e.seed(ctx, s, wait()); err != nil {
			return provenance{}, err
		}
	} else if !pr && e.clock.Now().Sub(s.seededAt) >= e.opts.ReseedInterval {
		if err := e.reseed(ctx, s, wait()); err != nil {
			return provenance{}, err
		}
	} else if !pr && s.prov.degraded && !degraded {
		// Policy os stood in when this instance was last seeded and the
		// sources are back: replace the OS-derived state now rather than
		// after ReseedInterval. Without a pool block at hand (nil
		// deadline: no wait) the old state serves, still flagged degraded.
		if err := e.reseed(ctx, s, nil); err != nil && !errors.Is(err, ErrInsufficientEntropy) {
			return provenance{}, err
		}
	}
	if !pr {
		if _, err := s.d.Read(p); err != nil {
			return provenance{}, fmt.Errorf("entropy: DRBG: %w", err)
		}
		return s.prov, nil
	}
	var prov provenance
	var ent [blockSize]byte
	defer clear(ent[:])
	for off := 0; off < len(p); off += drbg.MaxRequest {
		var bp provenance
		if err := e.waitBlock(ctx, &ent, &bp, wait()); err != nil {
			return provenance{}, fmt.Errorf("prediction-resistance reseed: %w", err)
		}
		end := min(len(p), off+drbg.MaxRequest)
		if err := s.d.GeneratePR(p[off:end], ent[:], nil); err != nil {
			return provenance{}, fmt.Errorf("entropy: DRBG: %w", err)
		}
		e.reseeds.Add(1)
		s.seededAt, s.prov = e.clock.Now(), bp
		prov.merge(bp)
	}
	return prov, nil
}

// Status returns a snapshot.
func (e *Engine) Status() Status {
	e.mu.Lock()
	runners := append([]*runner(nil), e.runners...)
	started := e.started
	e.mu.Unlock()
	st := Status{Sources: make([]SourceStatus, 0, len(runners))}
	for _, r := range runners {
		st.Sources = append(st.Sources, r.status())
	}
	healthy := e.pool.healthy()
	capacity := e.opts.PoolCapacity
	if started && len(runners) > 0 {
		capacity = e.queueBlocks(len(runners)) * blockSize * len(runners)
	}
	degraded, err := e.servable()
	st.Pool = PoolStatus{
		Policy:         e.opts.Policy,
		Degraded:       degraded,
		Ready:          err == nil,
		LevelBytes:     e.pool.level(),
		CapacityBytes:  capacity,
		HealthySources: healthy,
		MinSources:     e.opts.MinHealthySources,
		Reseeds:        e.reseeds.Load(),
	}
	return st
}

// ResetSource puts a disabled or quarantined source back through start-up
// testing and forgets its alarm and quarantine history. Other states are an
// ErrInvalidRequest.
func (e *Engine) ResetSource(name string) error {
	e.mu.Lock()
	r := e.byName[name]
	e.mu.Unlock()
	if r == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSource, name)
	}
	if st := r.State(); st != StateQuarantined && st != StateDisabled {
		return fmt.Errorf("%w: source %q is %s; only quarantined or disabled sources can be reset", ErrInvalidRequest, name, st)
	}
	r.mu.Lock()
	r.resetReq = true
	r.mu.Unlock()
	select {
	case r.resetCh <- struct{}{}:
	default:
	}
	r.log.Info("entropy source reset requested")
	return nil
}

// Reseed (re)seeds every DRBG instance from the pool now, waiting at most
// FullWait for pool blocks.
func (e *Engine) Reseed(ctx context.Context) error {
	if _, err := e.servable(); err != nil {
		return err
	}
	t := e.clock.NewTimer(e.opts.FullWait)
	defer t.Stop()
	for _, s := range e.shards {
		s.mu.Lock()
		var err error
		switch {
		case e.closedFlag.Load():
			err = ErrClosed
		case s.d == nil:
			err = e.seed(ctx, s, t.C())
		default:
			err = e.reseed(ctx, s, t.C())
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// Close stops the engine, waits for the source goroutines, zeroizes every
// DRBG instance and the queued blocks, and closes the sources. Later calls
// return nil; later Reads return ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.closedFlag.Store(true)
	close(e.closeCh)
	cancel, started := e.cancel, e.started
	runners := append([]*runner(nil), e.runners...)
	e.mu.Unlock()
	if started {
		cancel()
		<-e.done
	}
	for _, s := range e.shards {
		s.mu.Lock()
		if s.d != nil {
			s.d.Close()
			s.d = nil
		}
		s.prov = provenance{}
		s.mu.Unlock()
	}
	var errs []error
	for _, r := range runners {
		if r.q != nil {
			e.pool.flush(r)
		}
		if err := r.src.Close(); err != nil {
			errs = append(errs, fmt.Errorf("entropy: closing source %q: %w", r.info.Name, err))
		}
	}
	e.log.Info("entropy engine closed")
	return errors.Join(errs...)
}
