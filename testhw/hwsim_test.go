package testhw

// The opt-in hardware path (ParseSource → drivers.Open → StartupTest →
// Throughput) run in the default `go test` against each simulator, so that
// what `-testhw` does on a real device is exercised for every kind.

import (
	"context"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/quantispcie"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/condition"
	"github.com/qrngd/qrngd/testhw/pciesim"
	"github.com/qrngd/qrngd/testhw/serialsim"
	"github.com/qrngd/qrngd/testhw/usbsim"
)

func TestParseSource(t *testing.T) {
	cases := []struct {
		in   string
		kind string
		p    drivers.Params
		err  bool
	}{
		{in: "sim", kind: "sim", p: drivers.Params{"rate": 0}},
		{in: "quantis-usb:QSIM01", kind: "quantis-usb", p: drivers.Params{"serial": "QSIM01"}},
		{in: "quantis-usb", kind: "quantis-usb", p: drivers.Params{}},
		{in: "quantis-pcie:1", kind: "quantis-pcie", p: drivers.Params{"card": 1}},
		{in: "quantis-pcie:deadbeef01", kind: "quantis-pcie", p: drivers.Params{"serial": "deadbeef01"}},
		{in: "serial:truerng:/dev/ttyACM0", kind: "serial", p: drivers.Params{"profile": "truerng", "device": "/dev/ttyACM0"}},
		{in: "serial:truerng", err: true},
		{in: "serial::/dev/x", err: true},
		{in: "sim:3", err: true},
		{in: "usb:1", err: true},
		{in: "", err: true},
	}
	for _, c := range cases {
		spec, err := ParseSource(c.in)
		if c.err {
			if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "want") {
				t.Errorf("ParseSource(%q) = %v, want an ErrBadSource saying what is wanted", c.in, err)
			}
			continue
		}
		if err != nil || spec.Kind != c.kind || !reflect.DeepEqual(spec.Params, c.p) {
			t.Errorf("ParseSource(%q) = %+v, %v; want kind %s params %v", c.in, spec, err, c.kind, c.p)
		}
	}
}

// hwPath runs what TestHardware_Startup and BenchmarkHardwareRead run.
func hwPath(t *testing.T, spec drivers.Spec) entropy.SourceInfo {
	t.Helper()
	src := openHW(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := StartupTest(ctx, src, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples != 4096 || res.Windows != 8 || res.Failed != 0 {
		t.Errorf("start-up result %+v", res)
	}
	n, _, err := Throughput(ctx, src, 8192, 20*time.Millisecond)
	if err != nil || n == 0 {
		t.Errorf("Throughput: %d bytes, %v", n, err)
	}
	return src.Info()
}

func TestHardwarePath_PCIeSim(t *testing.T) {
	h := pciesim.NewHost(t.TempDir())
	sn := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	if _, err := h.Plug(0, pciesim.NewCard(pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: sn, Seed: 3})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(quantispcie.SetOpener(func(p string) (quantispcie.File, error) { return h.Open(p) }))
	spec, err := ParseSource("quantis-pcie:" + hex.EncodeToString(sn[:11]))
	if err != nil {
		t.Fatal(err)
	}
	spec.Params["dev_root"] = h.Root()
	if info := hwPath(t, spec); info.Serial != hex.EncodeToString(sn[:]) || info.Model != "PCIe-240M" {
		t.Errorf("Info %+v", info)
	}
}

func TestHardwarePath_SerialSim(t *testing.T) {
	d, err := serialsim.New(serialsim.Options{Model: serialsim.TrueRNG, Seed: 5, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	spec, err := ParseSource("serial:truerng:" + d.Path())
	if err != nil {
		t.Fatal(err)
	}
	spec.Params["require_dtr"] = false // a pty has no modem lines
	if info := hwPath(t, spec); info.Model == "" || info.Path != d.Path() {
		t.Errorf("Info %+v", info)
	}
}

// TestHardwarePath_USBSim needs umockdev-run (make test-usb).
func TestHardwarePath_USBSim(t *testing.T) {
	root := usbsim.Root()
	if root == "" {
		t.Skip(usbsim.SkipMessage)
	}
	bus, err := usbsim.NewBus(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	if _, err := bus.Plug(usbsim.DeviceConfig{Serial: "QSIMHW0001", Seed: 6}); err != nil {
		t.Fatal(err)
	}
	spec, err := ParseSource("quantis-usb:QSIMHW0001")
	if err != nil {
		t.Fatal(err)
	}
	if info := hwPath(t, spec); info.Serial != "QSIMHW0001" {
		t.Errorf("Info %+v", info)
	}
}

// TestTrace_FindsRuns: Trace locates blocks made from known offsets, follows
// consecutive runs, and reports -1 for a block of foreign samples.
func TestTrace_FindsRuns(t *testing.T) {
	stream := serialsim.Stream(1, 20000)
	foreign := serialsim.Stream(2, 1000)
	acc, err := newAcc(8, 6)
	if err != nil {
		t.Fatal(err)
	}
	per := acc.per
	offs := []int{0, per, 2 * per, 777, 777 + per, 19000, -1}
	blocks := make([]Block, len(offs))
	for i, o := range offs {
		if o < 0 {
			blocks[i] = acc.block(foreign[:per])
			continue
		}
		blocks[i] = acc.block(stream[o : o+per])
	}
	got, gotPer, err := Trace(stream, 8, 6, blocks)
	if err != nil || gotPer != per || !reflect.DeepEqual(got, offs) {
		t.Fatalf("Trace = %v, %d, %v; want %v, %d", got, gotPer, err, offs, per)
	}
}

type accHelper struct {
	a   *condition.Accumulator
	per int
}

func newAcc(bits int, h float64) (*accHelper, error) {
	a, err := condition.NewAccumulator(bits, h)
	if err != nil {
		return nil, err
	}
	return &accHelper{a: a, per: a.SamplesPerBlock()}, nil
}

// block conditions exactly one block's worth of samples.
func (h *accHelper) block(s []byte) Block {
	var out Block
	h.a.Reset()
	h.a.Absorb(s, func(b *[condition.OutputBytes]byte) { out = *b })
	return out
}
