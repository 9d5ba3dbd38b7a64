// Package serialsim simulates USB CDC-ACM TRNGs on real pseudo-terminals.
// The simulated firmware runs on the pty master; the driver under test opens
// the tty side through go.bug.st/serial exactly as it opens /dev/ttyACM0.
// Each device has a stable path (a symlink in a directory of the test's
// choosing, like /dev/serial/by-id/...) that follows the device across
// Unplug and Plug, which create a new pty as a USB re-plug creates a new tty.
//
// Firmware models (reference/hardware.md §3):
//   - TrueRNG: streams random bytes in 64-byte USB packets; no commands.
//   - OneRNG: "cmd"+char commands: O run, o pause, w flush the pool, v reply
//     "\r\nVersion 2\r\n", 0-9/a-f set the 4-bit mode; streams while running.
//   - AlphaRNG: each 'x' received is answered with 16000 random bytes.
//
// A pty carries no modem lines: TIOCMGET/TIOCMSET on it fail with ENOTTY,
// so go.bug.st/serial's SetDTR/SetRTS fail and the firmware cannot see DTR.
// The simulated TrueRNG and OneRNG therefore behave as if DTR were set; the
// DTR handling of the driver is tested at its port seam instead.
package serialsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Model is the simulated firmware.
type Model int

// Firmware models.
const (
	TrueRNG Model = iota
	OneRNG
	AlphaRNG
)

// Fault is an injected misbehaviour.
type Fault int

// Faults.
const (
	None    Fault = iota
	Stuck         // the stream (or response) is one repeated byte
	Garbage       // OneRNG: ignores pause and answers "cmdv" with random bytes
	Echo          // echoes every byte it receives and sends nothing else
	Silent        // sends nothing at all (a hung device)
	Short         // AlphaRNG: answers a request with 1000 bytes instead of 16000
)

// AlphaResponseLen is the AlphaRNG response size (RND_IN_BUFFSIZE).
const AlphaResponseLen = 16000

// OneRNGVersion is the OneRNG firmware's reply to "cmdv".
const OneRNGVersion = "\r\nVersion 2\r\n"

const packet = 64 // USB full-speed bulk packet

// Options configure a device.
type Options struct {
	Model Model
	Seed  uint64
	Dir   string // where the stable symlink is created (required)
	Name  string // symlink name; default "ttyACM-sim"
	// StuckByte is the byte a Stuck device repeats.
	StuckByte byte
	// Rate paces the TrueRNG/OneRNG stream in bytes per second; 0 means
	// DefaultRate. The firmware handles host commands between packets, and
	// an unpaced stream on a loaded machine can run far ahead of the
	// goroutine that reads commands, which no USB device does.
	Rate int
}

// DefaultRate is the default stream pace: about 2.5 times a OneRNG or
// TrueRNG (hardware.md gives no verified rates), fast enough for tests.
const DefaultRate = 1 << 20

// State is what the firmware has seen and done, for tests to assert on.
type State struct {
	Received        []byte // every byte received from the host since the first Plug
	Written         int64  // random-stream bytes sent to the host (all plugs)
	Running         bool   // OneRNG: streaming
	Mode            byte   // OneRNG: last mode digit ('0' at power-up)
	Flushes         int    // OneRNG: "cmdw" count
	VersionRequests int    // OneRNG: "cmdv" count
	Requests        int    // AlphaRNG: 'x' count
	Plugs           int
}

// Device is one simulated TRNG.
type Device struct {
	o    Options
	link string

	mu    sync.Mutex
	gen   *rand.ChaCha8
	st    State
	fault Fault
	cmd   []byte // OneRNG command parser state
	wake  chan struct{}
	plug  *plugged
}

type plugged struct {
	master, slave *os.File
	wmu           sync.Mutex // one writer at a time on the master
	done          chan struct{}
	wg            sync.WaitGroup
	replies       chan []byte
}

// New creates the device and plugs it in.
func New(o Options) (*Device, error) {
	if o.Dir == "" {
		return nil, errors.New("serialsim: Options.Dir is required")
	}
	if o.Name == "" {
		o.Name = "ttyACM-sim"
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], o.Seed)
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	d := &Device{o: o, link: filepath.Join(o.Dir, o.Name), gen: rand.NewChaCha8(seed), wake: make(chan struct{}, 1)}
	d.st.Running = o.Model != AlphaRNG
	d.st.Mode = '0'
	if err := d.Plug(); err != nil {
		return nil, err
	}
	return d, nil
}

// Stream returns the first n bytes of the random stream of a seed: a
// device's output (stream or responses) is a contiguous run of it.
func Stream(seed uint64, n int) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	out := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(out)
	return out
}

// Path is the device's stable path (a symlink to its current tty).
func (d *Device) Path() string { return d.link }

// TTY is the current /dev/pts/N of the device, "" while unplugged.
func (d *Device) TTY() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.plug == nil {
		return ""
	}
	return d.plug.slave.Name()
}

// State returns a snapshot of the firmware state.
func (d *Device) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.st
	s.Received = append([]byte(nil), d.st.Received...)
	return s
}

// SetFault injects f (None clears it).
func (d *Device) SetFault(f Fault) {
	d.mu.Lock()
	d.fault = f
	d.mu.Unlock()
	d.kick()
}

func (d *Device) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Plug creates a new pty, points the stable path at it and starts the
// firmware. It is an error to plug a plugged device.
func (d *Device) Plug() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.plug != nil {
		return errors.New("serialsim: already plugged")
	}
	m, s, err := openPty()
	if err != nil {
		return fmt.Errorf("serialsim: open pty: %w", err)
	}
	// Raw mode on the tty side until the driver sets its own: a fresh pty
	// echoes and line-buffers, which no USB CDC-ACM device does.
	if t, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS); err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		_ = unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, t)
	}
	tmp := d.link + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(s.Name(), tmp); err != nil {
		m.Close()
		s.Close()
		return fmt.Errorf("serialsim: link: %w", err)
	}
	if err := os.Rename(tmp, d.link); err != nil {
		m.Close()
		s.Close()
		return fmt.Errorf("serialsim: link: %w", err)
	}
	p := &plugged{master: m, slave: s, done: make(chan struct{}), replies: make(chan []byte, 16)}
	d.plug = p
	d.st.Plugs++
	p.wg.Add(2)
	go d.readLoop(p)
	go d.writeLoop(p)
	return nil
}

// openPty opens a pty whose master is in non-blocking mode and registered
// with the runtime poller, so that closing it (Unplug) wakes the firmware's
// blocked reads and writes. pty.Open's master went through Fd(), which puts
// a file in blocking mode; a non-blocking duplicate replaces it.
func openPty() (master, tty *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), s, nil
}

// Unplug closes the pty (the driver's open tty hangs up) and removes the
// stable path.
func (d *Device) Unplug() error {
	d.mu.Lock()
	p := d.plug
	d.plug = nil
	d.mu.Unlock()
	if p == nil {
		return nil
	}
	close(p.done)
	err := errors.Join(p.master.Close(), p.slave.Close())
	p.wg.Wait()
	_ = os.Remove(d.link)
	return err
}

// Close unplugs the device for good.
func (d *Device) Close() error { return d.Unplug() }

// send writes b to the host as one unit.
func (p *plugged) send(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, err := p.master.Write(b)
	return err
}

// readLoop receives bytes from the host and runs the firmware's commands.
func (d *Device) readLoop(p *plugged) {
	defer p.wg.Done()
	buf := make([]byte, 256)
	for {
		n, err := p.master.Read(buf)
		if err != nil {
			return // closed (unplug)
		}
		for _, b := range buf[:n] {
			if reply := d.receive(b); reply != nil {
				select {
				case p.replies <- reply:
					d.kick()
				case <-p.done:
					return
				}
			}
		}
		d.kick() // a command may have started the stream
	}
}

// receive handles one byte from the host and returns a reply to queue.
func (d *Device) receive(b byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Received = append(d.st.Received, b)
	if d.fault == Echo {
		return []byte{b}
	}
	if d.fault == Silent {
		return nil
	}
	switch d.o.Model {
	case AlphaRNG:
		if b == 'x' {
			d.st.Requests++
			n := AlphaResponseLen
			if d.fault == Short {
				n = 1000
			}
			return d.randomLocked(n)
		}
	case OneRNG:
		d.cmd = append(d.cmd, b)
		if len(d.cmd) > 4 {
			d.cmd = d.cmd[len(d.cmd)-4:]
		}
		if len(d.cmd) < 4 || string(d.cmd[:3]) != "cmd" {
			return nil
		}
		c := d.cmd[3]
		d.cmd = d.cmd[:0]
		switch {
		case c == 'O':
			d.st.Running = true
		case c == 'o':
			d.st.Running = false
		case c == 'w':
			d.st.Flushes++
		case c == 'v':
			d.st.VersionRequests++
			if d.fault == Garbage {
				g := make([]byte, len(OneRNGVersion))
				_, _ = d.gen.Read(g)
				return g
			}
			return []byte(OneRNGVersion)
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
			d.st.Mode = c
		}
	}
	return nil
}

// randomLocked draws n stream bytes (or the stuck byte).
func (d *Device) randomLocked(n int) []byte {
	b := make([]byte, n)
	if d.fault == Stuck {
		for i := range b {
			b[i] = d.o.StuckByte
		}
		return b
	}
	_, _ = d.gen.Read(b)
	d.st.Written += int64(n)
	return b
}

// writeLoop sends replies and, while streaming, 64-byte packets. A full tty
// buffer blocks it, as a host that does not read stalls a USB device.
func (d *Device) writeLoop(p *plugged) {
	defer p.wg.Done()
	sent := 0
	for {
		select {
		case <-p.done:
			return
		case r := <-p.replies:
			if p.send(r) != nil {
				return
			}
			continue
		default:
		}
		d.mu.Lock()
		streaming := d.o.Model != AlphaRNG && d.fault != Echo && d.fault != Silent &&
			(d.st.Running || d.fault == Garbage)
		var chunk []byte
		if streaming {
			chunk = d.randomLocked(packet)
		}
		d.mu.Unlock()
		if chunk == nil {
			select {
			case <-p.done:
				return
			case <-d.wake:
			case r := <-p.replies:
				if p.send(r) != nil {
					return
				}
			}
			continue
		}
		if p.send(chunk) != nil {
			return
		}
		if sent += len(chunk); sent >= burst {
			// Pace per 1 KiB burst: a 1 ms-scale sleep, not one per packet.
			time.Sleep(time.Duration(sent) * time.Second / time.Duration(d.o.Rate))
			sent = 0
		}
	}
}

const burst = 1024
