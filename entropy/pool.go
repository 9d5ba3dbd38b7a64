package entropy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qrngd/qrngd/entropy/condition"
)

// blockSize is the size of one full-entropy block.
const blockSize = condition.OutputBytes

// mixShare is how many blocks each contributor gives to a mixed output
// block: 2 × 256 bits credited ≥ 256 + 64 (SP 800-90C §3.2.2.2), so each
// contributor alone would make the output full entropy by SP 800-90B
// §3.1.5.1.2 — a bad source cannot weaken the output of good ones.
const mixShare = 2

// mixLabel prefixes the mixing hash input (domain separation).
const mixLabel = "qrngd entropy pool mix v1"

// osName is the contributor name of the OS RNG in provenance.
const osName = "os"

// pool holds the full-entropy blocks of every source, one bounded queue per
// source, and turns them into output blocks.
//
// An output block is made from the healthy sources holding at least
// mixShare blocks at that moment (the contributors):
//   - at least max(2, MinHealthySources) contributors:
//     SHA-256(label ‖ n ‖ for each: name-length ‖ name ‖ 2 blocks), a vetted
//     conditioning function (SHA-256, SP 800-90B Table 1) over ≥ 512 credited
//     bits per contributor;
//   - with exactly one healthy source and MinHealthySources ≤ 1: its next
//     block, unchanged (it already is the full-entropy output of the vetted
//     conditioner). With two or more healthy sources every output block
//     mixes at least two of them, even when MinHealthySources is 1, so no
//     output depends on one source alone while another is healthy; the
//     price is that a healthy source that delivers slowly paces full-entropy
//     output (callers wait, up to FullWait, for its blocks);
//   - fewer healthy sources than MinHealthySources: under PolicyOS the hash
//     above over the contributors there are plus 64 bytes of the OS RNG as
//     one more contributor, flagged degraded; under PolicyFailClosed nothing.
//
// With enough healthy sources whose queues are momentarily empty, callers
// wait for blocks; the OS RNG is never used for that.
type pool struct {
	mu   sync.Mutex
	srcs atomic.Pointer[[]*runner] // set once by Run

	min     int
	policy  Policy
	osrng   io.Reader
	wake    chan struct{} // closed and replaced when blocks arrive and someone waits
	waiters atomic.Int32
	scratch []byte
	osbuf   [mixShare * blockSize]byte
}

func newPool(opts *Options) *pool {
	return &pool{min: opts.MinHealthySources, policy: opts.Policy, osrng: opts.OSRNG, wake: make(chan struct{})}
}

// provenance accumulates where output came from.
type provenance struct {
	sources  []string
	degraded bool
}

func (p *provenance) add(name string) {
	if !slices.Contains(p.sources, name) {
		p.sources = append(p.sources, name)
	}
}

func (p *provenance) merge(q provenance) {
	for _, s := range q.sources {
		p.add(s)
	}
	p.degraded = p.degraded || q.degraded
}

func (p provenance) sorted() []string {
	s := slices.Clone(p.sources)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}

// queues returns the sources, in the order they were added.
func (p *pool) queues() []*runner {
	if q := p.srcs.Load(); q != nil {
		return *q
	}
	return nil
}

// notify wakes goroutines waiting for blocks. Runners call it after a push.
func (p *pool) notify() {
	if p.waiters.Load() == 0 {
		return
	}
	p.mu.Lock()
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
}

// healthy counts sources in StateHealthy.
func (p *pool) healthy() int {
	n := 0
	for _, r := range p.queues() {
		if r.State() == StateHealthy {
			n++
		}
	}
	return n
}

// level returns the bytes queued by healthy sources.
func (p *pool) level() int {
	n := 0
	for _, r := range p.queues() {
		if r.State() == StateHealthy {
			n += len(r.q) * blockSize
		}
	}
	return n
}

// tryBlock makes one output block into dst if it can without waiting.
// ok is false when the pool cannot serve under its policy right now.
func (p *pool) tryBlock(dst *[blockSize]byte, prov *provenance) (ok bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var contrib [16]*runner
	full := contrib[:0] // healthy sources holding a whole share
	var best *runner    // healthy source holding the most blocks
	healthy := 0
	for _, r := range p.queues() {
		if r.State() != StateHealthy {
			continue
		}
		healthy++
		n := len(r.q)
		if n >= mixShare {
			full = append(full, r)
		}
		if n > 0 && (best == nil || n > len(best.q)) {
			best = r
		}
	}
	useOS := false
	switch {
	case len(full) >= max(2, p.min):
	case healthy == 1 && p.min <= 1 && best != nil:
		*dst = <-best.q
		prov.add(best.info.Name)
		return true, nil
	case p.policy == PolicyOS && healthy < p.min:
		useOS = true
	default:
		return false, nil
	}
	cs := full

	buf := append(p.scratch[:0], mixLabel...)
	n := len(cs)
	if useOS {
		n++
	}
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	for _, r := range cs {
		buf = appendName(buf, r.info.Name)
		for range mixShare {
			b := <-r.q
			buf = append(buf, b[:]...)
			clear(b[:])
		}
		prov.add(r.info.Name)
	}
	if useOS {
		if _, err := io.ReadFull(p.osrng, p.osbuf[:]); err != nil {
			clear(buf)
			p.scratch = buf
			return false, fmt.Errorf("%w: policy os: reading the OS RNG: %w", ErrInsufficientEntropy, err)
		}
		buf = appendName(buf, osName)
		buf = append(buf, p.osbuf[:]...)
		clear(p.osbuf[:])
		prov.add(osName)
		prov.degraded = true
	}
	*dst = sha256.Sum256(buf)
	clear(buf)
	p.scratch = buf
	return true, nil
}

func appendName(b []byte, name string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	return append(b, name...)
}

// block makes one output block into dst, waiting for blocks until ctx is
// done, closed is closed or deadline fires (a nil deadline: do not wait).
func (p *pool) block(ctx context.Context, closed <-chan struct{}, dst *[blockSize]byte, prov *provenance, deadline <-chan time.Time) error {
	for {
		ok, err := p.tryBlock(dst, prov)
		if ok || err != nil {
			return err
		}
		if deadline == nil {
			return ErrInsufficientEntropy
		}
		p.waiters.Add(1)
		p.mu.Lock()
		wake := p.wake
		p.mu.Unlock()
		// Re-check after registering, so a push between tryBlock and here
		// is not missed.
		ok, err = p.tryBlock(dst, prov)
		if ok || err != nil {
			p.waiters.Add(-1)
			return err
		}
		select {
		case <-wake:
			p.waiters.Add(-1)
		case <-ctx.Done():
			p.waiters.Add(-1)
			return ctx.Err()
		case <-closed:
			p.waiters.Add(-1)
			return ErrClosed
		case <-deadline:
			p.waiters.Add(-1)
			return ErrInsufficientEntropy
		}
	}
}

// flush drops every block queued by r (quarantine, disconnect, close).
func (p *pool) flush(r *runner) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		select {
		case b := <-r.q:
			clear(b[:])
		default:
			return
		}
	}
}
