// Package testhw holds what the hardware tests share: a recording wrapper
// that captures every sample a source hands to the entropy engine, an oracle
// that traces full-entropy pool blocks back to the recorded samples they were
// conditioned from, and the start-up test and read benchmark that the opt-in
// real-device tests (`go test ./testhw -testhw -testhw.source=...`) run.
//
// The simulators themselves live in the sub-packages usbsim (Quantis USB
// under umockdev), pciesim (Quantis PCIe at the driver's device seam) and
// serialsim (serial TRNG firmware on a real pty).
package testhw

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/condition"
	"github.com/qrngd/qrngd/entropy/health"
)

// Errors of this package.
var (
	ErrBadSource = errors.New("testhw: bad -testhw.source")
	ErrUnhealthy = errors.New("testhw: start-up health test failed")
	ErrTooMany   = errors.New("testhw: recording limit reached")
)

// DefaultRecordLimit bounds a Recording (samples kept).
const DefaultRecordLimit = 64 << 20

// ReadEvent is one Read call the engine made on a recorded source.
type ReadEvent struct {
	Pos    int   // samples recorded before the call
	ReqLen int   // len(p) the caller asked for
	N      int   // samples returned
	Err    error // error returned (nil when none)
}

// Recording is what a recorded source handed to its caller: every sample,
// in order, and every Read call.
type Recording struct {
	mu      sync.Mutex
	samples []byte
	reads   []ReadEvent
	limit   int
	before  func(pos, reqLen int)
}

// Samples returns a copy of the samples delivered so far.
func (r *Recording) Samples() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.samples...)
}

// Len returns how many samples were delivered.
func (r *Recording) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.samples)
}

// Reads returns a copy of the Read calls so far.
func (r *Recording) Reads() []ReadEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ReadEvent(nil), r.reads...)
}

// RecordOptions configure Record.
type RecordOptions struct {
	// Limit bounds the samples kept; a Read past it fails with ErrTooMany.
	// 0 means DefaultRecordLimit.
	Limit int
	// BeforeRead, if set, is called before each Read with the stream
	// position and the length asked for, from the reading goroutine; tests
	// inject faults there at exact positions.
	BeforeRead func(pos, reqLen int)
}

type recorder struct {
	src entropy.Source
	rec *Recording
}

type reconnectingRecorder struct{ *recorder }

func (r reconnectingRecorder) Reconnect(ctx context.Context) error {
	return r.src.(entropy.Reconnector).Reconnect(ctx)
}

// Record wraps src so that every sample it delivers is kept in the returned
// Recording. The wrapper is an entropy.Reconnector exactly when src is one,
// so the engine treats it as it treats src.
func Record(src entropy.Source, o *RecordOptions) (entropy.Source, *Recording) {
	rec := &Recording{limit: DefaultRecordLimit}
	if o != nil {
		if o.Limit > 0 {
			rec.limit = o.Limit
		}
		rec.before = o.BeforeRead
	}
	r := &recorder{src: src, rec: rec}
	if _, ok := src.(entropy.Reconnector); ok {
		return reconnectingRecorder{r}, rec
	}
	return r, rec
}

func (r *recorder) Info() entropy.SourceInfo { return r.src.Info() }
func (r *recorder) Close() error             { return r.src.Close() }

func (r *recorder) Read(ctx context.Context, p []byte) (int, error) {
	rec := r.rec
	rec.mu.Lock()
	pos, before := len(rec.samples), rec.before
	full := pos+len(p) > rec.limit
	rec.mu.Unlock()
	if full {
		return 0, fmt.Errorf("%w (%d samples)", ErrTooMany, rec.limit)
	}
	if before != nil {
		before(pos, len(p))
	}
	n, err := r.src.Read(ctx, p)
	rec.mu.Lock()
	if n > 0 && n <= len(p) {
		rec.samples = append(rec.samples, p[:n]...)
	}
	rec.reads = append(rec.reads, ReadEvent{Pos: pos, ReqLen: len(p), N: n, Err: err})
	rec.mu.Unlock()
	return n, err
}

// Block is one 256-bit full-entropy block as the pool serves it.
type Block = [condition.OutputBytes]byte

// Trace locates blocks in a recorded stream: offsets[i] is the offset o such
// that the engine's conditioner (entropy/condition.Accumulator) over samples
// [o, o+per) of stream yields blocks[i], or -1 if no run of the stream does.
// per is SamplesPerBlock for the source's sample width and credited H. It
// tries the run right after the previous block first, then every offset.
func Trace(stream []byte, sampleBits int, h float64, blocks []Block) (offsets []int, per int, err error) {
	acc, err := condition.NewAccumulator(sampleBits, h)
	if err != nil {
		return nil, 0, fmt.Errorf("testhw: trace: %w", err)
	}
	per = acc.SamplesPerBlock()
	at := func(o int) (Block, bool) {
		var out Block
		if o < 0 || o+per > len(stream) {
			return out, false
		}
		acc.Reset()
		acc.Absorb(stream[o:o+per], func(b *[condition.OutputBytes]byte) { out = *b })
		return out, true
	}
	var index map[Block]int // every run, built on the first miss
	offsets = make([]int, len(blocks))
	next := -1
	for i, b := range blocks {
		if got, ok := at(next); ok && got == b {
			offsets[i], next = next, next+per
			continue
		}
		if index == nil {
			index = make(map[Block]int, len(stream))
			for o := len(stream) - per; o >= 0; o-- {
				got, _ := at(o)
				index[got] = o
			}
		}
		o, ok := index[b]
		if !ok {
			offsets[i], next = -1, -1
			continue
		}
		offsets[i], next = o, o+per
	}
	return offsets, per, nil
}

// ParseSource turns a -testhw.source value into a source spec:
//
//	sim                               the simulated QRNG (drivers/sim)
//	quantis-usb:SERIAL                a Quantis USB by iSerialNumber ("" = the only one)
//	quantis-pcie:CARD|SERIAL          a Quantis PCIe card by index (digits) or hex serial
//	serial:PROFILE:PATH               a serial TRNG (truerng, onerng, alpharng, ...) at PATH
//
// The source is named "hw0". min_entropy is left to the driver's default.
func ParseSource(s string) (drivers.Spec, error) {
	kind, arg, _ := strings.Cut(s, ":")
	spec := drivers.Spec{Name: "hw0", Kind: kind, Params: drivers.Params{}}
	bad := func(why string) (drivers.Spec, error) {
		return drivers.Spec{}, fmt.Errorf("%w %q: %s", ErrBadSource, s, why)
	}
	switch kind {
	case "sim":
		if arg != "" {
			return bad("sim takes no argument: want just sim")
		}
		spec.Params["rate"] = 0
	case "quantis-usb":
		if arg != "" {
			spec.Params["serial"] = arg
		}
	case "quantis-pcie":
		switch {
		case arg == "":
		case strings.Trim(arg, "0123456789") == "" && len(arg) <= 3:
			var n int
			fmt.Sscan(arg, &n)
			spec.Params["card"] = n
		default:
			spec.Params["serial"] = arg
		}
	case "serial":
		profile, path, ok := strings.Cut(arg, ":")
		if !ok || profile == "" || path == "" {
			return bad("want serial:PROFILE:PATH, e.g. serial:truerng:/dev/ttyACM0")
		}
		spec.Params["profile"], spec.Params["device"] = profile, path
	default:
		return bad("want sim, quantis-usb:SERIAL, quantis-pcie:CARD|SERIAL or serial:PROFILE:PATH")
	}
	return spec, nil
}

// StartupResult is the outcome of StartupTest.
type StartupResult struct {
	Info    entropy.SourceInfo
	Samples int            // samples tested (whole APT windows)
	Cutoffs health.Cutoffs // at the source's credited H and alpha 2^-20
	Windows int
	Failed  int           // windows with an alarm
	First   health.Result // the first failing window's result
}

// StartupTest reads at least minSamples samples (rounded up to whole APT
// windows, and at least entropy.StartupSamples) from src and runs them
// through the SP 800-90B health tests at the source's credited min-entropy,
// as the engine's start-up testing does. It returns ErrUnhealthy if any
// window alarms.
func StartupTest(ctx context.Context, src entropy.Source, minSamples int) (StartupResult, error) {
	info := src.Info()
	res := StartupResult{Info: info}
	t, err := health.New(health.Config{H: info.MinEntropy, SampleBits: info.SampleBits})
	if err != nil {
		return res, fmt.Errorf("testhw: start-up test of %s: %w", info.Name, err)
	}
	res.Cutoffs = t.Cutoffs()
	w := t.Window()
	n := (max(minSamples, entropy.StartupSamples) + w - 1) / w * w
	buf := make([]byte, n)
	if err := ReadFull(ctx, src, buf); err != nil {
		return res, err
	}
	for off := 0; off < n; off += w {
		r := t.Test(buf[off : off+w])
		res.Windows++
		if r.Worst() != health.Pass {
			if res.Failed == 0 {
				res.First = r
			}
			res.Failed++
		}
	}
	res.Samples = n
	if res.Failed > 0 {
		return res, fmt.Errorf("%w: %s: %d of %d windows alarmed (first: RCT %v at %d, APT %v at %d)", ErrUnhealthy,
			info.Name, res.Failed, res.Windows, res.First.RCT, res.First.RCTIndex, res.First.APT, res.First.APTIndex)
	}
	return res, nil
}

// ReadFull fills p from src, honouring ctx; short reads are retried, and a
// source returning nothing 100 times in a row is an error.
func ReadFull(ctx context.Context, src entropy.Source, p []byte) error {
	empty := 0
	for off := 0; off < len(p); {
		n, err := src.Read(ctx, p[off:])
		if n < 0 || n > len(p)-off {
			return fmt.Errorf("testhw: %s returned %d for a %d-byte read", src.Info().Name, n, len(p)-off)
		}
		off += n
		if err != nil {
			return fmt.Errorf("testhw: read %s after %d bytes: %w", src.Info().Name, off, err)
		}
		if n == 0 {
			if empty++; empty >= 100 {
				return fmt.Errorf("testhw: %s returned no data 100 times", src.Info().Name)
			}
			continue
		}
		empty = 0
	}
	return nil
}

// Throughput reads from src for about d in reads of chunk bytes and returns
// the bytes read and the wall time taken.
func Throughput(ctx context.Context, src entropy.Source, chunk int, d time.Duration) (int64, time.Duration, error) {
	buf := make([]byte, chunk)
	start := time.Now()
	var total int64
	for time.Since(start) < d {
		n, err := src.Read(ctx, buf)
		total += int64(max(n, 0))
		if err != nil {
			return total, time.Since(start), fmt.Errorf("testhw: read %s: %w", src.Info().Name, err)
		}
	}
	return total, time.Since(start), nil
}
