package serialsim

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// readFor reads from f until want is seen or the deadline passes.
func readFor(t *testing.T, f *os.File, want []byte) []byte {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	if err := f.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for !bytes.Contains(got, want) {
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (after %q...)", err, got[:min(len(got), 40)])
		}
		got = append(got, buf[:n]...)
	}
	return got
}

func openTTY(t *testing.T, d *Device) *os.File {
	t.Helper()
	f, err := os.OpenFile(d.Path(), os.O_RDWR|0x100 /* O_NOCTTY */, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestDevice_OneRNG_Commands(t *testing.T) {
	d, err := New(Options{Model: OneRNG, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f := openTTY(t, d)
	if _, err := f.Write([]byte("cmdocmdvcmd3cmdw")); err != nil {
		t.Fatal(err)
	}
	readFor(t, f, []byte(OneRNGVersion))
	st := d.State()
	if st.Running || st.Mode != '3' || st.VersionRequests != 1 || st.Flushes != 1 {
		t.Errorf("state after pause/version/mode/flush: %+v", st)
	}
	w := d.State().Written
	if _, err := f.Write([]byte("cmdO")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for d.State().Written == w { // paused: nothing new is generated until cmdO lands
		if _, err := f.Read(buf); err != nil {
			t.Fatalf("cmdO did not start the stream: %v", err)
		}
	}
	if !d.State().Running {
		t.Error("not running after cmdO")
	}
}

func TestDevice_Unplug_MovesPath(t *testing.T) {
	d, err := New(Options{Model: AlphaRNG, Dir: t.TempDir(), Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first := d.TTY()
	f := openTTY(t, d)
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	got := readFor(t, f, Stream(4, AlphaResponseLen))
	if len(got) != AlphaResponseLen {
		t.Errorf("response %d bytes, want %d", len(got), AlphaResponseLen)
	}
	if err := d.Unplug(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path()); !os.IsNotExist(err) {
		t.Errorf("path still there after unplug: %v", err)
	}
	if n, err := f.Read(make([]byte, 1)); err == nil && n > 0 {
		t.Error("the old tty still reads data after unplug")
	}
	if err := d.Plug(); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(d.Path()); err != nil || target != d.TTY() || d.TTY() == "" {
		t.Errorf("after replug the path points to %q (%v); tty %q, first %q", target, err, d.TTY(), first)
	}
}
