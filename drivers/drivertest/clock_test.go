package drivertest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestFakeClock(t *testing.T) {
	start := time.Unix(100, 0)
	c := NewFakeClock(start)
	if err := c.Sleep(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if err := c.Sleep(context.Background(), -time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.Now().Sub(start); got != 3*time.Second {
		t.Errorf("Now = start+%v; want +3s", got)
	}
	if got := c.Sleeps(); !slices.Equal(got, []time.Duration{2 * time.Second, -time.Second}) {
		t.Errorf("Sleeps = %v", got)
	}
	if c.Slept() != 2*time.Second {
		t.Errorf("Slept = %v; want 2s", c.Slept())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(cancelled) = %v", err)
	}
	if c.Now().Sub(start) != 3*time.Second || len(c.Sleeps()) != 2 {
		t.Error("a cancelled Sleep moved the clock or was recorded")
	}
}
