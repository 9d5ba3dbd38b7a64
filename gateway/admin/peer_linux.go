package admin

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

type peerKey struct{}

// peerContext records the connecting process's credentials (SO_PEERCRED).
func peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, fmt.Sprintf("admin-socket uid=%d pid=%d", cred.Uid, cred.Pid))
}

// actor names who made an admin request.
func actor(ctx context.Context) string {
	if s, ok := ctx.Value(peerKey{}).(string); ok {
		return s
	}
	return "admin-socket"
}
