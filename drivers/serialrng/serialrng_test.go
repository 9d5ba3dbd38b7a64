package serialrng

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/drivertest"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/testhw/serialsim"
)

// The tests in this file run the driver over real pseudo-terminals through
// the unchanged go.bug.st/serial openPort, except where they say they fake
// the port seam: a pty has no modem lines, so DTR/RTS handling is tested on
// a fake port (seam_test.go) and the pty tests set require_dtr: false.

func newDevice(t *testing.T, o serialsim.Options) *serialsim.Device {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	d, err := serialsim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func openSerial(t *testing.T, params drivers.Params) (*Source, error) {
	t.Helper()
	src, err := (&Driver{}).Open(context.Background(), drivers.Spec{Name: "ser", Kind: Kind, Params: params})
	if err != nil {
		return nil, err
	}
	s := src.(*Source)
	s.sleep = drivertest.NewFakeClock(time.Unix(0, 0)).Sleep
	t.Cleanup(func() { _ = s.Close() })
	return s, nil
}

func mustOpen(t *testing.T, params drivers.Params) *Source {
	t.Helper()
	s, err := openSerial(t, params)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func ptyParams(d *serialsim.Device, profile string, extra ...any) drivers.Params {
	p := drivers.Params{"profile": profile, "device": d.Path(), "require_dtr": false}
	for i := 0; i+1 < len(extra); i += 2 {
		p[extra[i].(string)] = extra[i+1]
	}
	return p
}

// contiguous reports whether got is a run of the device's stream.
func contiguous(seed uint64, written int64, got []byte) bool {
	return bytes.Contains(serialsim.Stream(seed, int(written)+len(got)), got)
}

func TestTrueRNG_Read_Stream(t *testing.T) {
	for _, profile := range []string{"truerng", "truerngpro", "truerngpro-v2"} {
		t.Run(profile, func(t *testing.T) {
			d := newDevice(t, serialsim.Options{Model: serialsim.TrueRNG, Seed: 42})
			s := mustOpen(t, ptyParams(d, profile))
			got := drivertest.ReadFull(t, s, 100_000)
			if !contiguous(42, d.State().Written, got) {
				t.Fatal("bytes read are not a contiguous run of the device's stream")
			}
			info := s.Info()
			if info.Vendor != "ubld.it" || info.Path != d.Path() || info.SampleBits != 8 || info.MinEntropy != 6 {
				t.Errorf("Info() = %+v", info)
			}
			if !strings.Contains(s.ModemLines(), "set DTR failed") {
				t.Errorf("ModemLines() = %q; want the pty's DTR failure recorded", s.ModemLines())
			}
			if len(d.State().Received) != 0 {
				t.Errorf("driver sent %q to a TrueRNG; it takes no commands", d.State().Received)
			}
		})
	}
}

func TestTrueRNG_Open_PtyHasNoDTR(t *testing.T) {
	// Through the real library: a pty refuses TIOCMSET, so with the default
	// require_dtr the open fails with ErrModemLines naming the cause.
	d := newDevice(t, serialsim.Options{Model: serialsim.TrueRNG})
	_, err := openSerial(t, drivers.Params{"profile": "truerng", "device": d.Path()})
	if !errors.Is(err, ErrModemLines) || !errors.Is(err, syscall.ENOTTY) {
		t.Fatalf("Open on a pty with require_dtr = %v; want ErrModemLines wrapping ENOTTY", err)
	}
}

func TestOneRNG_Open_Handshake(t *testing.T) {
	for _, c := range []struct {
		mode string
		h    float64
	}{{"0", 6}, {"1", 2}, {"7", 2}} {
		t.Run("mode"+c.mode, func(t *testing.T) {
			d := newDevice(t, serialsim.Options{Model: serialsim.OneRNG, Seed: 9})
			s := mustOpen(t, ptyParams(d, "onerng", "mode", c.mode))
			got := drivertest.ReadFull(t, s, 20_000)
			st := d.State()
			if want := "cmdocmdvcmdwcmd" + c.mode + "cmdO"; string(st.Received) != want {
				t.Errorf("commands sent %q, want %q", st.Received, want)
			}
			if !st.Running || st.Mode != c.mode[0] || st.Flushes != 1 || st.VersionRequests != 1 {
				t.Errorf("firmware state %+v", st)
			}
			if s.Version() != "2" || s.Info().BoardVersion != "firmware 2" || s.Info().MinEntropy != c.h {
				t.Errorf("version %q, info %+v", s.Version(), s.Info())
			}
			if !contiguous(9, st.Written, got) {
				t.Fatal("bytes read are not a contiguous run of the stream (version reply leaked into data?)")
			}
		})
	}
}

func TestOneRNG_Open_Faults(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault serialsim.Fault
		want  error
	}{
		{"echo", serialsim.Echo, ErrEcho},
		{"garbage", serialsim.Garbage, ErrGarbage},
		{"silent", serialsim.Silent, ErrGarbage},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDevice(t, serialsim.Options{Model: serialsim.OneRNG})
			d.SetFault(c.fault)
			_, err := openSerial(t, ptyParams(d, "onerng", "version_timeout", "300ms"))
			if !errors.Is(err, c.want) {
				t.Fatalf("Open with fault %d = %v; want %v", c.fault, err, c.want)
			}
		})
	}
}

func TestAlphaRNG_Read_RequestResponse(t *testing.T) {
	d := newDevice(t, serialsim.Options{Model: serialsim.AlphaRNG, Seed: 5})
	s := mustOpen(t, ptyParams(d, "alpharng"))
	got := drivertest.ReadFull(t, s, 40_000)
	if !bytes.Equal(got, serialsim.Stream(5, len(got))) {
		t.Fatal("bytes differ from the device's responses")
	}
	if st := d.State(); st.Requests != 3 || string(st.Received) != "xxx" {
		t.Errorf("requests %d (%q); want 3 for 40000 bytes of 16000-byte responses", st.Requests, st.Received)
	}
	d.SetFault(serialsim.Short)
	s.cfg.respTimeout = 300 * time.Millisecond
	var err error
	for err == nil { // use up the buffered response first
		_, err = s.Read(context.Background(), make([]byte, 16000))
	}
	if !errors.Is(err, ErrShortResponse) {
		t.Fatalf("short response: %v; want ErrShortResponse", err)
	}
	d.SetFault(serialsim.Echo)
	if _, err := s.Read(context.Background(), make([]byte, 10)); !errors.Is(err, ErrShortResponse) {
		t.Fatalf("echoing port: %v; want ErrShortResponse", err)
	}
	d.SetFault(serialsim.None)
	if _, err := s.Read(context.Background(), make([]byte, 10)); err != nil {
		t.Fatalf("after the faults cleared: %v (stale bytes not flushed?)", err)
	}
}

func TestGeneric_Read(t *testing.T) {
	d := newDevice(t, serialsim.Options{Model: serialsim.AlphaRNG, Seed: 8})
	s := mustOpen(t, ptyParams(d, "generic", "baud", 115200, "request", int('x'), "response_len", 4000, "dtr", false))
	got := drivertest.ReadFull(t, s, 3000)
	if !bytes.Equal(got, serialsim.Stream(8, 3000)) {
		t.Fatal("generic request/response: bytes differ")
	}
	if st := d.State(); st.Requests != 1 {
		t.Errorf("%d requests for 3000 bytes of a 4000-byte response; want 1", st.Requests)
	}
	d2 := newDevice(t, serialsim.Options{Model: serialsim.TrueRNG, Seed: 1})
	s2 := mustOpen(t, ptyParams(d2, "generic"))
	if got := drivertest.ReadFull(t, s2, 5000); !contiguous(1, d2.State().Written, got) {
		t.Fatal("generic stream: not a run of the stream")
	}
}

func TestTrueRNG_Read_StuckPassesThrough(t *testing.T) {
	d := newDevice(t, serialsim.Options{Model: serialsim.TrueRNG, StuckByte: 0x55})
	s := mustOpen(t, ptyParams(d, "truerng"))
	drivertest.ReadFull(t, s, 16)
	d.SetFault(serialsim.Stuck)
	// Skip what was queued before the fault, then expect only the stuck byte.
	buf := drivertest.ReadFull(t, s, 200_000)
	tail := buf[len(buf)-8192:]
	if !bytes.Equal(tail, bytes.Repeat([]byte{0x55}, len(tail))) {
		t.Fatal("a stuck stream must reach the health tests untouched")
	}
}

func TestTrueRNG_Read_Stall(t *testing.T) {
	d := newDevice(t, serialsim.Options{Model: serialsim.TrueRNG})
	s := mustOpen(t, ptyParams(d, "truerng", "stall_timeout", "300ms"))
	drivertest.ReadFull(t, s, 16)
	d.SetFault(serialsim.Silent)
	buf := make([]byte, 4096)
	var err error
	for err == nil {
		_, err = s.Read(context.Background(), buf)
	}
	if !errors.Is(err, ErrNoData) {
		t.Fatalf("silent device: %v; want ErrNoData", err)
	}
}

func TestSource_Unplug_Reconnect(t *testing.T) {
	d := newDevice(t, serialsim.Options{Model: serialsim.OneRNG, Seed: 3})
	s := mustOpen(t, ptyParams(d, "onerng"))
	drivertest.ReadFull(t, s, 1000)
	if err := d.Unplug(); err != nil {
		t.Fatal(err)
	}
	var err error
	for err == nil {
		_, err = s.Read(context.Background(), make([]byte, 4096))
	}
	if !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("read after unplug: %v; want ErrDisconnected", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Reconnect(ctx); err == nil {
		t.Fatal("Reconnect succeeded with the device unplugged")
	}
	if err := d.Plug(); err != nil {
		t.Fatal(err)
	}
	if err := s.Reconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	drivertest.ReadFull(t, s, 1000)
	if st := d.State(); st.VersionRequests != 2 || st.Plugs != 2 {
		t.Errorf("after reconnect: %+v; want the handshake rerun on the new tty", st)
	}
}

func TestDriver_DiscoverAndSerialSelector(t *testing.T) {
	d := newDevice(t, serialsim.Options{Model: serialsim.TrueRNG})
	old := listPorts
	t.Cleanup(func() { listPorts = old })
	listPorts = func() ([]*enumerator.PortDetails, error) {
		return []*enumerator.PortDetails{
			{Name: "/dev/ttyS0"},
			{Name: d.Path(), IsUSB: true, VID: "04D8", PID: "F5FE", SerialNumber: "TR123"},
			{Name: "/dev/ttyACM7", IsUSB: true, VID: "1d50", PID: "6086", SerialNumber: "ONE1"},
			{Name: "/dev/ttyACM8", IsUSB: true, VID: "3975", PID: "0005"},
			{Name: "/dev/ttyUSB0", IsUSB: true, VID: "0403", PID: "6001", SerialNumber: "FTDI"},
		}, nil
	}
	devs, err := (&Driver{}).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []drivers.Device{
		{Kind: Kind, VendorID: 0x04d8, ProductID: 0xf5fe, Serial: "TR123", Path: d.Path(), Model: "truerng"},
		{Kind: Kind, VendorID: 0x1d50, ProductID: 0x6086, Serial: "ONE1", Path: "/dev/ttyACM7", Model: "onerng"},
		{Kind: Kind, VendorID: 0x3975, ProductID: 0x0005, Path: "/dev/ttyACM8", Model: "alpharng"},
	}
	if len(devs) != len(want) {
		t.Fatalf("Discover = %+v", devs)
	}
	for i := range want {
		if devs[i] != want[i] {
			t.Errorf("device %d = %+v, want %+v", i, devs[i], want[i])
		}
	}
	s := mustOpen(t, drivers.Params{"profile": "truerng", "serial": "TR123", "require_dtr": false})
	if s.Info().Serial != "TR123" || s.Info().Path != d.Path() {
		t.Errorf("serial selector opened %+v", s.Info())
	}
	drivertest.ReadFull(t, s, 100)
	s.Close()
	// Opened by path, the source still reports the USB serial of its port.
	byPath := mustOpen(t, drivers.Params{"profile": "truerng", "device": d.Path(), "require_dtr": false})
	if got := byPath.Info().Serial; got != "TR123" {
		t.Errorf("opened by path: serial %q, want TR123 from the enumerator", got)
	}
	byPath.Close()
	if _, err := openSerial(t, drivers.Params{"profile": "onerng", "serial": "TR123"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("serial of a TrueRNG with profile onerng: %v; want ErrNotFound", err)
	}
}

func TestDriver_Discover_RealEnumerator(t *testing.T) {
	// The real go.bug.st enumerator reads sysfs; on a host without USB
	// serial ports it finds nothing, which must not be an error.
	if _, err := (&Driver{}).Discover(context.Background()); err != nil {
		t.Skipf("enumerator unavailable here: %v", err)
	}
}

func TestOpen_ParamErrors(t *testing.T) {
	for _, c := range []struct {
		params drivers.Params
		key    string
	}{
		{drivers.Params{"profile": "nope", "device": "/dev/ttyACM0"}, "profile"},
		{drivers.Params{"profile": "truerng"}, "device"},
		{drivers.Params{"profile": "truerng", "device": "/a", "serial": "x"}, "device"},
		{drivers.Params{"profile": "truerngpro", "device": "/a", "baud": 110}, "baud"},
		{drivers.Params{"profile": "onerng", "device": "/a", "mode": "4"}, "mode"},
		{drivers.Params{"profile": "onerng", "device": "/a", "mode": "12"}, "mode"},
		{drivers.Params{"profile": "generic", "device": "/a", "request": 120}, "response_len"},
		{drivers.Params{"profile": "generic", "device": "/a", "request": 300, "response_len": 1}, "request"},
		{drivers.Params{"profile": "generic", "device": "/a", "baud": 0}, "baud"},
		{drivers.Params{"profile": "alpharng", "device": "/a", "response_timeout": "1h"}, "response_timeout"},
		{drivers.Params{"profile": "truerng", "device": "/a", "stall_timeout": "1ms"}, "stall_timeout"},
		{drivers.Params{"profile": "truerng", "device": "/a", "mode": "0"}, "mode"},
	} {
		_, err := openSerial(t, c.params)
		var pe *drivers.ParamError
		if !errors.As(err, &pe) || pe.Key != c.key {
			t.Errorf("Open(%v) = %v; want a ParamError for %q", c.params, err, c.key)
		}
	}
	if _, err := openSerial(t, drivers.Params{"profile": "truerng", "device": "/nonexistent/ttyACM0"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing device: %v; want ErrNotFound", err)
	}
	if _, err := openSerial(t, drivers.Params{"profile": "truerng", "device": "/dev/null"}); !errors.Is(err, ErrIO) {
		t.Errorf("/dev/null: %v; want ErrIO (not a tty)", err)
	}
}

func TestConformance(t *testing.T) {
	devs := map[entropy.Source]*serialsim.Device{}
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) entropy.Source {
			d := newDevice(t, serialsim.Options{Model: serialsim.TrueRNG, Seed: 77})
			s := mustOpen(t, ptyParams(d, "truerng"))
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
			if err := devs[s].Plug(); err != nil {
				t.Fatal(err)
			}
		},
		Hang: func(t *testing.T, s entropy.Source) <-chan struct{} {
			devs[s].SetFault(serialsim.Silent)
			// Drain what the tty already holds (until a Read with a short
			// deadline times out) so the next Read waits on the device. The
			// port read has no hook to say "blocked", so the channel closes
			// once the queue is empty: the Read the suite starts next can
			// only block (or see its ctx cancelled first).
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
				_, err := s.Read(ctx, make([]byte, 1<<16))
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					break
				}
				if err != nil {
					t.Fatalf("draining before the hang: %v", err)
				}
			}
			ch := make(chan struct{})
			close(ch)
			return ch
		},
		FaultWithin: 1 << 20,
	})
}

// compile-time check that the real library's port fits the seam.
var _ port = serial.Port(nil)
