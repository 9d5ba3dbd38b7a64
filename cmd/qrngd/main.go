// Command qrngd is the entropy appliance daemon: it opens the configured
// noise sources, health-tests and conditions them into the entropy pool, and
// serves random data over HTTP.
//
//	qrngd -config FILE [-listen ADDR] [-data-dir DIR]
//	qrngd -list-devices
//	qrngd -version
//
// Exit status: 0 after a clean shutdown (SIGINT, SIGTERM), 2 for invalid
// flags or configuration, 1 for any other failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// Source drivers join the registry from their init functions.
	_ "github.com/qrngd/qrngd/drivers/quantispcie" // kind "quantis-pcie"
	_ "github.com/qrngd/qrngd/drivers/quantisusb"  // kind "quantis-usb"
	_ "github.com/qrngd/qrngd/drivers/sim"         // kind "sim"
)

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qrngd:", err)
	}
	os.Exit(exitCode(err))
}

// exitCode maps run's error to the process exit status.
func exitCode(err error) int {
	var ce *ConfigError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce), errors.As(err, &ue):
		return 2
	}
	return 1
}
