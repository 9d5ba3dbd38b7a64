//go:build linux

package quantispcie

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// unixDevice is a real /dev/qrandomN file. It uses raw system calls rather
// than *os.File so that EINTR and short reads reach the driver's own loop
// (the vendor library's behaviour) and ioctls address caller memory.
type unixDevice struct{ fd int }

func openUnixDevice(path string) (device, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &unixDevice{fd: fd}, nil
}

func (d *unixDevice) Read(p []byte) (int, error) {
	n, err := unix.Read(d.fd, p)
	if n < 0 {
		n = 0
	}
	return n, err
}

func (d *unixDevice) Ioctl(req uintptr, arg []byte) error {
	var ptr uintptr
	if len(arg) > 0 {
		ptr = uintptr(unsafe.Pointer(&arg[0]))
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), req, ptr)
	if e != 0 {
		return e
	}
	return nil
}

func (d *unixDevice) Close() error { return unix.Close(d.fd) }
