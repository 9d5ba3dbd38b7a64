// Package systemd speaks to the service manager: readiness and status
// notifications (sd_notify), the watchdog, and socket activation. Outside
// systemd every call is a no-op, so the daemon runs the same everywhere.
//
// The deployment kit (units, socket, udev rules, sysusers and tmpfiles
// snippets, configs) lives beside this file in the same folder.
package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends one sd_notify state string. It reports false, nil when not
// running under systemd.
type Notifier interface {
	Notify(state string) (bool, error)
}

type sdNotifier struct{}

func (sdNotifier) Notify(state string) (bool, error) { return daemon.SdNotify(false, state) }

// Options configure a Daemon. Nil means defaults.
type Options struct {
	Notifier Notifier     // default: sd_notify over $NOTIFY_SOCKET
	Logger   *slog.Logger // default: discard
	// WatchdogInterval overrides $WATCHDOG_USEC; 0 reads the environment.
	WatchdogInterval time.Duration
}

// Daemon is the service-manager side of qrngd.
type Daemon struct {
	n        Notifier
	log      *slog.Logger
	watchdog time.Duration
}

// New returns a Daemon. It reads the watchdog interval from the environment
// (WATCHDOG_USEC, checked against WATCHDOG_PID as go-systemd does).
func New(opts *Options) (*Daemon, error) {
	if opts == nil {
		opts = &Options{}
	}
	d := &Daemon{n: opts.Notifier, log: opts.Logger, watchdog: opts.WatchdogInterval}
	if d.n == nil {
		d.n = sdNotifier{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.watchdog == 0 {
		iv, err := daemon.SdWatchdogEnabled(false)
		if err != nil {
			return nil, fmt.Errorf("systemd: watchdog: %w", err)
		}
		d.watchdog = iv
	}
	return d, nil
}

func (d *Daemon) notify(state string) {
	if _, err := d.n.Notify(state); err != nil {
		d.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// Ready tells systemd the daemon is serving (READY=1) with a status line.
func (d *Daemon) Ready(status string) { d.notify(daemon.SdNotifyReady + "\nSTATUS=" + oneLine(status)) }

// Status sets the line `systemctl status` shows.
func (d *Daemon) Status(status string) { d.notify("STATUS=" + oneLine(status)) }

// Stopping tells systemd the daemon is shutting down.
func (d *Daemon) Stopping() { d.notify(daemon.SdNotifyStopping) }

// WatchdogInterval is the interval systemd expects pings within; 0 when the
// watchdog is off.
func (d *Daemon) WatchdogInterval() time.Duration { return d.watchdog }

// RunWatchdog pings the watchdog every interval/2 until ctx is done, but
// only while healthy reports true: a daemon whose entropy loop has stalled
// stops pinging, and systemd restarts it. It returns at once when the
// watchdog is off. tick is a test seam; nil uses a real ticker.
func (d *Daemon) RunWatchdog(ctx context.Context, healthy func() bool, tick <-chan time.Time) {
	if d.watchdog <= 0 {
		return
	}
	if tick == nil {
		t := time.NewTicker(d.watchdog / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if healthy() {
				d.notify(daemon.SdNotifyWatchdog)
			} else {
				d.log.Warn("watchdog ping withheld: daemon unhealthy")
			}
		}
	}
}

// Listeners returns the sockets passed by systemd socket activation
// (LISTEN_FDS), or nil when there are none.
func Listeners() ([]net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("systemd: socket activation: %w", err)
	}
	var out []net.Listener
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	return out, nil
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}
