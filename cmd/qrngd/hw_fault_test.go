package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHW_Faults_DaemonKeepsServing: a simulated Quantis PCIe card gets stuck,
// then vanishes, while the daemon runs with a second (simulated) source. The
// card's state on /v1/sources follows the fault, /readyz stays 200, and
// full-entropy requests keep being served, by the other source only while the
// card is out. (testhw/poolinput_test.go proves on the pool's output that no
// faulted sample is conditioned.)
func TestHW_Faults_DaemonKeepsServing(t *testing.T) {
	h, card := usePCIeHost(t)
	cfg := writeConfig(t, `mode: dev
listen: 127.0.0.1:0
auth:
  disabled: true
pool:
  capacity_bytes: 65536
sources:
  - name: pcie0
    kind: quantis-pcie
    dev_root: "`+h.Root()+`"
    card: 0
    reconnect_interval: 10ms
    health:
      quarantine_for: 1s
  - name: sim0
    kind: sim
    seed: 5
http:
  shutdown_timeout: 5s
`)
	d := startDaemon(t, cfg)
	var last map[string]sourceJSON
	waitState := func(want string) {
		t.Helper()
		waitFor(t, 30*time.Second, func() bool {
			// Drain the pool: with it full the daemon stops reading, and
			// a fault shows only once the card is read again.
			d.get(t, "/v1/random?bytes=65536&format=binary&mode=full")
			last = d.sources(t)
			return last["pcie0"].State == want && last["sim0"].State == "healthy"
		}, func() string {
			return "pcie0 " + last["pcie0"].State + " (want " + want + "): " + last["pcie0"].LastError
		})
	}
	// fullFrom serves mode=full and returns the contributing sources.
	fullFrom := func() string {
		t.Helper()
		if code, _ := d.get(t, "/readyz"); code != http.StatusOK {
			t.Errorf("/readyz %d while a source is faulted", code)
		}
		resp, err := d.client.Get(d.base + "/v1/random?bytes=256&format=binary&mode=full")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b) != 256 {
			t.Fatalf("mode=full: %d, %d bytes\n%s", resp.StatusCode, len(b), d.stderr)
		}
		return resp.Header.Get("X-QRNG-Sources")
	}

	waitState("healthy")
	card.SetStuck(true, 0x00)
	waitState("quarantined")
	if e := last["pcie0"].LastError; !strings.Contains(e, "RCT") {
		t.Errorf("pcie0 quarantined with last_error %q, want the RCT named", e)
	}
	for range 5 {
		if src := fullFrom(); strings.Contains(src, "pcie0") {
			t.Errorf("mode=full served from %q while pcie0 is quarantined", src)
		}
	}
	card.SetStuck(false, 0)
	waitState("healthy")

	h.Unplug(0)
	waitState("disconnected")
	for range 5 {
		if src := fullFrom(); strings.Contains(src, "pcie0") {
			t.Errorf("mode=full served from %q while pcie0 is unplugged", src)
		}
	}
	if _, err := h.Plug(0, card); err != nil {
		t.Fatal(err)
	}
	waitState("healthy")
	if st := d.sources(t)["pcie0"]; st.Bytes == 0 {
		t.Errorf("pcie0 delivered nothing: %+v", st)
	}
}
