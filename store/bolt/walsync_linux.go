package bolt

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// walSyncer makes the audit WAL's written data durable exactly as
// fdatasync(2) does, without holding a Go processor while the disk works.
//
// A goroutine blocked in a system call keeps its processor (P) until the
// runtime's monitor notices and hands it off, and the WAL syncs ≈ 1,000
// times a second under load. So the sync is submitted as a Linux AIO
// IOCB_CMD_FDSYNC (kernel ≥ 4.18: the kernel runs vfs_fsync(file,
// datasync=1), what fdatasync(2) runs, on its own worker), its completion
// signals an eventfd, and the writer goroutine waits for that eventfd in
// Go's network poller, which parks it without a processor. Measured here
// (BENCHMARKS.md): BenchmarkWALSync_WorkBeside ran 3,118 syncs a second
// beside four CPU-bound goroutines against fdatasync's 1,647, with 8 % less
// of their work done (the kernel's sync work now runs in its worker), and
// POST /oauth/token with 32 connections went from 10.0–11.3k to
// 11.8–12.6k tokens/s with this and the group window (interleaved runs).
//
// Where AIO is not available (io_setup refused by seccomp or the
// aio-max-nr limit, a file system without AIO fsync) it falls back to
// fdatasync for good, and says why once.
type walSyncer struct {
	ctx   uintptr  // aio_context_t; 0 once fallen back to fdatasync
	efd   *os.File // the eventfd, in the poller
	efdNo int      // its descriptor (efd.Fd() would make it blocking)
	why   error    // why AIO is not used
	log   *slog.Logger
	count [8]byte
	tag   uint64 // aio_data of the latest submission

	blockingReaps int // syncs reaped by a blocking io_getevents (tests)
}

// iocb is struct iocb of <linux/aio_abi.h> (64 bytes, the same layout on
// every architecture; aio_key and aio_rw_flags, whose order depends on
// byte order, are both zero here).
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   uint32
	opcode    uint16
	reqprio   int16
	fildes    uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is struct io_event.
type ioEvent struct {
	data, obj uint64
	res, res2 int64
}

// walPollEvery bounds how long a completed sync can go unnoticed when
// every processor is busy.
const walPollEvery = 500 * time.Microsecond

const (
	iocbCmdFdsync = 3      // IOCB_CMD_FDSYNC
	iocbFlagResfd = 1 << 0 // IOCB_FLAG_RESFD
)

// testNoAIO makes newWALSyncer fall back as if io_setup had failed (tests).
var testNoAIO bool

func newWALSyncer(log *slog.Logger) *walSyncer {
	s := &walSyncer{log: log}
	if testNoAIO {
		s.why = errors.New("disabled by the test")
		return s
	}
	var ctx uintptr
	if _, _, e := syscall.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		s.why = fmt.Errorf("io_setup: %w", e)
		return s
	}
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		syscall.Syscall(unix.SYS_IO_DESTROY, ctx, 0, 0)
		s.why = fmt.Errorf("eventfd: %w", err)
		return s
	}
	s.ctx, s.efdNo = ctx, fd
	s.efd = os.NewFile(uintptr(fd), "audit-wal-eventfd") // non-blocking: served by the poller
	return s
}

// usesAIO reports whether syncs go through AIO, and if not why.
func (s *walSyncer) usesAIO() (bool, error) { return s.ctx != 0, s.why }

// sync makes what was written to f durable (fdatasync semantics). Only one
// goroutine (the WAL writer) calls it.
func (s *walSyncer) sync(f *os.File) error {
	if s.ctx == 0 {
		return fdatasync(f)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		s.tag++
		cb := iocb{data: s.tag, opcode: iocbCmdFdsync, fildes: uint32(fd), flags: iocbFlagResfd, resfd: uint32(s.efdNo)}
		p := &cb
		for tries := 0; ; tries++ {
			_, _, errno = syscall.Syscall(unix.SYS_IO_SUBMIT, s.ctx, 1, uintptr(unsafe.Pointer(&p)))
			// EAGAIN (no room to queue) cannot last with one request in
			// flight at most; a few tries, then fdatasync for this one.
			if errno != syscall.EINTR && (errno != syscall.EAGAIN || tries == 3) {
				return
			}
		}
	}); err != nil {
		return err
	}
	switch errno {
	case syscall.EINVAL, syscall.ENOSYS, syscall.EOPNOTSUPP:
		// This kernel or file system has no AIO fsync: fall back for good.
		s.why = fmt.Errorf("io_submit IOCB_CMD_FDSYNC: %w", errno)
		s.log.Warn("audit WAL: AIO fsync refused; syncing with fdatasync from now on", "err", s.why.Error())
		s.close()
		return fdatasync(f)
	case syscall.EAGAIN:
		return fdatasync(f)
	}
	if errno != 0 {
		return fmt.Errorf("io_submit: %w", errno)
	}
	// The eventfd is only a wake-up: the result is always reaped with
	// io_getevents. Its read carries a deadline because Go's scheduler
	// polls the network only when a processor runs out of work (or every
	// 10 ms): with every processor busy the completion would wait that
	// long, a timer is seen at every scheduling point. On the deadline,
	// and on every wake-up too, the completion is looked for without
	// blocking: a count read may be stale (the signal of the previous
	// sync's completion, which that sync reaped on its deadline before the
	// poller delivered the signal), and blocking in io_getevents for it
	// would hold a processor, and leave this sync's own count stale for
	// the next one, and so on for good.
	var ev ioEvent
	for {
		if err := s.efd.SetReadDeadline(time.Now().Add(walPollEvery)); err != nil {
			break
		}
		_, rerr := s.efd.Read(s.count[:])
		if rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
			break // the eventfd failed: reap below, blocking
		}
		n, err := s.getevents(0, &ev, &syscall.Timespec{})
		if err != nil {
			return err
		}
		if n == 1 {
			// Its signal may not have been read yet: the next sync
			// then wakes once spuriously and polls again.
			return s.result(&ev)
		}
	}
	s.blockingReaps++
	if _, err := s.getevents(1, &ev, nil); err != nil {
		return err
	}
	return s.result(&ev)
}

// getevents reaps at most one completion, waiting for min of them (0 or
// 1) at most ts (nil: no limit).
func (s *walSyncer) getevents(min int, ev *ioEvent, ts *syscall.Timespec) (int, error) {
	for {
		n, _, e := syscall.Syscall6(unix.SYS_IO_GETEVENTS, s.ctx, uintptr(min), 1, uintptr(unsafe.Pointer(ev)), uintptr(unsafe.Pointer(ts)), 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, fmt.Errorf("io_getevents: %w", e)
		}
		if int(n) < min {
			return 0, fmt.Errorf("io_getevents: %d events, want %d", n, min)
		}
		return int(n), nil
	}
}

// result is the outcome of the reaped completion, which must be that of
// the latest submission (one is in flight at a time; any error stops the
// audit log, so an older completion can never stand for a newer sync).
func (s *walSyncer) result(ev *ioEvent) error {
	if ev.data != s.tag {
		return fmt.Errorf("io_getevents: completion of submission %d, want %d", ev.data, s.tag)
	}
	if ev.res < 0 {
		return fmt.Errorf("fdatasync (aio): %w", syscall.Errno(-ev.res))
	}
	return nil
}

// close releases the AIO context; later syncs use fdatasync.
func (s *walSyncer) close() {
	if s.ctx == 0 {
		return
	}
	syscall.Syscall(unix.SYS_IO_DESTROY, s.ctx, 0, 0)
	s.efd.Close()
	s.ctx, s.efd = 0, nil
}
