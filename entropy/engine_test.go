package entropy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/condition"
	"github.com/qrngd/qrngd/entropy/drbg"
	"github.com/qrngd/qrngd/entropy/entropytest"
	"github.com/qrngd/qrngd/entropy/health"
)

const W = 512 // APT window of the 8-bit fakes

// withRun returns w with samples at..at+n-1 set to one value and different
// neighbours: an RCT run of exactly n.
func withRun(w []byte, at, n int) []byte {
	w = bytes.Clone(w)
	for i := at; i < at+n; i++ {
		w[i] = 0x5a
	}
	w[at-1], w[at+n] = 0x11, 0x22
	return w
}

// checkFixture fails the test if the naive health tests disagree with the
// alarms a test's stream was built to have (wantAlarm: window → outcome).
func checkFixture(t *testing.T, stream []byte, c health.Cutoffs, wantAlarm map[int]health.Outcome) []naiveResult {
	t.Helper()
	res := naiveWindows(stream, c, 8)
	for i, r := range res {
		if r.worst() != wantAlarm[i] {
			t.Fatalf("fixture: window %d has outcome %v (RCT %v@%d APT %v@%d), want %v", i, r.worst(), r.rct, r.rctIdx, r.apt, r.aptIdx, wantAlarm[i])
		}
	}
	return res
}

// blockBytes is the conditioned bytes of the given windows: 32 per 40
// samples within each run of consecutive windows (an alarm between runs
// drops the partial block).
func blockBytes(windows []uint64) uint64 {
	var total uint64
	run := 0
	for i, w := range windows {
		run++
		if i+1 == len(windows) || windows[i+1] != w+W {
			total += uint64(run*W/40) * 32
			run = 0
		}
	}
	return total
}

func windowIndexes(from, to int) []uint64 { // windows [from, to)
	var idx []uint64
	for i := from; i < to; i++ {
		idx = append(idx, uint64(i*W))
	}
	return idx
}

func TestEngine_Startup_FailureNeverFeedsPool(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{PoolCapacity: 4096})
	src := entropytest.NewConstant("c", 0x42)
	te.add(t, src, nil)
	te.start(t)
	te.rec.waitCount(t, "c", "quarantined", 1)

	st := te.sourceStatus(t, "c")
	c := cutoffsFor(t, 8, 20)
	// A constant stream reaches the permanent RCT cutoff (6) at sample 5.
	if want := fmt.Sprintf("at sample %d", c.RCTPermanent-1); !strings.Contains(st.LastError, want) {
		t.Errorf("LastError %q does not contain %q", st.LastError, want)
	}
	if st.RCT.Permanent != 1 || st.APT.Permanent != 1 || st.Quarantines != 1 || st.DiscardedSamples != W {
		t.Errorf("status RCT %+v APT %+v quarantines %d discarded %d; want 1 permanent each, 1 quarantine, %d discarded", st.RCT, st.APT, st.Quarantines, st.DiscardedSamples, W)
	}
	if st.Bytes != 0 || te.ConditionedSamples("c") != 0 || te.QueueLen("c") != 0 || len(te.rec.conditioned("c")) != 0 {
		t.Fatalf("a source failing start-up fed the pool: bytes %d, conditioned %d samples, queue %d", st.Bytes, te.ConditionedSamples("c"), te.QueueLen("c"))
	}
	p := bytes.Repeat([]byte{0xff}, 64)
	for _, mode := range []entropy.Mode{entropy.ModeFull, entropy.ModeDRBG, entropy.ModePR} {
		if _, err := te.Read(t.Context(), p, mode); !errors.Is(err, entropy.ErrInsufficientEntropy) {
			t.Errorf("Read(%s) error = %v, want ErrInsufficientEntropy", mode, err)
		}
		if !bytes.Equal(p, make([]byte, 64)) {
			t.Errorf("Read(%s) left data in p on error", mode)
		}
	}
	if ps := te.Status().Pool; ps.Ready || ps.HealthySources != 0 {
		t.Errorf("pool status %+v, want not ready, 0 healthy", ps)
	}
}

func TestEngine_RepeatedQuarantines_DisableAndReset(t *testing.T) {
	te := newTestEngine(t, nil)
	te.add(t, entropytest.NewConstant("c", 1), nil)
	te.start(t)
	te.rec.waitCount(t, "c", "quarantined", 1)
	if err := te.ResetSource("nope"); !errors.Is(err, entropy.ErrUnknownSource) {
		t.Errorf("ResetSource(unknown) error = %v, want ErrUnknownSource", err)
	}
	for i := 2; i <= entropy.DefaultMaxQuarantines; i++ {
		te.clk.waitTimers(t, 1)
		te.clk.Advance(entropy.DefaultQuarantineFor - time.Nanosecond)
		if got := te.sourceStatus(t, "c").State; got != entropy.StateQuarantined {
			t.Fatalf("state %s before the quarantine ended", got)
		}
		te.clk.Advance(time.Nanosecond)
		if i < entropy.DefaultMaxQuarantines {
			te.rec.waitCount(t, "c", "quarantined", i)
		}
	}
	te.rec.waitCount(t, "c", "disabled", 1)
	st := te.sourceStatus(t, "c")
	if st.State != entropy.StateDisabled || st.Quarantines != 3 || !strings.Contains(st.LastError, "disabled until reset") {
		t.Fatalf("status %s, %d quarantines, %q; want disabled after 3", st.State, st.Quarantines, st.LastError)
	}
	wantKinds := []string{"quarantined", "startup", "quarantined", "startup", "disabled"}
	if got := te.rec.kinds("c"); !slices.Equal(got, wantKinds) {
		t.Fatalf("events %v, want %v", got, wantKinds)
	}
	// Disabled stays disabled however long we wait.
	te.clk.Advance(24 * time.Hour)
	if got := te.sourceStatus(t, "c").State; got != entropy.StateDisabled {
		t.Fatalf("state %s after a day, want disabled", got)
	}
	if err := te.ResetSource("c"); err != nil {
		t.Fatal(err)
	}
	// Back through start-up; the history is forgotten, so the next failure
	// quarantines instead of disabling.
	te.rec.waitCount(t, "c", "quarantined", 3)
	if got := te.rec.kinds("c")[5:]; !slices.Equal(got, []string{"startup", "quarantined"}) {
		t.Fatalf("events after reset %v, want [startup quarantined]", got)
	}
}

func TestEngine_ResetSource_OnlyFailedSources(t *testing.T) {
	te := newTestEngine(t, nil)
	src := entropytest.NewUniform("u", 1)
	src.Limit = 4 * W
	te.add(t, src, nil)
	te.start(t)
	te.rec.waitCount(t, "u", "healthy", 1)
	if err := te.ResetSource("u"); !errors.Is(err, entropy.ErrInvalidRequest) {
		t.Fatalf("ResetSource(healthy) error = %v, want ErrInvalidRequest", err)
	}
}

func TestEngine_Intermittent_ExactWindows(t *testing.T) {
	const seed = 3
	base := entropytest.NewUniform("x", seed).Replay(40 * W)
	c := cutoffsFor(t, 8, 20)
	tests := []struct {
		name     string
		alarmAt  int // window index of the injected run of RCT-cutoff length
		nWindows int
		want     []uint64 // windows conditioned
	}{
		// Start-up: windows 0,1; the alarm in window 1 restarts it: 2,3; use 4…
		{"during start-up", 1, 12, windowIndexes(4, 12)},
		// Start-up 0,1; use 2..4; alarm 5; re-test 6,7; use 8…
		{"mid-stream", 5, 14, append(windowIndexes(2, 5), windowIndexes(8, 14)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := withRun(base[tt.alarmAt*W:(tt.alarmAt+1)*W], 100, c.RCT)
			stream := slices.Concat(base[:tt.alarmAt*W], bad, base[tt.alarmAt*W:(tt.nWindows-1)*W])
			checkFixture(t, stream, c, map[int]health.Outcome{tt.alarmAt: health.Intermittent})

			te := newTestEngine(t, &entropy.Options{PoolCapacity: 64 << 10})
			src := entropytest.NewScripted("s", seed,
				entropytest.Step{N: tt.alarmAt * W}, entropytest.Step{Data: bad})
			src.Limit = int64(tt.nWindows * W)
			src.MaxRead = 333 // windows assembled from short reads
			te.add(t, src, nil)
			te.start(t)
			te.rec.waitFor(t, "conditioned windows", func() bool { return len(te.rec.conditioned("s")) >= len(tt.want) })
			spinUntil(t, "source at its limit", src.AtLimit)
			if got := te.rec.conditioned("s"); !slices.Equal(got, tt.want) {
				t.Fatalf("conditioned windows at %v, want %v", got, tt.want)
			}
			if got := te.ConditionedSamples("s"); got != uint64(len(tt.want)*W) {
				t.Fatalf("conditioner absorbed %d samples, want %d", got, len(tt.want)*W)
			}
			// The state never left healthy once reached: an intermittent
			// alarm withholds output without a state change.
			if got := te.rec.kinds("s"); !slices.Equal(got, []string{"intermittent", "healthy"}) && !slices.Equal(got, []string{"healthy", "intermittent"}) {
				t.Fatalf("events %v, want one healthy and one intermittent", got)
			}
			st := te.sourceStatus(t, "s")
			if st.State != entropy.StateHealthy || st.RCT.Intermittent != 1 || st.DiscardedSamples != W || st.Quarantines != 0 {
				t.Fatalf("status %s RCT %+v discarded %d quarantines %d", st.State, st.RCT, st.DiscardedSamples, st.Quarantines)
			}
			// Conditioned bytes: one 32-byte block per 40 samples, the
			// partial block dropped at the alarm.
			if want := blockBytes(tt.want); st.Bytes != want {
				t.Fatalf("Bytes = %d, want %d", st.Bytes, want)
			}
		})
	}
}

func TestEngine_IntermittentBurst_Quarantines(t *testing.T) {
	const seed = 5
	c := cutoffsFor(t, 8, 20)
	base := entropytest.NewUniform("x", seed).Replay(8 * W)
	bad := func(i int) []byte { return withRun(base[i*W:(i+1)*W], 100, c.RCT) }
	// windows: 0,1 start-up; 2 alarm; 3,4 start-up; 5 alarm; 6 alarm → 3rd within the window.
	stream := slices.Concat(base[:2*W], bad(2), base[3*W:5*W], bad(5), bad(6), base[7*W:8*W])
	checkFixture(t, stream, c, map[int]health.Outcome{2: health.Intermittent, 5: health.Intermittent, 6: health.Intermittent})

	te := newTestEngine(t, nil)
	src := entropytest.NewScripted("s", 99, entropytest.Step{Data: stream})
	te.add(t, src, &entropy.HealthConfig{MaxIntermittent: 3})
	te.start(t)
	te.rec.waitCount(t, "s", "quarantined", 1)
	st := te.sourceStatus(t, "s")
	if want := fmt.Sprintf("3 intermittent alarms within 1m0s (limit 3); last: RCT intermittent failure at sample %d", 6*W+100+c.RCT-1); !strings.Contains(st.LastError, want) {
		t.Fatalf("LastError %q, want it to contain %q", st.LastError, want)
	}
	if st.RCT.Intermittent != 3 || st.RCT.Permanent != 0 {
		t.Fatalf("RCT counters %+v, want 3 intermittent", st.RCT)
	}
}

// firstPermanent returns the absolute index at which the naive tests first
// reach a permanent cutoff, and which test did.
func firstPermanent(t *testing.T, stream []byte, c health.Cutoffs) (uint64, string) {
	t.Helper()
	for _, r := range naiveWindows(stream, c, 8) {
		switch {
		case r.rct == health.Permanent && r.apt == health.Permanent:
			return min(r.rctIdx, r.aptIdx), "RCT+APT"
		case r.rct == health.Permanent:
			return r.rctIdx, "RCT"
		case r.apt == health.Permanent:
			return r.aptIdx, "APT"
		}
	}
	t.Fatal("fixture: no permanent failure in the stream")
	return 0, ""
}

func TestEngine_FaultySource_QuarantinedAtCutoffSample(t *testing.T) {
	tests := []struct {
		name string
		src  *entropytest.Source
	}{
		{"stuck after 5000", entropytest.NewStuckAt("f", 11, 5000, 0x33)},
		{"stuck at a window edge", entropytest.NewStuckAt("f", 12, 10*W-2, 0x77)},
		{"biased 5% zeros", entropytest.NewBiased("f", 13, 0, 0.05)},
	}
	c := cutoffsFor(t, 8, 20)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, test := firstPermanent(t, tt.src.Replay(1<<20), c)
			te := newTestEngine(t, &entropy.Options{PoolCapacity: 1 << 20})
			te.add(t, tt.src, &entropy.HealthConfig{MaxIntermittent: 1000})
			te.start(t)
			te.rec.waitCount(t, "f", "quarantined", 1)
			st := te.sourceStatus(t, "f")
			if s := fmt.Sprintf("%s permanent failure at sample %d ", test, want); !strings.HasPrefix(st.LastError, s) {
				t.Fatalf("LastError %q, want prefix %q", st.LastError, s)
			}
			wantRCT, wantAPT := uint64(0), uint64(0)
			if strings.Contains(test, "RCT") {
				wantRCT = 1
			}
			if strings.Contains(test, "APT") {
				wantAPT = 1
			}
			if st.RCT.Permanent != wantRCT || st.APT.Permanent != wantAPT {
				t.Fatalf("permanent counters RCT %d APT %d, want %d %d", st.RCT.Permanent, st.APT.Permanent, wantRCT, wantAPT)
			}
			// Nothing at or after the failing window was conditioned, and
			// the queue was flushed.
			failWin := want / W * W
			for _, idx := range te.rec.conditioned("f") {
				if idx >= failWin {
					t.Fatalf("window at %d conditioned; failure at %d", idx, want)
				}
			}
			if n := te.QueueLen("f"); n != 0 {
				t.Fatalf("%d blocks left queued after quarantine", n)
			}
			t.Logf("quarantined at sample %d by %s; %d intermittent RCT, %d intermittent APT alarms before", want, test, st.RCT.Intermittent, st.APT.Intermittent)
		})
	}
}

func TestEngine_Disconnect_ReconnectStartup(t *testing.T) {
	gone := fmt.Errorf("usb: no device: %w", entropy.ErrDisconnected)
	tests := []struct {
		name           string
		src            func() entropy.Source
		advance        []time.Duration // back-offs to step through
		wantReconnects int64
	}{
		{"reconnector", func() entropy.Source { return entropytest.NewDisconnecting("d", 1, 3000) }, nil, 1},
		{"reconnect fails once", func() entropy.Source {
			s := entropytest.NewDisconnecting("d", 1, 3000)
			s.FailReconnects = 1
			return s
		}, []time.Duration{time.Second}, 2},
		{"no reconnector: back off and read again", func() entropy.Source {
			return entropytest.NewUniform("d", 1).FailAt(3000, gone)
		}, []time.Duration{time.Second}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEngine(t, &entropy.Options{PoolCapacity: 64 << 10})
			src := tt.src()
			te.add(t, src, nil)
			te.start(t)
			te.rec.waitCount(t, "d", "disconnected", 1)
			for _, d := range tt.advance {
				te.clk.waitTimers(t, 1)
				// Waiting out the back-off: the queue was flushed.
				if st := te.sourceStatus(t, "d"); st.State != entropy.StateDisconnected || te.QueueLen("d") != 0 || !strings.Contains(st.LastError, "ErrDisconnected") && !strings.Contains(st.LastError, "disconnected") && !strings.Contains(st.LastError, "reconnect") {
					t.Fatalf("during back-off: state %s, LastError %q, queue %d", st.State, st.LastError, te.QueueLen("d"))
				}
				te.clk.Advance(d)
			}
			te.rec.waitCount(t, "d", "healthy", 2)
			want := []string{"healthy", "disconnected", "startup", "healthy"}
			if got := te.rec.kinds("d"); !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
			if rc, ok := src.(*entropytest.Reconnecting); ok && rc.Reconnects() != tt.wantReconnects {
				t.Fatalf("Reconnect called %d times, want %d", rc.Reconnects(), tt.wantReconnects)
			}
		})
	}
}

func TestEngine_ReadError_RetestsAfterBackoff(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{PoolCapacity: 64 << 10})
	src := entropytest.NewUniform("u", 2).FailAt(3000, errors.New("usb: transfer timed out"))
	src.Limit = 3000 + 8*W
	te.add(t, src, nil)
	te.start(t)
	te.rec.waitCount(t, "u", "startup", 1)
	if st := te.sourceStatus(t, "u"); !strings.Contains(st.LastError, "read: usb: transfer timed out") {
		t.Fatalf("LastError %q", st.LastError)
	}
	te.clk.waitTimers(t, 1)
	te.clk.Advance(time.Second)
	te.rec.waitCount(t, "u", "healthy", 2)
	spinUntil(t, "source at its limit", src.AtLimit)
	// Windows 0,1 start-up, 2..4 used (samples up to 2560); 440 samples
	// dropped at the error; then 8 windows of the new stream (tested
	// indexes from 2560): 2 start-up, 6 used.
	want := append(windowIndexes(2, 5), windowIndexes(7, 13)...)
	if got := te.rec.conditioned("u"); !slices.Equal(got, want) {
		t.Fatalf("conditioned windows %v, want %v", got, want)
	}
}

// expectedBlocks conditions the windows [from, to) of a replayed stream as
// the engine must.
func expectedBlocks(t *testing.T, stream []byte, from, to int) [][condition.OutputBytes]byte {
	t.Helper()
	acc, err := condition.NewAccumulator(8, 8)
	if err != nil {
		t.Fatal(err)
	}
	var out [][condition.OutputBytes]byte
	acc.Absorb(stream[from*W:to*W], func(b *[condition.OutputBytes]byte) { out = append(out, *b) })
	return out
}

func mixed(parts ...any) [32]byte { // name string, blocks [][32]byte pairs
	buf := []byte("qrngd entropy pool mix v1")
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(parts)/2))
	for i := 0; i < len(parts); i += 2 {
		name := parts[i].(string)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(name)))
		buf = append(buf, name...)
		buf = append(buf, parts[i+1].([]byte)...)
	}
	return sha256.Sum256(buf)
}

func TestPool_Mixing(t *testing.T) {
	aBlocks := expectedBlocks(t, entropytest.NewUniform("a", 21).Replay(4*W), 2, 4)
	bBlocks := expectedBlocks(t, entropytest.NewUniform("b", 22).Replay(4*W), 2, 4)
	osBytes := bytes.Repeat([]byte{0xa5}, 64)

	tests := []struct {
		name    string
		opts    entropy.Options
		srcs    []string
		want    [32]byte
		sources []string
		degr    bool
	}{
		{"one source passes blocks through", entropy.Options{}, []string{"a"}, aBlocks[0], []string{"a"}, false},
		{"two sources are hashed together", entropy.Options{}, []string{"a", "b"},
			mixed("a", slices.Concat(aBlocks[0][:], aBlocks[1][:]), "b", slices.Concat(bBlocks[0][:], bBlocks[1][:])), []string{"a", "b"}, false},
		{"policy os mixes the OS RNG in below MinHealthySources",
			entropy.Options{Policy: entropy.PolicyOS, MinHealthySources: 2, OSRNG: bytes.NewReader(osBytes)},
			[]string{"a"}, mixed("a", slices.Concat(aBlocks[0][:], aBlocks[1][:]), "os", osBytes), []string{"a", "os"}, true},
	}
	seeds := map[string]uint64{"a": 21, "b": 22}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEngine(t, &tt.opts)
			for _, name := range tt.srcs {
				s := entropytest.NewUniform(name, seeds[name])
				s.Limit = 4 * W
				te.add(t, s, nil)
			}
			te.start(t)
			for _, name := range tt.srcs {
				spinUntil(t, name+" queued its blocks", func() bool { return te.QueueLen(name) == len(aBlocks) })
			}
			var got [32]byte
			prov, err := te.Read(t.Context(), got[:], entropy.ModeFull)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("pool block %x, want %x", got, tt.want)
			}
			if !slices.Equal(prov.Sources, tt.sources) || prov.Degraded != tt.degr || prov.Mode != entropy.ModeFull {
				t.Fatalf("provenance %+v, want sources %v degraded %v", prov, tt.sources, tt.degr)
			}
			if ps := te.Status().Pool; ps.Degraded != tt.degr || !ps.Ready {
				t.Fatalf("pool status %+v", ps)
			}
		})
	}
}

func TestPool_OneSourceFailing_OthersServe(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{PoolCapacity: 64 << 10})
	te.add(t, entropytest.NewUniform("good", 1), nil)
	te.add(t, entropytest.NewConstant("bad", 0), nil)
	te.start(t)
	te.rec.waitCount(t, "bad", "quarantined", 1)
	te.rec.waitCount(t, "good", "healthy", 1)
	p := make([]byte, 1000)
	for _, mode := range []entropy.Mode{entropy.ModeFull, entropy.ModeDRBG, entropy.ModePR} {
		prov, err := te.Read(t.Context(), p, mode)
		if err != nil {
			t.Fatalf("Read(%s): %v", mode, err)
		}
		if !slices.Equal(prov.Sources, []string{"good"}) || prov.Degraded {
			t.Fatalf("Read(%s) provenance %+v, want only good", mode, prov)
		}
	}
	if ps := te.Status().Pool; !ps.Ready || ps.HealthySources != 1 {
		t.Fatalf("pool status %+v", ps)
	}
}

func TestPool_TooFewHealthySources(t *testing.T) {
	for _, policy := range []entropy.Policy{entropy.PolicyFailClosed, entropy.PolicyOS} {
		t.Run(string(policy), func(t *testing.T) {
			te := newTestEngine(t, &entropy.Options{Policy: policy, MinHealthySources: 2, PoolCapacity: 64 << 10})
			te.add(t, entropytest.NewUniform("good", 1), nil)
			te.add(t, entropytest.NewConstant("bad", 0), nil)
			te.start(t)
			te.rec.waitCount(t, "bad", "quarantined", 1)
			te.rec.waitCount(t, "good", "healthy", 1)
			ps := te.Status().Pool
			for _, mode := range []entropy.Mode{entropy.ModeFull, entropy.ModeDRBG, entropy.ModePR} {
				p := bytes.Repeat([]byte{1}, 100)
				prov, err := te.Read(t.Context(), p, mode)
				if policy == entropy.PolicyFailClosed {
					if !errors.Is(err, entropy.ErrInsufficientEntropy) || !bytes.Equal(p, make([]byte, 100)) {
						t.Fatalf("Read(%s) error %v (p zeroed: %v), want ErrInsufficientEntropy", mode, err, bytes.Equal(p, make([]byte, 100)))
					}
					continue
				}
				if err != nil || !prov.Degraded {
					t.Fatalf("Read(%s) = %+v, %v; want degraded output", mode, prov, err)
				}
			}
			if policy == entropy.PolicyFailClosed && (ps.Ready || ps.Degraded) {
				t.Fatalf("fail-closed pool status %+v, want not ready, not degraded", ps)
			}
			if policy == entropy.PolicyOS && (!ps.Ready || !ps.Degraded) {
				t.Fatalf("os pool status %+v, want ready and degraded", ps)
			}
		})
	}
}

func TestPool_PolicyOS_NoSources(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{Policy: entropy.PolicyOS})
	p := make([]byte, 100)
	for _, mode := range []entropy.Mode{entropy.ModeFull, entropy.ModeDRBG} {
		prov, err := te.Read(t.Context(), p, mode)
		if err != nil || !prov.Degraded || !slices.Equal(prov.Sources, []string{"os"}) {
			t.Fatalf("Read(%s) = %+v, %v; want degraded output from os", mode, prov, err)
		}
	}
}

func TestPool_BackPressure_StopsReading(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{PoolCapacity: 4096}) // 128 blocks
	src := entropytest.NewUniform("u", 1)
	src.MaxRead = W // one window per Read
	te.add(t, src, nil)
	te.start(t)
	te.rec.waitCount(t, "u", "queue-full", 1)
	spinUntil(t, "runner blocked on its queue", func() bool { return te.QueueFull("u") })
	reads, served := src.Reads(), src.Served()
	for range 10000 {
		runtime.Gosched()
	}
	if src.Reads() != reads || src.Served() != served || !te.QueueFull("u") {
		t.Fatalf("source read while the queue was full: reads %d → %d, served %d → %d", reads, src.Reads(), served, src.Served())
	}
	// Bounded: what was read is start-up, the queued blocks and the block
	// waiting to be pushed, rounded up to a window.
	if limit := int64(2*W + 128*40 + 40 + W); served > limit {
		t.Fatalf("served %d samples with a full 128-block queue, want ≤ %d", served, limit)
	}
	if lvl := te.Status().Pool.LevelBytes; lvl != 4096 {
		t.Fatalf("pool level %d, want 4096", lvl)
	}
	p := make([]byte, 1024)
	if _, err := te.Read(t.Context(), p, entropy.ModeFull); err != nil {
		t.Fatal(err)
	}
	te.rec.waitCount(t, "u", "queue-full", 2)
	if src.Reads() <= reads {
		t.Fatalf("source not read after the pool was drained")
	}
}

func TestEngine_ReadFull_TimesOut(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{FullWait: 3 * time.Second})
	src := entropytest.NewUniform("u", 1)
	src.Limit = 4 * W // 25 blocks
	te.add(t, src, nil)
	te.start(t)
	spinUntil(t, "blocks queued", func() bool { return te.QueueLen("u") == 25 })
	p := bytes.Repeat([]byte{1}, 64*32)
	errc := make(chan error, 1)
	go func() {
		_, err := te.Read(t.Context(), p, entropy.ModeFull)
		errc <- err
	}()
	spinUntil(t, "Read waiting for the pool", func() bool { return te.PoolWaiters() == 1 })
	te.clk.Advance(3*time.Second - time.Nanosecond)
	select {
	case err := <-errc:
		t.Fatalf("Read returned %v before FullWait", err)
	default:
	}
	te.clk.Advance(time.Nanosecond)
	err := <-errc
	if !errors.Is(err, entropy.ErrInsufficientEntropy) || !strings.Contains(err.Error(), "delivered 800 of 2048 bytes within 3s") {
		t.Fatalf("Read error = %v", err)
	}
	if !bytes.Equal(p, make([]byte, len(p))) {
		t.Fatal("p not zeroed after a failed full-entropy read")
	}
}

func TestEngine_ReadFull_CancelledContext(t *testing.T) {
	te := newTestEngine(t, nil)
	src := entropytest.NewUniform("u", 1)
	src.Limit = 4 * W
	te.add(t, src, nil)
	te.start(t)
	te.rec.waitCount(t, "u", "healthy", 1)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := te.Read(ctx, make([]byte, 4096), entropy.ModeFull)
		errc <- err
	}()
	spinUntil(t, "Read waiting for the pool", func() bool { return te.PoolWaiters() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read error = %v, want context.Canceled", err)
	}
}

func startedSingleShard(t *testing.T, opts *entropy.Options, limit int64) (*testEngine, *entropytest.Source) {
	t.Helper()
	te := newTestEngine(t, opts)
	te.SetShards(1)
	src := entropytest.NewUniform("u", 1)
	src.Limit = limit
	te.add(t, src, nil)
	te.start(t)
	spinUntil(t, "source at its limit", src.AtLimit)
	return te, src
}

func TestEngine_ReadPR_ReseedsBeforeEveryGenerate(t *testing.T) {
	te, _ := startedSingleShard(t, &entropy.Options{PoolCapacity: 1 << 20}, 60*W) // 742 blocks
	level := func() int { return te.Status().Pool.LevelBytes }
	if _, err := te.Read(t.Context(), make([]byte, 10), entropy.ModeDRBG); err != nil {
		t.Fatal(err)
	}
	l0, r0 := level(), te.Status().Pool.Reseeds
	tests := []struct {
		n       int
		reseeds uint64
	}{{1, 1}, {100, 1}, {drbg.MaxRequest, 1}, {drbg.MaxRequest + 1, 2}, {200 << 10, 4}, {1 << 20, 16}}
	var total uint64
	for _, tt := range tests {
		p := make([]byte, tt.n)
		prov, err := te.Read(t.Context(), p, entropy.ModePR)
		if err != nil {
			t.Fatal(err)
		}
		total += tt.reseeds
		if got := te.Status().Pool.Reseeds - r0; got != total {
			t.Fatalf("after PR read of %d bytes: %d reseeds, want %d", tt.n, got, total)
		}
		if !slices.Equal(prov.Sources, []string{"u"}) {
			t.Fatalf("provenance %+v", prov)
		}
	}
	if used := l0 - level(); used != int(total)*32 {
		t.Fatalf("PR reads took %d pool bytes, want %d (one block per reseed)", used, total*32)
	}
}

func TestEngine_ReadDRBG_ReseedInterval(t *testing.T) {
	te, _ := startedSingleShard(t, &entropy.Options{ReseedInterval: time.Minute}, 20*W)
	p := make([]byte, 100)
	read := func() {
		t.Helper()
		if _, err := te.Read(t.Context(), p, entropy.ModeDRBG); err != nil {
			t.Fatal(err)
		}
	}
	read() // instantiation: not a reseed
	lvl := te.Status().Pool.LevelBytes
	te.clk.Advance(time.Minute - time.Nanosecond)
	read()
	if r := te.Status().Pool.Reseeds; r != 0 {
		t.Fatalf("%d reseeds before the interval", r)
	}
	te.clk.Advance(time.Nanosecond)
	read()
	read()
	if r := te.Status().Pool.Reseeds; r != 1 {
		t.Fatalf("%d reseeds after the interval, want 1", r)
	}
	if used := lvl - te.Status().Pool.LevelBytes; used != 32 {
		t.Fatalf("reseed took %d pool bytes, want 32", used)
	}
	if err := te.Reseed(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := te.Status().Pool.Reseeds; r != 2 {
		t.Fatalf("%d reseeds after Reseed, want 2", r)
	}
}

func TestEngine_ReadDRBG_LargeRequestsSplit(t *testing.T) {
	te, _ := startedSingleShard(t, nil, 20*W)
	a, b := make([]byte, 3<<20), make([]byte, 3<<20)
	for _, p := range [][]byte{a, b} {
		prov, err := te.Read(t.Context(), p, entropy.ModeDRBG)
		if err != nil || prov.Mode != entropy.ModeDRBG || !slices.Equal(prov.Sources, []string{"u"}) {
			t.Fatalf("Read = %+v, %v", prov, err)
		}
	}
	if bytes.Equal(a, b) || bytes.Equal(a[:drbg.MaxRequest], a[drbg.MaxRequest:2*drbg.MaxRequest]) {
		t.Fatal("DRBG output repeats")
	}
	// Invalid requests zero p too, as every error does: a caller reusing
	// a buffer must not pass on what it held.
	big := bytes.Repeat([]byte{1}, entropy.MaxReadBytes+1)
	if _, err := te.Read(t.Context(), big, entropy.ModeDRBG); !errors.Is(err, entropy.ErrInvalidRequest) || bytes.IndexByte(big, 1) >= 0 {
		t.Fatalf("oversized Read error = %v (p zeroed: %v), want ErrInvalidRequest", err, bytes.IndexByte(big, 1) < 0)
	}
	small := bytes.Repeat([]byte{1}, 16)
	if _, err := te.Read(t.Context(), small, "fast"); !errors.Is(err, entropy.ErrInvalidRequest) || !bytes.Equal(small, make([]byte, 16)) {
		t.Fatalf("unknown mode error = %v (p %x), want ErrInvalidRequest and p zeroed", err, small)
	}
}

func TestEngine_Close_Zeroizes(t *testing.T) {
	te, src := startedSingleShard(t, nil, 20*W)
	if err := te.Reseed(t.Context()); err != nil {
		t.Fatal(err)
	}
	ds := te.DRBGs()
	if len(ds) != 1 || ds[0].ReseedCounter() == 0 {
		t.Fatalf("DRBGs %v before Close", ds)
	}
	if err := te.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.ReseedCounter() != 0 || !errors.Is(d.Generate(make([]byte, 16), nil), drbg.ErrClosed) {
			t.Fatal("DRBG still usable after Close")
		}
	}
	if len(te.DRBGs()) != 0 || te.Status().Pool.LevelBytes != 0 || te.QueueLen("u") != 0 || !src.Closed() {
		t.Fatal("Close left DRBGs, queued blocks or an open source")
	}
	if _, err := te.Read(t.Context(), make([]byte, 8), entropy.ModeDRBG); !errors.Is(err, entropy.ErrClosed) {
		t.Fatalf("Read after Close error = %v, want ErrClosed", err)
	}
	if err := te.Run(t.Context()); !errors.Is(err, entropy.ErrClosed) {
		t.Fatalf("Run after Close error = %v, want ErrClosed", err)
	}
	if err := te.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestEngine_Status(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{PoolCapacity: 8192, MinHealthySources: 1})
	src := entropytest.NewUniform("u", 1)
	src.Limit = 10 * W
	src.SourceInfo.NominalRate = 30e6
	te.add(t, src, &entropy.HealthConfig{AlphaLog2: 30})
	start := te.clk.Now()
	te.clk.Advance(time.Hour)
	te.start(t)
	te.rec.waitCount(t, "u", "healthy", 1)
	spinUntil(t, "source at its limit", src.AtLimit)
	st := te.sourceStatus(t, "u")
	c := cutoffsFor(t, 8, 30)
	ht, _ := health.New(health.Config{H: 8, SampleBits: 8, AlphaLog2: 30})
	want := entropy.SourceStatus{
		SourceInfo: src.SourceInfo, State: entropy.StateHealthy,
		Samples: 10 * W, Bytes: 8 * W / 40 * 32,
		RCTCutoff: c.RCT, APTCutoff: c.APT, APTWindow: W, AlphaLog2: 30,
		FalseAlarmEvery: ht.ExpectedFalseAlarmInterval(30e6).Seconds(),
		Since:           start.Add(time.Hour),
	}
	if st != want {
		t.Fatalf("status\n%+v\nwant\n%+v", st, want)
	}
	if st.FalseAlarmEvery < 30 || st.FalseAlarmEvery > 3000 {
		t.Fatalf("expected false-alarm interval %v s at 30 MB/s and α=2^-30: implausible", st.FalseAlarmEvery)
	}
	ps := te.Status().Pool
	wantPool := entropy.PoolStatus{Policy: entropy.PolicyFailClosed, Ready: true, LevelBytes: 8 * W / 40 * 32,
		CapacityBytes: 8192, HealthySources: 1, MinSources: 1}
	if ps != wantPool {
		t.Fatalf("pool status %+v, want %+v", ps, wantPool)
	}
}

func TestNew_Options(t *testing.T) {
	tests := []struct {
		name  string
		opts  entropy.Options
		field string // "" means valid
	}{
		{"zero", entropy.Options{}, ""},
		{"os without reader uses crypto/rand", entropy.Options{Policy: entropy.PolicyOS}, ""},
		{"bad policy", entropy.Options{Policy: "open"}, "Policy"},
		{"negative min sources", entropy.Options{MinHealthySources: -1}, "MinHealthySources"},
		{"tiny pool", entropy.Options{PoolCapacity: 10}, "PoolCapacity"},
		{"negative reseed", entropy.Options{ReseedInterval: -time.Second}, "ReseedInterval"},
		{"huge full wait", entropy.Options{FullWait: time.Hour}, "FullWait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := entropy.New(&tt.opts)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				e.Close()
				return
			}
			if !errors.Is(err, entropy.ErrInvalidConfig) || !strings.Contains(err.Error(), "Options."+tt.field) {
				t.Fatalf("error %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
		})
	}
}

func TestEngine_AddSource_Invalid(t *testing.T) {
	bad := entropytest.NewUniform("bad", 1)
	bad.SourceInfo.MinEntropy = 9
	tests := []struct {
		name string
		src  entropy.Source
		hc   *entropy.HealthConfig
		want string
	}{
		{"nil", nil, nil, "nil source"},
		{"invalid info", bad, nil, "credited min-entropy 9"},
		{"alpha", entropytest.NewUniform("x", 1), &entropy.HealthConfig{AlphaLog2: 10}, "AlphaLog2"},
		{"max intermittent", entropytest.NewUniform("x", 1), &entropy.HealthConfig{MaxIntermittent: -1}, "HealthConfig.MaxIntermittent"},
		{"quarantine", entropytest.NewUniform("x", 1), &entropy.HealthConfig{QuarantineFor: -time.Second}, "HealthConfig.QuarantineFor"},
		{"duplicate", entropytest.NewUniform("dup", 1), nil, `duplicate source name "dup"`},
	}
	te := newTestEngine(t, nil)
	te.add(t, entropytest.NewUniform("dup", 2), nil)
	for _, tt := range tests {
		err := te.AddSource(tt.src, tt.hc)
		if !errors.Is(err, entropy.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalidConfig mentioning %q", tt.name, err, tt.want)
		}
	}
	te.start(t)
	te.rec.waitCount(t, "dup", "healthy", 1)
	if err := te.AddSource(entropytest.NewUniform("late", 1), nil); !errors.Is(err, entropy.ErrInvalidRequest) {
		t.Errorf("AddSource after Run error = %v, want ErrInvalidRequest", err)
	}
}

func TestEngine_WaitReady(t *testing.T) {
	te := newTestEngine(t, nil)
	te.add(t, entropytest.NewConstant("bad", 3), nil)
	good := entropytest.NewScripted("good", 1, entropytest.Step{Err: errors.New("warming up")})
	te.add(t, good, nil)
	te.start(t)
	ready := make(chan error, 1)
	go func() { ready <- te.WaitReady(t.Context()) }()
	// The good source's first read fails; it backs off on the fake clock,
	// so the engine cannot be ready until the clock moves.
	te.rec.waitCount(t, "bad", "quarantined", 1)
	select {
	case err := <-ready:
		t.Fatalf("WaitReady returned %v with no healthy source", err)
	default:
	}
	te.clk.waitTimers(t, 2) // bad's quarantine, good's back-off
	te.clk.Advance(time.Second)
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	if st := te.sourceStatus(t, "good"); st.State != entropy.StateHealthy {
		t.Fatalf("ready with good in state %s", st.State)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	te2 := newTestEngine(t, nil)
	if err := te2.WaitReady(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady on a cancelled context = %v", err)
	}
}

// flappingSource reconnects at once but loses the device again after a few
// samples, before start-up testing can pass.
type flappingSource struct {
	*entropytest.Source
	reconnects int
}

func (f *flappingSource) Reconnect(ctx context.Context) error {
	f.reconnects++
	f.Source.FailAt(f.Source.Served()+100, entropy.ErrDisconnected)
	return nil
}

func TestEngine_FlappingDevice_BacksOff(t *testing.T) {
	te := newTestEngine(t, nil)
	src := &flappingSource{Source: entropytest.NewUniform("f", 1).FailAt(100, entropy.ErrDisconnected)}
	te.add(t, src, nil)
	te.start(t)
	// First loss: immediate reconnect; lost again before start-up passed:
	// back-offs of 1 s, 2 s, 4 s before the next reconnects.
	te.rec.waitCount(t, "f", "disconnected", 2)
	for i, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		te.clk.waitTimers(t, 1)
		te.clk.Advance(d - time.Nanosecond)
		if n := te.rec.count("f", "disconnected"); n != i+2 {
			t.Fatalf("reconnected before the %v back-off ended (%d disconnects)", d, n)
		}
		te.clk.Advance(time.Nanosecond)
		te.rec.waitCount(t, "f", "disconnected", i+3)
	}
}

// A DRBG instance seeded while policy os stood in for missing sources must
// not keep serving OS-derived output once the sources are back: the next
// ModeDRBG request reseeds it from the pool (without waiting for
// ReseedInterval), so the output is no longer degraded while Status says
// the pool is not. With no pool block at hand the request is served at
// once from the old state, still flagged degraded.
func TestEngine_ReadDRBG_PolicyOS_ReseedsWhenSourcesReturn(t *testing.T) {
	for _, tt := range []struct {
		name    string
		limit   int64 // samples the source serves: 2*W is start-up only, no block
		want    []string
		degr    bool
		reseeds uint64
	}{
		{"blocks queued", 20 * W, []string{"u"}, false, 1},
		{"pool empty", 2 * W, []string{"os"}, true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			te := newTestEngine(t, &entropy.Options{Policy: entropy.PolicyOS, ReseedInterval: time.Hour})
			te.SetShards(1)
			src := entropytest.NewUniform("u", 1)
			src.Limit = tt.limit
			te.add(t, src, nil)
			p := make([]byte, 64)
			// Before Run no source is healthy: the instance is seeded from the OS RNG.
			prov, err := te.Read(t.Context(), p, entropy.ModeDRBG)
			if err != nil || !prov.Degraded {
				t.Fatalf("Read before the source is healthy = %+v, %v; want degraded output", prov, err)
			}
			te.start(t)
			te.rec.waitCount(t, "u", "healthy", 1)
			spinUntil(t, "source at its limit", src.AtLimit)
			if ps := te.Status().Pool; ps.Degraded || !ps.Ready {
				t.Fatalf("pool status %+v, want ready and not degraded", ps)
			}
			prov, err = te.Read(t.Context(), p, entropy.ModeDRBG)
			if err != nil || prov.Degraded != tt.degr || !slices.Equal(prov.Sources, tt.want) {
				t.Fatalf("Read after the source is healthy = %+v, %v; want sources %v, degraded %v", prov, err, tt.want, tt.degr)
			}
			if r := te.Status().Pool.Reseeds; r != tt.reseeds {
				t.Fatalf("%d reseeds, want %d", r, tt.reseeds)
			}
		})
	}
}

// TestPool_TwoHealthySources_NoSingleSourceBlocks: while two sources are
// healthy, no output block comes from one of them alone, even with
// MinHealthySources 1 — a read waits for the second source rather than
// spend the first one's blocks unmixed.
func TestPool_TwoHealthySources_NoSingleSourceBlocks(t *testing.T) {
	te := newTestEngine(t, &entropy.Options{FullWait: time.Second})
	a := entropytest.NewUniform("a", 21)
	a.Limit = 4 * W // 25 blocks
	b := entropytest.NewUniform("b", 22)
	b.Limit = 2 * W // passes start-up testing, then delivers nothing
	te.add(t, a, nil)
	te.add(t, b, nil)
	te.start(t)
	spinUntil(t, "a queued its blocks", func() bool { return te.QueueLen("a") == 25 })
	spinUntil(t, "b healthy and idle", func() bool { return b.AtLimit() && te.sourceStatus(t, "b").State == entropy.StateHealthy })

	p := bytes.Repeat([]byte{1}, 32)
	errc := make(chan error, 1)
	go func() {
		_, err := te.Read(t.Context(), p, entropy.ModeFull)
		errc <- err
	}()
	spinUntil(t, "Read waiting for the pool", func() bool { return te.PoolWaiters() == 1 })
	te.clk.Advance(time.Second)
	if err := <-errc; !errors.Is(err, entropy.ErrInsufficientEntropy) {
		t.Fatalf("Read = %v, want ErrInsufficientEntropy (no block from a alone)", err)
	}
	if n := te.QueueLen("a"); n != 25 {
		t.Fatalf("a's queue holds %d blocks, want all 25 unspent", n)
	}
	if !bytes.Equal(p, make([]byte, len(p))) {
		t.Fatal("p not zeroed after a failed read")
	}
}
