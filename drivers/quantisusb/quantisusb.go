// Package quantisusb is the driver for ID Quantique Quantis USB-4M QRNGs
// (kind "quantis-usb"), over github.com/google/gousb (cgo, libusb-1.0).
//
// The protocol follows the vendor library (shared/reference/hardware.md §1):
// devices 0aba:0102 are selected by the iSerialNumber string, configuration
// 1 is selected and interface 0 claimed, and random bytes are read from the
// bulk IN endpoint 0x86 in whole 512-byte packets. Module state comes from
// vendor control requests 0x10–0x18 (bmRequestType 0xC1 IN, 0x41 OUT);
// every control and bulk transfer has the vendor's 1000 ms timeout.
//
// # Module-status checks and their trade-off
//
// The vendor library sends GET_MODULES_STATUS before every 512-byte bulk
// transfer. This driver reads Options.TransferSize bytes (a multiple of 512,
// default 8192) per bulk transfer and checks the status after each transfer
// as well as before the first one, releasing a transfer's bytes only when
// the status read after it is OK. Every byte handed out is therefore
// bracketed by two good status reads, as with the vendor library (which
// only checks before), but a module failure can cost up to TransferSize
// bytes of discarded data instead of 512 and is noticed up to one transfer
// later. TransferSize 512 gives exactly the vendor's one control request
// per packet. BenchmarkUSBRead measures both through the emulated device.
//
// # Disconnects
//
// When the device goes away Read returns an error wrapping
// entropy.ErrDisconnected and releases the libusb handle. Reconnect polls
// (Options.PollInterval, honouring ctx) with a fresh libusb context until a
// device with the same serial appears, then re-opens it. libusb hotplug is
// not used: gousb v1.1.3 exposes no hotplug API, and a fresh context
// re-enumerates without relying on udev events (which containers and
// umockdev do not deliver). The engine re-runs its start-up tests before
// trusting the source again.
package quantisusb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
)

// Kind is the `kind:` of Quantis USB sources.
const Kind = "quantis-usb"

// Device constants (QuantisUsb_Commands.h, Quantis_Internal.h).
const (
	DefaultVendorID  = 0x0ABA
	DefaultProductID = 0x0102

	endpointIn = 0x86
	packetSize = 512

	reqBoardVersion = 0x10
	reqDisable      = 0x11
	reqEnable       = 0x12
	reqStatus       = 0x13
	reqPower        = 0x14
	reqMask         = 0x15
	reqRate         = 0x16
	reqAIS31Get     = 0x17
	reqAIS31Clear   = 0x18

	rtVendorIn  = 0xC1 // vendor | interface | IN
	rtVendorOut = 0x41 // vendor | interface | OUT

	// NominalRate is QUANTIS_MODULE_DATA_RATE: 500000 B/s (4 Mbit/s).
	NominalRate = 500000

	// DefaultMinEntropy is the credited min-entropy per byte when the
	// configuration gives none: 7 of 8 bits. The vendor presents the
	// output as full entropy; this default keeps a margin until an SP
	// 800-90B assessment of the actual device is configured.
	DefaultMinEntropy = 7.0

	// DefaultTransferSize is the bulk transfer size (16 packets).
	DefaultTransferSize = 16 * packetSize
	maxTransferSize     = 128 * packetSize

	// resetDiscard is what the vendor reset sequence reads and drops.
	resetDiscard = 4096
)

// Errors of this package; match with errors.Is.
var (
	ErrNotFound    = errors.New("drivers/quantisusb: device not found")
	ErrPermission  = errors.New("drivers/quantisusb: permission denied")
	ErrBusy        = errors.New("drivers/quantisusb: interface claimed by another program (another qrngd, or the vendor's tools)")
	ErrModule      = errors.New("drivers/quantisusb: module status error")
	ErrStall       = errors.New("drivers/quantisusb: endpoint stalled")
	ErrShortRead   = errors.New("drivers/quantisusb: short bulk transfer")
	ErrTimeout     = errors.New("drivers/quantisusb: transfer timed out")
	ErrUnsupported = errors.New("drivers/quantisusb: unsupported device")
	ErrProtocol    = errors.New("drivers/quantisusb: protocol error")
)

// UdevRule is the rule file the deployment kit installs to give the qrngd
// user access to the device nodes; permission errors name it.
const UdevRule = "systemd/99-qrngd.rules"

// ModuleError is returned (wrapping ErrModule) when GET_MODULES_STATUS
// reports a failed or disabled module. Reset may recover it.
type ModuleError struct {
	Status byte
}

func (e *ModuleError) Error() string {
	return fmt.Sprintf("drivers/quantisusb: module status 0x%02x (want 0x01): module failed or disabled", e.Status)
}

// Unwrap makes errors.Is(err, ErrModule) true.
func (e *ModuleError) Unwrap() error { return ErrModule }

// Options configure Open. The zero value (or nil) selects the only Quantis
// USB present.
type Options struct {
	VendorID  uint16 // default 0x0ABA
	ProductID uint16 // default 0x0102
	// Serial selects the device by its iSerialNumber string. Empty
	// accepts a single device and fails if several are present.
	Serial string
	// TransferSize is the bulk transfer size, a multiple of 512 up to
	// 65536; default 8192. See the package documentation.
	TransferSize int
	// MinEntropy is the credited H per byte; default DefaultMinEntropy.
	MinEntropy float64
	// PollInterval is how often Reconnect looks for the device; default
	// 500 ms, 10 ms..1 min.
	PollInterval time.Duration
	// ResetSettle is the wait after re-enabling the module in Reset;
	// default 1 s as in the vendor library.
	ResetSettle time.Duration
	Logger      *slog.Logger // default: discard
}

func (o *Options) resolve() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.VendorID == 0 {
		r.VendorID = DefaultVendorID
	}
	if r.ProductID == 0 {
		r.ProductID = DefaultProductID
	}
	if r.TransferSize == 0 {
		r.TransferSize = DefaultTransferSize
	}
	if r.TransferSize < packetSize || r.TransferSize > maxTransferSize || r.TransferSize%packetSize != 0 {
		return r, fmt.Errorf("drivers/quantisusb: transfer size %d: want a multiple of %d in %d..%d", r.TransferSize, packetSize, packetSize, maxTransferSize)
	}
	if r.MinEntropy == 0 {
		r.MinEntropy = DefaultMinEntropy
	}
	if !(r.MinEntropy > 0 && r.MinEntropy <= 8) {
		return r, fmt.Errorf("drivers/quantisusb: min-entropy %v: want 0 < H <= 8", r.MinEntropy)
	}
	if r.PollInterval == 0 {
		r.PollInterval = 500 * time.Millisecond
	}
	if r.PollInterval < 10*time.Millisecond || r.PollInterval > time.Minute {
		return r, fmt.Errorf("drivers/quantisusb: poll interval %v: want 10ms..1m", r.PollInterval)
	}
	if r.ResetSettle == 0 {
		r.ResetSettle = time.Second
	}
	if r.ResetSettle < 0 || r.ResetSettle > 10*time.Second {
		return r, fmt.Errorf("drivers/quantisusb: reset settle %v: want 0..10s", r.ResetSettle)
	}
	if len(r.Serial) > 126 {
		return r, fmt.Errorf("drivers/quantisusb: serial of %d characters: a USB string holds at most 126", len(r.Serial))
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Status is the module state read through the vendor requests.
type Status struct {
	BoardVersion uint32 // GET_BOARD_VERSION
	ModulesMask  byte   // GET_MODULES_MASK (bit 0: the one module)
	ModuleStatus byte   // GET_MODULES_STATUS (1 = OK)
	ModulesPower byte   // GET_MODULES_POWER
	RateKbit     uint32 // GET_MODULES_RATE, kbit/s per module
	// AIS31StartupRequested is the AIS31 start-up-tests-request flag.
	AIS31StartupRequested bool
}

// RateBytes is the data rate in bytes/s the vendor library computes:
// rate*1000/8 per enabled module in the mask.
func (s Status) RateBytes() int64 {
	return int64(s.RateKbit) * 1000 / 8 * int64(bits.OnesCount8(s.ModulesMask))
}

// Source is one opened Quantis USB. It implements entropy.Source and
// entropy.Reconnector; its methods are safe for concurrent use (calls are
// serialised).
type Source struct {
	opts Options
	log  *slog.Logger
	life context.Context // cancelled by Close to abort blocking calls
	kill context.CancelFunc

	mu           sync.Mutex
	name         string
	info         entropy.SourceInfo // written under mu and infoMu
	bus          usbBus
	dev          usbDev
	raw          []byte // one bulk transfer
	buf          []byte // checked bytes not yet handed out
	fresh        bool   // last status read OK and no transfer since
	pending      error  // error to report after a partial Read
	disconnected bool
	closed       bool

	// infoMu guards info for Info, which must not wait behind a blocked
	// Read or a Reconnect polling for an absent device (both hold mu).
	infoMu sync.Mutex
}

var (
	_ entropy.Source      = (*Source)(nil)
	_ entropy.Reconnector = (*Source)(nil)
)

// Open finds the device, selects configuration 1, claims interface 0 and
// reads the board version. name is the source name for Info.
func Open(ctx context.Context, name string, o *Options) (*Source, error) {
	opts, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("drivers/quantisusb: empty source name")
	}
	life, kill := context.WithCancel(context.Background())
	s := &Source{opts: opts, name: name, log: opts.Logger.With("source", name), life: life, kill: kill,
		raw: make([]byte, opts.TransferSize)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		kill()
		return nil, err
	}
	return s, nil
}

// connect opens the device with s.opts' IDs and serial; s.mu is held.
func (s *Source) connect(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	bus, err := openBus()
	if err != nil {
		return err
	}
	devs, openErr := bus.openAll(s.opts.VendorID, s.opts.ProductID)
	var chosen usbDev
	var serial string
	var serials []string
	for _, d := range devs {
		sn, err := d.serial()
		if err != nil {
			b, a := d.busAddr()
			s.log.Warn("quantis-usb: cannot read serial", "path", usbPath(b, a), "err", err)
			d.close()
			continue
		}
		serials = append(serials, sn)
		if chosen == nil && (s.opts.Serial == "" || sn == s.opts.Serial) {
			chosen, serial = d, sn
			continue
		}
		d.close()
	}
	ids := fmt.Sprintf("%04x:%04x", s.opts.VendorID, s.opts.ProductID)
	switch {
	case chosen != nil && s.opts.Serial == "" && len(serials) > 1:
		chosen.close()
		bus.close()
		sort.Strings(serials)
		return fmt.Errorf("drivers/quantisusb: %d devices %s present (serials %s): set `serial`", len(serials), ids, strings.Join(serials, ", "))
	case chosen == nil && errors.Is(openErr, ErrPermission):
		bus.close()
		return fmt.Errorf("%w opening a USB device %s: install the udev rule %s (to /etc/udev/rules.d/, then `udevadm control --reload && udevadm trigger`) and run qrngd as a member of its group: %v",
			ErrPermission, ids, UdevRule, openErr)
	case chosen == nil:
		bus.close()
		want := "any serial"
		if s.opts.Serial != "" {
			want = fmt.Sprintf("serial %q", s.opts.Serial)
		}
		have := "none present"
		if len(serials) > 0 {
			sort.Strings(serials)
			have = "present: " + strings.Join(serials, ", ")
		}
		if openErr != nil {
			have += fmt.Sprintf("; open error: %v", openErr)
		}
		return fmt.Errorf("%w: %s with %s (%s)", ErrNotFound, ids, want, have)
	}
	if err := chosen.claim(); err != nil {
		chosen.close()
		bus.close()
		return fmt.Errorf("drivers/quantisusb: %s %q: %w", ids, serial, err)
	}
	var ver [4]byte
	if err := s.controlIn(ctx, chosen, reqBoardVersion, ver[:]); err != nil {
		chosen.close()
		bus.close()
		return fmt.Errorf("drivers/quantisusb: %s %q: board version: %w", ids, serial, err)
	}
	b, a := chosen.busAddr()
	s.bus, s.dev = bus, chosen
	s.buf, s.fresh, s.pending, s.disconnected = nil, false, nil, false
	s.opts.Serial = serial // a reconnect must find this very device
	s.infoMu.Lock()
	s.info = entropy.SourceInfo{
		Name: s.name, Kind: Kind, Vendor: "ID Quantique", Model: "Quantis USB-4M",
		Serial: serial, BoardVersion: fmt.Sprintf("0x%08x", le32(ver[:])),
		Path: usbPath(b, a), SampleBits: 8, NominalRate: NominalRate, MinEntropy: s.opts.MinEntropy,
	}
	s.infoMu.Unlock()
	s.log.Info("quantis-usb: opened", "serial", serial, "path", s.info.Path, "board_version", s.info.BoardVersion)
	return nil
}

func usbPath(bus, addr int) string { return fmt.Sprintf("usb:%d:%d", bus, addr) }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// controlIn reads exactly len(p) bytes with a vendor IN request.
func (s *Source) controlIn(ctx context.Context, d usbDev, req uint8, p []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := d.control(rtVendorIn, req, 0, 0, p)
	if err != nil {
		return fmt.Errorf("request 0x%02x: %w", req, err)
	}
	if n != len(p) {
		return fmt.Errorf("%w: request 0x%02x returned %d bytes, want %d", ErrProtocol, req, n, len(p))
	}
	return nil
}

func (s *Source) controlOut(ctx context.Context, req uint8) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.dev.control(rtVendorOut, req, 0, 0, nil); err != nil {
		return fmt.Errorf("request 0x%02x: %w", req, err)
	}
	return nil
}

// Info describes the device. It never waits for Read or Reconnect.
func (s *Source) Info() entropy.SourceInfo {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	return s.info
}

// withLife derives a context that Close also cancels.
func (s *Source) withLife(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// usable reports why the source cannot do I/O; s.mu is held.
func (s *Source) usable() error {
	switch {
	case s.closed:
		return fmt.Errorf("drivers/quantisusb: %s: %w", s.name, entropy.ErrClosed)
	case s.disconnected:
		return fmt.Errorf("drivers/quantisusb: %s (serial %q): %w", s.name, s.opts.Serial, entropy.ErrDisconnected)
	}
	return nil
}

// fail post-processes an I/O error; s.mu is held. A lost device releases
// the libusb handle and context so that Reconnect can start afresh.
func (s *Source) fail(ctx context.Context, err error) error {
	if errors.Is(err, errCancelled) || (ctx.Err() != nil && !errors.Is(err, entropy.ErrDisconnected)) {
		if s.closed || s.life.Err() != nil {
			return fmt.Errorf("drivers/quantisusb: %s: %w", s.name, entropy.ErrClosed)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	s.fresh = false
	if errors.Is(err, entropy.ErrDisconnected) {
		s.log.Warn("quantis-usb: device disconnected", "serial", s.opts.Serial, "path", s.info.Path)
		s.release()
		s.disconnected = true
	}
	return fmt.Errorf("drivers/quantisusb: %s (serial %q): %w", s.name, s.opts.Serial, err)
}

func (s *Source) release() {
	if s.dev != nil {
		s.dev.close()
		s.dev = nil
	}
	if s.bus != nil {
		s.bus.close()
		s.bus = nil
	}
	s.buf = nil
}

// Read fills p with random bytes. It returns what it has when an error
// follows a partial read, and reports the error on the next call.
func (s *Source) Read(ctx context.Context, p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return 0, err
	}
	if err := s.pending; err != nil {
		s.pending = nil
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := s.withLife(ctx)
	defer cancel()
	n := 0
	for n < len(p) {
		if len(s.buf) > 0 {
			c := copy(p[n:], s.buf)
			s.buf = s.buf[c:]
			n += c
			continue
		}
		if err := s.fill(ctx); err != nil {
			err = s.fail(ctx, err)
			if n > 0 {
				s.pending = err
				return n, nil
			}
			return 0, err
		}
	}
	return n, nil
}

// fill performs one checked bulk transfer into s.buf; s.mu is held.
func (s *Source) fill(ctx context.Context) error {
	if !s.fresh {
		if err := s.checkStatus(ctx); err != nil {
			return err
		}
	}
	s.fresh = false
	if err := ctx.Err(); err != nil {
		return err
	}
	tctx, cancel := context.WithTimeout(ctx, ioTimeout)
	n, err := s.dev.bulkIn(tctx, s.raw)
	timedOut := tctx.Err() != nil && ctx.Err() == nil
	cancel()
	switch {
	case err != nil && timedOut:
		return fmt.Errorf("%w: no data from endpoint 0x86 within %v", ErrTimeout, ioTimeout)
	case errors.Is(err, ErrStall):
		// Clear the halt so that the next Read can proceed; the data of
		// this transfer is lost and the error is reported.
		if _, cerr := s.dev.control(0x02, 0x01, 0, endpointIn, nil); cerr != nil {
			return fmt.Errorf("bulk 0x86: %w; clear halt: %v", err, cerr)
		}
		return fmt.Errorf("bulk 0x86: %w (halt cleared)", err)
	case err != nil:
		return fmt.Errorf("bulk 0x86: %w", err)
	case n != len(s.raw):
		return fmt.Errorf("%w: %d of %d bytes", ErrShortRead, n, len(s.raw))
	}
	if err := s.checkStatus(ctx); err != nil {
		return fmt.Errorf("%w (the %d bytes of the last transfer were discarded)", err, n)
	}
	s.fresh = true
	s.buf = s.raw[:n]
	return nil
}

func (s *Source) checkStatus(ctx context.Context) error {
	var st [1]byte
	if err := s.controlIn(ctx, s.dev, reqStatus, st[:]); err != nil {
		return fmt.Errorf("module status: %w", err)
	}
	if st[0] == 0 {
		return &ModuleError{Status: st[0]}
	}
	return nil
}

// Status reads board version, modules mask, status, power and rate and the
// AIS31 start-up flag.
func (s *Source) Status(ctx context.Context) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return Status{}, err
	}
	ctx, cancel := s.withLife(ctx)
	defer cancel()
	var st Status
	var b4 [4]byte
	var b1 [1]byte
	for _, q := range []struct {
		req uint8
		p   []byte
		set func()
	}{
		{reqBoardVersion, b4[:], func() { st.BoardVersion = le32(b4[:]) }},
		{reqMask, b1[:], func() { st.ModulesMask = b1[0] }},
		{reqStatus, b1[:], func() { st.ModuleStatus = b1[0] }},
		{reqPower, b1[:], func() { st.ModulesPower = b1[0] }},
		{reqRate, b4[:], func() { st.RateKbit = le32(b4[:]) }},
		{reqAIS31Get, b1[:], func() { st.AIS31StartupRequested = b1[0] != 0 }},
	} {
		if err := s.controlIn(ctx, s.dev, q.req, q.p); err != nil {
			return st, s.fail(ctx, err)
		}
		q.set()
	}
	return st, nil
}

// ClearAIS31StartupRequest clears the device's AIS31 start-up-tests-request
// flag; call it once the start-up tests have passed.
func (s *Source) ClearAIS31StartupRequest(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	ctx, cancel := s.withLife(ctx)
	defer cancel()
	if err := s.controlOut(ctx, reqAIS31Clear); err != nil {
		return s.fail(ctx, err)
	}
	return nil
}

// Reset runs the vendor reset sequence: module disable (0x11), enable
// (0x12), wait ResetSettle, then read and discard 4096 bytes. It clears a
// transient module error.
func (s *Source) Reset(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	ctx, cancel := s.withLife(ctx)
	defer cancel()
	s.buf, s.fresh, s.pending = nil, false, nil
	for _, req := range []uint8{reqDisable, reqEnable} {
		if err := s.controlOut(ctx, req); err != nil {
			return s.fail(ctx, fmt.Errorf("reset: %w", err))
		}
	}
	t := time.NewTimer(s.opts.ResetSettle)
	select {
	case <-ctx.Done():
		t.Stop()
		return s.fail(ctx, ctx.Err())
	case <-t.C:
	}
	for discarded := 0; discarded < resetDiscard; {
		if err := s.fill(ctx); err != nil {
			return s.fail(ctx, fmt.Errorf("reset: %w", err))
		}
		discarded += len(s.buf)
		s.buf = nil
	}
	s.log.Info("quantis-usb: module reset", "serial", s.opts.Serial)
	return nil
}

// Reconnect waits for the device with the same serial to come back and
// re-opens it. It returns nil at once if the device is still connected.
// It polls every Options.PollInterval until ctx ends; a permission error
// or an unsupported device ends it early.
func (s *Source) Reconnect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("drivers/quantisusb: %s: %w", s.name, entropy.ErrClosed)
	}
	if !s.disconnected {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := s.withLife(ctx)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			if s.life.Err() != nil {
				return fmt.Errorf("drivers/quantisusb: %s: %w", s.name, entropy.ErrClosed)
			}
			return ctx.Err()
		case <-t.C:
		}
		err := s.connect(ctx)
		if err == nil {
			s.log.Info("quantis-usb: reconnected", "serial", s.opts.Serial, "attempts", attempt)
			return nil
		}
		if errors.Is(err, ErrPermission) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrBusy) {
			return err
		}
		s.log.Debug("quantis-usb: waiting for device", "serial", s.opts.Serial, "err", err)
		t.Reset(s.opts.PollInterval)
	}
}

// Close releases the device. It aborts a blocked Read or Reconnect.
func (s *Source) Close() error {
	s.kill()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.dev != nil {
		err = s.dev.close()
		s.dev = nil
	}
	if s.bus != nil {
		err = errors.Join(err, s.bus.close())
		s.bus = nil
	}
	return err
}

// Discover lists the Quantis USB devices (default IDs) on the host.
func Discover(ctx context.Context) ([]drivers.Device, error) {
	return discover(ctx, DefaultVendorID, DefaultProductID)
}

func discover(ctx context.Context, vid, pid uint16) ([]drivers.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bus, err := openBus()
	if err != nil {
		return nil, err
	}
	defer bus.close()
	devs, openErr := bus.openAll(vid, pid)
	var out []drivers.Device
	for _, d := range devs {
		sn, err := d.serial()
		b, a := d.busAddr()
		d.close()
		if err != nil {
			openErr = errors.Join(openErr, fmt.Errorf("serial of %s: %w", usbPath(b, a), err))
			continue
		}
		out = append(out, drivers.Device{Kind: Kind, VendorID: vid, ProductID: pid, Serial: sn,
			Path: usbPath(b, a), Model: "Quantis USB-4M"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	if errors.Is(openErr, ErrPermission) {
		openErr = fmt.Errorf("%w (install the udev rule %s): %w", ErrPermission, UdevRule, openErr)
	}
	if openErr != nil {
		return out, fmt.Errorf("drivers/quantisusb: discover: %w", openErr)
	}
	return out, nil
}
