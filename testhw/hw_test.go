package testhw

// Real-hardware tests (STYLE rule 22). They are opt-in:
//
//	go test ./testhw -testhw -testhw.source=quantis-usb:SERIAL
//	go test ./testhw -testhw -testhw.source=quantis-pcie:0           (card index, or the hex serial)
//	go test ./testhw -testhw -testhw.source=serial:truerng:/dev/ttyACM0
//	go test ./testhw -testhw -testhw.source=sim
//	... -run '^$' -bench HardwareRead -benchtime 5s                  (read benchmark, MB/s)
//
// Without -testhw the same tests run against the simulated QRNG
// (drivers/sim), so the default `go test ./testhw` exercises this path and it
// cannot rot; real devices are never touched then.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"

	// The drivers a -testhw.source may name.
	_ "github.com/qrngd/qrngd/drivers/quantispcie"
	_ "github.com/qrngd/qrngd/drivers/quantisusb"
	_ "github.com/qrngd/qrngd/drivers/serialrng"
	_ "github.com/qrngd/qrngd/drivers/sim"
)

var (
	flagHW      = flag.Bool("testhw", false, "run the hardware tests against the devices named by -testhw.source")
	flagSource  = flag.String("testhw.source", "", "comma-separated sources: sim, quantis-usb:SERIAL, quantis-pcie:CARD|SERIAL, serial:PROFILE:PATH")
	flagSamples = flag.Int("testhw.samples", 1<<16, "samples put through the start-up health tests (at least 1024)")
	flagTimeout = flag.Duration("testhw.timeout", 30*time.Second, "time allowed to open a device and read its start-up samples")
)

const howTo = `testhw: real-device tests are opt-in; run e.g.
  go test ./testhw -testhw -testhw.source=quantis-usb:SERIAL
  go test ./testhw -testhw -testhw.source=quantis-pcie:0          (or quantis-pcie:HEXSERIAL)
  go test ./testhw -testhw -testhw.source=serial:truerng:/dev/ttyACM0
  go test ./testhw -testhw -testhw.source=quantis-usb:SERIAL -run '^$' -bench HardwareRead
testhw: without -testhw they run against the simulated source only (-testhw.source=sim)`

// sources are the parsed -testhw.source values.
var sources []drivers.Spec

func TestMain(m *testing.M) {
	flag.Parse()
	src := *flagSource
	if !*flagHW {
		fmt.Fprintln(os.Stderr, howTo)
		if src != "" && src != "sim" {
			fmt.Fprintf(os.Stderr, "testhw: -testhw.source=%s ignored without -testhw\n", src)
		}
		src = "sim"
	}
	if src == "" {
		fmt.Fprintln(os.Stderr, "testhw: -testhw needs -testhw.source\n"+howTo)
		os.Exit(2)
	}
	for _, s := range strings.Split(src, ",") {
		spec, err := ParseSource(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		sources = append(sources, spec)
	}
	os.Exit(m.Run())
}

func openHW(t testing.TB, spec drivers.Spec) entropy.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
	defer cancel()
	src, err := drivers.Open(ctx, spec)
	if err != nil {
		t.Fatalf("open %s: %v", spec.Kind, err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func label(spec drivers.Spec) string {
	var b strings.Builder
	b.WriteString(spec.Kind)
	for _, k := range []string{"serial", "card", "profile", "device"} {
		if v, ok := spec.Params[k]; ok {
			fmt.Fprintf(&b, ",%s=%v", k, v)
		}
	}
	return strings.NewReplacer("/", "_").Replace(b.String())
}

// TestHardware_Startup opens each source through the driver registry, checks
// its description and runs the SP 800-90B start-up health tests over
// -testhw.samples samples at its credited min-entropy.
func TestHardware_Startup(t *testing.T) {
	for _, spec := range sources {
		t.Run(label(spec), func(t *testing.T) {
			src := openHW(t, spec)
			info := src.Info()
			if err := info.Validate(); err != nil {
				t.Errorf("Info: %v", err)
			}
			if info.Kind != spec.Kind || info.Name != spec.Name {
				t.Errorf("Info kind %q name %q, want %q %q", info.Kind, info.Name, spec.Kind, spec.Name)
			}
			t.Logf("%s: vendor %q model %q serial %q board %q path %q, %d-bit samples, H %.2f, nominal %.0f B/s",
				info.Name, info.Vendor, info.Model, info.Serial, info.BoardVersion, info.Path, info.SampleBits, info.MinEntropy, info.NominalRate)
			ctx, cancel := context.WithTimeout(context.Background(), *flagTimeout)
			defer cancel()
			res, err := StartupTest(ctx, src, *flagSamples)
			if err != nil {
				t.Fatal(err)
			}
			if res.Samples < entropy.StartupSamples || res.Samples < *flagSamples {
				t.Errorf("tested %d samples, want at least %d", res.Samples, max(*flagSamples, entropy.StartupSamples))
			}
			t.Logf("start-up tests passed: %d samples in %d windows, cutoffs RCT %d APT %d (W %d)",
				res.Samples, res.Windows, res.Cutoffs.RCT, res.Cutoffs.APT, res.Cutoffs.W)
		})
	}
}

// BenchmarkHardwareRead reads each source in 64 KiB reads; go test reports
// MB/s.
func BenchmarkHardwareRead(b *testing.B) {
	for _, spec := range sources {
		b.Run(label(spec), func(b *testing.B) {
			src := openHW(b, spec)
			buf := make([]byte, 64<<10)
			ctx := context.Background()
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for b.Loop() {
				if err := ReadFull(ctx, src, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
