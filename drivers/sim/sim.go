// Package sim is a simulated quantum RNG: a seeded, deterministic noise
// source with a chosen sample width and min-entropy, an optional rate limit,
// and fault injection (stuck-at, bias, short reads, read errors, disconnect
// and reconnect, slowness, hangs) at exact sample indices. It registers the
// source kind "sim" and is what CI, laptops and `make run` use in place of
// hardware; the drivertest conformance suite runs against it.
//
// # Samples
//
// The sample stream is a deterministic function of the seed (an AES-256-CTR
// keystream) and of nothing else: read sizes, short reads, rate limiting,
// delays and the bias and stuck faults never shift it, so sample i of a
// seed is the same in every run (faults overwrite samples, they do not
// consume extra ones). Generation runs at several GB/s (BenchmarkRead).
//
// With MinEntropy H equal to SampleBits n the samples are uniform on
// 0..2^n-1. With H < n one value m (Source.MostLikely, derived from the
// seed) has probability 2^-H and the other 2^n-1 values share the rest
// equally, so the min-entropy -log2(max P) is exactly H (2^-H is rounded
// down to a multiple of 2^-32). No value is likelier than 2^-H, so SP
// 800-90B's Repetition Count and Adaptive Proportion tests with cutoffs for
// H alarm at no more than their alpha: a run of m continues C-1 times with
// probability 2^-H(C-1) <= alpha, and the APT count of m is the
// Binomial(W, 2^-H) its cutoff was computed for (health_test.go measures
// both rates).
//
// # Faults
//
// Faults (see FaultKind) are set in Options.Faults or at run time with
// Inject, Clear, Hang, Unplug and Replug, and act at exact sample indices
// (Source.Samples). A disconnected source fails every Read with
// entropy.ErrDisconnected until Reconnect re-opens it, which waits for the
// device to be back: Replug, or the Disconnect fault's D on the Clock.
//
// # Configuration
//
// A `sources:` entry of kind "sim" takes these Spec.Params keys; an unknown
// key, a wrong type or a value out of range is an error naming the key.
// Spec.MinEntropy is the simulated and credited H (0 = sample_bits).
//
//	sample_bits       int 1..8 (default 8)
//	rate              bytes per second, 0 = unlimited (default 0)
//	seed              int 1..2^63-1; absent or 0 = random
//	stuck_after       int: Stuck fault from this sample index
//	stuck_value       int: its value (default 0)
//	bias              probability in (0, 1]: Bias fault
//	bias_value        int: its value (default 0)
//	bias_after        int: its first sample index (default 0)
//	short_reads       int >= 1: ShortReads fault, max bytes per read
//	error_every       int >= 1: ReadError fault, every N-th read fails
//	disconnect_after  int: Disconnect fault at this sample index
//	reconnect_after   duration ("2s"): the device is back after this long (default: never by itself)
//	delay             duration > 0: Delay fault, per read
//	hang_after        int: Hang fault from this sample index
//
// The simulator is not a source of secret randomness when a seed is given:
// anyone who knows the seed knows every sample. The serial number is a hash
// of the seed, not the seed.
package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/qrngd/qrngd/entropy"
)

// Kind is the source kind this package registers.
const Kind = "sim"

// BoardVersion is what Info reports as the board version: the version of
// the simulated device model (bumped when generation or faults change
// meaning), so status pages show a board version for every kind.
const BoardVersion = "qrngd-sim 1"

// Sentinel errors.
var (
	// ErrInjected is wrapped by the errors of the ReadError fault.
	ErrInjected = errors.New("drivers/sim: injected read error")
	// ErrInvalidOptions is wrapped by New's validation errors.
	ErrInvalidOptions = errors.New("drivers/sim: invalid options")
)

// Options configure a simulated source. A nil *Options means all defaults.
type Options struct {
	Name       string  // source name; default "sim"
	SampleBits int     // sample width 1..8; default 8
	MinEntropy float64 // true (and credited) min-entropy per sample, (0, SampleBits]; default SampleBits
	Rate       float64 // bytes (samples) per second; 0 = unlimited
	Seed       uint64  // 0 = a random seed from crypto/rand
	Faults     []Fault // injected from the start; at most one per kind
	Clock      Clock   // nil = SystemClock
}

// Source is a simulated QRNG. It implements entropy.Source and
// entropy.Reconnector. Read calls are serialised; every other method is safe
// to call concurrently with Read.
type Source struct {
	info  entropy.SourceInfo
	clock Clock
	rate  float64
	burst int

	// Owned by the goroutine holding sem (the reader).
	sem    chan struct{}
	gen    *gen
	coin   *coin
	tokens float64
	last   time.Time

	closeCtx    context.Context // done once Close is called
	closeCancel context.CancelFunc

	mu         sync.Mutex
	samples    uint64
	faults     [numKinds]*faultState
	closed     bool
	plugged    bool      // the device is present
	open       bool      // the handle is valid (false from a disconnect until Reconnect)
	backAt     time.Time // when an unplugged device comes back by itself (zero = on Replug)
	wake       context.Context
	wakeCancel context.CancelFunc // called on every state change
}

type faultState struct {
	Fault
	reads   uint64        // ReadError: Read calls counted so far
	blocked chan struct{} // Hang: closed once a Read is blocked
	once    sync.Once
}

var _ interface {
	entropy.Source
	entropy.Reconnector
} = (*Source)(nil)

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.Name == "" {
		v.Name = Kind
	}
	if v.SampleBits == 0 {
		v.SampleBits = 8
	}
	if v.MinEntropy == 0 && v.SampleBits >= 1 && v.SampleBits <= 8 {
		v.MinEntropy = float64(v.SampleBits)
	}
	if v.Clock == nil {
		v.Clock = SystemClock{}
	}
	return v
}

func (o *Options) validate() *fieldError {
	switch {
	case o.SampleBits < 1 || o.SampleBits > 8:
		return &fieldError{"SampleBits", "sample_bits", fmt.Sprintf("%d outside 1..8", o.SampleBits)}
	case !(o.MinEntropy > 0) || o.MinEntropy > float64(o.SampleBits):
		return &fieldError{"MinEntropy", "min_entropy", fmt.Sprintf("%v outside (0, %d]", o.MinEntropy, o.SampleBits)}
	case !(o.Rate >= 0) || math.IsInf(o.Rate, 0):
		return &fieldError{"Rate", "rate", fmt.Sprintf("%v is not a finite number >= 0", o.Rate)}
	}
	var seen [numKinds]bool
	for i, f := range o.Faults {
		if fe := f.validate(i, o.SampleBits); fe != nil {
			return fe
		}
		if seen[f.Kind] {
			return &fieldError{fmt.Sprintf("Faults[%d].Kind", i), "", fmt.Sprintf("second %s fault", f.Kind)}
		}
		seen[f.Kind] = true
	}
	return nil
}

// New creates a simulated source. Errors wrap ErrInvalidOptions and name the
// offending field.
func New(opts *Options) (*Source, error) {
	o := opts.withDefaults()
	if fe := o.validate(); fe != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalidOptions, fe.field, fe.reason)
	}
	if o.Seed == 0 {
		var b [8]byte
		for o.Seed == 0 {
			if _, err := rand.Read(b[:]); err != nil {
				return nil, fmt.Errorf("drivers/sim: random seed: %w", err)
			}
			o.Seed = binary.LittleEndian.Uint64(b[:])
		}
	}
	serial := keyFor("qrngd/sim/serial", o.Seed)
	s := &Source{
		info: entropy.SourceInfo{
			Name:         o.Name,
			Kind:         Kind,
			Vendor:       "qrngd",
			Model:        "simulated QRNG",
			Serial:       fmt.Sprintf("SIM-%X", serial[:6]),
			BoardVersion: BoardVersion,
			Path:         "sim:" + o.Name,
			SampleBits:   o.SampleBits,
			NominalRate:  o.Rate,
			MinEntropy:   o.MinEntropy,
		},
		clock:   o.Clock,
		rate:    o.Rate,
		sem:     make(chan struct{}, 1),
		gen:     newGen(o.Seed, o.SampleBits, o.MinEntropy),
		coin:    newCoin(o.Seed),
		plugged: true,
		open:    true,
	}
	if o.Rate > 0 {
		// The bucket holds 10 ms of output (at least one sample) and starts full.
		s.burst = max(1, int(o.Rate/100))
		s.tokens = float64(s.burst)
		s.last = s.clock.Now()
	}
	s.closeCtx, s.closeCancel = context.WithCancel(context.Background())
	s.wake, s.wakeCancel = context.WithCancel(context.Background())
	for _, f := range o.Faults {
		s.faults[f.Kind] = newFaultState(f)
	}
	return s, nil
}

func newFaultState(f Fault) *faultState {
	return &faultState{Fault: f, blocked: make(chan struct{})}
}

// changed wakes every waiter to re-evaluate; s.mu must be held.
func (s *Source) changed() {
	s.wakeCancel()
	s.wake, s.wakeCancel = context.WithCancel(context.Background())
}

// Info describes the simulated device.
func (s *Source) Info() entropy.SourceInfo { return s.info }

// Samples returns how many samples the source has delivered: the index of
// the next sample.
func (s *Source) Samples() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// MostLikely returns the value whose probability is 2^-MinEntropy when
// MinEntropy < SampleBits (see the package's distribution notes).
func (s *Source) MostLikely() byte { return s.gen.mcv }

// Inject adds f, replacing any fault of the same kind. It is safe to call
// while a Read is in progress; the fault takes effect from the next Read.
func (s *Source) Inject(f Fault) error {
	if fe := f.validate(0, s.info.SampleBits); fe != nil {
		return fmt.Errorf("%w: Fault.%s: %s", ErrInvalidOptions, fe.field[len("Faults[0]."):], fe.reason)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[f.Kind] = newFaultState(f)
	s.changed()
	return nil
}

// Clear removes the faults of the given kinds, or all faults when none is
// given, and wakes Reads blocked by a Hang. A device that is already
// unplugged stays unplugged until Replug (or its timed return).
func (s *Source) Clear(kinds ...FaultKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(kinds) == 0 {
		s.faults = [numKinds]*faultState{}
	}
	for _, k := range kinds {
		if k < numKinds {
			s.faults[k] = nil
		}
	}
	s.changed()
}

// Hang makes every Read from now on block until its ctx is done, Clear is
// called or the source is closed. The returned channel is closed as soon as
// a Read is blocked by the hang.
func (s *Source) Hang() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := newFaultState(Fault{Kind: Hang, At: s.samples})
	s.faults[Hang] = fs
	s.changed()
	return fs.blocked
}

// Unplug disconnects the device now: Reads fail with entropy.ErrDisconnected
// until Replug and Reconnect.
func (s *Source) Unplug() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plugged, s.open, s.backAt = false, false, time.Time{}
	s.changed()
}

// Replug puts the device back. Reads keep failing until Reconnect re-opens
// it, as with a real device whose handle died with the unplug.
func (s *Source) Replug() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plugged, s.backAt = true, time.Time{}
	s.changed()
}

// Reconnect waits until the device is present (Replug, or the Disconnect
// fault's D has passed on the Clock), then re-opens it. It returns nil at
// once if the source is connected, ctx.Err() if ctx ends first, and an error
// wrapping entropy.ErrClosed after Close.
func (s *Source) Reconnect(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return s.errClosed()
		}
		if !s.plugged && !s.backAt.IsZero() && !s.clock.Now().Before(s.backAt) {
			s.plugged, s.backAt = true, time.Time{}
		}
		if s.plugged {
			s.open = true
			s.mu.Unlock()
			return nil
		}
		wake, backAt := s.wake, s.backAt
		s.mu.Unlock()
		wctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(wake, cancel)
		if backAt.IsZero() {
			<-wctx.Done()
		} else {
			_ = s.clock.Sleep(wctx, backAt.Sub(s.clock.Now()))
		}
		stop()
		cancel()
	}
}

// Close closes the source: blocked Reads return, and later Reads and
// Reconnects fail with an error wrapping entropy.ErrClosed. Close is
// idempotent.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.closeCancel()
		s.changed()
	}
	return nil
}

func (s *Source) errClosed() error {
	return fmt.Errorf("drivers/sim: %s: %w", s.info.Name, entropy.ErrClosed)
}

func (s *Source) errDisconnected() error {
	return fmt.Errorf("drivers/sim: %s: %w", s.info.Name, entropy.ErrDisconnected)
}

// active returns the fault of kind k if it applies at sample index i.
func (s *Source) active(k FaultKind, i uint64) *faultState {
	if f := s.faults[k]; f != nil && f.At <= i {
		return f
	}
	return nil
}

// plan is what one Read does, decided under s.mu.
type plan struct {
	n       int
	start   uint64
	delay   time.Duration
	stuck   *Fault
	bias    *Fault
	biasThr uint64
}

// Read fills p with samples in the low SampleBits bits of each byte. It may
// return fewer than len(p) (short-read fault, rate limit, or a fault
// boundary). It returns ctx.Err() when ctx is done, an error wrapping
// entropy.ErrDisconnected while the device is disconnected, ErrInjected
// for the read-error fault, and entropy.ErrClosed after Close.
func (s *Source) Read(ctx context.Context, p []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.closeCtx.Done():
		return 0, s.errClosed()
	}
	defer func() { <-s.sem }()

	pl, err := s.plan(ctx, len(p))
	if err != nil || pl.n == 0 {
		return 0, err
	}
	if pl.delay > 0 {
		if err := s.sleep(ctx, pl.delay); err != nil {
			return 0, err
		}
	}
	if s.rate > 0 {
		n, err := s.take(ctx, pl.n)
		if err != nil {
			return 0, err
		}
		pl.n = n
	}
	q := p[:pl.n]
	s.gen.fill(q)
	if f := pl.bias; f != nil {
		for i := range q {
			if pl.start+uint64(i) >= f.At && s.coin.below(pl.biasThr) {
				q[i] = f.Value
			}
		}
	}
	if f := pl.stuck; f != nil {
		from := 0
		if f.At > pl.start {
			from = int(min(f.At-pl.start, uint64(len(q))))
		}
		for i := from; i < len(q); i++ {
			q[i] = f.Value
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, s.errClosed()
	}
	s.samples += uint64(len(q))
	return len(q), nil
}

// plan checks the device state and the faults for a Read of n bytes,
// blocking while a Hang applies.
func (s *Source) plan(ctx context.Context, n int) (plan, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return plan{}, s.errClosed()
		}
		if !s.open {
			s.mu.Unlock()
			return plan{}, s.errDisconnected()
		}
		i := s.samples
		if f := s.active(Disconnect, i); f != nil {
			s.faults[Disconnect] = nil
			s.plugged, s.open, s.backAt = false, false, time.Time{}
			if f.D > 0 {
				s.backAt = s.clock.Now().Add(f.D)
			}
			s.changed()
			s.mu.Unlock()
			return plan{}, s.errDisconnected()
		}
		if f := s.active(Hang, i); f != nil {
			f.once.Do(func() { close(f.blocked) })
			wake := s.wake
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return plan{}, ctx.Err()
			case <-wake.Done():
				continue // re-evaluate: cleared, closed or replaced
			}
		}
		pl, err := s.planLocked(i, n)
		s.mu.Unlock()
		return pl, err
	}
}

// planLocked is plan's decision for a Read of n bytes starting at sample
// index i; s.mu must be held.
func (s *Source) planLocked(i uint64, n int) (plan, error) {
	if n == 0 {
		return plan{}, nil
	}
	if f := s.active(ReadError, i); f != nil {
		f.reads++
		if f.reads%uint64(f.N) == 0 {
			return plan{}, fmt.Errorf("drivers/sim: %s: read %d after sample %d: %w", s.info.Name, f.reads, f.At, ErrInjected)
		}
	}
	pl := plan{n: n, start: i}
	if f := s.active(ShortReads, i); f != nil {
		pl.n = min(pl.n, f.N)
	}
	// Stop at the index where a pending disconnect or hang starts, so that
	// the next Read meets it exactly there.
	for _, f := range [...]*faultState{s.faults[Disconnect], s.faults[Hang]} {
		if f != nil && f.At > i {
			pl.n = int(min(uint64(pl.n), f.At-i))
		}
	}
	if f := s.active(Delay, i); f != nil {
		pl.delay = f.D
	}
	if f := s.faults[Stuck]; f != nil && f.At < i+uint64(pl.n) {
		c := f.Fault
		pl.stuck = &c
	}
	if f := s.faults[Bias]; f != nil && f.At < i+uint64(pl.n) {
		c := f.Fault
		pl.bias = &c
		pl.biasThr = biasThreshold(f.P)
	}
	return pl, nil
}

// sleep waits d on the clock; Close interrupts it.
func (s *Source) sleep(ctx context.Context, d time.Duration) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()
	if err := s.clock.Sleep(sctx, d); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.closeCtx.Err() != nil {
			return s.errClosed()
		}
		return err
	}
	return nil
}

// take waits for tokens in the bucket and returns how many samples (1..n,
// at most the burst) the Read may deliver.
func (s *Source) take(ctx context.Context, n int) (int, error) {
	want := min(n, s.burst)
	for {
		now := s.clock.Now()
		if el := now.Sub(s.last); el > 0 {
			s.tokens = min(float64(s.burst), s.tokens+el.Seconds()*s.rate)
		}
		s.last = now
		// A hair of tolerance for float rounding after an exact wait.
		if avail := int(s.tokens + 1e-6); avail >= want {
			s.tokens -= float64(want)
			return want, nil
		}
		d := time.Duration(math.Round((float64(want) - s.tokens) / s.rate * 1e9))
		if err := s.sleep(ctx, max(d, 1)); err != nil {
			return 0, err
		}
	}
}
