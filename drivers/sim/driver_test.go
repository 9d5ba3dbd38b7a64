package sim_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/drivertest"
	"github.com/qrngd/qrngd/drivers/sim"
	"github.com/qrngd/qrngd/entropy"
)

func openSpec(t *testing.T, spec drivers.Spec) (*sim.Source, error) {
	t.Helper()
	if spec.Kind == "" {
		spec.Kind = "sim"
	}
	src, err := drivers.Open(bg, spec)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { src.Close() })
	return src.(*sim.Source), nil
}

func TestDriver_Registered(t *testing.T) {
	if !slices.Contains(drivers.Kinds(), "sim") {
		t.Fatalf("kinds %v lack sim", drivers.Kinds())
	}
	d, _ := drivers.Lookup("sim")
	if devs, err := d.Discover(bg); devs != nil || err != nil {
		t.Errorf("Discover = %v, %v; want nil, nil", devs, err)
	}
}

func TestDriver_Open(t *testing.T) {
	s, err := openSpec(t, drivers.Spec{Name: "dev", MinEntropy: 2, Params: drivers.Params{
		"sample_bits": 4, "rate": 500.0, "seed": 77,
	}})
	if err != nil {
		t.Fatal(err)
	}
	info := s.Info()
	if info.Name != "dev" || info.Path != "sim:dev" || info.SampleBits != 4 || info.MinEntropy != 2 || info.NominalRate != 500 {
		t.Errorf("Info() = %+v", info)
	}
	same := newSim(t, &sim.Options{Name: "dev", SampleBits: 4, MinEntropy: 2, Seed: 77})
	if !bytes.Equal(drivertest.ReadFull(t, s, 50), drivertest.ReadFull(t, same, 50)) {
		t.Error("Open with seed 77 differs from New with Seed 77")
	}
}

func TestDriver_Open_Faults(t *testing.T) {
	s, err := openSpec(t, drivers.Spec{Name: "f", Params: drivers.Params{
		"seed": 3, "stuck_after": 10, "stuck_value": 200, "short_reads": 4,
		"error_every": 1000, "disconnect_after": 30, "reconnect_after": "1ms", "delay": "1us",
		"bias": 0.5, "bias_value": 1, "bias_after": 5, "hang_after": 10000,
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < 30 {
		p := make([]byte, 100)
		n, err := s.Read(bg, p)
		if err != nil {
			t.Fatal(err)
		}
		if n > 4 {
			t.Fatalf("read %d bytes; short_reads is 4", n)
		}
		got = append(got, p[:n]...)
	}
	for i := 10; i < 30; i++ {
		if got[i] != 200 {
			t.Fatalf("sample %d = %d; want stuck at 200", i, got[i])
		}
	}
	if _, err := s.Read(bg, make([]byte, 1)); !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("Read at sample 30 = %v; want ErrDisconnected", err)
	}
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if err := s.Reconnect(ctx); err != nil {
		t.Fatalf("Reconnect after reconnect_after: %v", err)
	}
}

func TestDriver_Open_ParamErrors(t *testing.T) {
	tests := []struct {
		params drivers.Params
		minH   float64
		key    string
	}{
		{drivers.Params{"sampel_bits": 4}, 0, "sampel_bits"},
		{drivers.Params{"sample_bits": 9}, 0, "sample_bits"},
		{drivers.Params{"sample_bits": "eight"}, 0, "sample_bits"},
		{drivers.Params{"sample_bits": 2}, 3, "min_entropy"},
		{drivers.Params{"rate": -5}, 0, "rate"},
		{drivers.Params{"rate": "fast"}, 0, "rate"},
		{drivers.Params{"seed": -1}, 0, "seed"},
		{drivers.Params{"stuck_after": -1}, 0, "stuck_after"},
		{drivers.Params{"stuck_value": 3}, 0, "stuck_value"},
		{drivers.Params{"sample_bits": 1, "stuck_after": 0, "stuck_value": 2}, 0, "stuck_value"},
		{drivers.Params{"stuck_after": 0, "stuck_value": 300}, 0, "stuck_value"},
		{drivers.Params{"bias": 0}, 0, "bias"},
		{drivers.Params{"bias": 2}, 0, "bias"},
		{drivers.Params{"bias_value": 1}, 0, "bias_value"},
		{drivers.Params{"bias_after": 1}, 0, "bias_after"},
		{drivers.Params{"short_reads": 0}, 0, "short_reads"},
		{drivers.Params{"error_every": 0}, 0, "error_every"},
		{drivers.Params{"reconnect_after": "1s"}, 0, "reconnect_after"},
		{drivers.Params{"disconnect_after": 5, "reconnect_after": 7}, 0, "reconnect_after"},
		{drivers.Params{"disconnect_after": 5, "reconnect_after": "-1s"}, 0, "reconnect_after"},
		{drivers.Params{"delay": "0s"}, 0, "delay"},
		{drivers.Params{"delay": "soon"}, 0, "delay"},
		{drivers.Params{"hang_after": 1.5}, 0, "hang_after"},
	}
	for _, tt := range tests {
		_, err := openSpec(t, drivers.Spec{Name: "bad", MinEntropy: tt.minH, Params: tt.params})
		var pe *drivers.ParamError
		if !errors.As(err, &pe) || pe.Key != tt.key {
			t.Errorf("Open(%v) = %v; want a ParamError naming %q", tt.params, err, tt.key)
			continue
		}
		if !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("error %q does not name the source and the key", err)
		}
	}
	if _, err := openSpec(t, drivers.Spec{Params: drivers.Params{}}); err == nil {
		t.Error("Open with an empty name succeeded")
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := drivers.Open(ctx, drivers.Spec{Name: "x", Kind: "sim"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open(cancelled) = %v", err)
	}
}
