// Package osrng reads the operating system's random number generator
// (getrandom(2) on Linux, through crypto/rand) for the pool's `os` policy:
// when no healthy quantum source is left and the operator configured
// `policy: os`, the pool mixes OS randomness in and flags its output as
// degraded.
//
// osrng deliberately does not register a source kind with package drivers
// and does not implement entropy.Source: the OS RNG must never be
// configured, counted or credited as a quantum noise source. The pool holds
// a Reader directly.
package osrng

import (
	"crypto/rand"
	"fmt"
	"io"
	"sync/atomic"
)

// Name is how status, logs and metrics label bytes that came from the OS RNG.
const Name = "os"

// Reader reads the OS RNG. The zero value is ready to use and safe for
// concurrent use. It counts the bytes it returns so the pool can export how
// much output depended on the fallback.
type Reader struct {
	src   io.Reader // nil = crypto/rand.Reader; a seam for tests
	bytes atomic.Uint64
}

var _ io.Reader = (*Reader)(nil)

// Read fills p completely from the OS RNG or returns an error; it never
// returns a short read with a nil error.
func (r *Reader) Read(p []byte) (int, error) {
	src := r.src
	if src == nil {
		src = rand.Reader
	}
	n, err := io.ReadFull(src, p)
	r.bytes.Add(uint64(n))
	if err != nil {
		return n, fmt.Errorf("drivers/osrng: read %d bytes: %w", len(p), err)
	}
	return n, nil
}

// Bytes returns how many bytes Read has returned in total.
func (r *Reader) Bytes() uint64 { return r.bytes.Load() }
