package quantispcie

import "sync"

// File is what the driver needs of one open /dev/qrandomN node: read(2),
// ioctl(2) on caller memory (see the device seam) and close(2). Errors are
// syscall.Errno values, possibly wrapped. testhw/pciesim's *File implements it.
type File interface {
	Read(p []byte) (int, error)
	Ioctl(req uintptr, arg []byte) error
	Close() error
}

var openerMu sync.Mutex

// SetOpener makes every Driver open device nodes with open instead of
// open(2), and returns a function that restores the previous opener. It exists
// so that tests outside this package (the daemon's end-to-end test, testhw)
// can run the registered driver on a simulated card; production code never
// calls it. Call it before any source is opened, not concurrently with Open,
// Discover or Reconnect.
func SetOpener(open func(path string) (File, error)) (restore func()) {
	openerMu.Lock()
	defer openerMu.Unlock()
	old := openDevice
	openDevice = func(path string) (device, error) {
		f, err := open(path)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return func() {
		openerMu.Lock()
		openDevice = old
		openerMu.Unlock()
	}
}
