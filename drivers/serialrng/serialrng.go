// Package serialrng drives USB CDC-ACM true random number generators that
// appear as serial ports (/dev/ttyACM*), through go.bug.st/serial (kind
// "serial"). Devices are described by profiles (reference/hardware.md §3):
//
//	truerng        ubld.it TrueRNG V1/V2/V3, 04d8:f5fe: DTR on, raw stream
//	truerngpro     ubld.it TrueRNGpro, 16d0:0aa0: DTR on, raw stream, fixed baud
//	truerngpro-v2  ubld.it TrueRNGpro V2, 04d8:ebb5: as truerngpro
//	onerng         Moonbase Otago OneRNG, 1d50:6086: DTR on; "cmd" handshake
//	               (pause, version, flush, mode, run), then a raw stream
//	alpharng       TectroLabs AlphaRNG (CDC), 1fc9:8111 and 3975:0005: write
//	               'x', read 16000 bytes
//	generic        any streaming or request/response serial TRNG
//
// TrueRNGpro mode knock. The Pro models change mode when the port is opened
// and closed at 110, then 300, then 110 baud, and then opened at a mode's
// baud. The driver opens these models only at 3000000 baud (the speed the
// vendor's udev rule sets) and has no baud key for them, so no sequence of
// opens and re-opens it makes can ever form the knock, and the device stays
// in the mode its owner set.
//
// Configuration keys (`sources:` entry with `kind: serial`):
//
//	profile             one of the profiles above (required)
//	device              tty path, e.g. /dev/ttyACM0 or /dev/serial/by-id/...
//	serial              USB serial number; the port is found by enumeration
//	                    (exactly one of device and serial is required)
//	require_dtr         fail the open when DTR/RTS cannot be set (default true).
//	                    Set false only for ports without modem lines (ptys):
//	                    a TrueRNG or OneRNG with DTR down sends nothing, which
//	                    the stall timeout then reports
//	stall_timeout       no data for this long is an error (default 10s)
//	reconnect_interval  poll interval while waiting for the device (default 1s)
//	mode                onerng: the 4-bit mode as one hex digit (default "0":
//	                    avalanche source, CRC whitening on). Modes that enable
//	                    no noise source (avalanche off and RF off) are refused
//	version_timeout     onerng: how long to wait for the version reply (default 2s)
//	response_timeout    alpharng, generic with request: time for a whole
//	                    response (default 2s)
//	baud, dtr, rts      generic: line settings (defaults 9600, true, true)
//	request             generic: request byte 0..255 sent before each response
//	                    (default -1: the device streams)
//	response_len        generic with request: bytes per response (1..1048576)
//
// Request-protocol devices (alpharng, generic with request) whose response
// is credited with at least 64 bits fail with ErrRepeated, the response
// dropped, when a response equals the previous one byte for byte: a firmware
// replaying its buffer passes the RCT and APT.
//
// min_entropy defaults (bits per byte): 6 for truerng, truerngpro,
// truerngpro-v2, alpharng and onerng with whitening on (even mode digit),
// 2 for onerng with CRC whitening off (odd mode digit), 1 for generic.
// They are conservative policy values, to be replaced by a site assessment.
package serialrng

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.bug.st/serial"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
)

// Kind is the configuration kind of this driver.
const Kind = "serial"

// UdevRule is the deployment kit's rule file that grants group qrngd access
// to the supported ttys.
const UdevRule = "systemd/99-qrngd.rules (installed as /etc/udev/rules.d/99-qrngd.rules)"

// Sentinel errors.
var (
	ErrNotFound      = errors.New("drivers/serialrng: device not found")
	ErrPermission    = errors.New("drivers/serialrng: permission denied")
	ErrModemLines    = errors.New("drivers/serialrng: cannot set modem control lines")
	ErrEcho          = errors.New("drivers/serialrng: device echoes commands back")
	ErrGarbage       = errors.New("drivers/serialrng: device reply is not valid framing")
	ErrShortResponse = errors.New("drivers/serialrng: short response")
	ErrNoData        = errors.New("drivers/serialrng: device sends no data")
	ErrIO            = errors.New("drivers/serialrng: I/O error")
	// ErrRepeated: a request-protocol device answered exactly its previous
	// response (a device-specific continuous test, SP 800-90B §4.3 item 8:
	// the RCT and APT cannot see a replayed block of random-looking bytes).
	ErrRepeated = errors.New("drivers/serialrng: device repeated its previous response")
)

// defaultH is the credited min-entropy per byte when the configuration
// gives none, by profile. Whitened outputs get 6 bits/byte, the OneRNG with
// CRC whitening off (odd mode digits) 2, the generic profile 1: policy values
// that stay well below 8 until an assessment says more.
var defaultH = map[string]float64{
	"truerng": 6, "truerngpro": 6, "truerngpro-v2": 6, "onerng": 6, "onerng-raw": 2, "alpharng": 6, "generic": 1,
}

type usbID struct{ vid, pid uint16 }

type protocol int

const (
	protoStream protocol = iota
	protoOneRNG
	protoRequest
)

type profile struct {
	name, vendor, model string
	ids                 []usbID
	baud                int
	dtr, rts            *bool // nil: leave as the kernel set them at open
	proto               protocol
	request             byte
	respLen             int
}

var on = func() *bool { b := true; return &b }()

var profiles = map[string]profile{
	"truerng":       {name: "truerng", vendor: "ubld.it", model: "TrueRNG", ids: []usbID{{0x04d8, 0xf5fe}}, baud: 3000000, dtr: on},
	"truerngpro":    {name: "truerngpro", vendor: "ubld.it", model: "TrueRNGpro", ids: []usbID{{0x16d0, 0x0aa0}}, baud: 3000000, dtr: on},
	"truerngpro-v2": {name: "truerngpro-v2", vendor: "ubld.it", model: "TrueRNGpro V2", ids: []usbID{{0x04d8, 0xebb5}}, baud: 3000000, dtr: on},
	"onerng":        {name: "onerng", vendor: "Moonbase Otago", model: "OneRNG", ids: []usbID{{0x1d50, 0x6086}}, baud: 9600, dtr: on, proto: protoOneRNG},
	"alpharng": {name: "alpharng", vendor: "TectroLabs", model: "AlphaRNG", ids: []usbID{{0x1fc9, 0x8111}, {0x3975, 0x0005}},
		baud: 115200, proto: protoRequest, request: 'x', respLen: 16000},
	"generic": {name: "generic", model: "serial TRNG"},
}

// profileNames lists the profiles, sorted.
func profileNames() string {
	return "truerng, truerngpro, truerngpro-v2, onerng, alpharng, generic"
}

const (
	pollInterval   = 100 * time.Millisecond // port read timeout: bounds ctx latency
	maxResponse    = 1 << 20
	versionScanMax = 256 << 10 // bytes scanned for the OneRNG version reply (covers data in flight when the pause lands)
	// minRepeatBits: responses credited with at least this much min-entropy
	// are checked against the previous one (ErrRepeated); a good device
	// repeats one with probability at most 2^-64.
	minRepeatBits = 64
)

// Driver is the serial driver.
type Driver struct{}

func init() { drivers.MustRegister(&Driver{}) }

// Kind returns "serial".
func (*Driver) Kind() string { return Kind }

func parseID(s string) (uint16, bool) {
	v, err := strconv.ParseUint(s, 16, 16)
	return uint16(v), err == nil
}

func matchProfile(vid, pid uint16) (profile, bool) {
	for _, name := range []string{"truerng", "truerngpro", "truerngpro-v2", "onerng", "alpharng"} {
		p := profiles[name]
		for _, id := range p.ids {
			if id.vid == vid && id.pid == pid {
				return p, true
			}
		}
	}
	return profile{}, false
}

// Discover lists the USB serial ports whose VID:PID match a profile. Model
// is the profile name, to paste into configuration.
func (*Driver) Discover(ctx context.Context) ([]drivers.Device, error) {
	ports, err := listPorts()
	if err != nil {
		return nil, fmt.Errorf("drivers/serialrng: enumerate ports: %w", err)
	}
	var out []drivers.Device
	for _, p := range ports {
		if p == nil || !p.IsUSB {
			continue
		}
		vid, ok1 := parseID(p.VID)
		pid, ok2 := parseID(p.PID)
		if !ok1 || !ok2 {
			continue
		}
		if prof, ok := matchProfile(vid, pid); ok {
			out = append(out, drivers.Device{Kind: Kind, VendorID: vid, ProductID: pid, Serial: p.SerialNumber, Path: p.Name, Model: prof.name})
		}
	}
	return out, ctx.Err()
}

type config struct {
	name            string
	prof            profile
	h               float64
	device, serial  string
	requireDTR      bool
	stall, interval time.Duration
	mode            byte
	versionTimeout  time.Duration
	respTimeout     time.Duration
}

func (*Driver) parse(spec drivers.Spec) (config, error) {
	r := spec.Params.Reader()
	c := config{name: spec.Name, h: spec.MinEntropy}
	pname := r.String("profile", "")
	prof, ok := profiles[pname]
	if !ok {
		r.Fail("profile", fmt.Sprintf("want one of %s, got %q", profileNames(), pname))
	}
	c.device = r.String("device", "")
	c.serial = r.String("serial", "")
	c.requireDTR = r.Bool("require_dtr", true)
	c.stall = r.Duration("stall_timeout", 10*time.Second)
	c.interval = r.Duration("reconnect_interval", time.Second)
	switch {
	case (c.device == "") == (c.serial == ""):
		r.Fail("device", "set exactly one of device and serial")
	case c.stall < pollInterval || c.stall > 10*time.Minute:
		r.Fail("stall_timeout", "want 100ms..10m")
	case c.interval < 10*time.Millisecond || c.interval > time.Minute:
		r.Fail("reconnect_interval", "want 10ms..1m")
	}
	switch prof.proto {
	case protoOneRNG:
		m := strings.ToLower(r.String("mode", "0"))
		c.versionTimeout = r.Duration("version_timeout", 2*time.Second)
		v, err := strconv.ParseUint(m, 16, 8)
		switch {
		case err != nil || len(m) != 1:
			r.Fail("mode", "want one hex digit 0-f")
		case v&0x4 != 0 && v&0x2 == 0:
			r.Fail("mode", fmt.Sprintf("mode %s disables the avalanche source without enabling RF: no noise source", m))
		}
		c.mode = m[0]
		if c.versionTimeout < pollInterval || c.versionTimeout > time.Minute {
			r.Fail("version_timeout", "want 100ms..1m")
		}
	case protoRequest:
		c.respTimeout = r.Duration("response_timeout", 2*time.Second)
	}
	if pname == "generic" {
		prof.baud = r.Int("baud", 9600)
		dtr, rts := r.Bool("dtr", true), r.Bool("rts", true)
		prof.dtr, prof.rts = &dtr, &rts
		req := r.Int("request", -1)
		if req >= 0 {
			prof.proto, prof.request = protoRequest, byte(req)
			prof.respLen = r.Int("response_len", 0)
			c.respTimeout = r.Duration("response_timeout", 2*time.Second)
			if prof.respLen < 1 || prof.respLen > maxResponse {
				r.Fail("response_len", fmt.Sprintf("want 1..%d with request set", maxResponse))
			}
		}
		switch {
		case req < -1 || req > 255:
			r.Fail("request", "want a byte 0..255, or -1 for a streaming device")
		case prof.baud < 50 || prof.baud > 4000000:
			r.Fail("baud", "want 50..4000000")
		}
	}
	if prof.proto == protoRequest && (c.respTimeout < pollInterval || c.respTimeout > time.Minute) {
		r.Fail("response_timeout", "want 100ms..1m")
	}
	c.prof = prof
	if err := r.Done(); err != nil {
		return c, fmt.Errorf("drivers/serialrng: source %q: %w", spec.Name, err)
	}
	if c.h == 0 {
		key := prof.name
		if prof.proto == protoOneRNG && (c.mode-'0')&1 == 1 {
			key = "onerng-raw"
		}
		c.h = defaultH[key]
	}
	if !(c.h > 0) || c.h > 8 {
		return c, fmt.Errorf("drivers/serialrng: source %q: min_entropy %v outside (0, 8]", spec.Name, c.h)
	}
	if spec.Name == "" {
		return c, errors.New("drivers/serialrng: source has no name")
	}
	return c, nil
}

// Open validates spec, opens the port and runs the profile's start-up.
func (d *Driver) Open(ctx context.Context, spec drivers.Spec) (entropy.Source, error) {
	c, err := d.parse(spec)
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: c, sleep: drivers.Sleep, now: time.Now}
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Source is an open serial TRNG. Read and Reconnect are serialised; Close
// may be called while a Read is blocked and makes it return ErrClosed.
type Source struct {
	cfg   config
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time

	mu       sync.Mutex // serialises Read, Reconnect
	resp     []byte     // unread rest of the last response (request protocol)
	lastResp [sha256.Size]byte
	haveLast bool // lastResp holds the hash of the previous whole response
	lastData time.Time
	version  string

	pmu    sync.Mutex // guards p and closed
	p      port
	closed bool
	lines  string // "ok" or why DTR/RTS could not be set

	infoMu sync.Mutex
	info   entropy.SourceInfo
}

var _ entropy.Source = (*Source)(nil)
var _ entropy.Reconnector = (*Source)(nil)

// Info describes the device.
func (s *Source) Info() entropy.SourceInfo {
	s.infoMu.Lock()
	defer s.infoMu.Unlock()
	return s.info
}

// Version is the OneRNG firmware version reported at the last open.
func (s *Source) Version() string { s.mu.Lock(); defer s.mu.Unlock(); return s.version }

// ModemLines reports "ok", or why DTR/RTS could not be set when
// require_dtr is false.
func (s *Source) ModemLines() string { s.pmu.Lock(); defer s.pmu.Unlock(); return s.lines }

// resolve finds the tty: the configured path, or the port whose USB serial
// number matches (and whose VID:PID fits the profile, if it has IDs).
func (s *Source) resolve() (path, serialNo string, err error) {
	if s.cfg.device != "" {
		return s.cfg.device, usbSerialOf(s.cfg.device), nil
	}
	ports, err := listPorts()
	if err != nil {
		return "", "", fmt.Errorf("drivers/serialrng: enumerate ports: %w: %w", ErrNotFound, err)
	}
	for _, p := range ports {
		if p == nil || !p.IsUSB || p.SerialNumber != s.cfg.serial {
			continue
		}
		vid, _ := parseID(p.VID)
		pid, _ := parseID(p.PID)
		if len(s.cfg.prof.ids) > 0 {
			if prof, ok := matchProfile(vid, pid); !ok || prof.name != s.cfg.prof.name {
				continue
			}
		}
		return p.Name, p.SerialNumber, nil
	}
	return "", "", fmt.Errorf("drivers/serialrng: %w: no %s with USB serial %q", ErrNotFound, s.cfg.prof.name, s.cfg.serial)
}

// usbSerialOf returns the USB serial number of the port at path (a tty or a
// symlink to one, such as the udev rule's /dev/truerng0), so a source opened
// by path still reports its serial; "" when the port is not a USB device or
// enumeration fails (a pty, a host without sysfs).
func usbSerialOf(path string) string {
	want := path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		want = r
	}
	ports, err := listPorts()
	if err != nil {
		return ""
	}
	for _, p := range ports {
		if p == nil || !p.IsUSB {
			continue
		}
		name := p.Name
		if r, err := filepath.EvalSymlinks(name); err == nil {
			name = r
		}
		if name == want {
			return p.SerialNumber
		}
	}
	return ""
}

// typeOpenErr types an open failure.
func typeOpenErr(path string, err error) error {
	var pe *serial.PortError
	isPE := errors.As(err, &pe)
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || isPE && pe.Code() == serial.PermissionDenied:
		return fmt.Errorf("drivers/serialrng: open %s: %w (%w): install the udev rule %s and add the service user to group qrngd",
			path, ErrPermission, err, UdevRule)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) ||
		errors.Is(err, os.ErrNotExist) || isPE && pe.Code() == serial.PortNotFound:
		return fmt.Errorf("drivers/serialrng: open %s: %w (%w)", path, ErrNotFound, err)
	case isPE && pe.Code() == serial.PortBusy:
		return fmt.Errorf("drivers/serialrng: open %s: %w: port busy (another process such as ModemManager "+
			"or rngd holds it): %w", path, ErrIO, err)
	}
	return fmt.Errorf("drivers/serialrng: open %s: %w: %w", path, ErrIO, err)
}

// open opens the port and runs the start-up; s.mu is held or s unshared.
func (s *Source) open(ctx context.Context) error {
	path, serialNo, err := s.resolve()
	if err != nil {
		return err
	}
	prof := s.cfg.prof
	// InitialStatusBits stays nil: go.bug.st would read the modem bits
	// before anything else and fail on ports without them; DTR/RTS are set
	// explicitly below instead.
	p, err := openPort(path, &serial.Mode{BaudRate: prof.baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return typeOpenErr(path, err)
	}
	lines, err := s.setup(ctx, p, path)
	if err != nil {
		p.Close()
		return err
	}
	s.pmu.Lock()
	if s.closed {
		s.pmu.Unlock()
		p.Close()
		return fmt.Errorf("drivers/serialrng: %s: %w", path, entropy.ErrClosed)
	}
	s.p, s.lines = p, lines
	s.pmu.Unlock()
	s.resp = nil
	s.lastData = s.now()
	s.infoMu.Lock()
	s.info = entropy.SourceInfo{Name: s.cfg.name, Kind: Kind, Vendor: prof.vendor, Model: prof.model, Serial: serialNo,
		Path: path, SampleBits: 8, MinEntropy: s.cfg.h}
	if s.version != "" {
		s.info.BoardVersion = "firmware " + s.version
	}
	s.infoMu.Unlock()
	return nil
}

// setup sets the modem lines, flushes input and runs the profile handshake.
func (s *Source) setup(ctx context.Context, p port, path string) (string, error) {
	prof := s.cfg.prof
	if err := p.SetReadTimeout(pollInterval); err != nil {
		return "", fmt.Errorf("drivers/serialrng: %s: set read timeout: %w: %w", path, ErrIO, err)
	}
	lines := "ok"
	for _, l := range []struct {
		name string
		v    *bool
		set  func(bool) error
	}{{"DTR", prof.dtr, p.SetDTR}, {"RTS", prof.rts, p.SetRTS}} {
		if l.v == nil {
			continue
		}
		if err := l.set(*l.v); err != nil {
			if s.cfg.requireDTR {
				return "", fmt.Errorf("drivers/serialrng: %s: set %s=%v: %w: %w (a pty has no modem lines; "+
					"require_dtr: false accepts that)", path, l.name, *l.v, ErrModemLines, err)
			}
			lines = fmt.Sprintf("set %s failed: %v", l.name, err)
		}
	}
	if err := p.ResetInputBuffer(); err != nil {
		return "", fmt.Errorf("drivers/serialrng: %s: flush input: %w: %w", path, ErrIO, err)
	}
	if prof.proto == protoOneRNG {
		v, err := s.oneRNGStart(ctx, p, path)
		if err != nil {
			return "", err
		}
		s.version = v
	}
	return lines, nil
}

var versionRe = regexp.MustCompile(`\r\nVersion ([0-9]{1,6})\r\n`)

// oneRNGStart pauses the stream, asks for the version (a reply proves it is
// a OneRNG speaking its framing), flushes the pool, sets the mode and runs.
func (s *Source) oneRNGStart(ctx context.Context, p port, path string) (string, error) {
	send := func(cmd string) error {
		if _, err := p.Write([]byte(cmd)); err != nil {
			return fmt.Errorf("drivers/serialrng: %s: write %q: %w", path, cmd, s.ioErr(err))
		}
		return nil
	}
	if err := send("cmdo"); err != nil {
		return "", err
	}
	if err := send("cmdv"); err != nil {
		return "", err
	}
	deadline := s.now().Add(s.cfg.versionTimeout)
	var seen []byte
	buf := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := p.Read(buf)
		if err != nil {
			return "", fmt.Errorf("drivers/serialrng: %s: OneRNG version: %w", path, s.ioErr(err))
		}
		seen = append(seen, buf[:n]...)
		if bytes.Contains(seen, []byte("cmdocmdv")) {
			return "", fmt.Errorf("drivers/serialrng: %s: %w: sent \"cmdocmdv\", got it back (%q...): not a OneRNG, "+
				"or a port in echo mode", path, ErrEcho, head(seen))
		}
		if m := versionRe.FindSubmatch(seen); m != nil {
			for _, cmd := range []string{"cmdw", "cmd" + string(s.cfg.mode), "cmdO"} {
				if err := send(cmd); err != nil {
					return "", err
				}
			}
			return string(m[1]), nil
		}
		if len(seen) > versionScanMax || !s.now().Before(deadline) {
			return "", fmt.Errorf("drivers/serialrng: %s: %w: no \"Version\" reply to cmdv in %d bytes / %v (got %q...)",
				path, ErrGarbage, len(seen), s.cfg.versionTimeout, head(seen))
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 24)] }

// ioErr types a read/write failure on an open port.
func (s *Source) ioErr(err error) error {
	s.pmu.Lock()
	closed := s.closed
	s.pmu.Unlock()
	var pe *serial.PortError
	switch {
	case closed:
		return fmt.Errorf("%w (%w)", entropy.ErrClosed, err)
	case errors.As(err, &pe) && pe.Code() == serial.PortClosed,
		errors.Is(err, syscall.EIO), errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.EBADF):
		// The tty hung up (EOF) or vanished: the device was unplugged.
		return fmt.Errorf("%w (%w)", entropy.ErrDisconnected, err)
	}
	return fmt.Errorf("%w: %w", ErrIO, err)
}

// current returns the open port or why there is none.
func (s *Source) current() (port, error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	switch {
	case s.closed:
		return nil, fmt.Errorf("drivers/serialrng: %s: %w", s.Info().Path, entropy.ErrClosed)
	case s.p == nil:
		return nil, fmt.Errorf("drivers/serialrng: %s: %w", s.Info().Path, entropy.ErrDisconnected)
	}
	return s.p, nil
}

// fail types err; a disconnected port is closed so Reconnect can reopen it.
func (s *Source) fail(op string, err error) error {
	err = s.ioErr(err)
	if errors.Is(err, entropy.ErrDisconnected) {
		s.drop()
	}
	return fmt.Errorf("drivers/serialrng: %s %s: %w", op, s.Info().Path, err)
}

func (s *Source) drop() {
	s.pmu.Lock()
	p := s.p
	s.p = nil
	s.pmu.Unlock()
	if p != nil {
		p.Close()
	}
}

// Read returns the next bytes from the device. Streaming profiles return
// whatever one port read yields; request profiles serve from the last
// response and ask for a new one when it is used up. Read honours ctx within
// the 100 ms port timeout. A device silent for stall_timeout fails with
// ErrNoData; an incomplete response with ErrShortResponse (the partial
// response is dropped).
func (s *Source) Read(ctx context.Context, p []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pt, err := s.current()
	if err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.cfg.prof.proto == protoRequest {
		if len(s.resp) == 0 {
			if err := s.request(ctx, pt); err != nil {
				return 0, err
			}
		}
		n := copy(p, s.resp)
		s.resp = s.resp[n:]
		return n, nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := pt.Read(p)
		if err != nil {
			return 0, s.fail("read", err)
		}
		if n > 0 {
			s.lastData = s.now()
			return n, nil
		}
		if idle := s.now().Sub(s.lastData); idle >= s.cfg.stall {
			s.lastData = s.now()
			return 0, fmt.Errorf("drivers/serialrng: read %s: %w for %v", s.Info().Path, ErrNoData, idle.Round(time.Millisecond))
		}
	}
}

// request sends the request byte and reads one whole response.
func (s *Source) request(ctx context.Context, pt port) error {
	prof := s.cfg.prof
	// Bytes pending now can only be the tail of an abandoned response.
	if err := pt.ResetInputBuffer(); err != nil {
		return s.fail("flush input", err)
	}
	if _, err := pt.Write([]byte{prof.request}); err != nil {
		return s.fail("write request", err)
	}
	buf := make([]byte, prof.respLen)
	got := 0
	deadline := s.now().Add(s.cfg.respTimeout)
	for got < len(buf) {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := pt.Read(buf[got:])
		if err != nil {
			return s.fail("read response", err)
		}
		got += n
		if got < len(buf) && !s.now().Before(deadline) {
			// Drop what came; the next request flushes any late tail.
			return fmt.Errorf("drivers/serialrng: read %s: %w: %d of %d bytes within %v", s.Info().Path,
				ErrShortResponse, got, len(buf), s.cfg.respTimeout)
		}
	}
	if float64(len(buf))*s.cfg.h >= minRepeatBits {
		sum := sha256.Sum256(buf)
		repeated := s.haveLast && sum == s.lastResp
		s.lastResp, s.haveLast = sum, true
		if repeated {
			clear(buf)
			return fmt.Errorf("drivers/serialrng: read %s: %w (%d bytes)", s.Info().Path, ErrRepeated, len(buf))
		}
	}
	s.lastData = s.now()
	s.resp = buf
	return nil
}

// Close closes the port; a Read blocked in it returns ErrClosed.
func (s *Source) Close() error {
	s.pmu.Lock()
	if s.closed {
		s.pmu.Unlock()
		return nil
	}
	s.closed = true
	p := s.p
	s.p = nil
	s.pmu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Close(); err != nil {
		return fmt.Errorf("drivers/serialrng: close %s: %w", s.Info().Path, err)
	}
	return nil
}

// Reconnect reopens the device after ErrDisconnected (by path, or by USB
// serial number through enumeration), polling every reconnect_interval,
// and reruns the profile start-up. It returns at once if the port is open;
// errors other than "not there yet" end it.
func (s *Source) Reconnect(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("drivers/serialrng: reconnect %s: %w", s.Info().Path, err)
		}
		s.mu.Lock()
		_, cur := s.current()
		var err error
		switch {
		case cur == nil:
			s.mu.Unlock()
			return nil
		case errors.Is(cur, entropy.ErrClosed):
			s.mu.Unlock()
			return cur
		default:
			err = s.open(ctx)
		}
		s.mu.Unlock()
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, entropy.ErrDisconnected) {
			return err
		}
		if serr := s.sleep(ctx, s.cfg.interval); serr != nil {
			return fmt.Errorf("drivers/serialrng: reconnect %s: %w (last: %w)", s.Info().Path, serr, err)
		}
	}
}
