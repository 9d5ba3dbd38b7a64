package sim

import (
	"fmt"
	"math"
	"time"
)

// FaultKind selects what a Fault does.
type FaultKind uint8

// Fault kinds. Sample indices count the samples the source has delivered
// since it was created (see Source.Samples); index i is the (i+1)-th sample.
const (
	// Stuck: every sample with index >= At is Value.
	Stuck FaultKind = iota + 1
	// Bias: every sample with index >= At is Value with probability P and
	// otherwise drawn from the normal distribution.
	Bias
	// ShortReads: a Read starting at index >= At returns at most N bytes.
	ShortReads
	// ReadError: once the sample index is >= At, every N-th Read call
	// (counted from the first such call) returns 0 and an error wrapping
	// ErrInjected.
	ReadError
	// Disconnect: the device is unplugged when the sample index reaches At:
	// the Read that would deliver sample At returns an error wrapping
	// entropy.ErrDisconnected, and so does every Read until Reconnect
	// succeeds. The device comes back after D (on the source's Clock), or
	// on Replug when D is 0. The fault fires once.
	Disconnect
	// Delay: a Read starting at index >= At waits D (on the Clock, honouring
	// ctx) before it delivers.
	Delay
	// Hang: a Read starting at index >= At blocks until its ctx is done, the
	// fault is cleared or the source is closed — a device that stopped
	// answering.
	Hang
	numKinds
)

var kindNames = [numKinds]string{"", "stuck", "bias", "short-reads", "read-error", "disconnect", "delay", "hang"}

func (k FaultKind) String() string {
	if k == 0 || k >= numKinds {
		return fmt.Sprintf("FaultKind(%d)", uint8(k))
	}
	return kindNames[k]
}

// Fault is one injected failure of the simulated device. The fields a kind
// does not use must be zero.
type Fault struct {
	Kind  FaultKind
	At    uint64        // sample index from which the fault applies
	Value byte          // Stuck, Bias: the value (must fit SampleBits)
	P     float64       // Bias: probability in (0, 1]
	N     int           // ShortReads: max bytes per Read; ReadError: every N-th Read fails
	D     time.Duration // Delay: wait per Read; Disconnect: time until the device is back (0 = on Replug)
}

// fieldError is a validation failure, named both as an Options field (for
// New) and as a Spec.Params key (for the driver's Open).
type fieldError struct {
	field, key, reason string
}

// atKey is the parameter key of Fault.At for each kind ("" = not settable
// from parameters: the fault applies from the first sample).
var atKey = [numKinds]string{Stuck: "stuck_after", Bias: "bias_after", Disconnect: "disconnect_after", Hang: "hang_after"}

func (f Fault) validate(i int, sampleBits int) *fieldError {
	fe := func(name, key, format string, a ...any) *fieldError {
		return &fieldError{field: fmt.Sprintf("Faults[%d].%s", i, name), key: key, reason: fmt.Sprintf(format, a...)}
	}
	max := byte(1<<sampleBits - 1)
	switch f.Kind {
	case Stuck:
		if f.Value > max {
			return fe("Value", "stuck_value", "%d does not fit %d-bit samples (max %d)", f.Value, sampleBits, max)
		}
		if f.P != 0 || f.N != 0 || f.D != 0 {
			return fe("Kind", "", "stuck fault uses only At and Value")
		}
	case Bias:
		if f.Value > max {
			return fe("Value", "bias_value", "%d does not fit %d-bit samples (max %d)", f.Value, sampleBits, max)
		}
		if !(f.P > 0 && f.P <= 1) {
			return fe("P", "bias", "probability %v outside (0, 1]", f.P)
		}
		if f.N != 0 || f.D != 0 {
			return fe("Kind", "", "bias fault uses only At, Value and P")
		}
	case ShortReads:
		if f.N < 1 {
			return fe("N", "short_reads", "max bytes per read %d must be at least 1", f.N)
		}
		if f.Value != 0 || f.P != 0 || f.D != 0 {
			return fe("Kind", "", "short-reads fault uses only At and N")
		}
	case ReadError:
		if f.N < 1 {
			return fe("N", "error_every", "%d must be at least 1", f.N)
		}
		if f.Value != 0 || f.P != 0 || f.D != 0 {
			return fe("Kind", "", "read-error fault uses only At and N")
		}
	case Disconnect:
		if f.D < 0 {
			return fe("D", "reconnect_after", "negative duration %v", f.D)
		}
		if f.Value != 0 || f.P != 0 || f.N != 0 {
			return fe("Kind", "", "disconnect fault uses only At and D")
		}
	case Delay:
		if f.D <= 0 {
			return fe("D", "delay", "delay %v must be positive", f.D)
		}
		if f.Value != 0 || f.P != 0 || f.N != 0 {
			return fe("Kind", "", "delay fault uses only At and D")
		}
	case Hang:
		if f.Value != 0 || f.P != 0 || f.N != 0 || f.D != 0 {
			return fe("Kind", "", "hang fault uses only At")
		}
	default:
		return fe("Kind", "", "unknown fault kind %d", uint8(f.Kind))
	}
	return nil
}

// biasThreshold maps P to a 32-bit threshold: P(u32 < t) = t/2^32.
func biasThreshold(p float64) uint64 {
	return uint64(math.Round(p * (1 << 32)))
}
