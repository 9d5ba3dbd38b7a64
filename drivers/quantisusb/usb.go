package quantisusb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/gousb"

	"github.com/qrngd/qrngd/entropy"
)

// usbBus is the narrow seam over gousb (one libusb context). Unit tests
// swap openBus for a fake; the emulated-device tests run the gousb code.
type usbBus interface {
	// openAll opens every device with the given IDs. Devices that could
	// not be opened are reported in err next to those that could.
	openAll(vid, pid uint16) ([]usbDev, error)
	close() error
}

// usbDev is one opened device.
type usbDev interface {
	busAddr() (bus, addr int)
	serial() (string, error)
	// control performs a vendor or standard control transfer (timeout
	// 1000 ms); the direction follows bit 7 of rType.
	control(rType, request uint8, val, idx uint16, data []byte) (int, error)
	// claim selects configuration 1, claims interface 0 and opens the bulk
	// IN endpoint 0x86.
	claim() error
	// bulkIn performs one bulk IN transfer on endpoint 0x86.
	bulkIn(ctx context.Context, p []byte) (int, error)
	close() error
}

var openBus = openGousb

// gousb implementation.

type gBus struct{ ctx *gousb.Context }

func openGousb() (b usbBus, err error) {
	defer func() {
		// gousb.NewContext panics when libusb_init fails (no usbfs).
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("drivers/quantisusb: libusb init: %v", r)
		}
	}()
	return &gBus{ctx: gousb.NewContext()}, nil
}

func (b *gBus) openAll(vid, pid uint16) ([]usbDev, error) {
	devs, err := b.ctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		return d.Vendor == gousb.ID(vid) && d.Product == gousb.ID(pid)
	})
	out := make([]usbDev, 0, len(devs))
	for _, d := range devs {
		d.ControlTimeout = ioTimeout
		out = append(out, &gDev{d: d})
	}
	if err != nil {
		err = mapErr(err)
	}
	return out, err
}

func (b *gBus) close() error { return b.ctx.Close() }

type gDev struct {
	d    *gousb.Device
	cfg  *gousb.Config
	intf *gousb.Interface
	ep   *gousb.InEndpoint
}

func (g *gDev) busAddr() (int, int) { return g.d.Desc.Bus, g.d.Desc.Address }

func (g *gDev) serial() (string, error) {
	s, err := g.d.SerialNumber()
	return s, mapErr(err)
}

func (g *gDev) control(rType, request uint8, val, idx uint16, data []byte) (int, error) {
	n, err := g.d.Control(rType, request, val, idx, data)
	return n, mapErr(err)
}

func (g *gDev) claim() error {
	// The vendor library insists on exactly one configuration with one
	// interface (hardware.md §1).
	if n := len(g.d.Desc.Configs); n != 1 {
		return fmt.Errorf("%w: device has %d configurations, want 1", ErrUnsupported, n)
	}
	cfg, err := g.d.Config(1)
	if err != nil {
		return fmt.Errorf("set configuration 1: %w", mapErr(err))
	}
	if n := len(cfg.Desc.Interfaces); n != 1 {
		cfg.Close()
		return fmt.Errorf("%w: configuration 1 has %d interfaces, want 1", ErrUnsupported, n)
	}
	intf, err := cfg.Interface(0, 0)
	if err != nil {
		cfg.Close()
		return fmt.Errorf("claim interface 0: %w", mapErr(err))
	}
	ep, err := intf.InEndpoint(endpointIn & 0x0F)
	if err != nil {
		intf.Close()
		cfg.Close()
		return fmt.Errorf("%w: bulk IN endpoint 0x86: %v", ErrUnsupported, err)
	}
	// 512 at high speed, 64 at full speed ("64 bytes for USB 1, 512
	// bytes for USB 2"); transfers are whole multiples of 512 either way.
	if mps := ep.Desc.MaxPacketSize; mps <= 0 || packetSize%mps != 0 {
		intf.Close()
		cfg.Close()
		return fmt.Errorf("%w: endpoint 0x86 wMaxPacketSize %d, want 512 or 64", ErrUnsupported, mps)
	}
	g.cfg, g.intf, g.ep = cfg, intf, ep
	return nil
}

func (g *gDev) bulkIn(ctx context.Context, p []byte) (int, error) {
	n, err := g.ep.ReadContext(ctx, p)
	return n, mapErr(err)
}

func (g *gDev) close() error {
	if g.intf != nil {
		g.intf.Close()
		g.intf = nil
	}
	if g.cfg != nil {
		g.cfg.Close()
		g.cfg = nil
	}
	return g.d.Close()
}

const ioTimeout = 1000 * time.Millisecond // QUANTIS_USB_REQUEST_TIMEOUT

// mapErr turns gousb errors into this package's sentinels, keeping the
// original in the chain.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	// Device.Config and Config.Interface wrap libusb errors with %v, so
	// errors.Is cannot see them; recognise the library's own error text.
	code := err
	var ge gousb.Error
	if !errors.As(err, &ge) {
		for _, e := range []gousb.Error{gousb.ErrorNoDevice, gousb.ErrorAccess, gousb.ErrorBusy, gousb.ErrorPipe, gousb.ErrorTimeout} {
			if strings.Contains(err.Error(), e.Error()) {
				code = e
				break
			}
		}
	}
	var sentinel error
	switch err := code; {
	case errors.Is(err, gousb.ErrorNoDevice), errors.Is(err, gousb.TransferNoDevice):
		sentinel = entropy.ErrDisconnected
	case errors.Is(err, gousb.ErrorAccess):
		sentinel = ErrPermission
	case errors.Is(err, gousb.ErrorBusy):
		sentinel = ErrBusy
	case errors.Is(err, gousb.ErrorPipe), errors.Is(err, gousb.TransferStall):
		sentinel = ErrStall
	case errors.Is(err, gousb.ErrorTimeout), errors.Is(err, gousb.TransferTimedOut):
		sentinel = ErrTimeout
	case errors.Is(err, gousb.TransferCancelled):
		sentinel = errCancelled
	default:
		return err
	}
	return fmt.Errorf("%w (%w)", sentinel, err)
}

// errCancelled: a transfer was cancelled because its context ended.
var errCancelled = errors.New("drivers/quantisusb: transfer cancelled")
