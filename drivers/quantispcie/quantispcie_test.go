package quantispcie

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/drivertest"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/testhw/pciesim"
)

// useHost points the driver's device seam at a simulated host for the test.
// Tests using it must not run in parallel.
func useHost(t *testing.T) *pciesim.Host {
	t.Helper()
	h := pciesim.NewHost(t.TempDir())
	old := openDevice
	openDevice = func(path string) (device, error) {
		f, err := h.Open(path)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	t.Cleanup(func() { openDevice = old })
	return h
}

var serialBytes = [12]byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x00}

func plug(t *testing.T, h *pciesim.Host, idx int, o pciesim.CardOptions) *pciesim.Card {
	t.Helper()
	c := pciesim.NewCard(o)
	if _, err := h.Plug(idx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func open(t *testing.T, h *pciesim.Host, params drivers.Params) *Source {
	t.Helper()
	src, err := (&Driver{DevRoot: h.Root()}).Open(context.Background(), drivers.Spec{Name: "pcie", Kind: Kind, Params: params})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s := src.(*Source)
	s.sleep = drivertest.NewFakeClock(time.Unix(0, 0)).Sleep
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestIoctl_RequestNumbers(t *testing.T) {
	// The driver encodes the requests with _IOR/_IOW; the simulator holds
	// the literal values from hardware.md. They must agree.
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"GET_DRIVER_VERSION", reqGetDriverVersion, pciesim.ReqGetDriverVersion},
		{"GET_CARD_COUNT", reqGetCardCount, pciesim.ReqGetCardCount},
		{"GET_MODULES_MASK", reqGetModulesMask, pciesim.ReqGetModulesMask},
		{"GET_BOARD_VERSION", reqGetBoardVersion, pciesim.ReqGetBoardVersion},
		{"RESET_BOARD", reqResetBoard, pciesim.ReqResetBoard},
		{"ENABLE_MODULE", reqEnableModule, pciesim.ReqEnableModule},
		{"DISABLE_MODULE", reqDisableModule, pciesim.ReqDisableModule},
		{"GET_MODULES_STATUS", reqGetModulesStatus, pciesim.ReqGetModulesStatus},
		{"GET_AIS31_STARTUP_TESTS_REQUEST_FLAG", reqGetAIS31Flag, pciesim.ReqGetAIS31Flag},
		{"CLEAR_AIS31_STARTUP_TESTS_REQUEST_FLAG", reqClearAIS31Flag, pciesim.ReqClearAIS31Flag},
		{"GET_SERIAL", reqGetSerial, pciesim.ReqGetSerial},
		{"GET_CURRENT_QRNG_MODE", reqGetCurrentQRNGMode, pciesim.ReqGetCurrentQRNGMode},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestOpen_Families(t *testing.T) {
	for _, c := range []struct {
		model      pciesim.Model
		family     Family
		name       string
		rate       float64
		serial     string
		board      uint32
		boardStr   string
		vid, pid   uint16
		cardCount  uint32
		ais31Asked bool
	}{
		{pciesim.PCIe4M, FamilyPCIModule, "PCIe-4M", 500000, "", 0x24, "0x24", 0x179A, 0x0001, 1, true},
		{pciesim.PCIe16M, FamilyPCIModule, "PCIe-16M", 2000000, "", 0x31, "0x31", 0x179A, 0x0001, 1, true},
		{pciesim.PCIe40M, FamilyChip, "PCIe-40M", 5e6, hex.EncodeToString(serialBytes[:]), 0x02010203, "fw 1.2.3 pcb 2 (0x02010203)", 0x1E89, 0x0002, 1, false},
		{pciesim.PCIe240M, FamilyChip, "PCIe-240M", 30e6, hex.EncodeToString(serialBytes[:]), 0x03040506, "fw 4.5.6 pcb 3 (0x03040506)", 0x1E89, 0x0003, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := useHost(t)
			card := plug(t, h, 0, pciesim.CardOptions{Model: c.model, Serial: serialBytes, BoardVersion: c.board})
			s := open(t, h, nil)
			info := s.Info()
			if err := info.Validate(); err != nil {
				t.Fatal(err)
			}
			want := entropy.SourceInfo{Name: "pcie", Kind: Kind, Vendor: "ID Quantique", Model: c.name, Serial: c.serial,
				BoardVersion: c.boardStr, Path: h.Path(0), SampleBits: 8, NominalRate: c.rate, MinEntropy: DefaultMinEntropy}
			if info != want {
				t.Errorf("Info() = %+v\nwant      %+v", info, want)
			}
			ci := s.Card()
			if ci.Family != c.family || ci.DriverVersion != pciesim.DriverVersion || ci.CardCount != c.cardCount ||
				ci.ModulesMask != c.model.PresentMask() || ci.AIS31Requested != c.ais31Asked {
				t.Errorf("Card() = %+v", ci)
			}
			st := card.Stats()
			if st.AIS31Flag {
				t.Error("the AIS31 start-up request flag is still set after open")
			}
			if st.Enabled != c.model.PresentMask() {
				t.Errorf("enabled modules %#x, want %#x", st.Enabled, c.model.PresentMask())
			}
			devs, err := (&Driver{DevRoot: h.Root()}).Discover(context.Background())
			if err != nil || len(devs) != 1 {
				t.Fatalf("Discover = %+v, %v", devs, err)
			}
			wantDev := drivers.Device{Kind: Kind, VendorID: c.vid, ProductID: c.pid, Serial: c.serial, Path: h.Path(0), Model: c.name}
			if devs[0] != wantDev {
				t.Errorf("Discover = %+v, want %+v", devs[0], wantDev)
			}
		})
	}
}

func TestSource_Read_Stream(t *testing.T) {
	for _, m := range []pciesim.Model{pciesim.PCIe4M, pciesim.PCIe240M} {
		t.Run(m.String(), func(t *testing.T) {
			h := useHost(t)
			card := plug(t, h, 0, pciesim.CardOptions{Model: m, Seed: 7})
			s := open(t, h, nil)
			got := make([]byte, 300_000)
			if n, err := s.Read(context.Background(), got); n != len(got) || err != nil {
				t.Fatalf("Read = %d, %v", n, err)
			}
			if !bytes.Equal(got, pciesim.Stream(7, len(got))) {
				t.Fatal("bytes read differ from the card's stream")
			}
			st := card.Stats()
			wantGarbage := int64(0)
			if m.Chip() {
				wantGarbage = pciesim.GarbageRNGMode
			}
			if st.GarbageDiscarded != wantGarbage {
				t.Errorf("garbage discarded = %d, want %d", st.GarbageDiscarded, wantGarbage)
			}
			// One status check at open plus one per MiB: none more.
			if n := st.Ioctls[pciesim.ReqGetModulesStatus]; n != 1 {
				t.Errorf("GET_MODULES_STATUS called %d times for 300 kB; want 1", n)
			}
			if st.Reads != (len(got)+pciesim.MaxReadPCIModule-1)/pciesim.MaxReadPCIModule {
				t.Errorf("%d read(2) calls for %d bytes in 64 KiB reads", st.Reads, len(got))
			}
		})
	}
}

func TestSource_Read_EINTRAndShortReads(t *testing.T) {
	h := useHost(t)
	card := plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe16M, Seed: 3})
	s := open(t, h, nil)
	card.InjectEINTR(5)
	card.SetShortReads(7)
	got := make([]byte, 5000)
	if n, err := s.Read(context.Background(), got); n != len(got) || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if !bytes.Equal(got, pciesim.Stream(3, len(got))) {
		t.Fatal("bytes differ from the stream after EINTR and short reads")
	}
	if r := card.Stats().Reads; r < 5+len(got)/7 {
		t.Errorf("only %d read(2) calls; short reads were not exercised", r)
	}
	card.InjectEINTR(maxEINTR + 1)
	if n, err := s.Read(context.Background(), got); n != 0 || !errors.Is(err, ErrIO) || !errors.Is(err, syscall.EINTR) {
		t.Errorf("Read with endless EINTR = %d, %v; want 0, ErrIO wrapping EINTR", n, err)
	}
}

func TestSource_Read_ModuleError(t *testing.T) {
	for _, c := range []struct {
		name    string
		model   pciesim.Model
		healthy uint32
		params  drivers.Params
		within  int // bytes read before the error shows; -1 = no error
		status  uint32
	}{
		{"pci-module/EIO", pciesim.PCIe16M, 0xB, nil, 0, 0xB},
		{"pci-module/none", pciesim.PCIe4M, 0, nil, 0, 0},
		{"chip/next-check", pciesim.PCIe40M, 0x1, drivers.Params{"status_check_bytes": 4096}, 4096, 0x1},
		{"chip/every-read", pciesim.PCIe240M, 0xFFE, drivers.Params{"status_check_bytes": 0}, 0, 0xFFE},
		{"chip/degraded-allowed", pciesim.PCIe240M, 0x0FF, drivers.Params{"allow_degraded": true, "status_check_bytes": 0}, -1, 0},
		{"chip/degraded-all-gone", pciesim.PCIe240M, 0, drivers.Params{"allow_degraded": true, "status_check_bytes": 0}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := useHost(t)
			card := plug(t, h, 0, pciesim.CardOptions{Model: c.model, Seed: 1})
			s := open(t, h, c.params)
			drivertest.ReadFull(t, s, 16)
			card.SetHealthy(c.healthy)
			buf := make([]byte, 1024)
			read := 0
			var err error
			for read <= 1<<16 {
				var n int
				n, err = s.Read(context.Background(), buf)
				if err != nil {
					if n != 0 {
						t.Errorf("failing Read delivered %d bytes", n)
					}
					break
				}
				read += n
			}
			if c.within < 0 {
				if err != nil {
					t.Fatalf("degraded card with allow_degraded: %v", err)
				}
				return
			}
			var me *ModuleError
			if !errors.As(err, &me) || !errors.Is(err, ErrModule) {
				t.Fatalf("Read error %v; want a *ModuleError", err)
			}
			if me.Status != c.status || me.Expected != c.model.PresentMask() {
				t.Errorf("ModuleError = %+v, want status %#x of %#x", me, c.status, c.model.PresentMask())
			}
			if read > c.within {
				t.Errorf("%d bytes delivered after the module failed; want at most %d", read, c.within)
			}
			card.SetHealthy(c.model.PresentMask())
			drivertest.ReadFull(t, s, 4096) // recovers once healthy
		})
	}
}

func TestSource_Status_BusyWait(t *testing.T) {
	clock := pciesim.NewFakeClock()
	h := useHost(t)
	card := plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe240M, Clock: clock})
	card.SetSensorReadyIn(300 * time.Millisecond)
	start := clock.Now()
	s := open(t, h, nil)
	drivertest.ReadFull(t, s, 16)
	if w := card.Stats().SensorWaits; w != 300 {
		t.Errorf("status busy-waited %d ms, want 300", w)
	}
	if d := clock.Now().Sub(start); d < 300*time.Millisecond {
		t.Errorf("card clock advanced %v, want ≥ 300ms", d)
	}
	card.SetSensorReadyIn(-1)
	if err := s.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read(context.Background(), make([]byte, 16))
	var me *ModuleError
	if !errors.As(err, &me) || me.Status != 0 {
		t.Fatalf("Read with the sensor never ready: %v; want a ModuleError with status 0", err)
	}
	if w := card.Stats().SensorWaits; w != 300+1000 {
		t.Errorf("status busy-waited %d polls in total, want 1300", w)
	}
	if mask, st, err := s.ModulesStatus(context.Background()); err != nil || mask != 0xFFF || st != 0 {
		t.Errorf("ModulesStatus = %#x, %#x, %v", mask, st, err)
	}
}

func TestSource_ModuleRequests(t *testing.T) {
	t.Run("chip answers EINVAL", func(t *testing.T) {
		h := useHost(t)
		card := plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe40M})
		s := open(t, h, nil)
		for name, f := range map[string]func() error{
			"EnableModules":         func() error { return s.EnableModules(1) },
			"DisableModules":        func() error { return s.DisableModules(1) },
			"AIS31StartupFlag":      func() error { _, err := s.AIS31StartupFlag(); return err },
			"ClearAIS31StartupFlag": s.ClearAIS31StartupFlag,
		} {
			if err := f(); !errors.Is(err, ErrUnsupported) || !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s on a chip card = %v; want ErrUnsupported wrapping EINVAL", name, err)
			}
		}
		drivertest.ReadFull(t, s, 4096) // the card still works
		if n := card.Stats().Ioctls[pciesim.ReqEnableModule]; n != 1 {
			t.Errorf("ENABLE_MODULE sent %d times; the driver must not send it at open on a chip card", n-1)
		}
	})
	t.Run("pci-module", func(t *testing.T) {
		h := useHost(t)
		card := plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe16M})
		s := open(t, h, nil)
		if err := s.DisableModules(0x3); err != nil {
			t.Fatal(err)
		}
		if e := card.Stats().Enabled; e != 0xC {
			t.Fatalf("enabled after disabling 0x3 = %#x, want 0xc", e)
		}
		drivertest.ReadFull(t, s, 4096) // the remaining modules serve
		if err := s.EnableModules(0x1); err != nil {
			t.Fatal(err)
		}
		if e := card.Stats().Enabled; e != 0xD {
			t.Fatalf("enabled = %#x, want 0xd", e)
		}
		if f, err := s.AIS31StartupFlag(); err != nil || f {
			t.Fatalf("AIS31StartupFlag = %v, %v; want false (cleared at open)", f, err)
		}
		if err := s.ClearAIS31StartupFlag(); err != nil {
			t.Fatal(err)
		}
		if mask, st, err := s.ModulesStatus(context.Background()); err != nil || mask != 0xF || st != 0xD {
			t.Errorf("ModulesStatus = %#x, %#x, %v; want 0xf, 0xd", mask, st, err)
		}
		if err := s.Reset(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := card.Stats(); st.Resets != 1 || st.Enabled != 0xF {
			t.Errorf("after Reset: %d resets, enabled %#x; want 1, 0xf", st.Resets, st.Enabled)
		}
	})
}

func TestSource_Reset_ChipGarbage(t *testing.T) {
	h := useHost(t)
	card := plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe240M, Seed: 11})
	s := open(t, h, nil)
	a := drivertest.ReadFull(t, s, 1000)
	if err := s.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := drivertest.ReadFull(t, s, 1000)
	if !bytes.Equal(append(a, b...), pciesim.Stream(11, 2000)) {
		t.Fatal("start-up garbage reached the reader after reset")
	}
	if st := card.Stats(); st.Resets != 1 || st.GarbageDiscarded != 2*pciesim.GarbageRNGMode {
		t.Errorf("resets %d, garbage discarded %d; want 1, %d", st.Resets, st.GarbageDiscarded, 2*pciesim.GarbageRNGMode)
	}
}

func TestSource_Read_Vanish(t *testing.T) {
	h := useHost(t)
	card := plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: serialBytes, Seed: 5})
	s := open(t, h, nil)
	card.VanishAfter(10_000)
	n, err := s.Read(context.Background(), make([]byte, 65536))
	if n != 0 || !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("Read across the vanish = %d, %v; want 0, ErrDisconnected", n, err)
	}
	if _, err := s.Read(context.Background(), make([]byte, 1)); !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("Read after the vanish = %v; want ErrDisconnected", err)
	}
	h.Unplug(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Reconnect(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Reconnect while absent = %v; want context.Canceled and ErrNotFound", err)
	}
	// The card comes back under another index; the serial finds it.
	plug(t, h, 3, pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: serialBytes, Seed: 6})
	if err := s.Reconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := s.Info().Path; p != h.Path(3) {
		t.Errorf("reconnected to %s, want %s", p, h.Path(3))
	}
	if got := drivertest.ReadFull(t, s, 100); !bytes.Equal(got, pciesim.Stream(6, 100)) {
		t.Error("bytes after reconnect differ from the new card's stream")
	}
}

func TestSource_Read_StuckPassesThrough(t *testing.T) {
	h := useHost(t)
	card := plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe40M})
	s := open(t, h, nil)
	card.SetStuck(true, 0xAA)
	got := drivertest.ReadFull(t, s, 8192)
	if !bytes.Equal(got, bytes.Repeat([]byte{0xAA}, len(got))) {
		t.Fatal("the driver altered a stuck stream; it must pass it to the health tests untouched")
	}
}

func TestOpen_Errors(t *testing.T) {
	h := useHost(t)
	plug(t, h, 0, pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: serialBytes})
	plug(t, h, 1, pciesim.CardOptions{Model: pciesim.PCIe4M})
	plug(t, h, 2, pciesim.CardOptions{Model: pciesim.PCIe40M, SampleMode: true})
	h.DenyOpen(1, true)
	d := &Driver{DevRoot: h.Root()}
	for _, c := range []struct {
		name    string
		params  drivers.Params
		h       float64
		target  error
		wantKey string
		wantMsg string
	}{
		{"permission", drivers.Params{"card": 1}, 0, ErrPermission, "", "99-qrngd.rules"},
		{"absent", drivers.Params{"card": 7}, 0, ErrNotFound, "", "qrandom7"},
		{"sample mode", drivers.Params{"card": 2}, 0, ErrMode, "", "default_qrng_mode=0"},
		{"ambiguous", nil, 0, nil, "", "choose one with device, card or serial"},
		{"serial miss", drivers.Params{"serial": "00ff"}, 0, ErrNotFound, "", "no card with serial 00ff"},
		{"two selectors", drivers.Params{"card": 0, "device": "/dev/qrandom0"}, 0, nil, "device", ""},
		{"relative device", drivers.Params{"device": "qrandom0"}, 0, nil, "device", ""},
		{"bad serial", drivers.Params{"serial": "xyz"}, 0, nil, "serial", ""},
		{"status bytes", drivers.Params{"status_check_bytes": -1}, 0, nil, "status_check_bytes", ""},
		{"interval", drivers.Params{"reconnect_interval": "1h"}, 0, nil, "reconnect_interval", ""},
		{"unknown key", drivers.Params{"card": 0, "baud": 9600}, 0, nil, "baud", ""},
		{"min entropy", drivers.Params{"card": 0}, 9, nil, "", "min_entropy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Open(context.Background(), drivers.Spec{Name: "x", Kind: Kind, MinEntropy: c.h, Params: c.params})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if c.target != nil && !errors.Is(err, c.target) {
				t.Errorf("error %v does not match %v", err, c.target)
			}
			var pe *drivers.ParamError
			if c.wantKey != "" && (!errors.As(err, &pe) || pe.Key != c.wantKey) {
				t.Errorf("error %v does not name key %q", err, c.wantKey)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("error %q lacks %q", err, c.wantMsg)
			}
		})
	}
	// The serial selector finds card 0 among the others.
	s := open(t, h, drivers.Params{"serial": strings.ToUpper(hex.EncodeToString(serialBytes[:]))})
	if s.Info().Path != h.Path(0) {
		t.Errorf("serial selected %s", s.Info().Path)
	}
	devs, err := d.Discover(context.Background())
	if len(devs) != 3 || !errors.Is(err, ErrPermission) || !errors.Is(err, ErrMode) {
		t.Fatalf("Discover = %+v, %v; want 3 devices and the permission and mode errors", devs, err)
	}
	if devs[0].Model != "PCIe-240M" || devs[1].Path != h.Path(1) || devs[1].Model != "" {
		t.Errorf("Discover = %+v", devs)
	}
}

// TestOpen_RealSeam runs the real open/read/ioctl seam on Linux nodes that
// are not Quantis cards.
func TestOpen_RealSeam(t *testing.T) {
	dev, err := openUnixDevice("/dev/zero")
	if err != nil {
		t.Skipf("no /dev/zero: %v", err)
	}
	buf := []byte{1, 2, 3}
	if n, err := dev.Read(buf); n != 3 || err != nil || !bytes.Equal(buf, []byte{0, 0, 0}) {
		t.Errorf("read /dev/zero = %d, %v, %v", n, err, buf)
	}
	if _, err := getU32(dev, reqGetDriverVersion); !errors.Is(err, syscall.ENOTTY) {
		t.Errorf("GET_DRIVER_VERSION on /dev/zero = %v; want ENOTTY", err)
	}
	if err := dev.Close(); err != nil {
		t.Error(err)
	}
	_, err = (&Driver{}).Open(context.Background(), drivers.Spec{Name: "z", Kind: Kind, Params: drivers.Params{"device": "/dev/zero"}})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("Open(/dev/zero) = %v; want ErrUnsupported", err)
	}
	_, err = (&Driver{}).Open(context.Background(), drivers.Spec{Name: "z", Kind: Kind, Params: drivers.Params{"device": "/nonexistent/qrandom0"}})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(missing) = %v; want ErrNotFound", err)
	}
}

func TestConformance(t *testing.T) {
	h := useHost(t)
	next := 0
	paths := map[entropy.Source]int{}
	drivertest.Run(t, drivertest.Harness{
		Open: func(t *testing.T) entropy.Source {
			idx := next
			next++
			var ser [12]byte
			ser[0] = byte(idx + 1)
			plug(t, h, idx, pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: ser, Seed: uint64(idx)})
			s := open(t, h, drivers.Params{"card": idx})
			paths[s] = idx
			return s
		},
		Fault:    func(t *testing.T, s entropy.Source) { h.Unplug(paths[s]) },
		FaultErr: entropy.ErrDisconnected,
		Restore: func(t *testing.T, s entropy.Source) {
			var ser [12]byte
			ser[0] = byte(paths[s] + 1)
			plug(t, h, paths[s], pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: ser, Seed: 99})
		},
	})
}
