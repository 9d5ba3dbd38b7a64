package health

import (
	"math/rand/v2"
	"testing"
)

// benchData is 1 MiB of uniform random 8-bit samples.
func benchData() []byte {
	rng := rand.New(rand.NewPCG(7, 8))
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// window tests one APT window per op; b.SetBytes counts one byte per
// sample, so MB/s reads as millions of samples per second.
type windowTester interface {
	Window() int
	Test([]byte) Result
}

func benchWindows(b *testing.B, cfg Config, newT func(Config) (windowTester, error)) {
	t, err := newT(cfg)
	if err != nil {
		b.Fatal(err)
	}
	data := benchData()
	w := t.Window()
	b.SetBytes(int64(w))
	b.ResetTimer()
	off := 0
	alarms := 0
	for b.Loop() {
		if t.Test(data[off:off+w]).Worst() != Pass {
			alarms++
		}
		if off += w; off+w > len(data) {
			off = 0
		}
	}
	b.ReportMetric(float64(alarms)/float64(b.N), "alarms/op")
}

func newFast(c Config) (windowTester, error) { return New(c) }
func newRef(c Config) (windowTester, error)  { return NewReference(c) }

// BenchmarkTester: the word-at-a-time Tester on 8-bit random samples.
func BenchmarkTester(b *testing.B) {
	benchWindows(b, Config{H: 7.5, SampleBits: 8}, newFast)
}

// BenchmarkReference: the per-sample reference loop on the same data.
func BenchmarkReference(b *testing.B) {
	benchWindows(b, Config{H: 7.5, SampleBits: 8}, newRef)
}

// BenchmarkTester_Binary and BenchmarkReference_Binary: 1-bit samples
// (W = 1024), where adjacent samples are equal half the time.
func BenchmarkTester_Binary(b *testing.B) {
	benchWindows(b, Config{H: 1, SampleBits: 1}, newFast)
}

func BenchmarkReference_Binary(b *testing.B) {
	benchWindows(b, Config{H: 1, SampleBits: 1}, newRef)
}

// BenchmarkTester_Stuck: a stuck 8-bit source, every window permanent.
func BenchmarkTester_Stuck(b *testing.B) {
	t, _ := New(Config{H: 7.5, SampleBits: 8})
	w := make([]byte, t.Window())
	b.SetBytes(int64(len(w)))
	for b.Loop() {
		t.Test(w)
	}
}
