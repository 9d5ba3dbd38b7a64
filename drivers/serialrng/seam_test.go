package serialrng

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
)

// fakePort stands in for go.bug.st/serial where a pty cannot: it records
// the modem-line calls and can refuse them. It streams a counter pattern.
type fakePort struct {
	mu      sync.Mutex
	calls   []string
	dtrErr  error
	readErr error
	closed  bool
	next    byte
	replay  bool // ResetInputBuffer restarts the pattern: every response the same
}

func (f *fakePort) log(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }

func (f *fakePort) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readErr != nil {
		return 0, f.readErr
	}
	for i := range p {
		p[i] = f.next
		f.next++
	}
	return len(p), nil
}
func (f *fakePort) Write(p []byte) (int, error) {
	f.log(fmt.Sprintf("Write(%q)", p))
	return len(p), nil
}
func (f *fakePort) SetDTR(v bool) error { f.log(fmt.Sprintf("SetDTR(%v)", v)); return f.dtrErr }
func (f *fakePort) SetRTS(v bool) error { f.log(fmt.Sprintf("SetRTS(%v)", v)); return f.dtrErr }
func (f *fakePort) SetReadTimeout(d time.Duration) error {
	f.log(fmt.Sprintf("SetReadTimeout(%v)", d))
	return nil
}
func (f *fakePort) ResetInputBuffer() error {
	f.log("ResetInputBuffer")
	f.mu.Lock()
	if f.replay {
		f.next = 0
	}
	f.mu.Unlock()
	return nil
}
func (f *fakePort) Close() error {
	f.log("Close")
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// useFake replaces openPort for one test; opens lists every open's mode.
func useFake(t *testing.T, mk func() *fakePort) (ports *[]*fakePort, modes *[]serial.Mode) {
	t.Helper()
	ports, modes = new([]*fakePort), new([]serial.Mode)
	old := openPort
	openPort = func(path string, mode *serial.Mode) (port, error) {
		f := mk()
		*ports = append(*ports, f)
		*modes = append(*modes, *mode)
		return f, nil
	}
	t.Cleanup(func() { openPort = old })
	return ports, modes
}

func TestSeam_ModemLines(t *testing.T) {
	for _, c := range []struct {
		name   string
		params drivers.Params
		want   string
	}{
		{"truerng", drivers.Params{"profile": "truerng"}, "SetReadTimeout(100ms) SetDTR(true) ResetInputBuffer"},
		{"truerngpro", drivers.Params{"profile": "truerngpro"}, "SetReadTimeout(100ms) SetDTR(true) ResetInputBuffer"},
		{"alpharng", drivers.Params{"profile": "alpharng"}, "SetReadTimeout(100ms) ResetInputBuffer"},
		{"generic", drivers.Params{"profile": "generic", "dtr": false, "rts": true}, "SetReadTimeout(100ms) SetDTR(false) SetRTS(true) ResetInputBuffer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ports, _ := useFake(t, func() *fakePort { return &fakePort{} })
			c.params["device"] = "/dev/ttyACM0"
			s := mustOpen(t, c.params)
			if got := strings.Join((*ports)[0].calls, " "); got != c.want {
				t.Errorf("port calls %q, want %q", got, c.want)
			}
			if s.ModemLines() != "ok" {
				t.Errorf("ModemLines() = %q", s.ModemLines())
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		useFake(t, func() *fakePort { return &fakePort{dtrErr: syscall.EIO} })
		_, err := openSerial(t, drivers.Params{"profile": "truerng", "device": "/dev/ttyACM0"})
		if !errors.Is(err, ErrModemLines) {
			t.Fatalf("Open with DTR refused = %v; want ErrModemLines", err)
		}
		s := mustOpen(t, drivers.Params{"profile": "truerng", "device": "/dev/ttyACM0", "require_dtr": false})
		if !strings.Contains(s.ModemLines(), "set DTR failed") {
			t.Errorf("ModemLines() = %q", s.ModemLines())
		}
	})
}

func TestSeam_TrueRNGpro_NeverKnocks(t *testing.T) {
	ports, modes := useFake(t, func() *fakePort { return &fakePort{} })
	s := mustOpen(t, drivers.Params{"profile": "truerngpro-v2", "device": "/dev/ttyACM0"})
	for i := 0; i < 5; i++ {
		(*ports)[len(*ports)-1].mu.Lock()
		(*ports)[len(*ports)-1].readErr = syscall.EIO
		(*ports)[len(*ports)-1].mu.Unlock()
		if _, err := s.Read(context.Background(), make([]byte, 8)); !errors.Is(err, entropy.ErrDisconnected) {
			t.Fatalf("EIO: %v; want ErrDisconnected", err)
		}
		if err := s.Reconnect(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(*modes) != 6 {
		t.Fatalf("%d opens, want 6", len(*modes))
	}
	for i, m := range *modes {
		if m.BaudRate != 3000000 || m.InitialStatusBits != nil {
			t.Errorf("open %d at %d baud (initial bits %v); want 3000000 and no modem-bit read", i, m.BaudRate, m.InitialStatusBits)
		}
	}
}

func TestSeam_PermissionDenied(t *testing.T) {
	old := openPort
	t.Cleanup(func() { openPort = old })
	openPort = func(path string, mode *serial.Mode) (port, error) {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.EACCES}
	}
	_, err := openSerial(t, drivers.Params{"profile": "onerng", "device": "/dev/ttyACM0"})
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "99-qrngd.rules") {
		t.Fatalf("Open denied = %v; want ErrPermission naming the udev rule", err)
	}
}

// A request-protocol device that answers the same response twice (a firmware
// that replays its buffer) fails with ErrRepeated and its bytes are dropped:
// the RCT and APT cannot see a repeated block of random-looking bytes (SP
// 800-90B §4.3 item 8). Responses too short for a repeat to be that unlikely
// (response_len × H < 64 bits) are not checked.
func TestSeam_RequestRepeatedResponse(t *testing.T) {
	for _, c := range []struct {
		name    string
		params  drivers.Params
		respLen int
		check   bool
	}{
		{"alpharng", drivers.Params{"profile": "alpharng"}, 16000, true},
		{"generic 64 bytes H=1", drivers.Params{"profile": "generic", "request": 0x72, "response_len": 64}, 64, true},
		{"generic 8 bytes H=1", drivers.Params{"profile": "generic", "request": 0x72, "response_len": 8}, 8, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			useFake(t, func() *fakePort { return &fakePort{replay: true} })
			c.params["device"] = "/dev/ttyACM0"
			s := mustOpen(t, c.params)
			first := make([]byte, c.respLen)
			if n, err := s.Read(context.Background(), first); n != c.respLen || err != nil {
				t.Fatalf("first response: %d, %v", n, err)
			}
			p := make([]byte, c.respLen)
			n, err := s.Read(context.Background(), p)
			if !c.check {
				if n != c.respLen || err != nil {
					t.Fatalf("short repeated response: %d, %v; want it served", n, err)
				}
				return
			}
			if n != 0 || !errors.Is(err, ErrRepeated) {
				t.Fatalf("repeated response: %d, %v; want 0, ErrRepeated", n, err)
			}
			if n, err := s.Read(context.Background(), p); n != 0 || !errors.Is(err, ErrRepeated) {
				t.Fatalf("repeated again: %d, %v; want 0, ErrRepeated (nothing of it kept)", n, err)
			}
		})
	}
}
