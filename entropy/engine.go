package entropy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Options configure an Engine. The zero value of each field means its default.
type Options struct {
	Policy            Policy        // default PolicyFailClosed
	MinHealthySources int           // default 1
	PoolCapacity      int           // bytes of full-entropy blocks held; default 1 MiB
	ReseedInterval    time.Duration // DRBG reseed interval; default 1 min
	FullWait          time.Duration // how long ModeFull waits for pool bytes; default 2 s
	OSRNG             io.Reader     // the OS RNG, used only under PolicyOS
	Logger            *slog.Logger  // default slog.Default() discard
}

// HealthConfig configures health testing and failure handling of one source.
// The zero value of each field means its default.
type HealthConfig struct {
	AlphaLog2          int           // alpha = 2^-AlphaLog2, 20..40; default 20
	PermanentAlphaLog2 int           // permanent-failure cutoff; default 2*AlphaLog2 (alpha squared)
	MaxIntermittent    int           // intermittent alarms within IntermittentWindow that quarantine; default 5
	IntermittentWindow time.Duration // default 1 min
	QuarantineFor      time.Duration // how long a quarantine lasts before start-up testing again; default 30 s
	MaxQuarantines     int           // quarantines within QuarantineWindow that disable; default 3
	QuarantineWindow   time.Duration // default 1 h
}

// Engine owns the sources, their health tests and conditioners, the pool and
// the DRBG.
type Engine struct{}

var errTODO = errors.New("entropy: engine not built yet")

// New validates opts and returns an engine with no sources.
func New(opts *Options) (*Engine, error) { return nil, errTODO }

// AddSource adds a source before Run. hc may be nil for defaults.
func (e *Engine) AddSource(src Source, hc *HealthConfig) error { return errTODO }

// Run reads every source until ctx is done.
func (e *Engine) Run(ctx context.Context) error { return errTODO }

// Read fills p under mode and reports where the bytes came from. It returns
// an error wrapping ErrInsufficientEntropy when the pool cannot serve.
func (e *Engine) Read(ctx context.Context, p []byte, mode Mode) (Provenance, error) {
	return Provenance{}, errTODO
}

// Status returns a snapshot.
func (e *Engine) Status() Status { return Status{} }

// ResetSource puts a disabled or quarantined source back through start-up testing.
func (e *Engine) ResetSource(name string) error { return errTODO }

// Reseed reseeds the DRBG from the pool now.
func (e *Engine) Reseed(ctx context.Context) error { return errTODO }

// Close stops the engine and zeroizes the DRBG.
func (e *Engine) Close() error { return errTODO }
