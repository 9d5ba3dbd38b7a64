package quantispcie

import (
	"context"
	"fmt"
	"os"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/testhw/pciesim"
)

// A simulated PCIe-240M opened through the registry, as the daemon opens a
// `sources:` entry (the example swaps the device seam for the simulator).
func Example() {
	dir, err := os.MkdirTemp("", "quantispcie-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	host := pciesim.NewHost(dir)
	old := openDevice
	defer func() { openDevice = old }()
	openDevice = func(path string) (device, error) {
		f, err := host.Open(path)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	if _, err := host.Plug(0, pciesim.NewCard(pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: [12]byte{0x12, 0x34}})); err != nil {
		fmt.Println(err)
		return
	}

	src, err := drivers.Open(context.Background(), drivers.Spec{Name: "pcie0", Kind: "quantis-pcie",
		Params: drivers.Params{"dev_root": dir, "card": 0}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	n, err := src.Read(context.Background(), make([]byte, 1<<20))
	info := src.Info()
	fmt.Println(info.Vendor, info.Model, info.Serial, info.BoardVersion, info.NominalRate, n, err)
	// Output: ID Quantique PCIe-240M 123400000000000000000000 fw 1.2.3 pcb 2 (0x02010203) 3e+07 1048576 <nil>
}
