// Package drivertest is the conformance suite every source driver passes,
// run against the driver's simulated device, plus small test aids for
// drivers (FakeClock).
package drivertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
)

// Harness tells Run how to drive one kind of source on a simulated device.
type Harness struct {
	// Open returns a fresh source on a fresh simulated device. Run closes
	// every source it opens (Close may be called twice and must not panic
	// the second time).
	Open func(t *testing.T) entropy.Source
	// Fault makes the device fail (e.g. unplug it or make reads error). The
	// failure must show within FaultWithin bytes of reading. nil skips the
	// fault and reconnect subtests.
	Fault func(t *testing.T, s entropy.Source)
	// FaultErr is the errors.Is target of the error the fault produces,
	// e.g. entropy.ErrDisconnected. Required with Fault.
	FaultErr error
	// Restore brings the device back after Fault (e.g. replug). Run then
	// requires the source to implement entropy.Reconnector, Reconnect to
	// succeed and reads to work. nil skips the reconnect subtest.
	Restore func(t *testing.T, s entropy.Source)
	// Hang makes the device stop answering, so that a Read blocks until its
	// ctx is done or the source is closed. The returned channel must be
	// closed once a Read is blocked in the device (so the suite cancels at
	// the right moment without sleeping). nil skips the blocked-read parts
	// of the ctx and close subtests.
	Hang func(t *testing.T, s entropy.Source) (blocked <-chan struct{})
	// ReadBytes is how many bytes the read subtest reads; 0 means 4096.
	ReadBytes int
	// FaultWithin bounds how many bytes the fault subtest reads before the
	// fault must show; 0 means 1 MiB.
	FaultWithin int
	// Guard is how long the suite waits for a call that must return
	// promptly before it declares the call hung; 0 means DefaultGuard. It
	// bounds hangs, it does not time work.
	Guard time.Duration
}

// DefaultGuard is Harness.Guard's default.
const DefaultGuard = 10 * time.Second

// Run runs the conformance subtests: open, info, read, sample-bits, ctx,
// fault, reconnect, close.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("drivertest: Harness.Open is nil")
	}
	if h.Fault != nil && h.FaultErr == nil {
		t.Fatal("drivertest: Harness.Fault needs FaultErr")
	}
	n := h.ReadBytes
	if n <= 0 {
		n = 4096
	}
	g := h.Guard
	if g <= 0 {
		g = DefaultGuard
	}
	// Bind the guard. Inside each literal the name still refers to the
	// package-level function: a := variable's scope starts after its statement.
	readFull := func(t testing.TB, s entropy.Source, n int) []byte { t.Helper(); return readFull(t, s, n, g) }
	within := func(t *testing.T, what string, f func() (int, error)) (int, error) {
		t.Helper()
		return within(t, what, f, g)
	}
	await := func(t *testing.T, ch <-chan result, what string) result { t.Helper(); return await(t, ch, what, g) }
	waitClosed := func(t *testing.T, ch <-chan struct{}, what string) { t.Helper(); waitClosed(t, ch, what, g) }
	open := func(t *testing.T) entropy.Source {
		t.Helper()
		s := h.Open(t)
		if s == nil {
			t.Fatal("Open returned a nil source")
		}
		t.Cleanup(func() {
			// Guarded, so that a Close stuck behind a Read left blocked by
			// a failed subtest reports instead of hanging the test binary.
			done := make(chan struct{})
			go func() { _ = s.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(g):
				t.Errorf("Close did not return within %v", g)
			}
		})
		return s
	}

	t.Run("open", func(t *testing.T) {
		a, b := open(t), open(t)
		if a == b {
			t.Fatal("Open returned the same source twice; want a fresh one per call")
		}
	})

	t.Run("info", func(t *testing.T) {
		s := open(t)
		info := s.Info()
		if err := info.Validate(); err != nil {
			t.Fatalf("Info().Validate(): %v (info %+v)", err, info)
		}
		if info.Kind == "" {
			t.Errorf("Info().Kind is empty (info %+v)", info)
		}
		if again := s.Info(); again != info {
			t.Errorf("Info() changed between calls: %+v then %+v", info, again)
		}
	})

	t.Run("read", func(t *testing.T) {
		s := open(t)
		buf := readFull(t, s, n)
		if len(buf) != n {
			return
		}
		if m, err := s.Read(context.Background(), nil); m != 0 || err != nil {
			t.Errorf("Read(empty) = %d, %v; want 0, nil", m, err)
		}
		distinct := map[byte]bool{}
		for _, b := range buf {
			distinct[b] = true
		}
		if len(distinct) < 2 {
			t.Errorf("%d bytes read are all %#x; a noise source must vary (is the buffer filled?)", n, buf[0])
		}
	})

	t.Run("sample-bits", func(t *testing.T) {
		s := open(t)
		bits := s.Info().SampleBits
		for i, b := range readFull(t, s, n) {
			if bits < 8 && b>>bits != 0 {
				t.Fatalf("sample %d = %#x does not fit %d bits", i, b, bits)
			}
		}
	})

	t.Run("ctx", func(t *testing.T) {
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m, err := within(t, "Read with a cancelled ctx", func() (int, error) { return s.Read(ctx, make([]byte, 64)) })
		if m != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("Read(cancelled ctx) = %d, %v; want 0, context.Canceled", m, err)
		}
		dctx, dcancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
		defer dcancel()
		m, err = within(t, "Read with an expired deadline", func() (int, error) { return s.Read(dctx, make([]byte, 64)) })
		if m != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Read(expired ctx) = %d, %v; want 0, context.DeadlineExceeded", m, err)
		}
		if h.Hang == nil {
			t.Log("Harness.Hang is nil: skipping the blocked-read part")
			return
		}
		s = open(t)
		readFull(t, s, 16) // the device works before it hangs
		blocked := h.Hang(t, s)
		ctx, cancel = context.WithCancel(context.Background())
		defer cancel()
		res := goRead(s, ctx, 64)
		waitClosed(t, blocked, "the Read to block after Hang")
		cancel()
		r := await(t, res, "Read cancelled while blocked")
		if r.n != 0 || !errors.Is(r.err, context.Canceled) {
			t.Errorf("Read cancelled while blocked = %d, %v; want 0, context.Canceled", r.n, r.err)
		}
	})

	t.Run("fault", func(t *testing.T) {
		if h.Fault == nil {
			t.Skip("Harness.Fault is nil")
		}
		s := open(t)
		readFull(t, s, 16)
		h.Fault(t, s)
		err := readUntilError(t, s, h.FaultWithin, g)
		if !errors.Is(err, h.FaultErr) {
			t.Fatalf("read after Fault failed with %v; want an error matching %v", err, h.FaultErr)
		}
	})

	t.Run("reconnect", func(t *testing.T) {
		if h.Fault == nil || h.Restore == nil {
			t.Skip("Harness.Fault or Harness.Restore is nil")
		}
		s := open(t)
		rc, ok := s.(entropy.Reconnector)
		if !ok {
			t.Fatalf("%T has Restore in its harness but does not implement entropy.Reconnector", s)
		}
		readFull(t, s, 16)
		h.Fault(t, s)
		if err := readUntilError(t, s, h.FaultWithin, g); !errors.Is(err, h.FaultErr) {
			t.Fatalf("read after Fault failed with %v; want an error matching %v", err, h.FaultErr)
		}
		// The device is still failing: a Reconnect with a cancelled ctx must
		// not succeed and must not hang.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := within(t, "Reconnect with a cancelled ctx", func() (int, error) { return 0, rc.Reconnect(ctx) }); err == nil {
			t.Error("Reconnect(cancelled ctx) with the device still failing = nil; want an error")
		}
		h.Restore(t, s)
		gctx, gcancel := context.WithTimeout(context.Background(), g)
		defer gcancel()
		if err := rc.Reconnect(gctx); err != nil {
			t.Fatalf("Reconnect after Restore: %v", err)
		}
		readFull(t, s, n)
	})

	t.Run("close", func(t *testing.T) {
		s := open(t)
		readFull(t, s, 16)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		m, err := within(t, "Read after Close", func() (int, error) { return s.Read(context.Background(), make([]byte, 64)) })
		if m != 0 || !errors.Is(err, entropy.ErrClosed) {
			t.Errorf("Read after Close = %d, %v; want 0 and an error matching entropy.ErrClosed", m, err)
		}
		if h.Hang == nil {
			return
		}
		s = open(t)
		readFull(t, s, 16)
		blocked := h.Hang(t, s)
		res := goRead(s, context.Background(), 64)
		waitClosed(t, blocked, "the Read to block after Hang")
		if err := s.Close(); err != nil {
			t.Fatalf("Close with a blocked Read: %v", err)
		}
		r := await(t, res, "blocked Read after Close")
		if r.n != 0 || !errors.Is(r.err, entropy.ErrClosed) {
			t.Errorf("Read blocked during Close = %d, %v; want 0 and an error matching entropy.ErrClosed", r.n, r.err)
		}
	})
}

// ReadFull reads exactly n bytes from s with a short-read loop, failing t on
// an error, on a Read that reports more than it was given, or on a source
// that makes no progress.
func ReadFull(t testing.TB, s entropy.Source, n int) []byte {
	t.Helper()
	return readFull(t, s, n, DefaultGuard)
}

func readFull(t testing.TB, s entropy.Source, n int, guard time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	buf := make([]byte, n)
	got, zero := 0, 0
	for got < n {
		m, err := s.Read(ctx, buf[got:])
		if m < 0 || m > n-got {
			t.Fatalf("Read returned %d for a %d-byte buffer", m, n-got)
		}
		got += m
		if err != nil {
			t.Fatalf("Read after %d of %d bytes: %v", got, n, err)
		}
		if m == 0 {
			if zero++; zero > 1000 {
				t.Fatalf("1000 Reads in a row returned 0, nil after %d of %d bytes", got, n)
			}
		} else {
			zero = 0
		}
	}
	return buf
}

// readUntilError reads until Read fails and returns that error; it fails t
// if limit bytes (0 = 1 MiB) go by without one.
func readUntilError(t *testing.T, s entropy.Source, limit int, guard time.Duration) error {
	t.Helper()
	if limit <= 0 {
		limit = 1 << 20
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	buf := make([]byte, 4096)
	for got, calls := 0, 0; got <= limit; calls++ {
		m, err := s.Read(ctx, buf)
		if err != nil {
			return err
		}
		if m < 0 || m > len(buf) {
			t.Fatalf("Read returned %d for a %d-byte buffer", m, len(buf))
		}
		got += m
		if calls > limit+1000 {
			break
		}
	}
	t.Fatalf("no error within %d bytes after Fault", limit)
	return nil
}

type result struct {
	n   int
	err error
}

func goRead(s entropy.Source, ctx context.Context, n int) <-chan result {
	ch := make(chan result, 1)
	go func() {
		m, err := s.Read(ctx, make([]byte, n))
		ch <- result{m, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan result, what string, guard time.Duration) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(guard):
		t.Fatalf("%s did not return within %v", what, guard)
		return result{}
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string, guard time.Duration) {
	t.Helper()
	if ch == nil {
		t.Fatalf("Harness.Hang returned a nil channel")
	}
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("timed out after %v waiting for %s", guard, what)
	}
}

func within(t *testing.T, what string, f func() (int, error), guard time.Duration) (int, error) {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		m, err := f()
		ch <- result{m, err}
	}()
	r := await(t, ch, what, guard)
	return r.n, r.err
}
