package sim_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers/drivertest"
	"github.com/qrngd/qrngd/drivers/sim"
	"github.com/qrngd/qrngd/entropy"
)

var bg = context.Background()

// reference returns the first n samples of an unfaulted source with o's seed
// and distribution.
func reference(t *testing.T, o sim.Options, n int) []byte {
	t.Helper()
	o.Faults, o.Rate, o.Clock = nil, 0, nil
	return drivertest.ReadFull(t, newSim(t, &o), n)
}

// mustRead does one Read of n bytes and returns the samples it delivered.
func mustRead(t *testing.T, s *sim.Source, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	m, err := s.Read(bg, p)
	if err != nil {
		t.Fatalf("Read(%d) after %d samples: %v", n, s.Samples(), err)
	}
	return p[:m]
}

func TestNew_Defaults(t *testing.T) {
	s := newSim(t, nil)
	info := s.Info()
	want := entropy.SourceInfo{Name: "sim", Kind: "sim", Vendor: "qrngd", Model: "simulated QRNG",
		Serial: info.Serial, BoardVersion: "qrngd-sim 1", Path: "sim:sim", SampleBits: 8, MinEntropy: 8}
	if info != want {
		t.Errorf("Info() = %+v; want %+v", info, want)
	}
	if !strings.HasPrefix(info.Serial, "SIM-") || len(info.Serial) != 16 {
		t.Errorf("Serial = %q; want SIM- and 12 hex digits", info.Serial)
	}
	// Seed 0 draws a random seed: two sources differ.
	a, b := drivertest.ReadFull(t, newSim(t, nil), 64), drivertest.ReadFull(t, newSim(t, nil), 64)
	if bytes.Equal(a, b) {
		t.Error("two sources with random seeds produced the same samples")
	}
}

func TestNew_Invalid(t *testing.T) {
	tests := []struct {
		o    sim.Options
		want string
	}{
		{sim.Options{SampleBits: 9}, "SampleBits"},
		{sim.Options{SampleBits: -1}, "SampleBits"},
		{sim.Options{SampleBits: 4, MinEntropy: 4.5}, "MinEntropy"},
		{sim.Options{MinEntropy: -1}, "MinEntropy"},
		{sim.Options{MinEntropy: math.NaN()}, "MinEntropy"},
		{sim.Options{Rate: -1}, "Rate"},
		{sim.Options{Rate: math.Inf(1)}, "Rate"},
		{sim.Options{SampleBits: 2, Faults: []sim.Fault{{Kind: sim.Stuck, Value: 4}}}, "Faults[0].Value"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.Bias, P: 1.5}}}, "Faults[0].P"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.Bias}}}, "Faults[0].P"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.ShortReads}}}, "Faults[0].N"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.ReadError, N: -2}}}, "Faults[0].N"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.Delay}}}, "Faults[0].D"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.Disconnect, D: -time.Second}}}, "Faults[0].D"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.Hang, N: 1}}}, "Faults[0].Kind"},
		{sim.Options{Faults: []sim.Fault{{Kind: 99}}}, "Faults[0].Kind"},
		{sim.Options{Faults: []sim.Fault{{Kind: sim.Hang}, {Kind: sim.Hang, At: 5}}}, "Faults[1].Kind"},
	}
	for _, tt := range tests {
		_, err := sim.New(&tt.o)
		if !errors.Is(err, sim.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v; want ErrInvalidOptions naming %s", tt.o, err, tt.want)
		}
	}
}

func TestSource_Read_Deterministic(t *testing.T) {
	for _, o := range []sim.Options{
		{Seed: 42},
		{Seed: 42, SampleBits: 3},
		{Seed: 42, SampleBits: 8, MinEntropy: 2.5},
		{Seed: 42, SampleBits: 1, MinEntropy: 0.5},
	} {
		whole := drivertest.ReadFull(t, newSim(t, &o), 10000)
		// The same stream in odd-sized pieces.
		s := newSim(t, &o)
		var pieces []byte
		for i := 1; len(pieces) < len(whole); i++ {
			pieces = append(pieces, mustRead(t, s, min(i*7%97+1, len(whole)-len(pieces)))...)
		}
		if !bytes.Equal(whole, pieces) {
			t.Errorf("%+v: same seed, different read sizes: streams differ", o)
		}
		if s.Samples() != uint64(len(whole)) {
			t.Errorf("Samples() = %d; want %d", s.Samples(), len(whole))
		}
		o2 := o
		o2.Seed = 43
		if other := drivertest.ReadFull(t, newSim(t, &o2), 10000); bytes.Equal(whole, other) {
			t.Errorf("%+v: seeds 42 and 43 give the same stream", o)
		}
		if newSim(t, &o).Info().Serial == newSim(t, &o2).Info().Serial {
			t.Error("seeds 42 and 43 give the same serial")
		}
	}
}

// TestSource_Read_MinEntropy checks that H < SampleBits yields the intended
// most-common-value frequency 2^-H, the other values sharing the rest.
func TestSource_Read_MinEntropy(t *testing.T) {
	const n = 1 << 20
	for _, tt := range []struct {
		bits int
		h    float64
	}{{8, 2}, {8, 7.5}, {4, 1}, {1, 0.5}, {2, 1.9}} {
		s := newSim(t, &sim.Options{Seed: 7, SampleBits: tt.bits, MinEntropy: tt.h})
		var count [256]int
		for _, b := range drivertest.ReadFull(t, s, n) {
			count[b]++
		}
		p := math.Exp2(-tt.h)
		mcv := s.MostLikely()
		sd := math.Sqrt(n * p * (1 - p))
		if got := float64(count[mcv]); math.Abs(got-n*p) > 6*sd {
			t.Errorf("bits %d H %v: value %d seen %v times; want %v ± %.0f (6 sd)", tt.bits, tt.h, mcv, got, n*p, 6*sd)
		}
		// The other values: near-uniform, each at most as likely as the mcv.
		q := (1 - p) / float64(int(1)<<tt.bits-1)
		qsd := math.Sqrt(n * q * (1 - q))
		for v := 0; v < 1<<tt.bits; v++ {
			if v == int(mcv) {
				continue
			}
			if got := float64(count[v]); math.Abs(got-n*q) > 6*qsd {
				t.Errorf("bits %d H %v: value %d seen %v times; want %.0f ± %.0f", tt.bits, tt.h, v, got, n*q, 6*qsd)
			}
		}
		// The empirical most common value is the designated one, and the
		// MCV min-entropy estimate lands on H.
		maxc := 0
		for _, c := range count {
			maxc = max(maxc, c)
		}
		if est := -math.Log2(float64(maxc) / n); math.Abs(est-tt.h) > 0.05 {
			t.Errorf("bits %d H %v: empirical min-entropy %.3f", tt.bits, tt.h, est)
		}
	}
}

func TestSource_Read_Uniform(t *testing.T) {
	const n = 1 << 20
	s := newSim(t, &sim.Options{Seed: 9, SampleBits: 5})
	var count [256]int
	for _, b := range drivertest.ReadFull(t, s, n) {
		count[b]++
	}
	// Chi-square with 31 degrees of freedom; 70 is far beyond p = 1e-4.
	e := float64(n) / 32
	chi := 0.0
	for v := 0; v < 32; v++ {
		chi += (float64(count[v]) - e) * (float64(count[v]) - e) / e
	}
	if chi > 70 {
		t.Errorf("chi-square %.1f over 32 values; samples not uniform", chi)
	}
}

func TestSource_Fault_Stuck(t *testing.T) {
	o := sim.Options{Seed: 5, SampleBits: 4, Faults: []sim.Fault{{Kind: sim.Stuck, At: 1000, Value: 9}}}
	got := drivertest.ReadFull(t, newSim(t, &o), 3000)
	ref := reference(t, o, 3000)
	if !bytes.Equal(got[:1000], ref[:1000]) {
		t.Error("samples before the stuck index differ from the unfaulted stream")
	}
	for i := 1000; i < 3000; i++ {
		if got[i] != 9 {
			t.Fatalf("sample %d = %d; want stuck at 9", i, got[i])
		}
	}
	// Cleared at run time: the stream resumes, still aligned to its index.
	s := newSim(t, &o)
	drivertest.ReadFull(t, s, 1500)
	s.Clear(sim.Stuck)
	if rest := drivertest.ReadFull(t, s, 1500); !bytes.Equal(rest, ref[1500:]) {
		t.Error("after Clear the stream is not the unfaulted stream at the same index")
	}
}

func TestSource_Fault_Bias(t *testing.T) {
	const at, n = 5000, 200000
	o := sim.Options{Seed: 6, Faults: []sim.Fault{{Kind: sim.Bias, At: at, Value: 0xAB, P: 0.25}}}
	got := drivertest.ReadFull(t, newSim(t, &o), at+n)
	ref := reference(t, o, at+n)
	if !bytes.Equal(got[:at], ref[:at]) {
		t.Error("samples before the bias index differ from the unfaulted stream")
	}
	hits, kept := 0, 0
	for i := at; i < at+n; i++ {
		if got[i] == 0xAB {
			hits++
		}
		if got[i] == ref[i] {
			kept++
		}
	}
	// P(0xAB) = 0.25 + 0.75/256.
	p := 0.25 + 0.75/256
	if sd := math.Sqrt(n * p * (1 - p)); math.Abs(float64(hits)-n*p) > 6*sd {
		t.Errorf("value 0xAB seen %d times in %d; want %.0f ± %.0f", hits, n, n*p, 6*sd)
	}
	// Unbiased positions keep the reference stream's sample.
	if kept < n*70/100 {
		t.Errorf("only %d of %d samples kept their unfaulted value; bias must not shift the stream", kept, n)
	}
	// Deterministic for a seed, including the bias decisions.
	if again := drivertest.ReadFull(t, newSim(t, &o), at+n); !bytes.Equal(got, again) {
		t.Error("biased stream is not deterministic for a seed")
	}
}

func TestSource_Fault_ShortReads(t *testing.T) {
	o := sim.Options{Seed: 3, Faults: []sim.Fault{{Kind: sim.ShortReads, At: 10, N: 3}}}
	s := newSim(t, &o)
	if b := mustRead(t, s, 100); len(b) != 100 {
		t.Fatalf("first read returned %d; want 100 (the fault starts at sample 10)", len(b))
	}
	if b := mustRead(t, s, 100); len(b) != 3 {
		t.Fatalf("second read returned %d; want 3", len(b))
	}
	o.Faults[0].At = 0
	s = newSim(t, &o)
	for i := 0; i < 5; i++ {
		if b := mustRead(t, s, 100); len(b) != 3 {
			t.Fatalf("read %d returned %d bytes; want 3", i, len(b))
		}
	}
	if !bytes.Equal(drivertest.ReadFull(t, s, 100), reference(t, o, 115)[15:]) {
		t.Error("short reads changed the stream")
	}
}

func TestSource_Fault_ReadError(t *testing.T) {
	s := newSim(t, &sim.Options{Seed: 4, Faults: []sim.Fault{{Kind: sim.ReadError, At: 20, N: 3}}})
	var got []string
	for i := 0; i < 9; i++ {
		n, err := s.Read(bg, make([]byte, 10))
		switch {
		case err == nil:
			got = append(got, "ok")
		case errors.Is(err, sim.ErrInjected) && n == 0:
			got = append(got, "err")
		default:
			t.Fatalf("Read = %d, %v", n, err)
		}
	}
	// Reads 1-2 deliver samples 0..19; from sample 20 every third read fails.
	want := "ok ok ok ok err ok ok err ok"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("reads: %s; want %s", g, want)
	}
	if s.Samples() != 70 {
		t.Errorf("Samples() = %d; want 70 (failed reads deliver nothing)", s.Samples())
	}
}

func TestSource_Fault_Disconnect(t *testing.T) {
	clk := drivertest.NewFakeClock(time.Unix(1000, 0))
	o := sim.Options{Seed: 8, Clock: clk, Faults: []sim.Fault{{Kind: sim.Disconnect, At: 100, D: 2 * time.Second}}}
	s := newSim(t, &o)
	ref := reference(t, o, 300)
	if b := mustRead(t, s, 150); len(b) != 100 || !bytes.Equal(b, ref[:100]) {
		t.Fatalf("read across the disconnect index returned %d samples; want exactly the 100 before it", len(b))
	}
	for i := 0; i < 3; i++ {
		if n, err := s.Read(bg, make([]byte, 10)); n != 0 || !errors.Is(err, entropy.ErrDisconnected) {
			t.Fatalf("Read after disconnect = %d, %v; want ErrDisconnected", n, err)
		}
	}
	clk.Advance(time.Second)
	if err := s.Reconnect(bg); err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	if got := clk.Now().Sub(time.Unix(1000, 0)); got != 2*time.Second {
		t.Errorf("Reconnect returned at +%v; want +2s (the device's return)", got)
	}
	if !bytes.Equal(drivertest.ReadFull(t, s, 200), ref[100:]) {
		t.Error("after reconnect the stream does not continue at sample 100")
	}
	// The fault fires once.
	drivertest.ReadFull(t, s, 1000)
}

func TestSource_Reconnect_Replug(t *testing.T) {
	s := newSim(t, &sim.Options{Seed: 8})
	if err := s.Reconnect(bg); err != nil {
		t.Fatalf("Reconnect while connected: %v", err)
	}
	s.Unplug()
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := s.Reconnect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconnect(cancelled) while unplugged = %v; want context.Canceled", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Reconnect(bg) }()
	s.Replug()
	if err := <-done; err != nil {
		t.Fatalf("Reconnect after Replug: %v", err)
	}
	drivertest.ReadFull(t, s, 10)
	// Replug alone does not revive the handle.
	s.Unplug()
	s.Replug()
	if _, err := s.Read(bg, make([]byte, 1)); !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("Read after Replug without Reconnect = %v; want ErrDisconnected", err)
	}
	s.Close()
	if err := s.Reconnect(bg); !errors.Is(err, entropy.ErrClosed) {
		t.Errorf("Reconnect after Close = %v; want ErrClosed", err)
	}
}

func TestSource_Fault_Delay(t *testing.T) {
	clk := drivertest.NewFakeClock(time.Unix(0, 0))
	s := newSim(t, &sim.Options{Seed: 1, Clock: clk, Faults: []sim.Fault{{Kind: sim.Delay, D: 5 * time.Millisecond}}})
	for i := 0; i < 4; i++ {
		mustRead(t, s, 10)
	}
	if got := clk.Sleeps(); len(got) != 4 || clk.Slept() != 20*time.Millisecond {
		t.Errorf("sleeps %v; want 4 × 5ms", got)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.Read(ctx, make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Read(cancelled) = %v", err)
	}
	// Injected at run time, from a sample index.
	s2 := newSim(t, &sim.Options{Seed: 1, Clock: clk})
	if err := s2.Inject(sim.Fault{Kind: sim.Delay, At: 20, D: time.Second}); err != nil {
		t.Fatal(err)
	}
	before := clk.Slept()
	mustRead(t, s2, 20)
	mustRead(t, s2, 20)
	if d := clk.Slept() - before; d != time.Second {
		t.Errorf("slept %v; want 1s (one read at or after sample 20)", d)
	}
}

func TestSource_Fault_Hang(t *testing.T) {
	s := newSim(t, &sim.Options{Seed: 2, Faults: []sim.Fault{{Kind: sim.Hang, At: 50}}})
	if b := mustRead(t, s, 80); len(b) != 50 {
		t.Fatalf("read across the hang index returned %d; want 50", len(b))
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(bg, make([]byte, 10))
		done <- err
	}()
	s.Clear(sim.Hang)
	if err := <-done; err != nil {
		t.Fatalf("Read after Clear(Hang) = %v", err)
	}
	// A runtime Hang, released by ctx.
	blocked := s.Hang()
	ctx, cancel := context.WithCancel(bg)
	go func() {
		_, err := s.Read(ctx, make([]byte, 10))
		done <- err
	}()
	<-blocked
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("hung Read after cancel = %v; want context.Canceled", err)
	}
}

func TestSource_Inject_Invalid(t *testing.T) {
	s := newSim(t, &sim.Options{SampleBits: 1})
	err := s.Inject(sim.Fault{Kind: sim.Stuck, Value: 2})
	if !errors.Is(err, sim.ErrInvalidOptions) || !strings.Contains(err.Error(), "Fault.Value") {
		t.Errorf("Inject(stuck 2 on 1-bit) = %v", err)
	}
}

func TestSource_Read_RateLimit(t *testing.T) {
	clk := drivertest.NewFakeClock(time.Unix(0, 0))
	// 1000 B/s: the bucket holds 10 ms = 10 samples and starts full.
	s := newSim(t, &sim.Options{Seed: 1, Rate: 1000, Clock: clk})
	if got := s.Info().NominalRate; got != 1000 {
		t.Errorf("NominalRate = %v", got)
	}
	if b := mustRead(t, s, 100); len(b) != 10 || len(clk.Sleeps()) != 0 {
		t.Fatalf("first read = %d bytes after sleeps %v; want the 10-sample burst at once", len(b), clk.Sleeps())
	}
	drivertest.ReadFull(t, s, 1990)
	// 1990 samples beyond the burst at 1000/s take 1.99 s of clock.
	if got := clk.Slept(); (got - 1990*time.Millisecond).Abs() > time.Microsecond {
		t.Errorf("slept %v for 1990 samples at 1000/s; want 1.99s", got)
	}
	// Idle time refills at most one burst.
	clk.Advance(time.Hour)
	n0 := len(clk.Sleeps())
	if b := mustRead(t, s, 100); len(b) != 10 || len(clk.Sleeps()) != n0 {
		t.Errorf("after idle: read %d bytes, %d sleeps; want 10 bytes, none", len(b), len(clk.Sleeps())-n0)
	}
	// The wait honours ctx.
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.Read(ctx, make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Errorf("rate-limited Read(cancelled) = %v", err)
	}
}

// TestSource_Read_RateLimit_Wall checks the bucket against the system clock
// with a rate high enough to finish at once.
func TestSource_Read_RateLimit_Wall(t *testing.T) {
	s := newSim(t, &sim.Options{Rate: 1e7})
	drivertest.ReadFull(t, s, 200000)
}

func TestSource_Close(t *testing.T) {
	s := newSim(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	if _, err := s.Read(bg, make([]byte, 1)); !errors.Is(err, entropy.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if _, err := s.Read(bg, nil); !errors.Is(err, entropy.ErrClosed) {
		t.Errorf("Read(nil) after Close = %v", err)
	}
}

// TestSource_Concurrent exercises Inject/Clear/Unplug/Replug/Close against
// Reads under the race detector.
func TestSource_Concurrent(t *testing.T) {
	s := newSim(t, &sim.Options{SampleBits: 6})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	done := make(chan struct{})
	for g := 0; g < 2; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			p := make([]byte, 256)
			for ctx.Err() == nil {
				if _, err := s.Read(ctx, p); errors.Is(err, entropy.ErrClosed) {
					return
				} else if errors.Is(err, entropy.ErrDisconnected) {
					_ = s.Reconnect(ctx)
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		_ = s.Inject(sim.Fault{Kind: sim.Stuck, At: s.Samples() + 10, Value: 3})
		_ = s.Inject(sim.Fault{Kind: sim.ShortReads, N: 1 + i%5})
		s.Clear(sim.Stuck)
		if i%10 == 0 {
			s.Unplug()
			s.Replug()
		}
		_ = s.Info()
	}
	s.Close()
	<-done
	<-done
}

func TestSystemClock(t *testing.T) {
	var c sim.SystemClock
	if err := c.Sleep(bg, time.Nanosecond); err != nil {
		t.Errorf("Sleep(1ns) = %v", err)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(cancelled, 1h) = %v", err)
	}
	if err := c.Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(cancelled, 0) = %v", err)
	}
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Errorf("Now is %v away from time.Now", d)
	}
}
