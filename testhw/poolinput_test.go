package testhw

// "Nothing from a faulted device reaches the pool", proved on the pool's
// output: a simulated device, opened through its real driver, is wrapped by
// Record and run by the real engine as its only source (so that, with
// min_healthy_sources 1, every full-entropy block the pool serves is one
// conditioner block of that source, unmixed). The test drains the pool with
// ModeFull reads, injects a fault at an exact position of the recorded
// stream, lets the source recover, and then traces every served block back
// to the run of recorded samples it was conditioned from (Trace, using the
// engine's own conditioner). No traced run may touch the faulted samples, the
// partial window a disconnect cut off, or the start-up samples after
// recovery; every served block must trace, so nothing else entered the pool.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/quantispcie"
	"github.com/qrngd/qrngd/drivers/sim"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/condition"
	"github.com/qrngd/qrngd/testhw/pciesim"
	"github.com/qrngd/qrngd/testhw/serialsim"
	"github.com/qrngd/qrngd/testhw/usbsim"
)

// interval is a half-open range of recorded sample positions.
type interval struct {
	from, to int
	why      string
}

// faultRun is the state of one injected fault, filled in from the reading
// goroutine (BeforeRead) and read by the test after the engine stopped.
type faultRun struct {
	mu        sync.Mutex
	maxReq    int // largest read the engine asked for: its buffer (fill = maxReq - ReqLen)
	injected  bool
	cleared   bool
	start     int // first faulted position
	end       int // first position after the fault
	injectErr error
}

// harness runs the engine on one recorded source and drains its pool.
type harness struct {
	t      *testing.T
	eng    *entropy.Engine
	rec    *Recording
	name   string
	cancel context.CancelFunc
	runErr chan error

	mu     sync.Mutex
	blocks []Block
	rdone  chan struct{}
}

func startHarness(t *testing.T, src entropy.Source, before func(pos, reqLen int)) *harness {
	t.Helper()
	wrapped, rec := Record(src, &RecordOptions{BeforeRead: before, Limit: 32 << 20})
	eng, err := entropy.New(&entropy.Options{MinHealthySources: 1, PoolCapacity: 4096, FullWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hc := &entropy.HealthConfig{QuarantineFor: 50 * time.Millisecond, MaxQuarantines: 10}
	if err := eng.AddSource(wrapped, hc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, eng: eng, rec: rec, name: src.Info().Name, cancel: cancel, runErr: make(chan error, 1), rdone: make(chan struct{})}
	go func() { h.runErr <- eng.Run(ctx) }()
	go h.drain(ctx)
	t.Cleanup(func() { h.stop() })
	return h
}

// drain reads one block at a time from the pool until ctx ends.
func (h *harness) drain(ctx context.Context) {
	defer close(h.rdone)
	var b Block
	for ctx.Err() == nil {
		if _, err := h.eng.Read(ctx, b[:], entropy.ModeFull); err != nil {
			if errors.Is(err, entropy.ErrInsufficientEntropy) {
				wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				_ = h.eng.WaitReady(wctx)
				cancel()
			}
			continue
		}
		h.mu.Lock()
		h.blocks = append(h.blocks, b)
		h.mu.Unlock()
	}
}

func (h *harness) served() []Block {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Block(nil), h.blocks...)
}

func (h *harness) source() entropy.SourceStatus {
	for _, s := range h.eng.Status().Sources {
		if s.Name == h.name {
			return s
		}
	}
	h.t.Fatalf("no source %q", h.name)
	return entropy.SourceStatus{}
}

// stop ends the engine and the reader; it is idempotent.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.rdone
	if err := <-h.runErr; err != nil {
		h.t.Errorf("engine Run: %v", err)
	}
	h.cancel = nil
	_ = h.eng.Close()
}

// await polls cond (bounded; no timed assertion).
func await(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not reached within %v", what, limit)
		}
	}
}

// verify traces every served block and checks that no block's run touches
// a forbidden interval; it also checks that blocks were served both before
// the first and after the last interval, so the check has something to bite.
func verify(t *testing.T, h *harness, forbidden []interval) {
	t.Helper()
	h.stop()
	st := h.source() // after Run returned: the counters are final
	stream := h.rec.Samples()
	blocks := h.served()
	if uint64(len(stream)) != st.Samples {
		t.Errorf("engine counted %d samples read, the recording holds %d", st.Samples, len(stream))
	}
	offs, per, err := Trace(stream, st.SampleBits, st.MinEntropy, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if got := uint64(len(blocks)) * condition.OutputBytes; got > st.Bytes {
		t.Errorf("served %d bytes of blocks, the engine conditioned only %d", got, st.Bytes)
	}
	before, after := 0, 0
	first, last := forbidden[0].from, forbidden[len(forbidden)-1].to
	for i, o := range offs {
		if o < 0 {
			t.Fatalf("served block %d does not trace to any run of %d recorded samples: something other than this source's tested samples reached the pool", i, len(stream))
		}
		for _, f := range forbidden {
			if o < f.to && o+per > f.from {
				t.Errorf("served block %d was conditioned from samples [%d, %d), which touch %s [%d, %d)", i, o, o+per, f.why, f.from, f.to)
			}
		}
		if o+per <= first {
			before++
		}
		if o >= last {
			after++
		}
	}
	t.Logf("%d samples recorded, %d blocks served (%d before the fault, %d after recovery), %d samples per block, %d discarded, %d conditioned bytes, forbidden %v",
		len(stream), len(blocks), before, after, per, st.DiscardedSamples, st.Bytes, forbidden)
	if before == 0 || after == 0 {
		t.Errorf("blocks before the fault: %d, after recovery: %d; want both > 0", before, after)
	}
	// The check can fail: a block conditioned from the faulted samples
	// traces into the forbidden interval.
	f := forbidden[0]
	if f.to-f.from >= per {
		acc, _ := condition.NewAccumulator(st.SampleBits, st.MinEntropy)
		var bad Block
		acc.Absorb(stream[f.from:f.from+per], func(b *[condition.OutputBytes]byte) { bad = *b })
		if o, _, _ := Trace(stream, st.SampleBits, st.MinEntropy, []Block{bad}); o[0] < f.from || o[0] >= f.to {
			t.Errorf("control: a block made from the faulted samples traced to %d, not into [%d, %d)", o[0], f.from, f.to)
		}
	}
}

// pcieHost installs a simulated PCIe host behind the registered driver.
func pcieHost(t *testing.T, seed uint64) (*pciesim.Host, *pciesim.Card, entropy.Source) {
	t.Helper()
	h := pciesim.NewHost(t.TempDir())
	card := pciesim.NewCard(pciesim.CardOptions{Model: pciesim.PCIe4M, Seed: seed})
	if _, err := h.Plug(0, card); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(quantispcie.SetOpener(func(p string) (quantispcie.File, error) { return h.Open(p) }))
	src, err := drivers.Open(context.Background(), drivers.Spec{Name: "pcie0", Kind: quantispcie.Kind,
		Params: drivers.Params{"dev_root": h.Root(), "card": 0, "reconnect_interval": "10ms", "status_check_bytes": 0}})
	if err != nil {
		t.Fatal(err)
	}
	return h, card, src
}

// alignedInject returns a BeforeRead that calls inject at the first read at
// or after position at that starts a fresh engine buffer (fill 0, so the
// fault starts on a health-test window boundary), and clear at the next read
// (the first after the source was taken out of service).
func alignedInject(fr *faultRun, at int, inject, clear func()) func(pos, reqLen int) {
	return func(pos, reqLen int) {
		fr.mu.Lock()
		defer fr.mu.Unlock()
		fr.maxReq = max(fr.maxReq, reqLen)
		switch {
		case !fr.injected && pos >= at && reqLen == fr.maxReq:
			inject()
			fr.injected, fr.start = true, pos
		case fr.injected && !fr.cleared && pos > fr.start:
			clear()
			fr.cleared, fr.end = true, pos
		}
	}
}

// TestPoolInput_FaultedSamplesNeverReachPool injects faults that the health
// tests catch (a stuck stream, a biased "garbage" stream) and checks the
// pool's output.
func TestPoolInput_FaultedSamplesNeverReachPool(t *testing.T) {
	cases := []struct {
		name string
		open func(t *testing.T, fr *faultRun) (entropy.Source, func(pos, reqLen int))
	}{
		{"pcie/stuck", func(t *testing.T, fr *faultRun) (entropy.Source, func(int, int)) {
			_, card, src := pcieHost(t, 11)
			return src, alignedInject(fr, 200_000, func() { card.SetStuck(true, 0x5a) }, func() { card.SetStuck(false, 0) })
		}},
		{"sim/biased", func(t *testing.T, fr *faultRun) (entropy.Source, func(int, int)) {
			src, err := drivers.Open(context.Background(), drivers.Spec{Name: "sim0", Kind: "sim", MinEntropy: 7.5,
				Params: drivers.Params{"seed": 9}})
			if err != nil {
				t.Fatal(err)
			}
			sm := src.(*sim.Source)
			return src, alignedInject(fr, 200_000, func() {
				fr.injectErr = sm.Inject(sim.Fault{Kind: sim.Bias, At: sm.Samples(), P: 0.5, Value: 0})
			}, func() { sm.Clear() })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fr := &faultRun{}
			src, before := c.open(t, fr)
			h := startHarness(t, src, before)
			await(t, 30*time.Second, "fault injected, cleared and source healthy again", func() bool {
				fr.mu.Lock()
				done := fr.cleared
				fr.mu.Unlock()
				return done && h.source().State == entropy.StateHealthy && len(h.served()) > 0
			})
			fr.mu.Lock()
			end := fr.end
			fr.mu.Unlock()
			// Serve a good number of blocks after recovery.
			await(t, 30*time.Second, "blocks after recovery", func() bool {
				return h.rec.Len() > end+entropy.StartupSamples+64*1024
			})
			if fr.injectErr != nil {
				t.Fatal(fr.injectErr)
			}
			st := h.source()
			if st.Quarantines == 0 || st.DiscardedSamples == 0 {
				t.Errorf("the fault went unnoticed: %+v", st)
			}
			verify(t, h, []interval{
				{fr.start, fr.end, "the faulted samples"},
				{fr.end, fr.end + entropy.StartupSamples, "the start-up samples after the fault"},
			})
		})
	}
}

// TestPoolInput_VanishMidRead: the device disappears in the middle of a read
// and comes back. Nothing of the read that failed, of the partial window
// before it, or of the start-up samples after the reconnect is served.
func TestPoolInput_VanishMidRead(t *testing.T) {
	cases := []struct {
		name string
		// open returns the source, a function that makes the device vanish
		// (from the reading goroutine) and one that brings it back.
		open func(t *testing.T) (src entropy.Source, vanish func(), back func())
	}{
		{"pcie", func(t *testing.T) (entropy.Source, func(), func()) {
			h, card, src := pcieHost(t, 12)
			return src, func() { card.VanishAfter(10_000) }, func() {
				if _, err := h.Plug(0, card); err != nil {
					t.Error(err)
				}
			}
		}},
		{"serial-onerng", func(t *testing.T) (entropy.Source, func(), func()) {
			d, err := serialsim.New(serialsim.Options{Model: serialsim.OneRNG, Seed: 13, Dir: t.TempDir(), Rate: 4 << 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			src, err := drivers.Open(context.Background(), drivers.Spec{Name: "onerng0", Kind: "serial",
				Params: drivers.Params{"profile": "onerng", "device": d.Path(), "require_dtr": false, "reconnect_interval": "10ms"}})
			if err != nil {
				t.Fatal(err)
			}
			return src, func() { _ = d.Unplug() }, func() {
				if err := d.Plug(); err != nil {
					t.Error(err)
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, vanish, back := c.open(t)
			vanishMidRead(t, src, vanish, back)
		})
	}
}

// vanishMidRead makes the device vanish (from the engine's reading
// goroutine) past 150 000 samples, brings it back once the source shows
// disconnected, and verifies the pool's output.
func vanishMidRead(t *testing.T, src entropy.Source, vanish, back func()) {
	t.Helper()
	var mu sync.Mutex
	maxReq, fired := 0, false
	h := startHarness(t, src, func(pos, reqLen int) {
		mu.Lock()
		defer mu.Unlock()
		maxReq = max(maxReq, reqLen)
		// Prefer a moment when the engine holds a partial window
		// (fill > 0), so that the cut-off window is not empty.
		if !fired && pos >= 150_000 && (reqLen < maxReq || pos >= 400_000) {
			fired = true
			vanish()
		}
	})
	await(t, 30*time.Second, "source disconnected", func() bool {
		return h.source().State == entropy.StateDisconnected
	})
	if got := h.source().LastError; !strings.Contains(got, "disconnected") {
		t.Errorf("last_error %q does not say disconnected", got)
	}
	back()
	await(t, 30*time.Second, "source healthy after reconnect", func() bool {
		return h.source().State == entropy.StateHealthy
	})
	// The failed read: the first Read that returned ErrDisconnected.
	var fail ReadEvent
	found := false
	for _, ev := range h.rec.Reads() {
		if errors.Is(ev.Err, entropy.ErrDisconnected) {
			fail, found = ev, true
			break
		}
	}
	if !found {
		t.Fatal("no read returned ErrDisconnected")
	}
	mu.Lock()
	fill := maxReq - fail.ReqLen // samples of the engine's partial window before the failed read
	mu.Unlock()
	if w := h.source().APTWindow; fill < 0 || fill >= w {
		t.Fatalf("inferred partial window of %d samples, want 0..%d: the engine no longer reads into one buffer of whole windows", fill, w-1)
	}
	cut := fail.Pos + fail.N
	await(t, 30*time.Second, "blocks after reconnect", func() bool {
		return h.rec.Len() > cut+entropy.StartupSamples+64*1024
	})
	verify(t, h, []interval{
		{fail.Pos - fill, cut, fmt.Sprintf("the partial window (%d samples) and the failed read", fill+fail.N)},
		{cut, cut + entropy.StartupSamples, "the start-up samples after the reconnect"},
	})
}

// TestPoolInput_USBVanishMidRead is TestPoolInput_VanishMidRead for the
// Quantis USB emulated under umockdev (make test-usb); it skips without it.
func TestPoolInput_USBVanishMidRead(t *testing.T) {
	root := usbsim.Root()
	if root == "" {
		t.Skip(usbsim.SkipMessage)
	}
	bus, err := usbsim.NewBus(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	dev, err := bus.Plug(usbsim.DeviceConfig{Serial: "QSIMPOOL01", Seed: 15})
	if err != nil {
		t.Fatal(err)
	}
	src, err := drivers.Open(context.Background(), drivers.Spec{Name: "usb0", Kind: "quantis-usb",
		Params: drivers.Params{"serial": "QSIMPOOL01", "poll_interval": "10ms"}})
	if err != nil {
		t.Fatal(err)
	}
	vanishMidRead(t, src, func() { _ = dev.Unplug() }, func() {
		if err := dev.Replug(); err != nil {
			t.Error(err)
		}
	})
}

// TestPoolInput_SerialGarbageOnReconnect: a OneRNG that answers its version
// request with garbage after a replug is not trusted again: the source stays
// disconnected with an error naming the garbage and no sample is read, until
// the device behaves.
func TestPoolInput_SerialGarbageOnReconnect(t *testing.T) {
	d, err := serialsim.New(serialsim.Options{Model: serialsim.OneRNG, Seed: 14, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	src, err := drivers.Open(context.Background(), drivers.Spec{Name: "onerng0", Kind: "serial",
		Params: drivers.Params{"profile": "onerng", "device": d.Path(), "require_dtr": false,
			"reconnect_interval": "10ms", "version_timeout": "300ms"}})
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t, src, nil)
	await(t, 30*time.Second, "healthy and serving", func() bool {
		return h.source().State == entropy.StateHealthy && len(h.served()) >= 100
	})
	d.SetFault(serialsim.Garbage)
	if err := d.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := d.Plug(); err != nil {
		t.Fatal(err)
	}
	await(t, 30*time.Second, "reconnect refused with a garbage error", func() bool {
		s := h.source()
		return s.State == entropy.StateDisconnected && strings.Contains(s.LastError, "framing")
	})
	// Since the unplug, no Read delivered a sample: the garbage-talking
	// device was never read from.
	n := h.rec.Len()
	gone := false
	for _, ev := range h.rec.Reads() {
		if errors.Is(ev.Err, entropy.ErrDisconnected) {
			gone = true
		}
		if gone && ev.N > 0 {
			t.Errorf("read %d samples at %d after the device was unplugged and before it passed its handshake", ev.N, ev.Pos)
		}
	}
	if !gone {
		t.Error("no read reported the unplug")
	}
	d.SetFault(serialsim.None)
	await(t, 30*time.Second, "healthy once the device behaves", func() bool {
		return h.source().State == entropy.StateHealthy && h.rec.Len() > n+entropy.StartupSamples+16*1024
	})
	verify(t, h, []interval{{n, n + entropy.StartupSamples, "the start-up samples after the reconnect"}})
}
