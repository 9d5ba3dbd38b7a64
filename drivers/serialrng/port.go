package serialrng

import (
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
)

// port is the seam over go.bug.st/serial: the calls the driver makes on an
// open tty. ResetInputBuffer (tcflush) is there because the TrueRNG
// reference reader flushes input after raising DTR (hardware.md §3), and so
// that a reopened port never serves bytes queued before a fault.
type port interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SetDTR(dtr bool) error
	SetRTS(rts bool) error
	SetReadTimeout(t time.Duration) error
	ResetInputBuffer() error
	Close() error
}

// openPort opens a tty with the real library; tests of the DTR/RTS
// sequencing replace it with a fake (a pty has no modem lines), every other
// test goes through it unchanged.
var openPort = func(path string, mode *serial.Mode) (port, error) {
	p, err := serial.Open(path, mode)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// listPorts enumerates serial ports with their USB VID/PID/serial.
var listPorts = func() ([]*enumerator.PortDetails, error) { return enumerator.GetDetailedPortsList() }
