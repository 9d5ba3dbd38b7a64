package bolt

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

var crashKills = flag.Int("store.kills", 3, "SIGKILL rounds in TestDurability_SIGKILL (the long variant uses 50+)")

const crashEnv = "QRNGD_STORE_CRASH_CHILD_DIR"

// TestDurability_SIGKILL kills a child process with SIGKILL while 32
// goroutines revoke tokens and append audit records, then reopens the file:
// every revocation and audit record the child acknowledged (printed after
// the call returned) must be there, the audit chain must verify and bbolt's
// consistency check must pass.
func TestDurability_SIGKILL(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in child")
	}
	dir := t.TempDir()
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var wantAudit uint64
	for round := range *crashKills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("QRNGD_STORE_CRASH_ROUND=%d", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAt := 20 + rng.IntN(300)
		var acked []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ack ") {
				acked = append(acked, strings.TrimPrefix(line, "ack "))
				if len(acked) == killAt {
					cmd.Process.Kill() // SIGKILL; lines already written are still read below
				}
			}
		}
		cmd.Wait()
		if len(acked) < killAt {
			t.Fatalf("round %d: child exited after %d acks before the kill", round, len(acked))
		}
		db, err := Open(dir, &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		for _, jti := range acked {
			if ok, _ := db.Revocations().IsRevoked(ctx, jti); !ok {
				t.Fatalf("round %d: acknowledged revocation %s lost", round, jti)
			}
		}
		n, err := db.Audit().Verify(ctx)
		if err != nil {
			t.Fatalf("round %d: audit chain after SIGKILL: %v", round, err)
		}
		wantAudit += uint64(len(acked))
		if n < wantAudit {
			t.Fatalf("round %d: audit has %d records, %d acknowledged", round, n, wantAudit)
		}
		wantAudit = n // unacknowledged records that did commit count from now on
		if err := db.Check(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		db.Close()
	}
}

// TestCrashChild is the child side of TestDurability_SIGKILL.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestDurability_SIGKILL")
	}
	db, err := Open(dir, &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	round := os.Getenv("QRNGD_STORE_CRASH_ROUND")
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				jti := fmt.Sprintf("r%s-g%d-%d", round, g, i)
				if err := db.Revocations().Revoke(ctx, jti, time.Now().Add(time.Hour)); err != nil {
					t.Error(err)
					return
				}
				if _, err := db.Audit().Append(ctx, store.AuditEvent{Type: "token.revoke", Subject: jti}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s\n", jti)
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
