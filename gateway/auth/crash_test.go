package auth

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/bolt"
)

var authKills = flag.Int("auth.kills", 2, "SIGKILL rounds in TestDurability_HTTP_SIGKILL (long variant: 50)")

const authCrashEnv = "QRNGD_AUTH_CRASH_CHILD_DIR"

// TestDurability_HTTP_SIGKILL runs the token endpoints over bbolt in a
// child process and kills it with SIGKILL while 8 clients obtain tokens
// from /oauth/token and revoke them through /oauth/revoke. After each kill
// the parent opens the file: every revocation answered 200 must be
// present, every token received must have its issuance audit record, and
// the audit chain must verify.
func TestDurability_HTTP_SIGKILL(t *testing.T) {
	if os.Getenv(authCrashEnv) != "" {
		t.Skip("in child")
	}
	dir := t.TempDir()
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var id, secret string
	for round := range *authKills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAuthCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), authCrashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var base string
		for base == "" && sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "key":
				id, secret = f[1], f[2]
			case len(f) == 2 && f[0] == "addr":
				base = "http://" + f[1]
			}
		}
		go io.Copy(io.Discard, out)
		if base == "" || id == "" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child did not start", round)
		}
		killAt := 30 + rng.IntN(150)
		var mu sync.Mutex
		var issued, revoked []string
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var once sync.Once
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hc := &http.Client{Timeout: 5 * time.Second}
				for {
					select {
					case <-stop:
						return
					default:
					}
					tok, jti, err := crashToken(hc, base, id, secret)
					if err != nil {
						continue
					}
					mu.Lock()
					issued = append(issued, jti)
					mu.Unlock()
					form := url.Values{"token": {tok}, "client_id": {id}, "client_secret": {secret}}
					res, err := hc.PostForm(base+"/oauth/revoke", form)
					if err != nil {
						continue
					}
					res.Body.Close()
					if res.StatusCode != 200 {
						continue
					}
					mu.Lock()
					revoked = append(revoked, jti)
					if len(revoked) == killAt {
						once.Do(func() { cmd.Process.Kill(); close(stop) })
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		cmd.Wait()

		db, err := bolt.Open(dir, &bolt.Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for _, jti := range revoked {
			if ok, _ := db.Revocations().IsRevoked(ctx, jti); !ok {
				t.Fatalf("round %d: acknowledged revocation of %s lost", round, jti)
			}
		}
		if _, err := db.Audit().Verify(ctx); err != nil {
			t.Fatalf("round %d: audit chain: %v", round, err)
		}
		logged := map[string]bool{}
		for after := uint64(0); ; {
			recs, err := db.Audit().List(ctx, after, store.MaxAuditList)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Type == "token.issue" {
					logged[r.Fields["jti"]] = true
				}
			}
			if len(recs) < store.MaxAuditList {
				break
			}
			after = recs[len(recs)-1].Seq
		}
		for _, jti := range issued {
			if !logged[jti] {
				t.Fatalf("round %d: token %s was handed out without a durable issuance record", round, jti)
			}
		}
		if err := db.Check(ctx); err != nil {
			t.Fatal(err)
		}
		db.Close()
		t.Logf("round %d: %d tokens, %d revocations acknowledged before SIGKILL, all present", round, len(issued), len(revoked))
	}
}

func crashToken(hc *http.Client, base, id, secret string) (tok, jti string, err error) {
	res, err := hc.PostForm(base+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}})
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	var m struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&m) != nil {
		return "", "", fmt.Errorf("status %d", res.StatusCode)
	}
	parts := strings.Split(m.AccessToken, ".")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("bad token")
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", err
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(p, &c); err != nil {
		return "", "", err
	}
	return m.AccessToken, c.JTI, nil
}

// TestAuthCrashChild is the child side of TestDurability_HTTP_SIGKILL: the
// token endpoints over bolt on a loopback port, until killed.
func TestAuthCrashChild(t *testing.T) {
	dir := os.Getenv(authCrashEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestDurability_HTTP_SIGKILL")
	}
	db, err := bolt.Open(dir, &bolt.Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if keys, _ := db.APIKeys().List(ctx, ""); len(keys) == 0 {
		if err := db.Tenants().Create(ctx, store.Tenant{ID: "crash"}); err != nil {
			t.Fatal(err)
		}
		k, sec, err := db.APIKeys().Create(ctx, store.APIKeySpec{Tenant: "crash", Scopes: []string{ScopeRandomRead}})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("key %s %s\n", k.ClientID, sec)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ent := &fakeEntropy{}
	off := map[string]RouteLimit{}
	for r := range defaultLimits {
		off[r] = RouteLimit{Off: true}
	}
	svc, err := New(&Options{Issuer: "http://" + ln.Addr().String(), Entropy: ent, Store: db, Limits: off})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(&gateway.Options{Entropy: ent, Authorizer: svc, Routes: svc.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("addr %s\n", ln.Addr())
	_ = http.Serve(ln, gw)
}
