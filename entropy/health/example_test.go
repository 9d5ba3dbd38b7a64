package health_test

import (
	"fmt"

	"github.com/qrngd/qrngd/entropy/health"
)

func ExampleTester() {
	// An 8-bit source credited with 7.5 bits of min-entropy per sample,
	// α = 2^-20 for intermittent alarms and α² for permanent ones.
	t, err := health.New(health.Config{H: 7.5, SampleBits: 8})
	if err != nil {
		panic(err)
	}
	c := t.Cutoffs()
	fmt.Printf("W=%d RCT=%d/%d APT=%d/%d\n", c.W, c.RCT, c.RCTPermanent, c.APT, c.APTPermanent)

	// A healthy-looking window: a counter never repeats a sample.
	w := make([]byte, t.Window())
	for i := range w {
		w[i] = byte(i)
	}
	fmt.Printf("%+v\n", t.Test(w))

	// The source sticks at 0x42 from sample 600 on (offset 88 of the
	// second window): the RCT run reaches 4 samples (intermittent) at 603
	// and 7 (permanent) at 606. The APT reference w[0] = 0 is not stuck.
	for i := 88; i < len(w); i++ {
		w[i] = 0x42
	}
	r := t.Test(w)
	fmt.Println("RCT:", r.RCT, "at", r.RCTIndex, "APT:", r.APT)

	// Still stuck in the third window: the run carries over, and the APT
	// counts 0x42 from its reference sample 1024 and reaches 22 at 1045.
	for i := range w {
		w[i] = 0x42
	}
	r = t.Test(w)
	fmt.Println("RCT:", r.RCT, "at", r.RCTIndex, "APT:", r.APT, "at", r.APTIndex)
	// Output:
	// W=512 RCT=4/7 APT=15/22
	// {RCT:pass APT:pass RCTIndex:0 APTIndex:0}
	// RCT: permanent at 606 APT: pass
	// RCT: permanent at 1024 APT: permanent at 1045
}
