// Package pciesim simulates ID Quantique Quantis PCI/PCIe cards as the
// /dev/qrandomN character devices their Linux drivers create, at the level of
// read(2) and ioctl(2). Its File implements the file seam of
// drivers/quantispcie (Read, Ioctl, Close) so the driver runs unchanged on
// top of it.
//
// Two driver families are modelled from reference/hardware.md §2:
//
//   - the pci-module driver (PCIe-4M, PCIe-16M): every ioctl of the shared
//     ABI; ENABLE/DISABLE set the enabled-module mask; MODULES_STATUS is
//     "enabled AND healthy"; read(2) returns at most 64 KiB and fails with
//     EIO while an enabled module is unhealthy or none is enabled; unknown
//     requests answer ENOTTY. Whether the PKG 20.2.4 pci-module answers
//     GET_SERIAL is not documented; the simulator answers ENOTTY (the old
//     import's behaviour for unknown requests) and the driver copes with both.
//   - the pcie-chip driver (PCIe-40M, PCIe-240M): ENABLE/DISABLE, both AIS31
//     requests and GET_PCI_BUS_DEVICE_ID answer EINVAL; MODULES_STATUS
//     busy-waits up to 1000 × 1 ms (on the injected Clock) for the sensor to
//     become ready and answers 0 on timeout; GET_SERIAL fills 12 raw bytes of
//     a 256-byte buffer, NUL at [11]; after init (card power-up) or
//     RESET_BOARD the first read discards 65536 bytes of start-up garbage
//     (16809984 in SAMPLE mode) before any data is served. How the chip
//     driver's read behaves when a chip fails is not documented; the
//     simulator keeps serving data, the worst case for a reader that skips
//     the status check.
//
// The ioctl request numbers are the literal values from hardware.md, written
// independently of the driver's own _IOR/_IOW encoding, so the tests
// cross-check the two.
package pciesim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Ioctl request values (x86-64 glibc encoding, hardware.md §2).
const (
	ReqGetDriverVersion   = 0x80047100
	ReqGetCardCount       = 0x80047101
	ReqGetModulesMask     = 0x80047102
	ReqGetBoardVersion    = 0x80047103
	ReqResetBoard         = 0x00007104
	ReqEnableModule       = 0x40047105
	ReqDisableModule      = 0x40047106
	ReqGetModulesStatus   = 0x80047108
	ReqGetPCIBusDeviceID  = 0x80047109
	ReqGetAIS31Flag       = 0x8004710A
	ReqClearAIS31Flag     = 0x4004710B
	ReqGetSerial          = 0x8100710C
	ReqSetQRNGMode        = 0x4004710D
	ReqGetQRNGMode        = 0x8004710E
	ReqGetCurrentQRNGMode = 0x8004710F
)

// Driver constants from hardware.md §2.
const (
	SerialBufferSize  = 256
	DriverVersion     = 202
	GarbageRNGMode    = 65536
	GarbageSampleMode = 16809984
	MaxReadPCIModule  = 16 * 4096
	ModeRNG           = 0
	ModeSample        = 1

	sensorPollInterval = time.Millisecond
	sensorPollAttempts = 1000
)

// Model is a Quantis PCI/PCIe product.
type Model int

// The four products of the two driver families.
const (
	PCIe4M Model = iota
	PCIe16M
	PCIe40M
	PCIe240M
)

func (m Model) String() string {
	switch m {
	case PCIe4M:
		return "PCIe-4M"
	case PCIe16M:
		return "PCIe-16M"
	case PCIe40M:
		return "PCIe-40M"
	case PCIe240M:
		return "PCIe-240M"
	}
	return fmt.Sprintf("Model(%d)", int(m))
}

// Chip reports whether the model uses the pcie-chip driver family.
func (m Model) Chip() bool { return m == PCIe40M || m == PCIe240M }

// PresentMask is the modules mask the model's driver reports.
func (m Model) PresentMask() uint32 {
	switch m {
	case PCIe4M:
		return 0x1
	case PCIe16M:
		return 0xF
	case PCIe40M:
		return 0x3 // 2 Q400 chips
	default:
		return 0xFFF // 12 Q400 chips
	}
}

// Clock is the time the simulated card sees. Tests use a FakeClock so the
// chip driver's one-second status busy-wait costs no real time.
type Clock interface {
	Now() time.Time
	Sleep(d time.Duration)
}

// RealClock is the wall clock; benchmarks pace reads with it.
type RealClock struct{}

// Now returns time.Now.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep calls time.Sleep.
func (RealClock) Sleep(d time.Duration) { time.Sleep(d) }

// FakeClock advances only when something sleeps on it.
type FakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewFakeClock starts a fake clock at a fixed instant.
func NewFakeClock() *FakeClock { return &FakeClock{t: time.Unix(1_800_000_000, 0)} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Sleep advances the fake time by d at once.
func (c *FakeClock) Sleep(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// CardOptions configure a simulated card; the zero value is a PCIe-4M.
type CardOptions struct {
	Model        Model
	Serial       [12]byte // raw serial bytes of a chip card; byte 11 is forced to NUL
	BoardVersion uint32   // 0 picks a model default
	Seed         uint64   // seeds the ChaCha8 output stream
	Clock        Clock    // nil = a new FakeClock
	// Rate paces reads at this many bytes per second on Clock, as the
	// device's FIFO would; 0 serves as fast as the reader asks.
	Rate float64
	// MaxRead caps one read(2); 0 = 64 KiB (the pci-module driver's buffer).
	MaxRead int
	// SampleMode starts a chip card in SAMPLE mode.
	SampleMode bool
}

// Stats are the card's counters and state, for tests to assert on.
type Stats struct {
	Opens, Reads, Resets int
	Ioctls               map[uint32]int
	BytesServed          int64
	GarbageDiscarded     int64
	Enabled              uint32
	Healthy              uint32
	AIS31Flag            bool
	Mode                 uint32
	SensorWaits          int // 1 ms polls spent in the status busy-wait
}

// Card is one simulated card. All methods are safe for concurrent use.
type Card struct {
	mu    sync.Mutex
	o     CardOptions
	clock Clock
	gen   *rand.ChaCha8 // the output stream
	dice  *rand.Rand    // fault decisions, kept off the output stream
	host  *Host

	board, present, enabled, healthy uint32
	ais31                            bool
	mode                             uint32
	garbagePending                   int64
	sensorReadyAt                    time.Time
	sensorNever                      bool

	eintr     int
	shortMax  int
	stuck     bool
	stuckByte byte
	readErr   syscall.Errno
	vanishAt  int64 // vanish once BytesServed reaches this; <0 off
	gone      bool
	lastServe time.Time

	stats Stats
}

// NewCard builds a card in its power-up state: all modules present, enabled
// and healthy; a chip card has its start-up garbage pending.
func NewCard(o CardOptions) *Card {
	c := &Card{o: o, clock: o.Clock, vanishAt: -1}
	if c.clock == nil {
		c.clock = NewFakeClock()
	}
	if c.o.MaxRead <= 0 {
		c.o.MaxRead = MaxReadPCIModule
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], o.Seed)
	c.gen = rand.NewChaCha8(seed)
	c.dice = rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	c.present = o.Model.PresentMask()
	c.enabled, c.healthy = c.present, c.present
	c.board = o.BoardVersion
	if c.board == 0 {
		if o.Model.Chip() {
			c.board = 0x02010203 // PCB rev 2, firmware 1.2.3
		} else {
			c.board = 0x00000024
		}
	}
	if o.Model.Chip() {
		c.ais31 = false
		if o.SampleMode {
			c.mode = ModeSample
		}
		c.initChipLocked()
	} else {
		c.ais31 = true // the card asks for start-up tests after power-up
	}
	c.o.Serial[11] = 0
	c.stats.Ioctls = map[uint32]int{}
	c.lastServe = c.clock.Now()
	return c
}

// Model returns the card's model.
func (c *Card) Model() Model { return c.o.Model }

func (c *Card) initChipLocked() {
	if c.mode == ModeSample {
		c.garbagePending = GarbageSampleMode
	} else {
		c.garbagePending = GarbageRNGMode
	}
}

// SetHealthy sets which modules are healthy (a module error clears a bit).
func (c *Card) SetHealthy(mask uint32) { c.mu.Lock(); c.healthy = mask & c.present; c.mu.Unlock() }

// SetSensorReadyIn makes a chip card's sensor become ready d after now;
// a negative d means never (MODULES_STATUS then times out and answers 0).
func (c *Card) SetSensorReadyIn(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sensorNever = d < 0
	c.sensorReadyAt = c.clock.Now().Add(d)
}

// InjectEINTR makes the next n reads fail with EINTR.
func (c *Card) InjectEINTR(n int) { c.mu.Lock(); c.eintr = n; c.mu.Unlock() }

// SetShortReads makes every read return between 1 and max bytes; 0 turns it off.
func (c *Card) SetShortReads(max int) { c.mu.Lock(); c.shortMax = max; c.mu.Unlock() }

// SetStuck makes the card emit b forever (on) or its random stream (off).
func (c *Card) SetStuck(on bool, b byte) { c.mu.Lock(); c.stuck, c.stuckByte = on, b; c.mu.Unlock() }

// SetReadError makes every read fail with errno (0 clears it).
func (c *Card) SetReadError(errno syscall.Errno) { c.mu.Lock(); c.readErr = errno; c.mu.Unlock() }

// VanishAfter makes the card disappear (as on hot removal or driver unbind)
// once it has served n more bytes; reads then fail with ENODEV.
func (c *Card) VanishAfter(n int64) {
	c.mu.Lock()
	c.vanishAt = c.stats.BytesServed + n
	c.mu.Unlock()
}

// Stats returns a snapshot of the counters and state.
func (c *Card) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Ioctls = make(map[uint32]int, len(c.stats.Ioctls))
	for k, v := range c.stats.Ioctls {
		s.Ioctls[k] = v
	}
	s.Enabled, s.Healthy, s.AIS31Flag, s.Mode = c.enabled, c.healthy, c.ais31, c.mode
	return s
}

// Stream returns the first n bytes the card's random stream produces for
// a seed, for tests to compare the driver's output with.
func Stream(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	out := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(out)
	return out
}

// Host holds the cards of one simulated machine under a device root
// directory: card i appears as root/qrandomI (an empty placeholder file, so
// the driver's directory scan finds it).
type Host struct {
	mu     sync.Mutex
	root   string
	cards  map[string]*Card
	denied map[string]bool
}

// NewHost makes a host whose device nodes live in root (e.g. t.TempDir()).
func NewHost(root string) *Host {
	return &Host{root: root, cards: map[string]*Card{}, denied: map[string]bool{}}
}

// Root is the device directory.
func (h *Host) Root() string { return h.root }

// Path is the node of card index.
func (h *Host) Path(index int) string { return filepath.Join(h.root, fmt.Sprintf("qrandom%d", index)) }

// Plug adds (or re-adds) card c as qrandom<index> and returns its path.
func (h *Host) Plug(index int, c *Card) (string, error) {
	p := h.Path(index)
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return "", err
	}
	h.mu.Lock()
	h.cards[p] = c
	h.mu.Unlock()
	c.mu.Lock()
	c.host, c.gone = h, false
	c.vanishAt = -1
	c.mu.Unlock()
	return p, nil
}

// Unplug removes qrandom<index>: the node disappears and every open file
// of the card fails with ENODEV.
func (h *Host) Unplug(index int) {
	p := h.Path(index)
	h.mu.Lock()
	c := h.cards[p]
	delete(h.cards, p)
	h.mu.Unlock()
	_ = os.Remove(p)
	if c != nil {
		c.mu.Lock()
		c.gone = true
		c.mu.Unlock()
	}
}

// DenyOpen makes open of qrandom<index> fail with EACCES (missing udev rule).
func (h *Host) DenyOpen(index int, deny bool) {
	h.mu.Lock()
	h.denied[h.Path(index)] = deny
	h.mu.Unlock()
}

func (h *Host) countFamily(chip bool) uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n uint32
	for _, c := range h.cards {
		if c.o.Model.Chip() == chip {
			n++
		}
	}
	return n
}

// Open opens a node like open(2) with O_RDONLY.
func (h *Host) Open(path string) (*File, error) {
	h.mu.Lock()
	c, ok := h.cards[path]
	denied := h.denied[path]
	h.mu.Unlock()
	if denied {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EACCES}
	}
	if !ok {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
	}
	c.mu.Lock()
	c.stats.Opens++
	c.mu.Unlock()
	return &File{c: c}, nil
}

// File is one open file description of a card.
type File struct {
	c      *Card
	mu     sync.Mutex
	closed bool
}

// Close closes the file; a second Close fails with EBADF.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return syscall.EBADF
	}
	f.closed = true
	return nil
}

func (f *File) isClosed() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.closed }

// Read behaves like read(2) on the node.
func (f *File) Read(p []byte) (int, error) {
	if f.isClosed() {
		return 0, syscall.EBADF
	}
	c := f.c
	c.mu.Lock()
	c.stats.Reads++
	if c.gone {
		c.mu.Unlock()
		return 0, syscall.ENODEV
	}
	if c.eintr > 0 {
		c.eintr--
		c.mu.Unlock()
		return 0, syscall.EINTR
	}
	if c.readErr != 0 {
		e := c.readErr
		c.mu.Unlock()
		return 0, e
	}
	if !c.o.Model.Chip() && (c.enabled == 0 || c.enabled&c.healthy != c.enabled) {
		c.mu.Unlock()
		return 0, syscall.EIO // pci-module: module error or FIFO timeout
	}
	if len(p) == 0 {
		c.mu.Unlock()
		return 0, nil
	}
	n := min(len(p), c.o.MaxRead)
	if c.shortMax > 0 {
		n = min(n, 1+c.dice.IntN(c.shortMax))
	}
	if c.vanishAt >= 0 {
		left := c.vanishAt - c.stats.BytesServed
		if left <= 0 {
			c.gone = true
			c.mu.Unlock()
			return 0, syscall.ENODEV
		}
		n = int(min(int64(n), left))
	}
	// The chip driver throws away the start-up garbage inside the kernel
	// on the first read; it costs FIFO time but never reaches the reader.
	garbage := c.garbagePending
	c.garbagePending = 0
	c.stats.GarbageDiscarded += garbage
	var wait time.Duration
	if c.o.Rate > 0 {
		now := c.clock.Now()
		if c.lastServe.Before(now.Add(-time.Second)) {
			c.lastServe = now.Add(-time.Second) // FIFO holds at most ~1 s
		}
		c.lastServe = c.lastServe.Add(time.Duration(float64(int64(n)+garbage) / c.o.Rate * float64(time.Second)))
		wait = c.lastServe.Sub(now)
	}
	if c.stuck {
		for i := range p[:n] {
			p[i] = c.stuckByte
		}
	} else {
		_, _ = c.gen.Read(p[:n])
	}
	c.stats.BytesServed += int64(n)
	clock := c.clock
	c.mu.Unlock()
	if wait > 0 {
		clock.Sleep(wait)
	}
	return n, nil
}

// Ioctl behaves like ioctl(2) on the node. arg is the memory the request's
// pointer argument addresses: 4 bytes (native endian uint32) for the _IOR
// and _IOW requests, 256 for GET_SERIAL, nil for RESET_BOARD.
func (f *File) Ioctl(req uintptr, arg []byte) error {
	if f.isClosed() {
		return syscall.EBADF
	}
	c := f.c
	c.mu.Lock()
	c.stats.Ioctls[uint32(req)]++
	if c.gone {
		c.mu.Unlock()
		return syscall.ENODEV
	}
	chip := c.o.Model.Chip()
	need := 4
	switch req {
	case ReqResetBoard:
		need = 0
	case ReqGetSerial:
		need = SerialBufferSize
	}
	if len(arg) < need {
		c.mu.Unlock()
		return syscall.EFAULT
	}
	put := func(v uint32) { binary.NativeEndian.PutUint32(arg, v) }
	get := func() uint32 { return binary.NativeEndian.Uint32(arg) }
	var err error
	switch {
	case req == ReqGetDriverVersion:
		put(DriverVersion)
	case req == ReqGetCardCount:
		h := c.host
		c.mu.Unlock()
		n := uint32(1)
		if h != nil {
			n = h.countFamily(chip)
		}
		c.mu.Lock()
		put(n)
	case req == ReqGetModulesMask:
		put(c.present)
	case req == ReqGetBoardVersion:
		put(c.board)
	case req == ReqResetBoard:
		c.stats.Resets++
		if chip {
			c.initChipLocked()
		}
	case req == ReqGetModulesStatus:
		if !chip {
			put(c.enabled & c.healthy)
			break
		}
		// Busy-wait for SENSOR_READY, 1000 × 1 ms, then status or 0.
		clock := c.clock
		ready := false
		for i := 0; i < sensorPollAttempts; i++ {
			if !c.sensorNever && !clock.Now().Before(c.sensorReadyAt) {
				ready = true
				break
			}
			c.stats.SensorWaits++
			c.mu.Unlock()
			clock.Sleep(sensorPollInterval)
			c.mu.Lock()
		}
		if ready {
			put(c.present & c.healthy)
		} else {
			put(0)
		}
	case req == ReqGetSerial:
		if chip {
			clear(arg[:SerialBufferSize])
			copy(arg, c.o.Serial[:11])
		} else {
			err = syscall.ENOTTY
		}
	case req == ReqGetQRNGMode || req == ReqGetCurrentQRNGMode:
		if chip {
			put(c.mode)
		} else {
			err = syscall.ENOTTY
		}
	case req == ReqSetQRNGMode:
		switch {
		case !chip:
			err = syscall.ENOTTY
		case get() > ModeSample:
			err = syscall.EINVAL
		default:
			c.mode = get()
			c.initChipLocked()
		}
	case chip && (req == ReqEnableModule || req == ReqDisableModule || req == ReqGetAIS31Flag ||
		req == ReqClearAIS31Flag || req == ReqGetPCIBusDeviceID):
		err = syscall.EINVAL
	case req == ReqEnableModule:
		c.enabled |= get() & c.present
	case req == ReqDisableModule:
		c.enabled &^= get()
	case req == ReqGetAIS31Flag:
		if c.ais31 {
			put(1)
		} else {
			put(0)
		}
	case req == ReqClearAIS31Flag:
		c.ais31 = false
	case req == ReqGetPCIBusDeviceID:
		put(0x0300)
	default:
		err = syscall.ENOTTY
	}
	c.mu.Unlock()
	return err
}
