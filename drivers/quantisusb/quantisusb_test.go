package quantisusb

// Seam-level unit tests: openBus is replaced by a fake, so these run
// everywhere without libusb devices or umockdev.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gousb"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
)

type fakeBus struct {
	mu      sync.Mutex
	devs    []*fakeDev
	openErr error
	closed  int
	scanned chan struct{} // if set, gets a value (non-blocking) on every openAll
}

func (b *fakeBus) openAll(vid, pid uint16) ([]usbDev, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.scanned != nil {
		select {
		case b.scanned <- struct{}{}:
		default:
		}
	}
	var out []usbDev
	for _, d := range b.devs {
		if d.vid == vid && d.pid == pid {
			d.closed = false
			out = append(out, d)
		}
	}
	return out, b.openErr
}

func (b *fakeBus) close() error {
	b.mu.Lock()
	b.closed++
	b.mu.Unlock()
	return nil
}

type fakeDev struct {
	vid, pid uint16
	addr     int
	sn       string
	status   []byte // successive GET_MODULES_STATUS answers; last repeats
	bulkErr  []error
	bulkLen  int // bytes per transfer; 0 = full
	calls    []string
	closed   bool
	next     byte
}

func (d *fakeDev) busAddr() (int, int)     { return 1, d.addr }
func (d *fakeDev) serial() (string, error) { return d.sn, nil }
func (d *fakeDev) claim() error            { d.calls = append(d.calls, "claim"); return nil }
func (d *fakeDev) close() error            { d.closed = true; return nil }

func (d *fakeDev) control(rType, req uint8, val, idx uint16, p []byte) (int, error) {
	d.calls = append(d.calls, fmt.Sprintf("ctl%02x", req))
	switch {
	case rType == rtVendorIn && req == reqStatus:
		st := byte(1)
		if len(d.status) > 0 {
			st = d.status[0]
			if len(d.status) > 1 {
				d.status = d.status[1:]
			}
		}
		p[0] = st
		return 1, nil
	case rType == rtVendorIn:
		for i := range p {
			p[i] = byte(i + 1)
		}
		return len(p), nil
	}
	return 0, nil
}

func (d *fakeDev) bulkIn(ctx context.Context, p []byte) (int, error) {
	d.calls = append(d.calls, "bulk")
	if len(d.bulkErr) > 0 {
		err := d.bulkErr[0]
		d.bulkErr = d.bulkErr[1:]
		if err != nil {
			return 0, err
		}
	}
	n := len(p)
	if d.bulkLen > 0 {
		n = d.bulkLen
	}
	for i := range p[:n] {
		p[i] = d.next
		d.next++
	}
	return n, nil
}

func withFake(t *testing.T, b *fakeBus) {
	t.Helper()
	old := openBus
	openBus = func() (usbBus, error) { return b, nil }
	t.Cleanup(func() { openBus = old })
}

func quantis(sn string, addr int) *fakeDev {
	return &fakeDev{vid: DefaultVendorID, pid: DefaultProductID, sn: sn, addr: addr}
}

func TestOptions_Invalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"transfer not multiple", Options{TransferSize: 1000}, "transfer size 1000"},
		{"transfer too small", Options{TransferSize: 256}, "transfer size 256"},
		{"transfer too big", Options{TransferSize: 1 << 20}, "transfer size"},
		{"min-entropy high", Options{MinEntropy: 8.5}, "min-entropy 8.5"},
		{"min-entropy negative", Options{MinEntropy: -1}, "min-entropy -1"},
		{"poll too fast", Options{PollInterval: time.Millisecond}, "poll interval"},
		{"settle negative", Options{ResetSettle: -time.Second}, "reset settle"},
		{"serial too long", Options{Serial: strings.Repeat("x", 127)}, "serial of 127"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), "q", &tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%+v) = %v, want an error containing %q", tc.o, err, tc.want)
			}
		})
	}
}

func TestDriver_Open_Params(t *testing.T) {
	withFake(t, &fakeBus{devs: []*fakeDev{quantis("A1", 2)}})
	for _, tc := range []struct {
		name   string
		params drivers.Params
		want   string // "" = success
	}{
		{"defaults", nil, ""},
		{"all keys", drivers.Params{"serial": "A1", "vendor_id": "0x0aba", "product_id": 258, "transfer_size": 4096, "poll_interval": "1s"}, ""},
		{"unknown key", drivers.Params{"serail": "A1"}, `key "serail"`},
		{"vendor id range", drivers.Params{"vendor_id": 0x10000}, `key "vendor_id"`},
		{"transfer size", drivers.Params{"transfer_size": 100}, "transfer size 100"},
		{"poll interval type", drivers.Params{"poll_interval": 5}, `key "poll_interval"`},
		{"wrong serial", drivers.Params{"serial": "B2"}, `serial "B2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Driver{}.Open(context.Background(), drivers.Spec{Name: "q", Kind: Kind, Params: tc.params})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestOpen_PermissionDenied(t *testing.T) {
	withFake(t, &fakeBus{openErr: fmt.Errorf("%w (libusb: bad access)", ErrPermission)})
	_, err := Open(context.Background(), "q", nil)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "systemd/99-qrngd.rules") {
		t.Fatalf("Open = %v, want ErrPermission naming the udev rule", err)
	}
	_, err = Discover(context.Background())
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), UdevRule) {
		t.Fatalf("Discover = %v, want ErrPermission naming the udev rule", err)
	}
}

func TestOpen_LibusbUnavailable(t *testing.T) {
	old := openBus
	openBus = func() (usbBus, error) { return nil, errors.New("libusb init: no usbfs") }
	defer func() { openBus = old }()
	if _, err := Open(context.Background(), "q", nil); err == nil || !strings.Contains(err.Error(), "no usbfs") {
		t.Fatalf("Open = %v", err)
	}
}

// TestSource_Read_StatusBracketing checks the status-check protocol: one
// status request before the first transfer and one after each, and the
// bytes of a transfer followed by a bad status never leave the driver.
func TestSource_Read_StatusBracketing(t *testing.T) {
	dev := quantis("A1", 2)
	dev.status = []byte{1, 1, 0} // before #1, after #1, after #2 = failed
	withFake(t, &fakeBus{devs: []*fakeDev{dev}})
	s, err := Open(context.Background(), "q", &Options{TransferSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dev.calls = nil
	p := make([]byte, 2048)
	n, err := s.Read(context.Background(), p)
	if n != 512 || err != nil {
		t.Fatalf("Read = %d, %v; want the 512 good bytes first", n, err)
	}
	for i, b := range p[:n] {
		if b != byte(i) {
			t.Fatalf("byte %d = %d", i, b)
		}
	}
	if _, err := s.Read(context.Background(), p); !errors.Is(err, ErrModule) {
		t.Fatalf("next Read = %v, want the deferred ErrModule", err)
	}
	want := "ctl13 bulk ctl13 bulk ctl13"
	if got := strings.Join(dev.calls, " "); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
}

func TestSource_Read_Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		dev  func(*fakeDev)
		want error
	}{
		{"short", func(d *fakeDev) { d.bulkLen = 100 }, ErrShortRead},
		{"stall", func(d *fakeDev) { d.bulkErr = []error{ErrStall} }, ErrStall},
		{"timeout", func(d *fakeDev) { d.bulkErr = []error{ErrTimeout} }, ErrTimeout},
		{"module", func(d *fakeDev) { d.status = []byte{0} }, ErrModule},
		{"gone", func(d *fakeDev) { d.bulkErr = []error{entropy.ErrDisconnected} }, entropy.ErrDisconnected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := quantis("A1", 2)
			tc.dev(dev)
			withFake(t, &fakeBus{devs: []*fakeDev{dev}})
			s, err := Open(context.Background(), "q", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if n, err := s.Read(context.Background(), make([]byte, 64)); n != 0 || !errors.Is(err, tc.want) {
				t.Fatalf("Read = %d, %v; want 0, %v", n, err, tc.want)
			}
		})
	}
}

func TestSource_Reconnect_Polls(t *testing.T) {
	dev := quantis("A1", 2)
	dev.bulkErr = []error{entropy.ErrDisconnected}
	bus := &fakeBus{devs: []*fakeDev{dev}}
	withFake(t, bus)
	s, err := Open(context.Background(), "q", &Options{PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Read(context.Background(), make([]byte, 8)); !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatal(err)
	}
	if !dev.closed || bus.closed != 1 {
		t.Fatalf("handle closed %v, bus closed %d times; want both released", dev.closed, bus.closed)
	}
	// Gone from the bus; another device appears first, then ours at a new address.
	bus.mu.Lock()
	bus.devs = []*fakeDev{quantis("OTHER", 3)}
	bus.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Millisecond)
	if err := s.Reconnect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reconnect with the device absent = %v", err)
	}
	cancel()
	back := quantis("A1", 4)
	bus.mu.Lock()
	bus.devs = append(bus.devs, back)
	bus.mu.Unlock()
	if err := s.Reconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Info().Path; got != "usb:1:4" {
		t.Fatalf("Path after reconnect = %s", got)
	}
	if n, err := s.Read(context.Background(), make([]byte, 8)); n != 8 || err != nil {
		t.Fatalf("Read after reconnect = %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Reconnect(context.Background()); !errors.Is(err, entropy.ErrClosed) {
		t.Fatalf("Reconnect after Close = %v", err)
	}
}

// Info must not wait for a Reconnect that polls for an absent device (it
// would block for as long as the device is unplugged).
func TestSource_Info_DuringReconnect(t *testing.T) {
	dev := quantis("A1", 2)
	dev.bulkErr = []error{entropy.ErrDisconnected}
	bus := &fakeBus{devs: []*fakeDev{dev}}
	withFake(t, bus)
	s, err := Open(context.Background(), "q", &Options{PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Read(context.Background(), make([]byte, 8)); !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatal(err)
	}
	scanned := make(chan struct{}, 1)
	bus.mu.Lock()
	bus.devs, bus.scanned = nil, scanned
	bus.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Reconnect(ctx) }()
	<-scanned // Reconnect is polling, holding the source's lock
	<-scanned
	got := make(chan entropy.SourceInfo, 1)
	go func() { got <- s.Info() }()
	select {
	case info := <-got:
		if info.Serial != "A1" || info.Name != "q" {
			t.Errorf("Info during Reconnect = %+v", info)
		}
	case <-time.After(10 * time.Second): // failsafe, not a timing assertion
		t.Error("Info blocked behind Reconnect polling for an absent device")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconnect = %v, want context.Canceled", err)
	}
}

func TestDiscover_Fake(t *testing.T) {
	withFake(t, &fakeBus{devs: []*fakeDev{quantis("B", 5), quantis("A", 3), {vid: 1, pid: 2, sn: "X"}}})
	devs, err := Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].Serial != "A" || devs[0].Path != "usb:1:3" || devs[1].Serial != "B" {
		t.Fatalf("Discover = %+v", devs)
	}
}

func TestMapErr(t *testing.T) {
	for _, tc := range []struct {
		in   error
		want error
	}{
		{gousb.ErrorNoDevice, entropy.ErrDisconnected},
		{gousb.TransferNoDevice, entropy.ErrDisconnected},
		{gousb.ErrorAccess, ErrPermission},
		{fmt.Errorf("failed to claim interface 0 on dev: %v", gousb.ErrorBusy), ErrBusy},
		{fmt.Errorf("failed to set active config 1: %v", gousb.ErrorNoDevice), entropy.ErrDisconnected},
		{gousb.TransferStall, ErrStall},
		{gousb.ErrorPipe, ErrStall},
		{gousb.TransferTimedOut, ErrTimeout},
		{gousb.TransferCancelled, errCancelled},
	} {
		if got := mapErr(tc.in); !errors.Is(got, tc.want) || !strings.Contains(got.Error(), tc.in.Error()) {
			t.Errorf("mapErr(%v) = %v, want %v wrapping the original", tc.in, got, tc.want)
		}
	}
	if mapErr(nil) != nil {
		t.Error("mapErr(nil) != nil")
	}
	other := errors.New("x")
	if mapErr(other) != other {
		t.Error("mapErr changed an unknown error")
	}
}
