//go:build !linux

package admin

import (
	"context"
	"net"
)

func peerContext(ctx context.Context, _ net.Conn) context.Context { return ctx }

func actor(context.Context) string { return "admin-socket" }
