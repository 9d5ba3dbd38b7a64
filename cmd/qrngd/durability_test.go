package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qrngd/qrngd/gateway/admin"
)

var (
	durKills   = flag.Int("qrngd.kills", 3, "SIGKILL rounds in TestDurability_SIGKILL (make durability: 50)")
	durClients = flag.Int("qrngd.clients", 8, "concurrent revoking clients in TestDurability_SIGKILL")
)

// buildQrngd builds ./cmd/qrngd into a temp dir.
func buildQrngd(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qrngd")
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// child is a qrngd process.
type child struct {
	cmd  *exec.Cmd
	base string
	mu   sync.Mutex
	logs []string // last stderr lines, for failure messages
	done chan error
}

func (c *child) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.logs, "\n")
}

// startChild runs bin with args and reads its JSON log until "qrngd started"
// names the bound address; it fails the test if the process exits first.
func startChild(t testing.TB, bin string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		started := false
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.logs = append(c.logs, line)
			if len(c.logs) > 40 {
				c.logs = c.logs[1:]
			}
			c.mu.Unlock()
			if started {
				continue // no decoding of the access log under load
			}
			var m struct{ Msg, Listen string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "qrngd started" {
				started = true
				addr <- m.Listen
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		c.done <- c.cmd.Wait()
	}()
	select {
	case a := <-addr:
		c.base = "http://" + a
	case err := <-c.done:
		t.Fatalf("qrngd exited before listening: %v\n%s", err, c.tail())
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		t.Fatalf("qrngd not listening after 60 s\n%s", c.tail())
	}
	return c
}

// TestDurability_SIGKILL (issue 4): a real qrngd binary is killed with
// SIGKILL at random moments while clients obtain tokens over HTTP and
// revoke them through /oauth/revoke. After every restart each revocation
// answered 200 is in force (the token gets 401 on /v1/random), tokens that
// were not revoked still work, and the audit chain verifies through the
// admin socket. -qrngd.kills=50 is the long variant (make durability).
func TestDurability_SIGKILL(t *testing.T) {
	bin := buildQrngd(t)
	dataDir := t.TempDir()
	cfg := writeConfig(t, `mode: dev
listen: 127.0.0.1:0
sources:
  - name: sim0
    kind: sim
    rate: 50000000
auth:
  # Fixed: the port changes at every restart, tokens must outlive it.
  issuer: http://qrngd.durability.test
  limits:
    token: {off: true}
    revoke: {off: true}
    api: {off: true}
`)
	args := []string{"-config", cfg, "-data-dir", dataDir}
	ac := adminClient(filepath.Join(dataDir, admin.SocketName))
	hc := &http.Client{Timeout: 5 * time.Second}
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 4))

	var id, secret string
	var revoked, kept []string // acknowledged revocations; tokens never revoked
	lastRound := 0             // revoked[lastRound:] came from the latest round
	status := func(base, tok string) int {
		req, _ := http.NewRequest("GET", base+"/v1/random?bytes=8", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET /v1/random: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	check := func(c *child, round int, all bool) {
		t.Helper()
		toCheck := revoked[lastRound:]
		if all {
			toCheck = revoked
		} else {
			for range min(50, lastRound) { // plus a sample of older rounds
				toCheck = append(toCheck, revoked[rng.IntN(lastRound)])
			}
		}
		for _, tok := range toCheck {
			if s := status(c.base, tok); s != http.StatusUnauthorized {
				t.Fatalf("after kill %d: an acknowledged revocation is lost: revoked token answered %d\n%s", round, s, c.tail())
			}
		}
		for _, tok := range kept[max(0, len(kept)-20):] {
			if s := status(c.base, tok); s != http.StatusOK {
				t.Fatalf("after kill %d: a token that was never revoked answered %d\n%s", round, s, c.tail())
			}
		}
		if res := auditVerify(t, ac); !res.OK {
			t.Fatalf("after kill %d: audit chain broken: %+v", round, res)
		}
	}

	start := time.Now()
	for round := 0; round <= *durKills; round++ {
		c := startChild(t, bin, args...)
		poll(t, 60*time.Second, "/readyz 200", func() bool {
			res, err := hc.Get(c.base + "/readyz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == 200
		})
		if round == 0 {
			id, secret = createKey(t, ac, "durability", "random:read")
		} else {
			check(c, round, round == *durKills)
		}
		if round == *durKills {
			// The last start only checks; then a clean stop once the demo
			// user is seeded (refuseProduction relies on it).
			poll(t, 60*time.Second, "demo login", func() bool {
				res, err := hc.Post(c.base+"/auth/login", "application/json", strings.NewReader(`{"username":"demo","password":"demo123"}`))
				if err != nil {
					return false
				}
				res.Body.Close()
				return res.StatusCode == 200
			})
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			if err := <-c.done; err != nil {
				t.Fatalf("SIGTERM: %v\n%s", err, c.tail())
			}
			break
		}
		lastRound = len(revoked)

		// A random moment: after 1 to 200 acknowledged revocations, with
		// the other clients' requests in flight.
		killAt := 1 + rng.IntN(200)
		var mu sync.Mutex
		var once sync.Once
		kill := func() { _ = c.cmd.Process.Signal(syscall.SIGKILL) }
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range *durClients {
			wg.Go(func() {
				hc := &http.Client{Timeout: 5 * time.Second}
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					tok, err := tryToken(hc, c.base, id, secret)
					if err != nil {
						continue
					}
					if n%8 == 7 { // some tokens stay valid
						mu.Lock()
						kept = append(kept, tok)
						mu.Unlock()
						continue
					}
					req, _ := http.NewRequest("POST", c.base+"/oauth/revoke", strings.NewReader(url.Values{"token": {tok}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
					res, err := hc.Do(req)
					if err != nil {
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						mu.Lock()
						revoked = append(revoked, tok)
						if len(revoked)-lastRound >= killAt {
							once.Do(kill)
						}
						mu.Unlock()
					}
				}
			})
		}
		var err error
		select {
		case err = <-c.done:
		case <-time.After(60 * time.Second):
			kill()
			close(stop)
			wg.Wait()
			t.Fatalf("round %d: %d of %d revocations acknowledged in 60 s\n%s", round, len(revoked)-lastRound, killAt, c.tail())
		}
		close(stop)
		wg.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child did not die of SIGKILL: %v\n%s", round, err, c.tail())
		}
		t.Logf("round %d: %d revocations acknowledged before SIGKILL", round, len(revoked)-lastRound)
	}
	if len(revoked) == 0 {
		t.Fatal("no revocation was ever acknowledged: the test proved nothing")
	}
	refuseProduction(t, bin, dataDir)
	t.Logf("%d SIGKILLs in %v: %d acknowledged revocations all present after every restart, %d unrevoked tokens still valid, audit chain intact",
		*durKills, time.Since(start).Round(time.Millisecond), len(revoked), len(kept))
}

// tryToken is clientToken without failing the test (the daemon may die
// mid-request).
func tryToken(hc *http.Client, base, id, secret string) (string, error) {
	req, _ := http.NewRequest("POST", base+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	res, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&tok) != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("/oauth/token: %d", res.StatusCode)
	}
	return tok.AccessToken, nil
}

// refuseProduction: the data directory the dev daemon seeded with the demo
// user makes a production qrngd exit with status 2 and a message naming the
// demo user and how to remove it; so do auth.disabled and a plaintext
// password in a production configuration.
func refuseProduction(t *testing.T, bin, dataDir string) {
	t.Helper()
	base := `listen: 127.0.0.1:0
sources:
  - name: sim0
    kind: sim
    rate: 50000000
`
	for _, tc := range []struct{ name, extra, dir, want string }{
		{"demo user in the store", "", dataDir, `: mode: gateway/auth: not allowed in production mode: the demo user "demo" exists; remove it with qrngctl user rm demo`},
		{"auth disabled", "auth:\n  disabled: true\n", t.TempDir(), ":8: auth.disabled: production mode requires authentication"},
		{"plaintext password", "auth:\n  users:\n    - {username: ops, password: s3cret-s3cret}\n", t.TempDir(), ":9: auth.users[0].password: gateway/auth: not allowed in production mode: plaintext passwords"},
	} {
		p := writeConfig(t, "mode: production\n"+base+tc.extra)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, bin, "-config", p, "-data-dir", tc.dir)
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "qrngd: "+p+tc.want) || strings.Contains(string(out), "s3cret") {
			t.Errorf("production, %s: %v\n%s\nwant qrngd: %s%s", tc.name, err, out, p, tc.want)
		}
	}
}
