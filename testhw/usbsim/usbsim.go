// Package usbsim emulates ID Quantique Quantis USB-4M devices underneath the
// real gousb → libusb → usbdevfs code path, for tests run under umockdev
// (`umockdev-run -- ./pkg.test`).
//
// A Bus writes the devices into the umockdev testbed ($UMOCKDEV_DIR): the
// sysfs tree libusb enumerates through libudev, and the usbfs device node.
// Each plugged Device serves the umockdev ioctl socket protocol at
// $UMOCKDEV_DIR/ioctl/dev/bus/usb/001/NNN from goroutines of the test
// process: the preload library forwards every ioctl the program makes on the
// node (GET_CAPABILITIES, CLAIM/RELEASEINTERFACE, SETCONFIGURATION,
// SUBMITURB, DISCARDURB, REAPURB[NDELAY], ...) and the Device answers them,
// reading and writing the program's memory through the socket. Go's own
// socket and file calls are raw syscalls, so the preload does not redirect
// them.
//
// The Device models the Quantis vendor requests 0x10–0x18, a bulk stream of
// seeded ChaCha8 bytes on endpoint 0x86, and faults: module error status,
// endpoint halt (-EPIPE until cleared), short packets, a stream that never delivers, and
// unplug/replug. Unplug removes the device from the testbed and answers
// every further ioctl on open handles with ENODEV, and completes in-flight
// URBs with -ESHUTDOWN, as the kernel does. No uevent is sent (libusb's
// hotplug monitor is not needed: a fresh libusb context re-enumerates the
// testbed).
package usbsim

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// SkipMessage says how to run tests that need the emulated device.
const SkipMessage = "needs the umockdev testbed (UMOCKDEV_DIR is unset): run `make test-usb`, or " +
	"`go test -c -o /tmp/quantisusb.test ./drivers/quantisusb && umockdev-run -- /tmp/quantisusb.test -test.run USB -test.v` " +
	"(Debian packages umockdev and libusb-1.0-0-dev)"

// Root returns the umockdev testbed directory, or "" when the process does
// not run under umockdev-run.
func Root() string { return os.Getenv("UMOCKDEV_DIR") }

// ErrNoTestbed: the process does not run under umockdev-run.
var ErrNoTestbed = errors.New("usbsim: UMOCKDEV_DIR is unset; " + SkipMessage)

// Bus is USB bus 1 of the testbed, behind an emulated xHCI root hub.
type Bus struct {
	root string

	mu       sync.Mutex
	nextAddr int
	ports    map[int]*Device
}

// NewBus prepares bus 1 in the testbed at root (normally Root()).
func NewBus(root string) (*Bus, error) {
	if root == "" {
		return nil, ErrNoTestbed
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("usbsim: testbed %q is not a directory: %v", root, err)
	}
	b := &Bus{root: root, nextAddr: 2, ports: map[int]*Device{}}
	if err := b.writeRootHub(); err != nil {
		return nil, fmt.Errorf("usbsim: root hub: %w", err)
	}
	return b, nil
}

// DeviceConfig describes one emulated Quantis USB.
type DeviceConfig struct {
	Serial       string // iSerialNumber string; required, 1..64 printable ASCII
	VendorID     uint16 // default 0x0ABA
	ProductID    uint16 // default 0x0102
	Seed         uint64 // of the ChaCha8 bulk stream (see Stream)
	BoardVersion uint32 // answer to GET_BOARD_VERSION; default 0x00010203
	RateKbit     uint32 // answer to GET_MODULES_RATE (kbit/s); default 4000
	AIS31Flag    bool   // initial AIS31 start-up-tests-request flag
	// Unconfigured presents the device with no active configuration, so
	// the host must SETCONFIGURATION 1.
	Unconfigured bool
}

// Stream returns the bytes a device with this seed serves on endpoint 0x86,
// in order, when no fault discards any.
func Stream(seed uint64) io.Reader {
	var key [32]byte
	for i := 0; i < 4; i++ {
		for j := 0; j < 8; j++ {
			key[i*8+j] = byte(seed >> (8 * j))
		}
		key[i*8] ^= byte(i + 1)
	}
	return rand.NewChaCha8(key)
}

// Plug connects a new device at the next free port and address.
func (b *Bus) Plug(cfg DeviceConfig) (*Device, error) {
	if cfg.Serial == "" || len(cfg.Serial) > 64 {
		return nil, fmt.Errorf("usbsim: serial %q: want 1..64 characters", cfg.Serial)
	}
	for _, c := range cfg.Serial {
		if c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("usbsim: serial %q: want printable ASCII", cfg.Serial)
		}
	}
	if cfg.VendorID == 0 {
		cfg.VendorID = VendorID
	}
	if cfg.ProductID == 0 {
		cfg.ProductID = ProductID
	}
	if cfg.BoardVersion == 0 {
		cfg.BoardVersion = 0x00010203
	}
	if cfg.RateKbit == 0 {
		cfg.RateKbit = 4000
	}
	d := &Device{bus: b, cfg: cfg, stream: Stream(cfg.Seed), enabled: true, ais31: cfg.AIS31Flag}
	if err := d.plug(); err != nil {
		return nil, err
	}
	return d, nil
}

// Close unplugs every device still on the bus.
func (b *Bus) Close() error {
	b.mu.Lock()
	var devs []*Device
	for _, d := range b.ports {
		devs = append(devs, d)
	}
	b.mu.Unlock()
	var errs []error
	for _, d := range devs {
		errs = append(errs, d.Unplug())
	}
	return errors.Join(errs...)
}

// Device is one emulated Quantis USB. Its methods are safe for concurrent use.
type Device struct {
	bus *Bus
	cfg DeviceConfig

	mu       sync.Mutex
	plugged  bool
	port     int
	addr     int
	sys      sysDevice
	ln       *net.UnixListener
	conns    map[*conn]bool
	stream   io.Reader
	enabled  bool
	ais31    bool
	modErr   bool // module reports status 0
	modStick bool // module error survives disable/enable
	halted   bool // endpoint 0x86 halted: bulk URBs stall until cleared
	shorts   int  // bulk URBs still to complete short
	shortLen int
	hold     bool // bulk URBs stay pending
	busy     bool // CLAIMINTERFACE fails with EBUSY
	holdCh   chan struct{}
	stats    Stats
}

// Stats counts what the host did. Requests counts control transfers by
// bRequest for the vendor requests 0x10..0x18.
type Stats struct {
	BulkURBs      int
	BulkBytes     int64 // bytes delivered on endpoint 0x86
	ControlURBs   int
	Requests      [0x19]int
	SetConfig     []int // values passed to SETCONFIGURATION
	Claims        int
	Releases      int
	Discards      int
	ClearHalts    int
	ENODEVReplies int
}

// Serial is the device's serial number.
func (d *Device) Serial() string { return d.cfg.Serial }

// Addr returns the bus number and the current device address (a replug
// assigns a new address, as the kernel does).
func (d *Device) Addr() (bus, addr int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return 1, d.addr
}

// Stats returns a copy of the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.SetConfig = append([]int(nil), d.stats.SetConfig...)
	return s
}

// SetModuleError makes GET_MODULES_STATUS report 0 (module failed). If
// survivesReset is false, the vendor reset sequence (disable, enable)
// clears it.
func (d *Device) SetModuleError(on, survivesReset bool) {
	d.mu.Lock()
	d.modErr, d.modStick = on, survivesReset
	d.mu.Unlock()
}

// StallBulk halts endpoint 0x86: bulk URBs fail with -EPIPE until the host
// clears the halt (USBDEVFS_CLEAR_HALT or a standard CLEAR_FEATURE
// ENDPOINT_HALT request), as on real hardware.
func (d *Device) StallBulk() {
	d.mu.Lock()
	d.halted = true
	d.mu.Unlock()
}

// ShortBulk makes the next n bulk URBs complete with only length bytes.
func (d *Device) ShortBulk(n, length int) {
	d.mu.Lock()
	d.shorts, d.shortLen = n, length
	d.mu.Unlock()
}

// HoldBulk keeps bulk URBs pending (the device sends nothing) until
// released with HoldBulk(false) or discarded by the host. With on, the
// returned channel is closed when the first URB is held.
func (d *Device) HoldBulk(on bool) <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hold = on
	d.holdCh = nil
	if on {
		d.holdCh = make(chan struct{})
	}
	return d.holdCh
}

// SetClaimed makes CLAIMINTERFACE fail with EBUSY, as when another
// program holds the interface.
func (d *Device) SetClaimed(on bool) {
	d.mu.Lock()
	d.busy = on
	d.mu.Unlock()
}

// SetAIS31Flag sets the AIS31 start-up-tests-request flag.
func (d *Device) SetAIS31Flag(on bool) {
	d.mu.Lock()
	d.ais31 = on
	d.mu.Unlock()
}

// Plugged reports whether the device is on the bus.
func (d *Device) Plugged() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plugged
}

func (d *Device) plug() error {
	b := d.bus
	b.mu.Lock()
	port := 1
	for b.ports[port] != nil {
		port++
	}
	addr := b.nextAddr
	b.nextAddr++
	if b.nextAddr > 127 {
		b.nextAddr = 2
	}
	b.ports[port] = d
	b.mu.Unlock()

	sys := quantisSysDevice(d.cfg, port, addr)
	sock := filepath.Join(b.root, "ioctl", "dev", sys.devNode)
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		return err
	}
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err == nil {
		err = b.writeDevice(sys)
	}
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		b.mu.Lock()
		delete(b.ports, port)
		b.mu.Unlock()
		return fmt.Errorf("usbsim: plug %s: %w", d.cfg.Serial, err)
	}
	d.mu.Lock()
	d.plugged, d.port, d.addr, d.sys, d.ln = true, port, addr, sys, ln
	d.conns = map[*conn]bool{}
	d.mu.Unlock()
	go d.accept(ln)
	return nil
}

// Unplug removes the device: it vanishes from sysfs and /dev, in-flight
// URBs complete with -ESHUTDOWN, and every later ioctl on a handle that is
// still open fails with ENODEV.
func (d *Device) Unplug() error {
	d.mu.Lock()
	if !d.plugged {
		d.mu.Unlock()
		return nil
	}
	d.plugged = false
	for c := range d.conns {
		c.disconnect()
	}
	ln, sys, port := d.ln, d.sys, d.port
	d.ln = nil
	d.mu.Unlock()

	ln.Close() // removes the socket file
	err := d.bus.removeDevice(sys)
	d.bus.mu.Lock()
	delete(d.bus.ports, port)
	d.bus.mu.Unlock()
	return err
}

// Replug connects the device again after Unplug, at a new address. Module
// state, the AIS31 flag and the stream position persist; faults are
// cleared except a module error that survives resets.
func (d *Device) Replug() error {
	d.mu.Lock()
	if d.plugged {
		d.mu.Unlock()
		return fmt.Errorf("usbsim: replug %s: still plugged", d.cfg.Serial)
	}
	d.halted, d.shorts, d.hold = false, 0, false
	if !d.modStick {
		d.modErr = false
	}
	d.mu.Unlock()
	return d.plug()
}

func (d *Device) accept(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		d.mu.Lock()
		if !d.plugged {
			d.mu.Unlock()
			c.Close()
			return
		}
		cn := &conn{dev: d, c: c}
		d.conns[cn] = true
		d.mu.Unlock()
		go func() {
			cn.serve()
			d.mu.Lock()
			delete(d.conns, cn)
			d.mu.Unlock()
		}()
	}
}
