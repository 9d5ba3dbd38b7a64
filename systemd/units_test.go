package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestUnits_Verify runs systemd-analyze verify over the shipped units, with
// ExecStart pointed at a binary that exists on the test machine.
func TestUnits_Verify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze not found; it ships with systemd on Debian")
		}
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	for _, name := range []string{"qrngd.service", "qrngd.socket"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "ExecStart=/usr/bin/qrngd", "ExecStart=/bin/true")
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "qrngd.service"), filepath.Join(dir, "qrngd.socket")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestUdevRules_NameEveryDevice(t *testing.T) {
	b, err := os.ReadFile("99-qrngd.rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`ATTRS{idVendor}=="0aba"`, `KERNEL=="qrandom[0-9]*"`, `ATTRS{idVendor}=="04d8"`, `ATTRS{idVendor}=="1d50"`, `ATTRS{idProduct}=="0aa0"`, `ATTRS{idProduct}=="ebb5"`, `ATTRS{idVendor}=="1fc9"`, `ATTRS{idVendor}=="3975"`, `ID_MM_DEVICE_IGNORE`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("99-qrngd.rules lacks %s", want)
		}
	}
}

// TestService_ConfigErrorNotRestarted: qrngd exits 2 on an invalid
// configuration (cmd/qrngd exitCode); systemd must not restart-loop on it.
func TestService_ConfigErrorNotRestarted(t *testing.T) {
	b, err := os.ReadFile("qrngd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && k == "RestartPreventExitStatus" && slices.Contains(strings.Fields(v), "2") {
			return
		}
	}
	t.Fatal("qrngd.service lacks RestartPreventExitStatus=2: an invalid configuration restart-loops")
}
