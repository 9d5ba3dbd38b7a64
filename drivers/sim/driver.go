package sim

import (
	"context"
	"errors"
	"fmt"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
)

func init() { drivers.MustRegister(driver{}) }

// driver opens "sim" sources from configuration; see the package
// documentation for the keys.
type driver struct{}

func (driver) Kind() string { return Kind }

// Discover returns nil: simulated devices exist only in configuration.
func (driver) Discover(context.Context) ([]drivers.Device, error) { return nil, nil }

func (driver) Open(ctx context.Context, spec drivers.Spec) (entropy.Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if spec.Name == "" {
		return nil, errors.New("drivers/sim: source name is empty")
	}
	o, err := optionsFromSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("drivers/sim: source %q: %w", spec.Name, err)
	}
	s, err := New(o)
	if err != nil {
		return nil, fmt.Errorf("drivers/sim: source %q: %w", spec.Name, err)
	}
	return s, nil
}

// optionsFromSpec reads spec into Options; errors are *drivers.ParamError.
func optionsFromSpec(spec drivers.Spec) (*Options, error) {
	r := spec.Params.Reader()
	o := &Options{
		Name:       spec.Name,
		SampleBits: r.Int("sample_bits", 8),
		MinEntropy: spec.MinEntropy,
		Rate:       r.Float("rate", 0),
	}
	if seed := r.Int("seed", 0); seed < 0 {
		r.Fail("seed", fmt.Sprintf("%d is negative", seed))
	} else {
		o.Seed = uint64(seed)
	}
	has := func(key string) bool { _, ok := spec.Params[key]; return ok }
	index := func(key string) uint64 {
		v := r.Int(key, 0)
		if v < 0 {
			r.Fail(key, fmt.Sprintf("sample index %d is negative", v))
			return 0
		}
		return uint64(v)
	}
	value := func(key string) byte {
		v := r.Int(key, 0)
		if v < 0 || v > 255 {
			r.Fail(key, fmt.Sprintf("sample value %d outside 0..255", v))
			return 0
		}
		return byte(v)
	}
	needs := func(key, on string) {
		if has(key) && !has(on) {
			r.Fail(key, fmt.Sprintf("needs %q", on))
		}
	}
	needs("stuck_value", "stuck_after")
	needs("bias_value", "bias")
	needs("bias_after", "bias")
	needs("reconnect_after", "disconnect_after")
	if has("stuck_after") {
		o.Faults = append(o.Faults, Fault{Kind: Stuck, At: index("stuck_after"), Value: value("stuck_value")})
	}
	if has("bias") {
		o.Faults = append(o.Faults, Fault{Kind: Bias, P: r.Float("bias", 0), Value: value("bias_value"), At: index("bias_after")})
	}
	if has("short_reads") {
		o.Faults = append(o.Faults, Fault{Kind: ShortReads, N: r.Int("short_reads", 0)})
	}
	if has("error_every") {
		o.Faults = append(o.Faults, Fault{Kind: ReadError, N: r.Int("error_every", 0)})
	}
	if has("disconnect_after") {
		o.Faults = append(o.Faults, Fault{Kind: Disconnect, At: index("disconnect_after"), D: r.Duration("reconnect_after", 0)})
	}
	if has("delay") {
		o.Faults = append(o.Faults, Fault{Kind: Delay, D: r.Duration("delay", 0)})
	}
	if has("hang_after") {
		o.Faults = append(o.Faults, Fault{Kind: Hang, At: index("hang_after")})
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	ov := o.withDefaults()
	if fe := ov.validate(); fe != nil {
		if fe.key == "" {
			return nil, fmt.Errorf("%w: %s: %s", ErrInvalidOptions, fe.field, fe.reason)
		}
		return nil, &drivers.ParamError{Key: fe.key, Reason: fe.reason}
	}
	return o, nil
}
