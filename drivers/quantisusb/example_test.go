package quantisusb_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/qrngd/qrngd/drivers/quantisusb"
	"github.com/qrngd/qrngd/entropy"
)

// Open a Quantis USB by serial, read, and ride out an unplug.
func ExampleOpen() {
	ctx := context.Background()
	src, err := quantisusb.Open(ctx, "quantis0", &quantisusb.Options{Serial: "123456A789"})
	if err != nil {
		fmt.Println(err) // e.g. ErrNotFound, or ErrPermission naming systemd/99-qrngd.rules
		return
	}
	defer src.Close()
	buf := make([]byte, 4096)
	if _, err := src.Read(ctx, buf); errors.Is(err, entropy.ErrDisconnected) {
		_ = src.Reconnect(ctx) // polls until the same serial is back
	}
}
