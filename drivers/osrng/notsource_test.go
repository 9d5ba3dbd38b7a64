package osrng_test

import (
	"testing"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/osrng"
	"github.com/qrngd/qrngd/entropy"
)

// The OS RNG must never be configurable as a quantum source: importing osrng
// registers no kind, and Reader is not an entropy.Source.
func TestOSRNG_NotASource(t *testing.T) {
	for _, k := range []string{osrng.Name, "osrng", "os-rng"} {
		if _, ok := drivers.Lookup(k); ok {
			t.Errorf("kind %q is registered", k)
		}
	}
	if _, ok := any(&osrng.Reader{}).(entropy.Source); ok {
		t.Error("*osrng.Reader implements entropy.Source")
	}
}

func ExampleReader() {
	var r osrng.Reader
	key := make([]byte, 32)
	if _, err := r.Read(key); err != nil {
		panic(err) // the pool reports this; it never falls back further
	}
	_ = key
}
