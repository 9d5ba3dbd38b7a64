package entropy_test

import (
	"context"
	"crypto/rand"
	"runtime"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/entropytest"
)

// benchEngine runs a real-clock engine over n uniform fake sources and
// waits until they are healthy.
func benchEngine(b *testing.B, n int, opts *entropy.Options) *entropy.Engine {
	b.Helper()
	e, err := entropy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := e.AddSource(entropytest.NewUniform(string(rune('a'+i)), uint64(i)), nil); err != nil {
			b.Fatal(err)
		}
	}
	go e.Run(b.Context())
	b.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(b.Context(), failsafe)
	defer cancel()
	if err := e.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	for e.Status().Pool.HealthySources < n || e.Status().Pool.LevelBytes < 4096 {
		runtime.Gosched()
	}
	return e
}

// BenchmarkEngineRead_DRBG_1MiB: 1 MiB ModeDRBG reads from 2×GOMAXPROCS
// goroutines (4 concurrent readers on 2 CPUs, as the gateway benchmark's 4
// clients). Compare with BenchmarkCryptoRand_1MiB in the same run:
//
//	go test -run '^$' -bench 'EngineRead|CryptoRand' ./entropy/
func BenchmarkEngineRead_DRBG_1MiB(b *testing.B) {
	e := benchEngine(b, 1, nil)
	b.SetBytes(1 << 20)
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 1<<20)
		for pb.Next() {
			if _, err := e.Read(b.Context(), p, entropy.ModeDRBG); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCryptoRand_1MiB is the baseline for BenchmarkEngineRead_DRBG_1MiB.
func BenchmarkCryptoRand_1MiB(b *testing.B) {
	b.SetBytes(1 << 20)
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 1<<20)
		for pb.Next() {
			rand.Read(p)
		}
	})
}

// BenchmarkEngineRead_Full reads 4 KiB of full-entropy pool bytes per op
// from one fast fake source (health tests, conditioning and pool included:
// the source goroutine refills while the benchmark drains).
func BenchmarkEngineRead_Full(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(map[int]string{1: "1source", 2: "2sources"}[n], func(b *testing.B) {
			e := benchEngine(b, n, &entropy.Options{FullWait: 10 * time.Second})
			p := make([]byte, 4096)
			b.SetBytes(int64(len(p)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.Read(b.Context(), p, entropy.ModeFull); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEngineRead_PR_4KiB: prediction-resistant reads (one pool block
// per request).
func BenchmarkEngineRead_PR_4KiB(b *testing.B) {
	e := benchEngine(b, 1, &entropy.Options{FullWait: 10 * time.Second})
	p := make([]byte, 4096)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := e.Read(b.Context(), p, entropy.ModePR); err != nil {
			b.Fatal(err)
		}
	}
}
