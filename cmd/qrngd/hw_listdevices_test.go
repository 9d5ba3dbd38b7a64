package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/drivers/quantispcie"
	"github.com/qrngd/qrngd/testhw/pciesim"
)

// pcieDevRoot points the registered quantis-pcie driver's discovery root at
// root for the test.
func pcieDevRoot(t *testing.T, root string) {
	t.Helper()
	drv, ok := drivers.Lookup(quantispcie.Kind)
	if !ok {
		t.Fatal("quantis-pcie is not registered in qrngd")
	}
	pd := drv.(*quantispcie.Driver)
	old := pd.DevRoot
	pd.DevRoot = root
	t.Cleanup(func() { pd.DevRoot = old })
}

// listLine is one device line of -list-devices: KIND VID:PID SERIAL PATH MODEL.
var listLine = regexp.MustCompile(`^(\S+) +(-|[0-9a-f]{4}:[0-9a-f]{4}) +(\S+) +(\S+) +(\S.*)$`)

// listDevices runs `qrngd -list-devices` and returns stdout's device lines
// (header checked) and run's error.
func listDevices(t *testing.T) (lines []string, out string, err error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"-list-devices"}, &stdout, &stderr)
	out = stdout.String()
	all := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !regexp.MustCompile(`^KIND +VID:PID +SERIAL +PATH +MODEL$`).MatchString(all[0]) {
		t.Fatalf("-list-devices header %q\n%s", all[0], out)
	}
	for _, l := range all[1:] {
		if strings.HasPrefix(l, "no devices found") {
			continue
		}
		if !listLine.MatchString(l) {
			t.Errorf("-list-devices line %q is not KIND VID:PID SERIAL PATH MODEL", l)
		}
		lines = append(lines, l)
	}
	return lines, out, err
}

// TestHW_ListDevices_NothingThere: no PCIe device directory (and whatever the
// host's serial enumerator and libusb find, normally nothing in CI): the
// listing prints and exits 0.
func TestHW_ListDevices_NothingThere(t *testing.T) {
	pcieDevRoot(t, filepath.Join(t.TempDir(), "no-such-dev"))
	lines, out, err := listDevices(t)
	if err != nil || exitCode(err) != 0 {
		t.Fatalf("-list-devices: %v (exit %d)\n%s", err, exitCode(err), out)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, quantispcie.Kind) {
			t.Errorf("listed a PCIe card from a missing directory: %q", l)
		}
	}
	if len(lines) == 0 && !regexp.MustCompile(`no devices found \(drivers: \[.*quantis-pcie quantis-usb serial sim\b.*\]\)`).MatchString(out) {
		t.Errorf("empty listing does not say so and name the drivers:\n%s", out)
	}
}

// TestHW_ListDevices_PCIeSim: a simulated PCIe-240M and a PCIe-4M are listed
// with their PCI IDs, serial (chip card only) and node.
func TestHW_ListDevices_PCIeSim(t *testing.T) {
	h, _ := usePCIeHost(t) // qrandom0: PCIe-240M
	if _, err := h.Plug(1, pciesim.NewCard(pciesim.CardOptions{Model: pciesim.PCIe4M, Seed: 4})); err != nil {
		t.Fatal(err)
	}
	pcieDevRoot(t, h.Root())
	lines, out, err := listDevices(t)
	if err != nil {
		t.Fatalf("-list-devices: %v\n%s", err, out)
	}
	want := map[string][]string{
		h.Path(0): {"quantis-pcie", "1e89:0003", hex.EncodeToString(pcieSerial[:]), h.Path(0), "PCIe-240M"},
		h.Path(1): {"quantis-pcie", "179a:0001", "-", h.Path(1), "PCIe-4M"},
	}
	for _, l := range lines {
		m := listLine.FindStringSubmatch(l)
		if w, ok := want[m[4]]; ok {
			if got := m[1:]; strings.Join(got, "|") != strings.Join(w, "|") {
				t.Errorf("line %q: got %q, want %q", l, got, w)
			}
			delete(want, m[4])
		}
	}
	if len(want) > 0 {
		t.Errorf("not listed: %v\n%s", want, out)
	}
}

// TestHW_ListDevices_PermissionDenied: a card the user may not open is still
// listed (path only) and the error names the udev rule.
func TestHW_ListDevices_PermissionDenied(t *testing.T) {
	h, _ := usePCIeHost(t)
	h.DenyOpen(0, true)
	pcieDevRoot(t, h.Root())
	lines, out, err := listDevices(t)
	if err == nil || !strings.Contains(err.Error(), "99-qrngd.rules") {
		t.Errorf("error %v does not name the udev rule", err)
	}
	found := false
	for _, l := range lines {
		m := listLine.FindStringSubmatch(l)
		if m[4] == h.Path(0) && m[1] == quantispcie.Kind {
			found = true
		}
	}
	if !found {
		t.Errorf("the unreadable card is not listed:\n%s", out)
	}
}
