package quantispcie

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/testhw/pciesim"
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPCIeRead reads a simulated PCIe-240M through the driver and its
// device seam in 1 MiB Reads (64 KiB read(2) calls, a status check per MiB).
//
//   - unpaced: the simulator serves as fast as asked; MB/s is the driver's
//     capacity and cpu-s/s is ~1 by construction, so read cpu-ns/B.
//   - paced-240M: the simulator paces reads at the card's nominal 30 MB/s on
//     the wall clock, as the FIFO would; cpu-s/s is the share of one core
//     the whole process (driver + simulator) spends at the card's rate.
//
// go test -run '^$' -bench BenchmarkPCIeRead -benchtime 3s ./drivers/quantispcie
func BenchmarkPCIeRead(b *testing.B) {
	for _, c := range []struct {
		name string
		rate float64
	}{{"unpaced", 0}, {"paced-240M", 240e6 / 8}} {
		b.Run(c.name, func(b *testing.B) {
			h := pciesim.NewHost(b.TempDir())
			old := openDevice
			openDevice = func(path string) (device, error) {
				f, err := h.Open(path)
				if err != nil {
					return nil, err
				}
				return f, nil
			}
			defer func() { openDevice = old }()
			card := pciesim.NewCard(pciesim.CardOptions{Model: pciesim.PCIe240M, Clock: pciesim.RealClock{}, Rate: c.rate})
			if _, err := h.Plug(0, card); err != nil {
				b.Fatal(err)
			}
			src, err := (&Driver{DevRoot: h.Root()}).Open(context.Background(), drivers.Spec{Name: "bench", Kind: Kind})
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			ctx := context.Background()
			buf := make([]byte, 1<<20)
			if _, err := src.Read(ctx, buf); err != nil { // absorbs the start-up garbage
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			cpu0, wall0 := cpuTime(b), time.Now()
			for b.Loop() {
				if n, err := src.Read(ctx, buf); n != len(buf) || err != nil {
					b.Fatalf("Read = %d, %v", n, err)
				}
			}
			cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
			bytes := float64(b.N) * float64(len(buf))
			b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-s/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/bytes, "cpu-ns/B")
			b.ReportMetric(bytes/1e6/wall.Seconds(), "MB/s-wall")
		})
	}
}
