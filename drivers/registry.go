// Package drivers holds the registry that source drivers join from their
// init functions, and the helpers they share. Each driver lives in its own
// sub-package (sim, osrng, quantisusb, quantispcie, serialrng, ...) and is
// selected by a blank import in cmd/qrngd.
package drivers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/qrngd/qrngd/entropy"
)

// Spec is one `sources:` entry of the configuration.
type Spec struct {
	Name       string  // unique source name
	Kind       string  // driver kind
	MinEntropy float64 // credited H per sample; 0 lets the driver choose its documented default
	Params     Params  // kind-specific keys
}

// Device is one device found by discovery.
type Device struct {
	Kind      string `json:"kind"`
	VendorID  uint16 `json:"vendor_id,omitempty"`
	ProductID uint16 `json:"product_id,omitempty"`
	Serial    string `json:"serial,omitempty"`
	Path      string `json:"path,omitempty"`
	Model     string `json:"model,omitempty"`
}

// Driver opens sources of one kind.
type Driver interface {
	// Kind is the value of `kind:` in configuration, e.g. "sim".
	Kind() string
	// Discover lists the devices of this kind present on the host. Drivers
	// without discoverable devices return nil, nil.
	Discover(ctx context.Context) ([]Device, error)
	// Open validates spec and opens the source. Errors name the offending
	// parameter key.
	Open(ctx context.Context, spec Spec) (entropy.Source, error)
}

// ErrUnknownKind is returned by Open for a kind no driver registered.
var ErrUnknownKind = errors.New("drivers: unknown source kind")

var (
	mu       sync.Mutex
	registry = map[string]Driver{}
	frozen   bool
)

// Register adds a driver. It fails on a nil driver, an empty kind, a
// duplicate kind or after Freeze.
func Register(d Driver) error {
	if d == nil {
		return errors.New("drivers: register a nil driver")
	}
	if d.Kind() == "" {
		return fmt.Errorf("drivers: register %T with an empty kind", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if frozen {
		return fmt.Errorf("drivers: register %q after the registry was frozen", d.Kind())
	}
	if _, dup := registry[d.Kind()]; dup {
		return fmt.Errorf("drivers: kind %q registered twice", d.Kind())
	}
	registry[d.Kind()] = d
	return nil
}

// MustRegister is Register for init functions.
func MustRegister(d Driver) {
	if err := Register(d); err != nil {
		panic(err)
	}
}

// Freeze stops further registration; the daemon calls it before opening sources.
func Freeze() {
	mu.Lock()
	frozen = true
	mu.Unlock()
}

// Lookup returns the driver of a kind.
func Lookup(kind string) (Driver, bool) {
	mu.Lock()
	defer mu.Unlock()
	d, ok := registry[kind]
	return d, ok
}

// Kinds lists the registered kinds, sorted.
func Kinds() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Open opens spec with the driver of its kind.
func Open(ctx context.Context, spec Spec) (entropy.Source, error) {
	d, ok := Lookup(spec.Kind)
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownKind, spec.Kind, Kinds())
	}
	src, err := d.Open(ctx, spec)
	if err == nil && src == nil {
		return nil, fmt.Errorf("drivers: kind %q returned no source and no error for %q", spec.Kind, spec.Name)
	}
	return src, err
}

// Discover runs every driver's discovery. One failing driver does not hide
// the devices of the others; its error is returned joined with the rest.
func Discover(ctx context.Context) ([]Device, error) {
	var all []Device
	var errs []error
	for _, k := range Kinds() {
		d, _ := Lookup(k)
		devs, err := d.Discover(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("drivers: discover %s: %w", k, err))
		}
		all = append(all, devs...)
	}
	return all, errors.Join(errs...)
}
