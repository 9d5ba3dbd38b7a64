package main

// End-to-end tests of the daemon on simulated hardware: one source of each
// kind, each driven through its real library (go.bug.st/serial on a pty,
// the quantis-pcie driver over the pciesim card, gousb/libusb over the
// umockdev-emulated Quantis USB), configured by systemd/qrngd.simhw.yaml.
//
// TestHW_EndToEnd_PCIeSerialSim runs in plain `go test`. TestHW_EndToEnd_USB needs
// umockdev-run (it skips without it with usbsim.SkipMessage); `make test-usb`
// runs it.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers/quantispcie"
	"github.com/qrngd/qrngd/drivers/sim"
	"github.com/qrngd/qrngd/testhw/pciesim"
	"github.com/qrngd/qrngd/testhw/serialsim"
	"github.com/qrngd/qrngd/testhw/usbsim"
)

// simHWConfig is the checked-in configuration the tests fill in.
const simHWConfig = "../../systemd/qrngd.simhw.yaml"

var pcieSerial = [12]byte{0x51, 0x52, 0x4e, 0x47, 0x44, 0x2d, 0x45, 0x32, 0x45, 0x00, 0x01, 0x00}

// usePCIeHost installs a simulated host behind the quantis-pcie driver's
// device seam with one PCIe-240M as qrandom0; it is undone when t ends.
func usePCIeHost(t *testing.T) (*pciesim.Host, *pciesim.Card) {
	t.Helper()
	h := pciesim.NewHost(t.TempDir())
	card := pciesim.NewCard(pciesim.CardOptions{Model: pciesim.PCIe240M, Serial: pcieSerial, Seed: 240})
	if _, err := h.Plug(0, card); err != nil {
		t.Fatal(err)
	}
	restore := quantispcie.SetOpener(func(path string) (quantispcie.File, error) { return h.Open(path) })
	t.Cleanup(restore)
	return h, card
}

// newOneRNG starts a simulated OneRNG on a real pty.
func newOneRNG(t *testing.T) *serialsim.Device {
	t.Helper()
	d, err := serialsim.New(serialsim.Options{Model: serialsim.OneRNG, Seed: 77, Dir: t.TempDir(), Name: "ttyACM-onerng"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// simHW returns systemd/qrngd.simhw.yaml with its placeholders filled in;
// usbSerial "" drops the quantis-usb entry.
func simHW(t *testing.T, pcieRoot, serialDev, usbSerial string) string {
	t.Helper()
	b, err := os.ReadFile(simHWConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if usbSerial == "" {
		re := regexp.MustCompile(`(?s)\n *# begin quantis-usb\n.*?# end quantis-usb\n`)
		if !re.MatchString(s) {
			t.Fatalf("%s lacks the quantis-usb markers", simHWConfig)
		}
		s = re.ReplaceAllString(s, "\n")
	}
	s = strings.NewReplacer("@PCIE_DEV_ROOT@", pcieRoot, "@SERIAL_DEVICE@", serialDev, "@USB_SERIAL@", usbSerial).Replace(s)
	if strings.Contains(s, "\"@") {
		t.Fatalf("unfilled placeholder in the configuration:\n%s", s)
	}
	return writeConfig(t, s)
}

// daemon is qrngd's run() in-process.
type daemon struct {
	base   string
	stderr *syncBuffer
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

// startDaemon runs qrngd with the configuration file and waits until it
// listens.
func startDaemon(t testing.TB, cfg string) *daemon {
	t.Helper()
	addrc := make(chan net.Addr, 1)
	onListen = func(a net.Addr) { addrc <- a }
	t.Cleanup(func() { onListen = func(net.Addr) {} })
	t.Setenv("NOTIFY_SOCKET", "")
	d := &daemon{stderr: &syncBuffer{}, client: &http.Client{Timeout: 10 * time.Second}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		d.done <- run(ctx, []string{"-config", cfg, "-data-dir", t.TempDir()}, io.Discard, d.stderr)
	}()
	t.Cleanup(func() { d.stop(t) })
	select {
	case a := <-addrc:
		d.base = "http://" + a.String()
	case err := <-d.done:
		d.done <- err
		t.Fatalf("run returned before listening: %v\n%s", err, d.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("not listening after 60 s\n%s", d.stderr)
	}
	return d
}

// stop cancels the daemon (as SIGTERM does) and checks a clean exit.
func (d *daemon) stop(t testing.TB) {
	t.Helper()
	d.cancel()
	select {
	case err, ok := <-d.done:
		if ok && err != nil {
			t.Errorf("run after cancel: %v\n%s", err, d.stderr)
		}
		if ok {
			close(d.done)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("run did not return 30 s after cancel\n%s", d.stderr)
	}
}

func (d *daemon) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := d.client.Get(d.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// sourceJSON is one entry of GET /v1/sources.
type sourceJSON struct {
	Name         string `json:"name"`
	Kind         string `json:"kind"`
	Vendor       string `json:"vendor"`
	Model        string `json:"model"`
	Serial       string `json:"serial"`
	BoardVersion string `json:"board_version"`
	Path         string `json:"path"`
	State        string `json:"state"`
	Samples      uint64 `json:"samples"`
	Bytes        uint64 `json:"bytes"`
	LastError    string `json:"last_error"`
}

func (d *daemon) sources(t testing.TB) map[string]sourceJSON {
	t.Helper()
	code, b := d.get(t, "/v1/sources")
	var body struct {
		Sources []sourceJSON `json:"sources"`
	}
	if err := json.Unmarshal(b, &body); code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/sources: %d %v\n%s", code, err, b)
	}
	out := map[string]sourceJSON{}
	for _, s := range body.Sources {
		out[s.Name] = s
	}
	return out
}

// waitFor polls cond every 20 ms for at most limit (a bounded wait, not a
// timed assertion); what describes the last state on failure.
func waitFor(t testing.TB, limit time.Duration, cond func() bool, what func() string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("still not so after %v: %s", limit, what())
		}
	}
}

// wantDetails is what /v1/sources must show for each source: the device
// details its driver can learn from the (simulated) device.
type wantDetails struct {
	kind, vendor, model string
	serial, board       *regexp.Regexp // nil: the driver cannot know it (see the report)
}

func checkSimHW(t *testing.T, d *daemon, want map[string]wantDetails) {
	t.Helper()
	var last map[string]sourceJSON
	waitFor(t, 60*time.Second, func() bool {
		code, _ := d.get(t, "/readyz")
		if code != http.StatusOK {
			return false
		}
		last = d.sources(t)
		for name := range want {
			if last[name].State != "healthy" || last[name].Bytes == 0 {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("sources %+v\n%s", last, d.stderr) })

	if len(last) != len(want) {
		t.Errorf("/v1/sources lists %d sources, want %d: %+v", len(last), len(want), last)
	}
	for name, w := range want {
		s := last[name]
		if s.Kind != w.kind || s.Vendor != w.vendor || s.Model != w.model || s.Path == "" {
			t.Errorf("%s: kind %q vendor %q model %q path %q; want %q %q %q and a path", name, s.Kind, s.Vendor, s.Model, s.Path, w.kind, w.vendor, w.model)
		}
		if w.serial != nil && !w.serial.MatchString(s.Serial) {
			t.Errorf("%s: serial %q does not match %v", name, s.Serial, w.serial)
		}
		if w.board != nil && !w.board.MatchString(s.BoardVersion) {
			t.Errorf("%s: board_version %q does not match %v", name, s.BoardVersion, w.board)
		}
	}

	// Random bytes in both modes; full-entropy blocks come from the pool.
	code, b := d.get(t, "/v1/random?bytes=64&format=hex&mode=drbg")
	var r struct {
		Bytes int    `json:"bytes"`
		Data  string `json:"data"`
	}
	if err := json.Unmarshal(b, &r); code != 200 || err != nil || r.Bytes != 64 || len(r.Data) != 128 || r.Data == strings.Repeat("0", 128) {
		t.Fatalf("GET /v1/random drbg: %d %s", code, b)
	}
	seen := map[string]bool{}
	for i := 0; i < 50 && len(seen) < len(want); i++ {
		resp, err := d.client.Get(d.base + "/v1/random?bytes=4096&format=binary&mode=full")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) != 4096 {
			t.Fatalf("GET /v1/random full: %d, %d bytes", resp.StatusCode, len(body))
		}
		for _, s := range strings.Split(resp.Header.Get("X-QRNG-Sources"), ",") {
			seen[s] = true
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no mode=full response named %s among its sources (seen %v)", name, seen)
		}
	}
	t.Logf("mode=full served from %v", seen)
}

var (
	pcieWant = wantDetails{kind: "quantis-pcie", vendor: quantispcie.Vendor, model: "PCIe-240M",
		serial: regexp.MustCompile("^" + hex.EncodeToString(pcieSerial[:]) + "$"), board: regexp.MustCompile(`^fw \d+\.\d+\.\d+ pcb \d+ \(0x[0-9a-f]{8}\)$`)}
	oneRNGWant = wantDetails{kind: "serial", vendor: "Moonbase Otago", model: "OneRNG",
		board: regexp.MustCompile(`^firmware 2$`)}
	simWant = wantDetails{kind: "sim", vendor: "qrngd", model: "simulated QRNG", serial: regexp.MustCompile(`^SIM-[0-9A-F]{12}$`),
		board: regexp.MustCompile("^" + regexp.QuoteMeta(sim.BoardVersion) + "$")}
)

// TestHW_EndToEnd_PCIeSerialSim: quantis-pcie, serial and sim sources from
// systemd/qrngd.simhw.yaml, without the USB entry.
func TestHW_EndToEnd_PCIeSerialSim(t *testing.T) {
	h, _ := usePCIeHost(t)
	one := newOneRNG(t)
	d := startDaemon(t, simHW(t, h.Root(), one.Path(), ""))
	checkSimHW(t, d, map[string]wantDetails{"pcie0": pcieWant, "onerng0": oneRNGWant, "sim0": simWant})
	if st := one.State(); st.VersionRequests == 0 || !st.Running {
		t.Errorf("OneRNG firmware state %+v: the driver's handshake did not run", st)
	}
}

// TestHW_EndToEnd_USB adds the Quantis USB emulated under umockdev: the
// issue's "one simulated device of each kind starts and serves".
func TestHW_EndToEnd_USB(t *testing.T) {
	root := usbsim.Root()
	if root == "" {
		t.Skip(usbsim.SkipMessage)
	}
	bus, err := usbsim.NewBus(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	const usbSerial = "QSIME2E0001"
	if _, err := bus.Plug(usbsim.DeviceConfig{Serial: usbSerial, Seed: 4, BoardVersion: 0x00020105}); err != nil {
		t.Fatal(err)
	}
	h, _ := usePCIeHost(t)
	one := newOneRNG(t)
	d := startDaemon(t, simHW(t, h.Root(), one.Path(), usbSerial))
	checkSimHW(t, d, map[string]wantDetails{
		"usb0": {kind: "quantis-usb", vendor: "ID Quantique", model: "Quantis USB-4M",
			serial: regexp.MustCompile("^" + usbSerial + "$"), board: regexp.MustCompile(`^0x00020105$`)},
		"pcie0": pcieWant, "onerng0": oneRNGWant, "sim0": simWant,
	})
}

// TestHW_SimHWConfig_Parses: the checked-in file is valid once filled in,
// with one source of each hardware kind.
func TestHW_SimHWConfig_Parses(t *testing.T) {
	cfg, err := LoadConfig(simHW(t, filepath.Join(t.TempDir(), "dev"), "/dev/ttyACM0", "QSIM0001"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, s := range cfg.Sources {
		kinds[s.Spec.Kind]++
	}
	for _, k := range []string{"quantis-usb", "quantis-pcie", "serial", "sim"} {
		if kinds[k] != 1 {
			t.Errorf("%d sources of kind %s, want 1 (%v)", kinds[k], k, kinds)
		}
	}
}
