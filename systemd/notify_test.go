package systemd

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen returns a unixgram socket standing in for systemd's NOTIFY_SOCKET.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestDaemon_Ready_Status_Stopping(t *testing.T) {
	c := listen(t)
	t.Setenv("WATCHDOG_USEC", "")
	d, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Ready("pool ready\n1 source")
	if got := recv(t, c); got != "READY=1\nSTATUS=pool ready 1 source" {
		t.Errorf("ready: got %q", got)
	}
	d.Status("degraded")
	if got := recv(t, c); got != "STATUS=degraded" {
		t.Errorf("status: got %q", got)
	}
	d.Stopping()
	if got := recv(t, c); got != "STOPPING=1" {
		t.Errorf("stopping: got %q", got)
	}
}

func TestDaemon_Watchdog_Env(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", "")
	d, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.WatchdogInterval() != 2*time.Second {
		t.Errorf("interval %v, want 2s", d.WatchdogInterval())
	}
	t.Setenv("WATCHDOG_USEC", "bogus")
	if _, err := New(nil); err == nil || !strings.Contains(err.Error(), "systemd: watchdog") {
		t.Errorf("bad WATCHDOG_USEC: err %v", err)
	}
}

type recorder struct{ states chan string }

func (r recorder) Notify(s string) (bool, error) { r.states <- s; return true, nil }

func TestDaemon_RunWatchdog_WithheldWhenUnhealthy(t *testing.T) {
	rec := recorder{states: make(chan string, 10)}
	d, err := New(&Options{Notifier: rec, WatchdogInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	healthy := make(chan bool, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.RunWatchdog(ctx, func() bool { return <-healthy }, tick)
		close(done)
	}()
	healthy <- true
	tick <- time.Time{}
	if got := <-rec.states; got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	healthy <- false
	tick <- time.Time{}
	healthy <- true
	tick <- time.Time{} // the unhealthy tick sent nothing; this one pings
	if got := <-rec.states; got != "WATCHDOG=1" {
		t.Fatalf("got %q", got)
	}
	select {
	case s := <-rec.states:
		t.Fatalf("unexpected extra notification %q", s)
	default:
	}
	cancel()
	<-done
}

func TestDaemon_RunWatchdog_Off(t *testing.T) {
	d, err := New(&Options{Notifier: recorder{}, WatchdogInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	d.RunWatchdog(context.Background(), func() bool { return true }, nil) // returns at once
}

func TestNotOnSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	ok, err := sdNotifier{}.Notify("READY=1")
	if ok || err != nil {
		t.Errorf("outside systemd: got %v, %v; want false, nil", ok, err)
	}
}

func TestListeners_None(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	ls, err := Listeners()
	if err != nil || len(ls) != 0 {
		t.Errorf("got %v, %v", ls, err)
	}
}
