// Command qrngctl administers a running qrngd over its admin unix socket.
//
//	qrngctl [-socket PATH] [-json] COMMAND [ARGS]
//
// Commands: status, sources, user add|list|passwd|rm, tenant add|list,
// key create|list|revoke, token revoke, audit verify, backup FILE.
// Passwords are read from standard input (one line), never from arguments.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "qrngctl:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
