package sim

import (
	"context"
	"time"

	"github.com/qrngd/qrngd/drivers"
)

// Clock is the simulator's time seam: rate limiting, the per-read delay
// fault and timed reconnection use it, so tests run on a fake clock
// (drivertest.FakeClock) instead of sleeping.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx is done, in which case it returns ctx.Err().
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep waits d on a timer, or until ctx is done.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error { return drivers.Sleep(ctx, d) }
