package quantisusb

// Tests named *USB* run the real gousb → libusb → usbdevfs path against
// devices emulated by testhw/usbsim; they need umockdev-run (see
// usbsim.SkipMessage) and skip otherwise.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/drivertest"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/testhw/usbsim"
)

var (
	simBus    *usbsim.Bus
	serialSeq atomic.Int64
)

// emuBus returns the package's emulated bus, skipping without umockdev.
func emuBus(t testing.TB) *usbsim.Bus {
	t.Helper()
	root := usbsim.Root()
	if root == "" {
		t.Skip(usbsim.SkipMessage)
	}
	if simBus == nil {
		b, err := usbsim.NewBus(root)
		if err != nil {
			t.Fatal(err)
		}
		simBus = b
	}
	return simBus
}

// plug connects a fresh emulated device with a unique serial; it is
// unplugged when the test ends.
func plug(t testing.TB, cfg usbsim.DeviceConfig) *usbsim.Device {
	t.Helper()
	b := emuBus(t)
	if cfg.Serial == "" {
		cfg.Serial = fmt.Sprintf("QSIM%06d", serialSeq.Add(1))
	}
	d, err := b.Plug(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Unplug() })
	return d
}

func openEmu(t testing.TB, d *usbsim.Device, o *Options) *Source {
	t.Helper()
	var opts Options
	if o != nil {
		opts = *o
	}
	opts.Serial = d.Serial()
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	s, err := Open(context.Background(), "usb0", &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestUSB_Discover(t *testing.T) {
	a := plug(t, usbsim.DeviceConfig{})
	b := plug(t, usbsim.DeviceConfig{})
	devs, err := Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]drivers.Device{}
	for _, d := range devs {
		found[d.Serial] = d
	}
	for _, d := range []*usbsim.Device{a, b} {
		got, ok := found[d.Serial()]
		bus, addr := d.Addr()
		want := drivers.Device{Kind: Kind, VendorID: 0x0ABA, ProductID: 0x0102, Serial: d.Serial(),
			Path: fmt.Sprintf("usb:%d:%d", bus, addr), Model: "Quantis USB-4M"}
		if !ok || got != want {
			t.Errorf("Discover: %+v, want %+v (all: %+v)", got, want, devs)
		}
	}
}

func TestUSB_Open_InfoAndStatus(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{BoardVersion: 0x0A0B0C0D, AIS31Flag: true, Unconfigured: true})
	s := openEmu(t, dev, nil)
	bus, addr := dev.Addr()
	want := entropy.SourceInfo{Name: "usb0", Kind: "quantis-usb", Vendor: "ID Quantique", Model: "Quantis USB-4M",
		Serial: dev.Serial(), BoardVersion: "0x0a0b0c0d", Path: fmt.Sprintf("usb:%d:%d", bus, addr),
		SampleBits: 8, NominalRate: 500000, MinEntropy: DefaultMinEntropy}
	if got := s.Info(); got != want {
		t.Fatalf("Info = %+v\nwant %+v", got, want)
	}
	st, err := s.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantSt := Status{BoardVersion: 0x0A0B0C0D, ModulesMask: 1, ModuleStatus: 1, ModulesPower: 1, RateKbit: 4000, AIS31StartupRequested: true}
	if st != wantSt || st.RateBytes() != 500000 {
		t.Fatalf("Status = %+v (%d B/s), want %+v", st, st.RateBytes(), wantSt)
	}
	if err := s.ClearAIS31StartupRequest(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ = s.Status(context.Background()); st.AIS31StartupRequested {
		t.Fatal("AIS31 flag still set after ClearAIS31StartupRequest")
	}
	ds := dev.Stats()
	if len(ds.SetConfig) != 1 || ds.SetConfig[0] != 1 || ds.Claims != 1 {
		t.Fatalf("device saw SETCONFIGURATION %v and %d claims; want [1] and 1", ds.SetConfig, ds.Claims)
	}
	for req := 0x10; req <= 0x18; req++ {
		if req == 0x11 || req == 0x12 {
			continue
		}
		if ds.Requests[req] == 0 {
			t.Errorf("vendor request 0x%02x never reached the device", req)
		}
	}
}

func TestUSB_Open_WrongSerial(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	_, err := Open(context.Background(), "usb0", &Options{Serial: "NOSUCHSERIAL"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open(wrong serial) = %v, want ErrNotFound", err)
	}
	for _, want := range []string{"NOSUCHSERIAL", dev.Serial(), "0aba:0102"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if st := dev.Stats(); st.Claims != 0 {
		t.Errorf("the other device was claimed %d times", st.Claims)
	}
}

func TestUSB_Open_SeveralWithoutSerial(t *testing.T) {
	plug(t, usbsim.DeviceConfig{})
	plug(t, usbsim.DeviceConfig{})
	_, err := Open(context.Background(), "usb0", nil)
	if err == nil || !strings.Contains(err.Error(), "set `serial`") {
		t.Fatalf("Open(no serial, two devices) = %v, want an error asking for `serial`", err)
	}
}

func TestUSB_Read_Stream(t *testing.T) {
	for _, size := range []int{packetSize, DefaultTransferSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dev := plug(t, usbsim.DeviceConfig{Seed: 42})
			s := openEmu(t, dev, &Options{TransferSize: size})
			got := drivertest.ReadFull(t, s, 3*size+100)
			want := make([]byte, len(got))
			io.ReadFull(usbsim.Stream(42), want)
			if !bytes.Equal(got, want) {
				t.Fatal("bytes read differ from the device's stream (lost, duplicated or reordered data)")
			}
			st := dev.Stats()
			// Status before the first transfer and after each one.
			if want := st.BulkURBs + 1; st.Requests[reqStatus] != want {
				t.Errorf("%d status requests for %d bulk transfers; want %d", st.Requests[reqStatus], st.BulkURBs, want)
			}
		})
	}
}

func TestUSB_Read_ModuleError(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	s := openEmu(t, dev, &Options{ResetSettle: time.Millisecond})
	drivertest.ReadFull(t, s, 100)
	s.mu.Lock()
	s.buf = nil // make the next Read transfer
	s.mu.Unlock()
	dev.SetModuleError(true, false)
	_, err := s.Read(context.Background(), make([]byte, DefaultTransferSize))
	var me *ModuleError
	if !errors.As(err, &me) || !errors.Is(err, ErrModule) || me.Status != 0 {
		t.Fatalf("Read with the module failed = %v, want *ModuleError (ErrModule)", err)
	}
	// The failure is not sticky in the driver: the device still says no.
	if _, err := s.Read(context.Background(), make([]byte, 16)); !errors.Is(err, ErrModule) {
		t.Fatalf("second Read = %v, want ErrModule", err)
	}
	if err := s.Reset(context.Background()); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	st := dev.Stats()
	if st.Requests[reqDisable] != 1 || st.Requests[reqEnable] != 1 {
		t.Fatalf("reset sent disable %d, enable %d times; want 1, 1", st.Requests[reqDisable], st.Requests[reqEnable])
	}
	drivertest.ReadFull(t, s, 1000)

	dev.SetModuleError(true, true) // a module that stays broken
	if err := s.Reset(context.Background()); !errors.Is(err, ErrModule) {
		t.Fatalf("Reset of a broken module = %v, want ErrModule", err)
	}
}

func TestUSB_Read_Stall(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	s := openEmu(t, dev, nil)
	drivertest.ReadFull(t, s, 100)
	s.mu.Lock()
	s.buf = nil // make the next Read transfer
	s.mu.Unlock()
	dev.StallBulk()
	if _, err := s.Read(context.Background(), make([]byte, 64)); !errors.Is(err, ErrStall) {
		t.Fatalf("Read on a halted endpoint = %v, want ErrStall", err)
	}
	if st := dev.Stats(); st.ClearHalts != 1 {
		t.Fatalf("driver cleared the halt %d times, want 1", st.ClearHalts)
	}
	drivertest.ReadFull(t, s, 1000)
}

func TestUSB_Read_ShortPacket(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{Seed: 9})
	s := openEmu(t, dev, nil)
	dev.ShortBulk(1, 100)
	if n, err := s.Read(context.Background(), make([]byte, 64)); n != 0 || !errors.Is(err, ErrShortRead) {
		t.Fatalf("Read with a short packet = %d, %v; want 0, ErrShortRead", n, err)
	}
	// The short transfer's bytes were dropped; the next ones are whole.
	got := drivertest.ReadFull(t, s, DefaultTransferSize)
	want := make([]byte, 100+DefaultTransferSize)
	io.ReadFull(usbsim.Stream(9), want)
	if !bytes.Equal(got, want[100:]) {
		t.Fatal("data after the short packet is not the next whole transfer")
	}
}

func TestUSB_UnplugReplug(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	s := openEmu(t, dev, nil)
	drivertest.ReadFull(t, s, 100)
	_, oldAddr := dev.Addr()
	if err := dev.Unplug(); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = s.Read(context.Background(), make([]byte, DefaultTransferSize))
	}
	if !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("Read after unplug = %v, want ErrDisconnected", err)
	}
	if _, err := s.Read(context.Background(), make([]byte, 1)); !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("second Read after unplug = %v, want ErrDisconnected", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	err = s.Reconnect(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reconnect while unplugged = %v, want DeadlineExceeded", err)
	}
	// Replug while Reconnect polls.
	done := make(chan error, 1)
	go func() { done <- s.Reconnect(context.Background()) }()
	if err := dev.Replug(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Reconnect: %v", err)
	}
	_, newAddr := dev.Addr()
	if got := s.Info().Path; got != fmt.Sprintf("usb:1:%d", newAddr) || newAddr == oldAddr {
		t.Fatalf("Info().Path = %s after replug at address %d (was %d)", got, newAddr, oldAddr)
	}
	drivertest.ReadFull(t, s, 1000)
}

func TestUSB_Read_CtxCancelWhileBlocked(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	s := openEmu(t, dev, nil)
	held := dev.HoldBulk(true)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := s.Read(ctx, make([]byte, 64))
		res <- err
	}()
	<-held
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Read = %v, want context.Canceled", err)
	}
	if st := dev.Stats(); st.Discards != 1 {
		t.Fatalf("device saw %d DISCARDURB, want 1", st.Discards)
	}
	dev.HoldBulk(false)
	drivertest.ReadFull(t, s, 100)
}

func TestUSB_Read_Timeout(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	s := openEmu(t, dev, &Options{TransferSize: packetSize})
	dev.HoldBulk(true)
	if _, err := s.Read(context.Background(), make([]byte, 64)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Read from a silent device = %v, want ErrTimeout after %v", err, ioTimeout)
	}
}

func TestUSB_Driver_Open(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	src, err := drivers.Open(context.Background(), drivers.Spec{Name: "q1", Kind: "quantis-usb", MinEntropy: 6.5,
		Params: drivers.Params{"serial": dev.Serial(), "vendor_id": "0x0aba", "transfer_size": 1024}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if info := src.Info(); info.MinEntropy != 6.5 || info.Serial != dev.Serial() {
		t.Fatalf("Info = %+v", info)
	}
	drivertest.ReadFull(t, src, 3000)
}

func TestUSB_Conformance(t *testing.T) {
	emuBus(t)
	devs := map[entropy.Source]*usbsim.Device{}
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) entropy.Source {
			d := plug(t, usbsim.DeviceConfig{})
			s, err := Open(context.Background(), "usb0", &Options{Serial: d.Serial(), PollInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			devs[s] = d
			return s
		},
		Fault: func(t *testing.T, s entropy.Source) {
			if err := devs[s].Unplug(); err != nil {
				t.Fatal(err)
			}
		},
		FaultErr: entropy.ErrDisconnected,
		Restore: func(t *testing.T, s entropy.Source) {
			if err := devs[s].Replug(); err != nil {
				t.Fatal(err)
			}
		},
		Hang: func(t *testing.T, s entropy.Source) <-chan struct{} {
			src := s.(*Source)
			src.mu.Lock()
			src.buf = nil // drop buffered bytes so the next Read reaches the device
			src.mu.Unlock()
			return devs[s].HoldBulk(true)
		},
	})
}

// BenchmarkUSBRead reads through gousb/libusb from the emulated device
// (run under umockdev-run) and reports throughput and CPU seconds (user +
// sys of the whole process, the in-process device emulation included) per
// MB.
func BenchmarkUSBRead(b *testing.B) {
	for _, size := range []int{packetSize, DefaultTransferSize, 64 * packetSize} {
		b.Run(fmt.Sprintf("transfer=%d", size), func(b *testing.B) {
			dev := plug(b, usbsim.DeviceConfig{})
			s := openEmu(b, dev, &Options{TransferSize: size})
			buf := make([]byte, 64<<10)
			ctx := context.Background()
			b.SetBytes(int64(len(buf)))
			cpu0 := cpuSeconds(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for got := 0; got < len(buf); {
					n, err := s.Read(ctx, buf[got:])
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
			b.StopTimer()
			mb := float64(b.N) * float64(len(buf)) / 1e6
			b.ReportMetric((cpuSeconds(b)-cpu0)/mb, "cpu-s/MB")
		})
	}
}

func cpuSeconds(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func TestUSB_Unplug_WhileReadBlocked(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	s := openEmu(t, dev, nil)
	held := dev.HoldBulk(true)
	res := make(chan error, 1)
	go func() {
		_, err := s.Read(context.Background(), make([]byte, 64))
		res <- err
	}()
	<-held
	if err := dev.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("Read blocked during unplug = %v, want ErrDisconnected", err)
	}
}

func TestUSB_Open_Busy(t *testing.T) {
	dev := plug(t, usbsim.DeviceConfig{})
	dev.SetClaimed(true)
	_, err := Open(context.Background(), "usb0", &Options{Serial: dev.Serial()})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), dev.Serial()) {
		t.Fatalf("Open of a claimed device = %v, want ErrBusy naming the serial", err)
	}
	dev.SetClaimed(false)
	s := openEmu(t, dev, nil)
	drivertest.ReadFull(t, s, 10)
}
