package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	if got := tuneGC(func(string) string { return "" }); got != defaultGCPercent {
		t.Fatalf("GOGC unset: %d, want %d", got, defaultGCPercent)
	}
	if p := debug.SetGCPercent(100); p != defaultGCPercent {
		t.Fatalf("GC percent in force %d, want %d", p, defaultGCPercent)
	}
	// GOGC set (the runtime applied it at start; here: 100): left alone.
	if got := tuneGC(func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	}); got != 100 {
		t.Fatalf("GOGC=100: %d in force, want 100", got)
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GC percent changed to %d with GOGC set", p)
	}
}
