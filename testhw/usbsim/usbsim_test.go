package usbsim_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/gousb"

	"github.com/qrngd/qrngd/testhw/usbsim"
)

func newBus(t *testing.T) *usbsim.Bus {
	t.Helper()
	root := usbsim.Root()
	if root == "" {
		t.Skip(usbsim.SkipMessage)
	}
	b, err := usbsim.NewBus(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestNewBus_NoTestbed(t *testing.T) {
	if _, err := usbsim.NewBus(""); !errors.Is(err, usbsim.ErrNoTestbed) {
		t.Fatalf("NewBus(\"\") = %v, want ErrNoTestbed", err)
	}
	if _, err := usbsim.NewBus(t.TempDir() + "/missing"); err == nil {
		t.Fatal("NewBus(missing dir) succeeded")
	}
}

func TestBus_Plug_BadSerial(t *testing.T) {
	b, err := usbsim.NewBus(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "bad\x01serial", string(make([]byte, 65))} {
		if _, err := b.Plug(usbsim.DeviceConfig{Serial: s}); err == nil {
			t.Errorf("Plug(serial %q) succeeded", s)
		}
	}
}

func TestStream_Deterministic(t *testing.T) {
	a, b := make([]byte, 1024), make([]byte, 1024)
	io.ReadFull(usbsim.Stream(7), a)
	io.ReadFull(usbsim.Stream(7), b)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different streams")
	}
	io.ReadFull(usbsim.Stream(8), b)
	if bytes.Equal(a, b) {
		t.Fatal("different seeds, same stream")
	}
}

// TestUSBSim_Gousb drives the emulated device with plain gousb: enumerate,
// open, string descriptors, a vendor request, claim, bulk read, stall.
func TestUSBSim_Gousb(t *testing.T) {
	b := newBus(t)
	dev, err := b.Plug(usbsim.DeviceConfig{Serial: "SIMGOUSB01", Seed: 3, BoardVersion: 0x01020304})
	if err != nil {
		t.Fatal(err)
	}
	ctx := gousb.NewContext()
	defer ctx.Close()
	d, err := ctx.OpenDeviceWithVIDPID(usbsim.VendorID, usbsim.ProductID)
	if err != nil || d == nil {
		t.Fatalf("open: %v %v", d, err)
	}
	defer d.Close()
	d.ControlTimeout = time.Second
	if s, err := d.SerialNumber(); err != nil || s != "SIMGOUSB01" {
		t.Fatalf("serial = %q, %v", s, err)
	}
	if s, err := d.Manufacturer(); err != nil || s != usbsim.Manufacturer {
		t.Fatalf("manufacturer = %q, %v", s, err)
	}
	buf := make([]byte, 4)
	if n, err := d.Control(0xC1, 0x10, 0, 0, buf); err != nil || n != 4 || buf[0] != 4 || buf[3] != 1 {
		t.Fatalf("board version: %d %v % x", n, err, buf)
	}
	if _, err := d.Control(0xC1, 0x42, 0, 0, buf); !errors.Is(err, gousb.ErrorPipe) {
		t.Fatalf("unknown request: %v, want a stall", err)
	}
	cfg, err := d.Config(1)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	intf, err := cfg.Interface(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer intf.Close()
	ep, err := intf.InEndpoint(6)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2048)
	if n, err := ep.ReadContext(context.Background(), got); err != nil || n != len(got) {
		t.Fatalf("bulk: %d %v", n, err)
	}
	want := make([]byte, len(got))
	io.ReadFull(usbsim.Stream(3), want)
	if !bytes.Equal(got, want) {
		t.Fatal("bulk data differs from the seeded stream")
	}
	dev.StallBulk()
	for i := 0; i < 2; i++ {
		if _, err := ep.ReadContext(context.Background(), got[:512]); !errors.Is(err, gousb.TransferStall) {
			t.Fatalf("stalled read %d: %v", i, err)
		}
	}
	if _, err := d.Control(0x02, 0x01, 0, usbsim.EndpointIn, nil); err != nil {
		t.Fatalf("clear halt: %v", err)
	}
	if n, err := ep.ReadContext(context.Background(), got[:512]); err != nil || n != 512 {
		t.Fatalf("read after clear halt: %d %v", n, err)
	}
	if st := dev.Stats(); st.Claims != 1 || st.BulkBytes != 2560 || st.Requests[0x10] != 1 || st.ClearHalts != 1 {
		t.Fatalf("stats %+v", st)
	}
}
