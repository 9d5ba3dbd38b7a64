package sim_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/qrngd/qrngd/drivers/sim"
	"github.com/qrngd/qrngd/entropy"
)

// A source that loses its device after 1000 samples, and comes back on Replug.
func ExampleSource_Reconnect() {
	s, err := sim.New(&sim.Options{Name: "lab", Seed: 1, SampleBits: 4,
		Faults: []sim.Fault{{Kind: sim.Disconnect, At: 1000}}})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()
	buf := make([]byte, 4096)
	n, err := s.Read(ctx, buf)
	fmt.Println(n, err)
	_, err = s.Read(ctx, buf)
	fmt.Println(errors.Is(err, entropy.ErrDisconnected))
	s.Replug()
	fmt.Println(s.Reconnect(ctx))
	n, err = s.Read(ctx, buf)
	fmt.Println(n, err, s.Samples())
	// Output:
	// 1000 <nil>
	// true
	// <nil>
	// 4096 <nil> 5096
}

func benchmarkRead(b *testing.B, o *sim.Options, size int) {
	s, err := sim.New(o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	p := make([]byte, size)
	b.SetBytes(int64(size))
	for b.Loop() {
		if _, err := s.Read(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead measures unlimited 8-bit full-entropy reads (AES-CTR keystream).
func BenchmarkRead(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("8bit/%dKiB", size>>10), func(b *testing.B) { benchmarkRead(b, &sim.Options{Seed: 1}, size) })
	}
	b.Run("4bit/64KiB", func(b *testing.B) { benchmarkRead(b, &sim.Options{Seed: 1, SampleBits: 4}, 64<<10) })
	b.Run("8bit-H2/64KiB", func(b *testing.B) { benchmarkRead(b, &sim.Options{Seed: 1, MinEntropy: 2}, 64<<10) })
}
