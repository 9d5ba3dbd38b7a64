package entropy_test

import (
	"context"
	"fmt"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/entropytest"
)

func Example() {
	e, err := entropy.New(&entropy.Options{Policy: entropy.PolicyFailClosed, MinHealthySources: 1})
	if err != nil {
		panic(err)
	}
	defer e.Close()
	// A driver's source; here a fake with uniform samples credited H = 8.
	if err := e.AddSource(entropytest.NewUniform("sim0", 1), nil); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go e.Run(ctx)
	if err := e.WaitReady(ctx); err != nil { // start-up testing passed
		panic(err)
	}

	key := make([]byte, 32)
	prov, err := e.Read(ctx, key, entropy.ModeFull)
	if err != nil {
		panic(err)
	}
	fmt.Println(prov.Mode, prov.Sources, prov.Degraded)

	st := e.Status().Sources[0]
	fmt.Println(st.Name, st.State, "RCT cutoff", st.RCTCutoff, "APT cutoff", st.APTCutoff, "of", st.APTWindow)
	// Output:
	// full [sim0] false
	// sim0 healthy RCT cutoff 4 APT cutoff 13 of 512
}
