// Package entropytest provides fake noise sources implementing
// entropy.Source for tests of the engine and of the packages built on it.
//
// Every fake is deterministic: its sample stream is a pure function of its
// constructor arguments, and [Source.Replay] regenerates the first n samples
// so a test can compute independently where a health test must fire. Faults
// are placed at exact sample offsets.
//
//   - [NewUniform]: a good source, uniform 8-bit samples (ChaCha8 keystream).
//   - [NewConstant]: every sample the same value (fails start-up).
//   - [NewStuckAt]: uniform until a sample offset, then stuck at one value.
//   - [NewBiased]: one value with probability p, otherwise uniform.
//   - [NewScripted]: a fixed script of reads, short reads and errors.
//   - [NewDisconnecting]: uniform, losing its device at given offsets; it
//     implements entropy.Reconnector.
//
// Fakes count their Read calls and served samples so tests can watch
// back-pressure, and can stop serving after a limit (Read then blocks until
// its context is done) so a test controls exactly how much data exists.
package entropytest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/qrngd/qrngd/entropy"
)

// Pattern generates a stream of samples, one per byte, in order.
type Pattern interface {
	Fill(p []byte)
}

// Info returns the SourceInfo the constructors use: 8-bit samples credited
// with h bits of min-entropy and a nominal rate of 1 MB/s.
func Info(name string, h float64) entropy.SourceInfo {
	return entropy.SourceInfo{
		Name:        name,
		Kind:        "fake",
		Vendor:      "entropytest",
		SampleBits:  8,
		NominalRate: 1e6,
		MinEntropy:  h,
	}
}

// Source is a fake entropy.Source driven by a Pattern. Configure its exported
// fields before the first Read.
type Source struct {
	// SourceInfo is what Info returns.
	SourceInfo entropy.SourceInfo
	// MaxRead caps the samples one Read returns (short reads); 0 means len(p).
	MaxRead int
	// Limit stops the stream after Limit samples: Read then blocks until its
	// context is done. 0 means no limit.
	Limit int64

	newPattern func() Pattern

	mu      sync.Mutex
	pat     Pattern
	off     int64 // samples served
	faults  map[int64]error
	script  []Step
	closed  bool
	reads   atomic.Int64
	served  atomic.Int64
	blocked atomic.Bool
}

func newSource(info entropy.SourceInfo, newPattern func() Pattern) *Source {
	return &Source{SourceInfo: info, newPattern: newPattern}
}

// Info implements entropy.Source.
func (s *Source) Info() entropy.SourceInfo { return s.SourceInfo }

// FailAt makes the Read that would serve sample offset off return err
// instead (once), after serving the samples before off. Use it before the
// first Read.
func (s *Source) FailAt(off int64, err error) *Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults == nil {
		s.faults = make(map[int64]error)
	}
	s.faults[off] = err
	return s
}

// Read implements entropy.Source.
func (s *Source) Read(ctx context.Context, p []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.reads.Add(1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, entropy.ErrClosed
	}
	if len(s.script) > 0 {
		defer s.mu.Unlock()
		return s.readScript(p)
	}
	if s.Limit > 0 && s.off >= s.Limit {
		s.mu.Unlock()
		s.blocked.Store(true)
		<-ctx.Done()
		s.blocked.Store(false)
		return 0, ctx.Err()
	}
	defer s.mu.Unlock()
	if err, ok := s.faults[s.off]; ok {
		delete(s.faults, s.off)
		return 0, err
	}
	n := len(p)
	if s.MaxRead > 0 {
		n = min(n, s.MaxRead)
	}
	if s.Limit > 0 {
		n = int(min(int64(n), s.Limit-s.off))
	}
	for f := range s.faults { // stop short of the next fault
		if f > s.off && f < s.off+int64(n) {
			n = int(f - s.off)
		}
	}
	s.fill(p[:n])
	return n, nil
}

func (s *Source) fill(p []byte) {
	if s.pat == nil {
		s.pat = s.newPattern()
	}
	s.pat.Fill(p)
	mask := byte(1<<max(1, min(8, s.SourceInfo.SampleBits)) - 1)
	if mask != 0xff {
		for i := range p {
			p[i] &= mask
		}
	}
	s.off += int64(len(p))
	s.served.Add(int64(len(p)))
}

// Close implements entropy.Source. Later Reads return entropy.ErrClosed.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Closed reports whether Close was called.
func (s *Source) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Reads reports how many times Read was called.
func (s *Source) Reads() int64 { return s.reads.Load() }

// Served reports how many samples Read has returned.
func (s *Source) Served() int64 { return s.served.Load() }

// AtLimit reports whether a Read is blocked because Limit was reached.
func (s *Source) AtLimit() bool { return s.blocked.Load() }

// Replay returns the first n samples of the stream, as Read serves them
// (masked to SampleBits), without disturbing the source.
func (s *Source) Replay(n int) []byte {
	p := make([]byte, n)
	s.newPattern().Fill(p)
	mask := byte(1<<max(1, min(8, s.SourceInfo.SampleBits)) - 1)
	for i := range p {
		p[i] &= mask
	}
	return p
}

// uniform is a ChaCha8 keystream.
type uniform struct{ c *rand.ChaCha8 }

func newUniform(seed uint64) *uniform {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	copy(key[8:], "entropytest uniform pattern")
	return &uniform{c: rand.NewChaCha8(key)}
}

func (u *uniform) Fill(p []byte) { u.c.Read(p) }

// NewUniform returns a good source: uniform random 8-bit samples from a
// ChaCha8 keystream keyed by seed, credited with H = 8.
func NewUniform(name string, seed uint64) *Source {
	return newSource(Info(name, 8), func() Pattern { return newUniform(seed) })
}

type constant byte

func (c constant) Fill(p []byte) {
	for i := range p {
		p[i] = byte(c)
	}
}

// NewConstant returns a source whose every sample is v: the Repetition Count
// Test fails it during start-up.
func NewConstant(name string, v byte) *Source {
	return newSource(Info(name, 8), func() Pattern { return constant(v) })
}

type stuckAt struct {
	u     *uniform
	off   int64
	after int64
	v     byte
}

func (s *stuckAt) Fill(p []byte) {
	for len(p) > 0 {
		if s.off >= s.after {
			constant(s.v).Fill(p)
			s.off += int64(len(p))
			return
		}
		n := int(min(int64(len(p)), s.after-s.off))
		s.u.Fill(p[:n])
		s.off += int64(n)
		p = p[n:]
	}
}

// NewStuckAt returns a source that is uniform (as NewUniform with seed) for
// its first after samples and then stuck at v from sample offset after on.
func NewStuckAt(name string, seed uint64, after int64, v byte) *Source {
	return newSource(Info(name, 8), func() Pattern {
		return &stuckAt{u: newUniform(seed), after: after, v: v}
	})
}

type biased struct {
	r *rand.Rand
	v byte
	p float64
}

func (b *biased) Fill(p []byte) {
	for i := range p {
		if b.r.Float64() < b.p {
			p[i] = b.v
		} else {
			p[i] = byte(b.r.Uint32())
		}
	}
}

// NewBiased returns a source that emits v with probability p (plus its
// uniform share) and a uniform byte otherwise, from a PCG generator seeded
// with seed. It is credited with H = 8 unless the caller changes
// SourceInfo.MinEntropy.
func NewBiased(name string, seed uint64, v byte, p float64) *Source {
	return newSource(Info(name, 8), func() Pattern {
		return &biased{r: rand.New(rand.NewPCG(seed, 0x5eed)), v: v, p: p}
	})
}

// Step is one part of a scripted source's stream: Data (or, when Data is
// nil and N > 0, the next N uniform samples of the source's seed), served
// over as many Reads as the callers' buffers and MaxRead need; or Err,
// returned by one Read.
type Step struct {
	Data []byte
	N    int
	Err  error
}

// readScript serves the next step; s.mu is held.
func (s *Source) readScript(p []byte) (int, error) {
	st := &s.script[0]
	if st.Err != nil {
		err := st.Err
		s.script = s.script[1:]
		return 0, err
	}
	if st.Data == nil && st.N > 0 {
		st.Data = make([]byte, st.N)
		if s.pat == nil {
			s.pat = s.newPattern()
		}
		s.pat.Fill(st.Data)
	}
	if s.MaxRead > 0 {
		p = p[:min(len(p), s.MaxRead)]
	}
	n := copy(p, st.Data)
	s.off += int64(n)
	s.served.Add(int64(n))
	if st.Data = st.Data[n:]; len(st.Data) == 0 {
		s.script = s.script[1:]
	}
	return n, nil
}

// NewScripted returns a source that plays steps in order (a step larger than
// the caller's buffer is served over several Reads) and then behaves as a
// uniform source seeded with seed, subject to Limit.
func NewScripted(name string, seed uint64, steps ...Step) *Source {
	s := newSource(Info(name, 8), func() Pattern { return newUniform(seed) })
	s.script = append([]Step(nil), steps...)
	for i, st := range s.script {
		s.script[i].Data = append([]byte(nil), st.Data...)
		if st.Data == nil {
			s.script[i].Data = nil
		}
	}
	return s
}

// Reconnecting is a Source that also implements entropy.Reconnector.
type Reconnecting struct {
	*Source
	// FailReconnects makes the first FailReconnects calls of Reconnect fail.
	FailReconnects int

	reconnects atomic.Int64
}

var _ entropy.Reconnector = (*Reconnecting)(nil)

// ErrReconnectFailed is returned by Reconnect while FailReconnects lasts.
var ErrReconnectFailed = errors.New("entropytest: reconnect failed")

// Reconnect implements entropy.Reconnector.
func (r *Reconnecting) Reconnect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := r.reconnects.Add(1)
	if n <= int64(r.FailReconnects) {
		return fmt.Errorf("%w (attempt %d)", ErrReconnectFailed, n)
	}
	return nil
}

// Reconnects reports how many times Reconnect was called.
func (r *Reconnecting) Reconnects() int64 { return r.reconnects.Load() }

// NewDisconnecting returns a uniform source (as NewUniform with seed) whose
// Read returns entropy.ErrDisconnected when it reaches each offset in at,
// and which can Reconnect.
func NewDisconnecting(name string, seed uint64, at ...int64) *Reconnecting {
	s := NewUniform(name, seed)
	for _, off := range at {
		s.FailAt(off, fmt.Errorf("entropytest: device gone at sample %d: %w", off, entropy.ErrDisconnected))
	}
	return &Reconnecting{Source: s}
}

var (
	_ entropy.Source = (*Source)(nil)
	_ entropy.Source = (*Reconnecting)(nil)
)
