package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
)

// syncBuffer is a bytes.Buffer safe for the daemon's logger and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRun_EndToEnd starts the daemon in-process on 127.0.0.1:0 with one
// simulated source, waits for readiness, fetches random bytes, cancels (as
// SIGTERM does through signal.NotifyContext) and checks a clean exit. It runs
// the dev-only auth.disabled path: /v1 open, no /mcp, no auth endpoints
// (TestRun_Contract covers the authenticated daemon).
func TestRun_EndToEnd(t *testing.T) {
	if _, err := entropy.New(nil); err != nil {
		t.Skipf("entropy engine not built yet (entropy.New: %v)", err)
	}
	cfg := writeConfig(t, `mode: dev
listen: 127.0.0.1:0
log_level: debug
pool:
  policy: fail-closed
sources:
  - name: sim0
    kind: sim
    seed: 7
http:
  shutdown_timeout: 5s
auth:
  disabled: true
`)
	var stdout, stderr syncBuffer
	// A fake service manager: sd_notify datagrams land here.
	sock := filepath.Join(t.TempDir(), "notify.sock")
	nconn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nconn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	notes := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nconn.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()
	waitNote := func(prefix string) string {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case n, ok := <-notes:
				if !ok {
					t.Fatalf("notify socket closed before %q", prefix)
				}
				if strings.HasPrefix(n, prefix) {
					return n
				}
			case <-timeout:
				t.Fatalf("no %q from the daemon after 30 s\n%s", prefix, stderr.String())
			}
		}
	}

	addrc := make(chan net.Addr, 1)
	onListen = func(a net.Addr) { addrc <- a }
	t.Cleanup(func() { onListen = func(net.Addr) {} })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-config", cfg, "-data-dir", t.TempDir()}, &stdout, &stderr)
	}()

	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("run returned before listening: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("not listening after 30 s\n%s", stderr.String())
	}

	// Wait for readiness: a bounded poll, not a timed assertion.
	client := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("/readyz not 200 after 60 s (last: %v)\n%s", err, stderr.String())
		}
	}

	// READY=1 follows the first healthy source, with a STATUS= line.
	if n := waitNote("READY=1"); !strings.Contains(n, "STATUS=pool ") {
		t.Errorf("READY notification without status: %q", n)
	}

	resp, err := client.Get(base + "/v1/random?bytes=64&format=hex&mode=drbg")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Bytes   int      `json:"bytes"`
		Data    string   `json:"data"`
		Sources []string `json:"sources"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || body.Bytes != 64 || len(body.Data) != 128 || resp.Header.Get("Cache-Control") != "no-store" ||
		body.Data == strings.Repeat("0", 128) {
		t.Fatalf("GET /v1/random: %d %+v %v", resp.StatusCode, body, err)
	}
	resp, err = client.Get(base + "/v1/random?bytes=4096&format=binary&mode=full")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 4096 || bytes.Count(b, []byte{0}) == 4096 || !strings.Contains(resp.Header.Get("X-QRNG-Sources"), "sim0") {
		t.Fatalf("mode=full binary: %d, %d bytes, sources %q", resp.StatusCode, len(b), resp.Header.Get("X-QRNG-Sources"))
	}
	for _, path := range []string{"/mcp/tools", "/.well-known/jwks.json"} {
		resp, err = client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("auth.disabled: GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	resp, err = client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range []string{`qrng_source_up{kind="sim",source="sim0"} 1`, "qrng_pool_ready 1", "go_goroutines", "process_"} {
		if !strings.Contains(string(m), s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}

	cancel()
	waitNote("STOPPING=1")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return 30 s after cancel\n%s", stderr.String())
	}
	logs := stderr.String()
	for _, s := range []string{`"msg":"qrngd started"`, `"msg":"source opened"`, `"msg":"ready"`, `"msg":"shutting down"`, `"msg":"http request"`, `"msg":"qrngd stopped"`,
		`"msg":"authentication is disabled (auth.disabled: true, dev only)`} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %s", s)
		}
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

type statusSeq struct{ st entropy.Status }

func (s *statusSeq) Status() entropy.Status { return s.st }

func src(state entropy.State, samples uint64) entropy.SourceStatus {
	return entropy.SourceStatus{State: state, Samples: samples}
}

// TestProgressed_Watchdog: the watchdog ping is withheld only for a stalled
// loop, never for a pool that is merely unhealthy by design.
func TestProgressed_Watchdog(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first entropy.Status // primes the sample counter
		then  entropy.Status
		want  bool
	}{
		{"samples moving", entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateStartup, 10)}},
			entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateStartup, 20)}}, true},
		{"ready from sources, idle full pool", entropy.Status{Pool: entropy.PoolStatus{Ready: true}, Sources: []entropy.SourceStatus{src(entropy.StateHealthy, 10)}},
			entropy.Status{Pool: entropy.PoolStatus{Ready: true}, Sources: []entropy.SourceStatus{src(entropy.StateHealthy, 10)}}, true},
		// fail-closed, every source disabled: a restart would reset them.
		{"all disabled", entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateDisabled, 10), src(entropy.StateQuarantined, 5)}},
			entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateDisabled, 10), src(entropy.StateQuarantined, 5)}}, true},
		{"disconnected, polling", entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateDisconnected, 10)}},
			entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateDisconnected, 10)}}, true},
		{"start-up stalled, fail-closed", entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateStartup, 10)}},
			entropy.Status{Sources: []entropy.SourceStatus{src(entropy.StateStartup, 10)}}, false},
		// policy os: always "ready", degraded on the OS RNG; a stall must still show.
		{"start-up stalled, policy os degraded", entropy.Status{Pool: entropy.PoolStatus{Ready: true, Degraded: true}, Sources: []entropy.SourceStatus{src(entropy.StateStartup, 10)}},
			entropy.Status{Pool: entropy.PoolStatus{Ready: true, Degraded: true}, Sources: []entropy.SourceStatus{src(entropy.StateStartup, 10)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &statusSeq{st: tc.first}
			p := progressed(s)
			p()
			s.st = tc.then
			if got := p(); got != tc.want {
				t.Errorf("progressed = %v, want %v", got, tc.want)
			}
		})
	}
}
