package drivers

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done, and returns ctx.Err() in that case.
// Drivers use it for reconnect polling and back-off; tests swap it for a
// fake clock through each driver's own seam.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
