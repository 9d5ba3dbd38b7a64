package serialrng_test

import (
	"context"
	"fmt"
	"os"

	"github.com/qrngd/qrngd/drivers"
	_ "github.com/qrngd/qrngd/drivers/serialrng"
	"github.com/qrngd/qrngd/testhw/serialsim"
)

// A OneRNG, simulated on a pseudo-terminal, opened through the registry as
// the daemon opens a `sources:` entry.
func Example() {
	dir, err := os.MkdirTemp("", "serialrng-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	dev, err := serialsim.New(serialsim.Options{Model: serialsim.OneRNG, Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dev.Close()

	src, err := drivers.Open(context.Background(), drivers.Spec{Name: "onerng0", Kind: "serial", Params: drivers.Params{
		"profile": "onerng", "device": dev.Path(),
		"require_dtr": false, // a pty has no DTR line; never set this for a real /dev/ttyACM*
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	buf := make([]byte, 64)
	n, err := src.Read(context.Background(), buf)
	info := src.Info()
	fmt.Println(info.Vendor, info.Model, info.BoardVersion, info.MinEntropy, n > 0, err)
	// Output: Moonbase Otago OneRNG firmware 2 6 true <nil>
}
