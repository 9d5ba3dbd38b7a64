package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qrngd/qrngd/gateway/admin"
)

// BenchmarkDaemon_OAuthToken_Loopback32 is issue 4's issuance target
// against the real daemon: a qrngd binary (child process, its own
// GOMAXPROCS, the entropy engine on a simulated source, store/bolt with the
// audit write-ahead file on disk) answers POST /oauth/token
// (client_credentials) from 32 keep-alive connections of the Go net/http
// client in this process. Every response must be 200 with a token, and the
// audit log must have grown by one record per token (checked through the
// admin socket, which also verifies the chain). It reports tokens/s and
// the daemon's own CPU per token (from /proc).
//
//	go test ./cmd/qrngd -run '^$' -bench Daemon_OAuthToken -benchtime 40000x
func BenchmarkDaemon_OAuthToken_Loopback32(b *testing.B) {
	bin := buildQrngd(b)
	dataDir := b.TempDir()
	cfg := writeConfigTB(b, `mode: dev
listen: 127.0.0.1:0
sources:
  - name: sim0
    kind: sim
    rate: 0
auth:
  limits:
    token: {off: true}
`)
	c := startChild(b, bin, "-config", cfg, "-data-dir", dataDir)
	defer func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		<-c.done
	}()
	hc := &http.Client{Timeout: 10 * time.Second}
	poll(b, 60*time.Second, "/readyz 200", func() bool {
		res, err := hc.Get(c.base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	ac := adminClient(filepath.Join(dataDir, admin.SocketName))
	id, secret := createKey(b, ac, "bench", "random:read")
	// Start-up work (the dev user's argon2id hash, the first signing key)
	// is over once a demo login and one token succeed.
	poll(b, 60*time.Second, "demo login", func() bool {
		res, err := hc.Post(c.base+"/auth/login", "application/json", strings.NewReader(`{"username":"demo","password":"demo123"}`))
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	if _, err := tryToken(hc, c.base, id, secret); err != nil {
		b.Fatal(err)
	}
	before := auditVerify(b, ac).Records
	cpu0 := procCPU(b, c.cmd.Process.Pid)

	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			cl := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
			defer cl.CloseIdleConnections()
			for next.Add(1) <= int64(b.N) {
				req, _ := http.NewRequest(http.MethodPost, c.base+"/oauth/token", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				res, err := cl.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var m struct {
					AccessToken string `json:"access_token"`
				}
				if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&m) != nil || m.AccessToken == "" {
					failed.Add(1)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	cpu := procCPU(b, c.cmd.Process.Pid) - cpu0
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed\n%s", n, b.N, c.tail())
	}
	res := auditVerify(b, ac)
	if !res.OK || res.Records-before != uint64(b.N) {
		b.Fatalf("audit: ok=%v, %d records for %d tokens", res.OK, res.Records-before, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "tokens/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "daemon-cpu-µs/op")
	b.ReportMetric(cpu.Seconds()/el.Seconds(), "daemon-cores")
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) end in ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64) // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
