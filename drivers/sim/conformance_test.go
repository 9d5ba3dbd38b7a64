package sim_test

import (
	"time"

	"testing"

	"github.com/qrngd/qrngd/drivers/drivertest"
	"github.com/qrngd/qrngd/drivers/sim"
	"github.com/qrngd/qrngd/entropy"
)

func newSim(t *testing.T, o *sim.Options) *sim.Source {
	t.Helper()
	s, err := sim.New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return s
}

func TestSim_Conformance(t *testing.T) {
	unplug := func(t *testing.T, s entropy.Source) { s.(*sim.Source).Unplug() }
	replug := func(t *testing.T, s entropy.Source) { s.(*sim.Source).Replug() }
	hang := func(t *testing.T, s entropy.Source) <-chan struct{} { return s.(*sim.Source).Hang() }
	tests := []struct {
		name string
		h    drivertest.Harness
	}{
		{"unplug", drivertest.Harness{
			Open:     func(t *testing.T) entropy.Source { return newSim(t, &sim.Options{Name: "c1"}) },
			Fault:    unplug,
			FaultErr: entropy.ErrDisconnected,
			Restore:  replug,
			Hang:     hang,
		}},
		{"disconnect-at-index/3-bit/short-reads/rate", drivertest.Harness{
			Open: func(t *testing.T) entropy.Source {
				return newSim(t, &sim.Options{Name: "c2", SampleBits: 3, MinEntropy: 1.5, Rate: 1e6,
					Clock:  drivertest.NewFakeClock(time.Unix(0, 0)),
					Faults: []sim.Fault{{Kind: sim.ShortReads, N: 7}}})
			},
			Fault: func(t *testing.T, s entropy.Source) {
				ss := s.(*sim.Source)
				if err := ss.Inject(sim.Fault{Kind: sim.Disconnect, At: ss.Samples() + 100}); err != nil {
					t.Fatal(err)
				}
			},
			FaultErr: entropy.ErrDisconnected,
			Restore:  replug,
			Hang:     hang,
		}},
		{"read-error", drivertest.Harness{
			Open: func(t *testing.T) entropy.Source { return newSim(t, &sim.Options{Name: "c3", SampleBits: 1}) },
			Fault: func(t *testing.T, s entropy.Source) {
				if err := s.(*sim.Source).Inject(sim.Fault{Kind: sim.ReadError, N: 3}); err != nil {
					t.Fatal(err)
				}
			},
			FaultErr: sim.ErrInjected,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { drivertest.Run(t, tt.h) })
	}
}
