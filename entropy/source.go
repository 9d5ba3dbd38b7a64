// Package entropy is the domain core of qrngd: sources, per-source health
// testing, conditioning, the full-entropy pool and the CTR_DRBG that serves
// high-volume requests. It imports no device, HTTP or storage library.
package entropy

import (
	"context"
	"errors"
	"fmt"
)

// SourceInfo describes a noise source. Drivers fill it in; the credited
// min-entropy H comes from configuration or an assessment.
type SourceInfo struct {
	Name         string  `json:"name"` // unique, from configuration
	Kind         string  `json:"kind"` // driver kind: sim, quantis-usb, quantis-pcie, serial, ...
	Vendor       string  `json:"vendor,omitempty"`
	Model        string  `json:"model,omitempty"`
	Serial       string  `json:"serial,omitempty"`
	BoardVersion string  `json:"board_version,omitempty"`
	Path         string  `json:"path,omitempty"`           // device node, port or URL
	SampleBits   int     `json:"sample_bits"`              // 1..8
	NominalRate  float64 `json:"nominal_bytes_per_second"` // bytes (= samples) per second
	MinEntropy   float64 `json:"min_entropy_per_sample"`   // credited H, 0 < H <= SampleBits
}

// Validate reports the first thing wrong with the description.
func (i SourceInfo) Validate() error {
	switch {
	case i.Name == "":
		return errors.New("entropy: source name is empty")
	case i.SampleBits < 1 || i.SampleBits > 8:
		return fmt.Errorf("entropy: source %q: sample width %d bits outside 1..8", i.Name, i.SampleBits)
	case !(i.MinEntropy > 0) || i.MinEntropy > float64(i.SampleBits):
		return fmt.Errorf("entropy: source %q: credited min-entropy %v outside (0, %d]", i.Name, i.MinEntropy, i.SampleBits)
	case i.NominalRate < 0:
		return fmt.Errorf("entropy: source %q: negative nominal rate", i.Name)
	}
	return nil
}

// Source yields raw samples from a noise source.
//
// Read fills p with samples, one sample per byte in the low SampleBits bits,
// and returns how many it wrote. Short reads are allowed; Read must honour
// ctx and return ctx.Err() when it is cancelled. A source that has lost its
// device returns an error wrapping ErrDisconnected.
type Source interface {
	Info() SourceInfo
	Read(ctx context.Context, p []byte) (int, error)
	Close() error
}

// Reconnector is implemented by sources that can re-open their device after
// ErrDisconnected. Reconnect blocks until the device is back, ctx is done or
// reconnection fails for good.
type Reconnector interface {
	Reconnect(ctx context.Context) error
}

// Sentinel errors of the entropy core.
var (
	// ErrInsufficientEntropy: the pool cannot serve the request under its policy.
	ErrInsufficientEntropy = errors.New("entropy: insufficient entropy")
	// ErrDisconnected: the device behind a source went away.
	ErrDisconnected = errors.New("entropy: source disconnected")
	// ErrClosed: the engine or source was closed.
	ErrClosed = errors.New("entropy: closed")
)
