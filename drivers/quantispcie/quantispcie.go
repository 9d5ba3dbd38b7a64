// Package quantispcie drives ID Quantique Quantis PCI/PCIe cards through the
// /dev/qrandomN character devices of IDQ's Linux drivers (kind
// "quantis-pcie"). Both driver families are supported (reference/hardware.md
// §2): the pci-module driver of the PCIe-4M/16M and the pcie-chip driver of
// the PCIe-40M/240M. The family is told apart by probing
// GET_CURRENT_QRNG_MODE, which only the chip driver answers.
//
// Configuration keys (`sources:` entry with `kind: quantis-pcie`):
//
//	dev_root            directory scanned for qrandomN nodes (default /dev)
//	device              node path, e.g. /dev/qrandom0
//	card                card index N, meaning <dev_root>/qrandomN
//	serial              card serial as hex (chip cards; 24 hex digits)
//	status_check_bytes  bytes read between module-status checks (default 1 MiB, 0 = before every read(2))
//	allow_degraded      keep reading while some (not all) modules are unhealthy (default false)
//	enable_modules      pci-module cards: enable every present module at open (default true)
//	reconnect_interval  poll interval while waiting for a vanished card (default 1s)
//
// At most one of device, card and serial may be set; with none, the single
// card under dev_root is used (several cards are an error asking to choose).
// min_entropy defaults to DefaultMinEntropy.
//
// Module-status check frequency. IDQ's library calls GET_MODULES_STATUS
// once per QuantisRead call, whatever its size (up to 16 MiB). The driver
// checks after open and reset, after every read error, and then once every
// status_check_bytes bytes (default 1 MiB: about 30 checks a second at the
// 240M's nominal 30 MB/s, two seconds apart on a PCIe-4M). Checking before
// every read(2) would double the system calls and, on the chip driver,
// whose status request busy-waits up to a second for the sensor, could stall
// reads. The trade-off: on a chip card, whose read keeps delivering data
// after a chip fails, up to status_check_bytes bytes read after a failure
// and before the next check can reach the engine; the engine's per-source
// health tests still gate them, and the pci-module driver itself fails
// read(2) with EIO on a module error, which the driver turns into a
// ModuleError at once.
package quantispcie

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
)

// Kind is the configuration kind of this driver.
const Kind = "quantis-pcie"

// Vendor is reported in SourceInfo.
const Vendor = "ID Quantique"

// DefaultMinEntropy is the credited min-entropy per byte when the
// configuration gives none: a conservative credit for the card's
// post-processed output, to be replaced by a site assessment
// (qrngctl assess). It is policy, not a vendor figure.
const DefaultMinEntropy = 6.0

// UdevRule is the rule file of the deployment kit that grants the qrngd group
// access to the qrandom* nodes.
const UdevRule = "systemd/99-qrngd.rules (installed as /etc/udev/rules.d/99-qrngd.rules)"

const (
	maxReadSize        = 16 << 20 // QUANTIS_MAX_READ_SIZE: one Read fills at most this
	moduleRate         = 500000   // QUANTIS_MODULE_DATA_RATE, bytes/s per pci module
	defaultStatusBytes = 1 << 20
	maxEINTR           = 1000 // consecutive EINTRs before giving up
	maxEmptyReads      = 8    // consecutive 0-byte reads before giving up
)

// Sentinel errors. Errors returned by the driver wrap one of these (or
// entropy.ErrDisconnected / entropy.ErrClosed).
var (
	ErrNotFound    = errors.New("drivers/quantispcie: device not found")
	ErrPermission  = errors.New("drivers/quantispcie: permission denied")
	ErrModule      = errors.New("drivers/quantispcie: module failure")
	ErrUnsupported = errors.New("drivers/quantispcie: not supported by this card's driver")
	ErrIO          = errors.New("drivers/quantispcie: I/O error")
	ErrMode        = errors.New("drivers/quantispcie: card is not in RNG mode")
)

// ModuleError reports a bad module status. It matches ErrModule.
type ModuleError struct {
	Path     string
	Expected uint32 // modules that should be healthy
	Status   uint32 // modules reported enabled and healthy
}

func (e *ModuleError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("drivers/quantispcie: %s: module failure: no module healthy (expected mask %#x; "+
			"a chip card answers 0 also when its sensor was not ready within 1 s)", e.Path, e.Expected)
	}
	return fmt.Sprintf("drivers/quantispcie: %s: module failure: status %#x, expected %#x (unhealthy %#x)",
		e.Path, e.Status, e.Expected, e.Expected&^e.Status)
}

// Unwrap makes errors.Is(err, ErrModule) true.
func (e *ModuleError) Unwrap() error { return ErrModule }

// Family is a Quantis Linux driver family.
type Family int

const (
	// FamilyPCIModule is the pci-module driver (PCIe-4M, PCIe-16M).
	FamilyPCIModule Family = iota
	// FamilyChip is the pcie-chip driver (PCIe-40M, PCIe-240M).
	FamilyChip
)

func (f Family) String() string {
	if f == FamilyChip {
		return "pcie-chip"
	}
	return "pci-module"
}

// CardInfo is what the driver learnt from the card's ioctls.
type CardInfo struct {
	Path           string
	Family         Family
	Model          string
	DriverVersion  uint32 // GET_DRIVER_VERSION; IDQ's library shows it divided by 10
	CardCount      uint32
	BoardVersion   uint32
	ModulesMask    uint32
	Serial         string // hex of the 12 raw serial bytes; "" if the driver has none
	AIS31Requested bool   // the card asked for start-up tests at open (pci-module); cleared by the driver
	NominalRate    float64
}

// Driver is the quantis-pcie driver. DevRoot overrides the default device
// directory (/dev) for discovery and is the default for dev_root.
type Driver struct {
	DevRoot string
}

func init() { drivers.MustRegister(&Driver{}) }

// Kind returns "quantis-pcie".
func (d *Driver) Kind() string { return Kind }

func (d *Driver) root() string {
	if d.DevRoot != "" {
		return d.DevRoot
	}
	return "/dev"
}

var nodeName = regexp.MustCompile(`^qrandom([0-9]+)$`)

// scan lists qrandomN nodes under root, by index. Like IDQ's library it goes
// by name (the placeholder files of the simulator are not char devices).
func scan(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("drivers/quantispcie: scan %s: %w", root, err)
	}
	type node struct {
		idx  int
		path string
	}
	var nodes []node
	for _, e := range ents {
		m := nodeName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		nodes = append(nodes, node{i, filepath.Join(root, e.Name())})
	}
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].idx < nodes[b].idx })
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.path
	}
	return out, nil
}

// Discover lists the cards under DevRoot. Cards that cannot be opened are
// still listed (path only) and their errors returned joined.
func (d *Driver) Discover(ctx context.Context) ([]drivers.Device, error) {
	paths, err := scan(d.root())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []drivers.Device
	var errs []error
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		dev := drivers.Device{Kind: Kind, Path: p}
		ci, err := probePath(p)
		if err != nil {
			errs = append(errs, err)
		} else {
			dev.Serial, dev.Model = ci.Serial, ci.Model
			dev.VendorID, dev.ProductID = pciIDs(ci)
		}
		out = append(out, dev)
	}
	return out, errors.Join(errs...)
}

// pciIDs are the PCI vendor/device IDs of the model (hardware.md §2).
func pciIDs(ci CardInfo) (uint16, uint16) {
	if ci.Family == FamilyPCIModule {
		return 0x179A, 0x0001
	}
	switch ci.Model {
	case "PCIe-40M":
		return 0x1E89, 0x0002
	case "PCIe-240M":
		return 0x1E89, 0x0003
	}
	return 0x1E89, 0
}

func probePath(path string) (CardInfo, error) {
	dev, err := openNode(path)
	if err != nil {
		return CardInfo{}, err
	}
	defer dev.Close()
	return probe(dev, path)
}

// openNode opens path and types the failure.
func openNode(path string) (device, error) {
	dev, err := openDevice(path)
	if err == nil {
		return dev, nil
	}
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return nil, fmt.Errorf("drivers/quantispcie: open %s: %w (%w): the qrngd user needs read access; "+
			"install the udev rule %s and add the service user to group qrngd", path, ErrPermission, err, UdevRule)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO):
		return nil, fmt.Errorf("drivers/quantispcie: open %s: %w (%w)", path, ErrNotFound, err)
	}
	return nil, fmt.Errorf("drivers/quantispcie: open %s: %w: %w", path, ErrIO, err)
}

// probe reads the identifying ioctls.
func probe(dev device, path string) (CardInfo, error) {
	ci := CardInfo{Path: path}
	fail := func(what string, err error) (CardInfo, error) {
		return CardInfo{}, fmt.Errorf("drivers/quantispcie: %s: %s: %w", path, what, ioErr(err))
	}
	var err error
	if ci.DriverVersion, err = getU32(dev, reqGetDriverVersion); err != nil {
		return fail("GET_DRIVER_VERSION", err)
	}
	if ci.CardCount, err = getU32(dev, reqGetCardCount); err != nil {
		return fail("GET_CARD_COUNT", err)
	}
	mode, err := getU32(dev, reqGetCurrentQRNGMode)
	switch {
	case err == nil:
		ci.Family = FamilyChip
	case errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL):
		ci.Family = FamilyPCIModule
	default:
		return fail("GET_CURRENT_QRNG_MODE", err)
	}
	if ci.ModulesMask, err = getU32(dev, reqGetModulesMask); err != nil {
		return fail("GET_MODULES_MASK", err)
	}
	if ci.ModulesMask == 0 {
		return CardInfo{}, &ModuleError{Path: path}
	}
	if ci.BoardVersion, err = getU32(dev, reqGetBoardVersion); err != nil {
		return fail("GET_BOARD_VERSION", err)
	}
	buf := make([]byte, serialBufferSize)
	switch err := dev.Ioctl(reqGetSerial, buf); {
	case err == nil:
		// 12 raw bytes from the batch/incremental/product registers; binary.
		ci.Serial = hex.EncodeToString(buf[:12])
	case errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL):
	default:
		return fail("GET_SERIAL", err)
	}
	n := bits.OnesCount32(ci.ModulesMask)
	if ci.Family == FamilyChip {
		if mode != 0 {
			return CardInfo{}, fmt.Errorf("drivers/quantispcie: %s: %w (QRNG mode %d, SAMPLE mode emits raw "+
				"samples; load quantis_chip_pcie with default_qrng_mode=0)", path, ErrMode, mode)
		}
		switch n {
		case 2:
			ci.Model, ci.NominalRate = "PCIe-40M", 40e6/8 // rate from the product name (unverified)
		case 12:
			ci.Model, ci.NominalRate = "PCIe-240M", 240e6/8
		default:
			ci.Model = fmt.Sprintf("Quantis PCIe chip card (%d chips)", n)
		}
	} else {
		ci.NominalRate = float64(moduleRate * n)
		switch n {
		case 1:
			ci.Model = "PCIe-4M"
		case 4:
			ci.Model = "PCIe-16M"
		default:
			ci.Model = fmt.Sprintf("Quantis PCI (%d modules)", n)
		}
	}
	return ci, nil
}

// boardString formats the board version register.
func boardString(ci CardInfo) string {
	v := ci.BoardVersion
	if ci.Family == FamilyChip {
		// FPGA version register: bits 31..24 PCB revision, 23..0 firmware
		// x.y.z; the byte-per-field split is an assumption, so the raw value
		// is kept too.
		return fmt.Sprintf("fw %d.%d.%d pcb %d (0x%08x)", v>>16&0xff, v>>8&0xff, v&0xff, v>>24, v)
	}
	return fmt.Sprintf("%#x", v)
}

// ioErr types an ioctl/read errno: vanished devices become ErrDisconnected.
func ioErr(err error) error {
	if gone(err) {
		return fmt.Errorf("%w (%w)", entropy.ErrDisconnected, err)
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) {
		return fmt.Errorf("%w (%w)", ErrUnsupported, err)
	}
	return fmt.Errorf("%w: %w", ErrIO, err)
}

func gone(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) ||
		errors.Is(err, syscall.ESHUTDOWN) || errors.Is(err, syscall.ENOENT)
}

// config is a validated quantis-pcie spec.
type config struct {
	name          string
	h             float64
	root          string
	device        string
	card          int
	serial        string
	statusBytes   int64
	allowDegraded bool
	enable        bool
	interval      time.Duration
}

func (d *Driver) parse(spec drivers.Spec) (config, error) {
	r := spec.Params.Reader()
	c := config{name: spec.Name, h: spec.MinEntropy}
	c.root = r.String("dev_root", d.root())
	c.device = r.String("device", "")
	c.card = r.Int("card", -1)
	c.serial = strings.ToLower(r.String("serial", ""))
	c.statusBytes = int64(r.Int("status_check_bytes", defaultStatusBytes))
	c.allowDegraded = r.Bool("allow_degraded", false)
	c.enable = r.Bool("enable_modules", true)
	c.interval = r.Duration("reconnect_interval", time.Second)
	set := 0
	for _, b := range []bool{c.device != "", c.card >= 0, c.serial != ""} {
		if b {
			set++
		}
	}
	switch {
	case set > 1:
		r.Fail("device", "set only one of device, card and serial")
	case c.device != "" && !filepath.IsAbs(c.device):
		r.Fail("device", "want an absolute path such as /dev/qrandom0")
	case c.card < -1 || c.card > 255:
		r.Fail("card", "want a card index 0..255")
	}
	if _, err := hex.DecodeString(c.serial); c.serial != "" && (err != nil || len(c.serial) > 2*12) {
		r.Fail("serial", "want the card serial as up to 24 hex digits")
	}
	if c.statusBytes < 0 || c.statusBytes > maxReadSize {
		r.Fail("status_check_bytes", fmt.Sprintf("want 0..%d", maxReadSize))
	}
	if c.interval < 10*time.Millisecond || c.interval > time.Minute {
		r.Fail("reconnect_interval", "want 10ms..1m")
	}
	if err := r.Done(); err != nil {
		return c, fmt.Errorf("drivers/quantispcie: source %q: %w", spec.Name, err)
	}
	if c.h == 0 {
		c.h = DefaultMinEntropy
	}
	if !(c.h > 0) || c.h > 8 {
		return c, fmt.Errorf("drivers/quantispcie: source %q: min_entropy %v outside (0, 8]", spec.Name, c.h)
	}
	if spec.Name == "" {
		return c, fmt.Errorf("drivers/quantispcie: source has no name")
	}
	return c, nil
}

// Open validates spec and opens the card it selects.
func (d *Driver) Open(ctx context.Context, spec drivers.Spec) (entropy.Source, error) {
	c, err := d.parse(spec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &Source{cfg: c, sleep: drivers.Sleep}
	path, err := s.resolve()
	if err != nil {
		return nil, err
	}
	if err := s.openLocked(path); err != nil {
		return nil, err
	}
	return s, nil
}

// Source is an open Quantis PCI/PCIe card. Read, Reset, the module requests
// and Close are serialised; Info never blocks on a read.
type Source struct {
	cfg   config
	sleep func(ctx context.Context, d time.Duration) error // clock seam for Reconnect

	mu         sync.Mutex
	dev        device
	closed     bool
	expected   uint32 // modules that must be healthy
	sinceCheck int64
	mustCheck  bool

	infoMu sync.Mutex
	ci     CardInfo
	info   entropy.SourceInfo
}

var _ entropy.Source = (*Source)(nil)
var _ entropy.Reconnector = (*Source)(nil)

// resolve picks the node the configuration selects.
func (s *Source) resolve() (string, error) {
	c := s.cfg
	switch {
	case c.device != "":
		return c.device, nil
	case c.card >= 0:
		return filepath.Join(c.root, fmt.Sprintf("qrandom%d", c.card)), nil
	}
	paths, err := scan(c.root)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if c.serial == "" {
		switch len(paths) {
		case 0:
			return "", fmt.Errorf("drivers/quantispcie: %w: no qrandom* node under %s (is the driver loaded?)", ErrNotFound, c.root)
		case 1:
			return paths[0], nil
		}
		return "", fmt.Errorf("drivers/quantispcie: %d cards under %s (%s): choose one with device, card or serial",
			len(paths), c.root, strings.Join(paths, ", "))
	}
	var seen []string
	var errs []error
	for _, p := range paths {
		ci, err := probePath(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.HasPrefix(ci.Serial, c.serial) && ci.Serial != "" {
			return p, nil
		}
		seen = append(seen, ci.Serial)
	}
	return "", errors.Join(append([]error{fmt.Errorf("drivers/quantispcie: %w: no card with serial %s under %s (seen: %v)",
		ErrNotFound, c.serial, c.root, seen)}, errs...)...)
}

// openLocked opens and initialises path; s.mu is held or s is not shared yet.
func (s *Source) openLocked(path string) error {
	dev, err := openNode(path)
	if err != nil {
		return err
	}
	ci, err := probe(dev, path)
	if err == nil && s.cfg.serial != "" && !strings.HasPrefix(ci.Serial, s.cfg.serial) {
		err = fmt.Errorf("drivers/quantispcie: %s: %w: serial %q, want %s", path, ErrNotFound, ci.Serial, s.cfg.serial)
	}
	if err == nil {
		err = s.initCard(dev, &ci)
	}
	if err != nil {
		dev.Close()
		return err
	}
	s.dev = dev
	s.mustCheck = true
	s.infoMu.Lock()
	s.ci = ci
	s.info = entropy.SourceInfo{
		Name: s.cfg.name, Kind: Kind, Vendor: Vendor, Model: ci.Model, Serial: ci.Serial,
		BoardVersion: boardString(ci), Path: path, SampleBits: 8, NominalRate: ci.NominalRate, MinEntropy: s.cfg.h,
	}
	s.infoMu.Unlock()
	return nil
}

// initCard enables modules and handles the AIS31 start-up request
// (pci-module family only; the chip driver answers EINVAL to both).
func (s *Source) initCard(dev device, ci *CardInfo) error {
	s.expected = ci.ModulesMask
	if ci.Family != FamilyPCIModule {
		return nil
	}
	if s.cfg.enable {
		if err := putU32(dev, reqEnableModule, ci.ModulesMask); err != nil {
			return fmt.Errorf("drivers/quantispcie: %s: ENABLE_MODULE %#x: %w", ci.Path, ci.ModulesMask, ioErr(err))
		}
	}
	flag, err := getU32(dev, reqGetAIS31Flag)
	if err != nil {
		return fmt.Errorf("drivers/quantispcie: %s: GET_AIS31_STARTUP_TESTS_REQUEST_FLAG: %w", ci.Path, ioErr(err))
	}
	if flag != 0 {
		// The engine runs SP 800-90B start-up tests on every (re)open before
		// it uses a sample, which is what the card asks for.
		ci.AIS31Requested = true
		if err := putU32(dev, reqClearAIS31Flag, 0); err != nil {
			return fmt.Errorf("drivers/quantispcie: %s: CLEAR_AIS31_STARTUP_TESTS_REQUEST_FLAG: %w", ci.Path, ioErr(err))
		}
	}
	return nil
}

// Info describes the card.
func (s *Source) Info() entropy.SourceInfo {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	return s.info
}

// Card returns what the ioctls reported at the last open.
func (s *Source) Card() CardInfo {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	return s.ci
}

func (s *Source) path() string { return s.Card().Path }

// usable returns the open device or the reason there is none.
func (s *Source) usable() (device, error) {
	switch {
	case s.closed:
		return nil, fmt.Errorf("drivers/quantispcie: %s: %w", s.path(), entropy.ErrClosed)
	case s.dev == nil:
		return nil, fmt.Errorf("drivers/quantispcie: %s: %w", s.path(), entropy.ErrDisconnected)
	}
	return s.dev, nil
}

// fault types err; a vanished card's file is closed so Reconnect can reopen.
func (s *Source) fault(op string, err error) error {
	if gone(err) {
		if s.dev != nil {
			s.dev.Close()
			s.dev = nil
		}
		return fmt.Errorf("drivers/quantispcie: %s %s: %w (%w)", op, s.path(), entropy.ErrDisconnected, err)
	}
	var me *ModuleError
	if errors.As(err, &me) || errors.Is(err, ErrModule) {
		return err
	}
	return fmt.Errorf("drivers/quantispcie: %s %s: %w", op, s.path(), ioErr(err))
}

// checkStatus compares GET_MODULES_STATUS with the modules that must be
// healthy.
func (s *Source) checkStatus() error {
	st, err := getU32(s.dev, reqGetModulesStatus)
	if err != nil {
		return s.fault("GET_MODULES_STATUS", err)
	}
	s.sinceCheck, s.mustCheck = 0, false
	if st == 0 || (st&s.expected != s.expected && !s.cfg.allowDegraded) {
		s.mustCheck = true
		return &ModuleError{Path: s.path(), Expected: s.expected, Status: st}
	}
	return nil
}

// Read fills p with random bytes (at most 16 MiB per call). It checks the
// module status as documented in the package comment, retries EINTR and
// short reads, and honours ctx between system calls (a single read(2) on
// the card is bounded by the driver's FIFO timeout). On any fault Read
// returns 0 and drops the partial block, so nothing read in the same call
// as a fault is delivered.
func (s *Source) Read(ctx context.Context, p []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dev, err := s.usable()
	if err != nil {
		return 0, err
	}
	if len(p) > maxReadSize {
		p = p[:maxReadSize]
	}
	n, eintr, empty := 0, 0, 0
	for n < len(p) {
		if s.mustCheck || (s.sinceCheck >= s.cfg.statusBytes) {
			if err := s.checkStatus(); err != nil {
				return 0, err
			}
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := dev.Read(p[n:])
		switch {
		case errors.Is(err, syscall.EINTR):
			if eintr++; eintr > maxEINTR {
				return 0, s.fault("read", err)
			}
			continue
		case errors.Is(err, syscall.EIO):
			// pci-module: module error or FIFO timeout. Ask the card which.
			s.mustCheck = true
			if serr := s.checkStatus(); serr != nil {
				return 0, serr
			}
			return 0, s.fault("read", err)
		case err != nil:
			s.mustCheck = true
			return 0, s.fault("read", err)
		case m == 0:
			if empty++; empty > maxEmptyReads {
				s.mustCheck = true
				return 0, fmt.Errorf("drivers/quantispcie: read %s: %w: %d empty reads", s.path(), ErrIO, empty)
			}
			continue
		}
		eintr, empty = 0, 0
		n += m
		s.sinceCheck += int64(m)
	}
	return n, nil
}

// Close closes the card; later calls return entropy.ErrClosed.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.dev == nil {
		return nil
	}
	err := s.dev.Close()
	s.dev = nil
	if err != nil {
		return fmt.Errorf("drivers/quantispcie: close %s: %w", s.path(), err)
	}
	return nil
}

// Reconnect waits for a vanished card to come back (same serial when the
// card has one, else the same node) and reopens it, polling every
// reconnect_interval. Permission and mode errors end it at once.
func (s *Source) Reconnect(ctx context.Context) error {
	for {
		err := s.tryReopen()
		if err == nil || !(errors.Is(err, ErrNotFound) || errors.Is(err, entropy.ErrDisconnected)) {
			return err
		}
		if serr := s.sleep(ctx, s.cfg.interval); serr != nil {
			return fmt.Errorf("drivers/quantispcie: reconnect %s: %w (last: %w)", s.path(), serr, err)
		}
	}
}

func (s *Source) tryReopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("drivers/quantispcie: reconnect: %w", entropy.ErrClosed)
	}
	if s.dev != nil {
		return nil
	}
	path := s.path()
	if s.cfg.serial != "" || s.Card().Serial != "" {
		// The node index may change across a re-plug; find the card by serial.
		cfg := s.cfg
		if cfg.serial == "" {
			cfg.serial = s.Card().Serial
		}
		cfg.device, cfg.card = "", -1
		p, err := (&Source{cfg: cfg}).resolve()
		if err != nil {
			return err
		}
		path = p
		s.cfg.serial = cfg.serial
	}
	return s.openLocked(path)
}

// Reset resets the board (RESET_BOARD), re-enables the modules of a
// pci-module card, and forces a status check before the next read. A chip
// card's driver discards its start-up garbage on the next read.
func (s *Source) Reset(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dev, err := s.usable()
	if err != nil {
		return err
	}
	if err := dev.Ioctl(reqResetBoard, nil); err != nil {
		return s.fault("RESET_BOARD", err)
	}
	ci := s.Card()
	if err := s.initCard(dev, &ci); err != nil {
		return err
	}
	s.mustCheck = true
	return nil
}

// ModulesStatus returns the modules mask and the current status (enabled
// and healthy modules). On a chip card the request may busy-wait up to 1 s.
func (s *Source) ModulesStatus(ctx context.Context) (mask, status uint32, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dev, err := s.usable()
	if err != nil {
		return 0, 0, err
	}
	if mask, err = getU32(dev, reqGetModulesMask); err != nil {
		return 0, 0, s.fault("GET_MODULES_MASK", err)
	}
	if status, err = getU32(dev, reqGetModulesStatus); err != nil {
		return 0, 0, s.fault("GET_MODULES_STATUS", err)
	}
	return mask, status, nil
}

func (s *Source) u32(op string, req uintptr, in uint32, get bool) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dev, err := s.usable()
	if err != nil {
		return 0, err
	}
	var v uint32
	if get {
		v, err = getU32(dev, req)
	} else {
		err = putU32(dev, req, in)
	}
	if err != nil {
		return 0, s.fault(op, err)
	}
	return v, nil
}

// EnableModules enables the modules in mask (pci-module cards; a chip card
// answers ErrUnsupported). The modules must then be healthy to read.
func (s *Source) EnableModules(mask uint32) error {
	if _, err := s.u32("ENABLE_MODULE", reqEnableModule, mask, false); err != nil {
		return err
	}
	s.mu.Lock()
	s.expected |= mask & s.Card().ModulesMask
	s.mustCheck = true
	s.mu.Unlock()
	return nil
}

// DisableModules disables the modules in mask (pci-module cards only).
func (s *Source) DisableModules(mask uint32) error {
	if _, err := s.u32("DISABLE_MODULE", reqDisableModule, mask, false); err != nil {
		return err
	}
	s.mu.Lock()
	s.expected &^= mask
	s.mustCheck = true
	s.mu.Unlock()
	return nil
}

// AIS31StartupFlag reads the card's start-up-tests request flag
// (pci-module cards only).
func (s *Source) AIS31StartupFlag() (bool, error) {
	v, err := s.u32("GET_AIS31_STARTUP_TESTS_REQUEST_FLAG", reqGetAIS31Flag, 0, true)
	return v != 0, err
}

// ClearAIS31StartupFlag clears the start-up-tests request flag
// (pci-module cards only).
func (s *Source) ClearAIS31StartupFlag() error {
	_, err := s.u32("CLEAR_AIS31_STARTUP_TESTS_REQUEST_FLAG", reqClearAIS31Flag, 0, false)
	return err
}
