//go:build !linux

package quantispcie

import "fmt"

func openUnixDevice(path string) (device, error) {
	return nil, fmt.Errorf("%w: open %s: Quantis PCIe cards are supported on Linux only", ErrUnsupported, path)
}
