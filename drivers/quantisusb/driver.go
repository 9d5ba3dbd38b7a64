package quantisusb

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
)

func init() { drivers.MustRegister(Driver{}) }

// Driver registers kind "quantis-usb". Params of a `sources:` entry:
//
//	serial:        iSerialNumber of the device (empty: the only one present)
//	vendor_id:     USB vendor ID, default 0x0aba
//	product_id:    USB product ID, default 0x0102
//	transfer_size: bulk transfer size in bytes, multiple of 512, default 8192
//	poll_interval: reconnect polling interval, default "500ms"
type Driver struct {
	// Logger for opened sources; nil discards.
	Logger *slog.Logger
}

// Kind returns "quantis-usb".
func (Driver) Kind() string { return Kind }

// Discover lists Quantis USB devices with the default IDs.
func (Driver) Discover(ctx context.Context) ([]drivers.Device, error) { return Discover(ctx) }

// Open validates spec and opens the device.
func (d Driver) Open(ctx context.Context, spec drivers.Spec) (entropy.Source, error) {
	o, err := optionsFromSpec(spec)
	if err != nil {
		return nil, err
	}
	o.Logger = d.Logger
	return Open(ctx, spec.Name, o)
}

func optionsFromSpec(spec drivers.Spec) (*Options, error) {
	r := spec.Params.Reader()
	o := &Options{
		Serial:       r.String("serial", ""),
		TransferSize: r.Int("transfer_size", DefaultTransferSize),
		PollInterval: r.Duration("poll_interval", 500*time.Millisecond),
		MinEntropy:   spec.MinEntropy,
	}
	id := func(key string, def int) uint16 {
		v := r.Int(key, def)
		if v < 1 || v > 0xFFFF {
			r.Fail(key, fmt.Sprintf("USB ID %d outside 0x0001..0xffff", v))
			return 0
		}
		return uint16(v)
	}
	o.VendorID = id("vendor_id", DefaultVendorID)
	o.ProductID = id("product_id", DefaultProductID)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("drivers/quantisusb: source %q: %w", spec.Name, err)
	}
	if _, err := o.resolve(); err != nil {
		return nil, fmt.Errorf("source %q: %w", spec.Name, err)
	}
	return o, nil
}
