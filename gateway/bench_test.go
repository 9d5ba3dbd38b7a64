package gateway_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qrngd/qrngd/drivers/sim"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway"
)

const (
	benchBytes   = 1 << 20
	benchClients = 4
	benchPath    = "/v1/random?bytes=1048576&format=binary"
)

// loadClients fetches url b.N times over real loopback TCP from
// benchClients concurrent clients and checks every answer.
func loadClients(b *testing.B, url string) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: benchClients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchClients)
	b.SetBytes(benchBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for range benchClients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				resp, err := client.Get(url)
				if err != nil {
					errs <- err
					return
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || n != benchBytes {
					errs <- fmt.Errorf("status %d, %d bytes, %v", resp.StatusCode, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// realEngine starts the entropy engine fed by one unlimited-rate simulated
// device and waits (bounded) until its pool is ready.
func realEngine(b *testing.B) *entropy.Engine {
	b.Helper()
	eng, err := entropy.New(&entropy.Options{})
	if err != nil {
		b.Skipf("entropy engine not available yet (entropy.New: %v); rerun when the engine lands", err)
	}
	src, err := sim.New(&sim.Options{Name: "bench", Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.AddSource(src, nil); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = eng.Close()
	})
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for !eng.Status().Pool.Ready {
		select {
		case err := <-done:
			b.Fatalf("engine stopped before ready: %v", err)
		case <-deadline:
			b.Fatalf("engine not ready after 30 s: %+v", eng.Status().Pool)
		case <-tick.C:
		}
	}
	return eng
}

// BenchmarkRandom1MiB: 1 MiB binary answers from the real engine (mode drbg)
// through the full gateway over loopback TCP, 4 concurrent clients.
func BenchmarkRandom1MiB(b *testing.B) {
	g, err := gateway.New(&gateway.Options{Entropy: realEngine(b)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	loadClients(b, srv.URL+benchPath)
}

// BenchmarkRandom1MiB_CryptoRand is the baseline: a plain Gin handler
// filling a (pooled) 1 MiB buffer from crypto/rand, same clients.
func BenchmarkRandom1MiB_CryptoRand(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	pool := sync.Pool{New: func() any { p := make([]byte, benchBytes); return &p }}
	e.GET("/v1/random", func(c *gin.Context) {
		bp := pool.Get().(*[]byte)
		defer pool.Put(bp)
		_, _ = rand.Read(*bp)
		c.Data(http.StatusOK, "application/octet-stream", *bp)
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	loadClients(b, srv.URL+benchPath)
}

// BenchmarkRandom1MiB_GatewayOnly isolates the gateway's own cost: the
// engine is a fake that returns at once without writing.
func BenchmarkRandom1MiB_GatewayOnly(b *testing.B) {
	ent := &fakeEntropy{}
	ent.setRead(func(_ context.Context, _ []byte, mode entropy.Mode) (entropy.Provenance, error) {
		return entropy.Provenance{Mode: mode, Sources: []string{"fake"}}, nil
	})
	g, err := gateway.New(&gateway.Options{Entropy: ent})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	loadClients(b, srv.URL+benchPath)
}
