package main

import "runtime/debug"

// defaultGCPercent is the garbage collector's target unless GOGC is set.
// qrngd's live heap is small (tens of MB, 53 MB with a million
// revocations), so letting it grow to 5× before a cycle instead of 2×
// costs little memory and cut the daemon's CPU per issued token by about
// 8 % (BenchmarkDaemon_OAuthToken_Loopback32, GOGC 100 vs 400,
// BENCHMARKS.md). GOMEMLIMIT, if set, still bounds the heap.
const defaultGCPercent = 400

// tuneGC applies defaultGCPercent unless the operator set GOGC, and
// returns the percentage in force.
func tuneGC(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}
