package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
// audit write-ahead file on disk, the access log on) answers POST
// /oauth/token (client_credentials) from 32 keep-alive connections opened
// by this process. Every response must be 200 with an access token, and
// the audit log must have grown by one record per token (checked through
// the admin socket, which also verifies the chain). It reports tokens/s
// and the daemon's own CPU per token (from /proc).
//
// Two load generators share the machine's two cores with the daemon:
// "nethttp" is Go's net/http client (≈ 45 µs of CPU a request here), "raw"
// writes the same request bytes on each connection and parses the
// response itself (status line, Content-Length, the JSON body), as wrk
// would: it shows what the daemon does when the load generator is cheap.
// "nethttp-logerrors" is "nethttp" with http.log_requests: errors (no
// access-log line per successful request).
//
//	go test ./cmd/qrngd -run '^$' -bench Daemon_OAuthToken -benchtime 40000x
func BenchmarkDaemon_OAuthToken_Loopback32(b *testing.B) {
	bin := buildQrngd(b)
	for _, variant := range []string{"nethttp", "raw", "nethttp-logerrors"} {
		b.Run(variant, func(b *testing.B) {
			client, logErrors := strings.CutSuffix(variant, "-logerrors")
			dataDir := b.TempDir()
			logRequests := "all"
			if logErrors {
				logRequests = "errors"
			}
			cfg := writeConfigTB(b, `mode: dev
listen: 127.0.0.1:0
sources:
  - name: sim0
    kind: sim
    rate: 0
http:
  log_requests: `+logRequests+`
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
			// Start-up work (the dev user's argon2id hash, the first
			// signing key) is over once a demo login and a token succeed.
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

			var next, failed atomic.Int64
			var firstErr atomic.Pointer[error]
			fail := func(err error) {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					var do func() error
					if client == "raw" {
						rc, err := dialRaw(c.base, id, secret)
						if err != nil {
							fail(err)
							return
						}
						defer rc.conn.Close()
						do = rc.token
					} else {
						cl := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
						defer cl.CloseIdleConnections()
						do = func() error { _, err := tryToken(cl, c.base, id, secret); return err }
					}
					for next.Add(1) <= int64(b.N) {
						if err := do(); err != nil {
							fail(err)
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			cpu := procCPU(b, c.cmd.Process.Pid) - cpu0
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed, first: %v\n%s", n, b.N, *firstErr.Load(), c.tail())
			}
			res := auditVerify(b, ac)
			if !res.OK || res.Records-before != uint64(b.N) {
				b.Fatalf("audit: ok=%v, %d records for %d tokens", res.OK, res.Records-before, b.N)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "tokens/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "daemon-cpu-µs/op")
			b.ReportMetric(cpu.Seconds()/el.Seconds(), "daemon-cores")
		})
	}
}

// rawClient is one keep-alive HTTP/1.1 connection sending a fixed
// client_credentials request.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte
}

func dialRaw(base, id, secret string) (*rawClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	form := "grant_type=client_credentials"
	auth := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
	req := "POST /oauth/token HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: Basic " + auth +
		"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(form)) + "\r\n\r\n" + form
	return &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 8192), req: []byte(req)}, nil
}

// token sends the request and checks the response: 200, a Content-Length
// body that is JSON with a non-empty access_token.
func (rc *rawClient) token() error {
	if _, err := rc.conn.Write(rc.req); err != nil {
		return err
	}
	line, err := rc.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", line)
	}
	n := -1
	for {
		h, err := rc.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && strings.EqualFold(string(k), "Content-Length") {
			if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return err
			}
		}
	}
	if n < 0 || n > 1<<16 {
		return fmt.Errorf("Content-Length %d", n)
	}
	rc.body = slices.Grow(rc.body[:0], n)[:n]
	if _, err := io.ReadFull(rc.br, rc.body); err != nil {
		return err
	}
	var m struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rc.body, &m); err != nil || m.AccessToken == "" {
		return fmt.Errorf("body %q: %v", rc.body, err)
	}
	return nil
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
	ut, _ := strconv.ParseInt(f[11], 10, 64)        // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64)        // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
