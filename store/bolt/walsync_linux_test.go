package bolt

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qrngd/qrngd/store"
)

func newAIOSyncerOrSkip(t testing.TB) *walSyncer {
	s := newWALSyncer(slog.New(slog.DiscardHandler))
	if ok, why := s.usesAIO(); !ok {
		if errors.Is(why, syscall.ENOSYS) || errors.Is(why, syscall.EPERM) || errors.Is(why, syscall.EAGAIN) {
			t.Skipf("this kernel or sandbox has no AIO: %v", why)
		}
		t.Fatalf("AIO not used: %v", why)
	}
	t.Cleanup(s.close)
	return s
}

// TestWALSyncer_AIO syncs a file many times through AIO: every sync
// returns, the eventfd count stays in step (a stale count would let a
// sync return before its completion and the next io_getevents find none).
func TestWALSyncer_AIO(t *testing.T) {
	s := newAIOSyncerOrSkip(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "wal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 200 {
		if _, err := f.WriteString("record\n"); err != nil {
			t.Fatal(err)
		}
		if err := s.sync(f); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	if ok, why := s.usesAIO(); !ok {
		t.Fatalf("fell back to fdatasync: %v", why)
	}
}

// TestWALSyncer_NoAIOSupport: a file whose file system has no fsync (a
// pipe) makes io_submit fail; the syncer falls back to fdatasync for good
// (which fails on the pipe too, with an error) and keeps syncing regular
// files.
func TestWALSyncer_NoAIOSupport(t *testing.T) {
	s := newAIOSyncerOrSkip(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := s.sync(w); err == nil {
		t.Fatal("syncing a pipe succeeded")
	}
	ok, why := s.usesAIO()
	if ok || why == nil || !strings.Contains(why.Error(), "io_submit") {
		t.Fatalf("after io_submit failed: AIO %v, why %v", ok, why)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "wal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.sync(f); err != nil {
		t.Fatalf("fdatasync fallback: %v", err)
	}
}

// TestAuditWAL_WithoutAIO runs the store's audit log on the fdatasync
// fallback: appends are acknowledged, copied into qrngd.db and survive a
// reopen.
func TestAuditWAL_WithoutAIO(t *testing.T) {
	testNoAIO = true
	defer func() { testNoAIO = false }()
	dir := t.TempDir()
	opts := &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params}
	db := openT(t, dir, opts)
	if ok, _ := db.audit.sync.usesAIO(); ok {
		t.Fatal("testNoAIO ignored")
	}
	last := appendN(t, db, 20)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir, opts)
	defer db.Close()
	if n, err := db.Audit().Verify(t.Context()); err != nil || n != last.Seq {
		t.Fatalf("after reopen: verified %d records, err %v; want %d", n, err, last.Seq)
	}
}

// BenchmarkWALSync_WorkBeside runs four CPU-bound goroutines beside a
// loop of write+sync on one file and reports the CPU work done per second
// and the syncs per second, with fdatasync(2) and with the AIO syncer.
// With GOMAXPROCS = 2, fdatasync holds a processor while the disk works.
//
//	go test -run '^$' -bench WALSync_WorkBeside -benchtime 2000x ./store/bolt/
func BenchmarkWALSync_WorkBeside(b *testing.B) {
	for _, mode := range []string{"fdatasync", "aio"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "wal"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			syncf := fdatasync
			if mode == "aio" {
				syncf = newAIOSyncerOrSkip(b).sync
			}
			var stop atomic.Bool
			var work atomic.Int64
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					x := uint64(1)
					for !stop.Load() {
						for range 10000 {
							x = x*6364136223846793005 + 1442695040888963407
						}
						work.Add(1)
						runtime.Gosched()
					}
					_ = x
				}()
			}
			rec := make([]byte, 4096)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := f.Write(rec); err != nil {
					b.Fatal(err)
				}
				if err := syncf(f); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start)
			stop.Store(true)
			wg.Wait()
			b.ReportMetric(float64(work.Load())/el.Seconds(), "work-units/s")
			b.ReportMetric(float64(b.N)/el.Seconds(), "syncs/s")
		})
	}
}

// TestWALSyncer_StaleSignal: a sync that reaps its completion on the
// deadline leaves that completion's eventfd count behind (the poller had
// not delivered it). The next syncs must still wait in the poller: the
// stale count is a spurious wake-up, not a reason to block in
// io_getevents (which holds a processor, what the syncer exists to avoid)
// for that sync and, as its own count is then left behind, every later
// one.
func TestWALSyncer_StaleSignal(t *testing.T) {
	s := newAIOSyncerOrSkip(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "wal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(s.efdNo, one[:]); err != nil { // the count a deadline reap leaves
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := f.WriteString("record\n"); err != nil {
			t.Fatal(err)
		}
		if err := s.sync(f); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	if s.blockingReaps != 0 {
		t.Fatalf("%d of 50 syncs blocked in io_getevents after one stale eventfd count", s.blockingReaps)
	}
}

// TestWALSyncer_ResultOfOtherSubmission: a completion whose aio_data is
// not the latest submission's is an error, never a success for this sync.
func TestWALSyncer_ResultOfOtherSubmission(t *testing.T) {
	s := &walSyncer{tag: 7}
	if err := s.result(&ioEvent{data: 6}); err == nil {
		t.Fatal("a completion of submission 6 was taken for submission 7")
	}
	if err := s.result(&ioEvent{data: 7, res: -int64(syscall.EIO)}); !errors.Is(err, syscall.EIO) {
		t.Fatalf("EIO completion: %v", err)
	}
	if err := s.result(&ioEvent{data: 7}); err != nil {
		t.Fatal(err)
	}
}
