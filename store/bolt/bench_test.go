package bolt

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
)

// build1M writes n revocations straight into a fresh qrngd.db under dir
// (sorted keys, big transactions) and returns the jtis.
func buildRevocations(b *testing.B, dir string, n int) []string {
	b.Helper()
	db := openBench(b, dir)
	db.Close()
	bdb, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer bdb.Close()
	rng := mrand.New(mrand.NewChaCha8([32]byte{1}))
	jtis := make([]string, n)
	raw := make([]byte, 16)
	base := time.Now().Add(time.Hour).UnixNano()
	const chunk = 100000
	for start := 0; start < n; start += chunk {
		err := bdb.Update(func(tx *bbolt.Tx) error {
			bk := tx.Bucket(bktRevocations)
			bk.FillPercent = 1.0 // keys are appended in order
			for i := start; i < min(start+chunk, n); i++ {
				for j := range raw {
					raw[j] = byte(rng.Uint32())
				}
				jtis[i] = base64.RawURLEncoding.EncodeToString(raw) // 128-bit jti, 22 chars
				if err := bk.Put(revKey(jtis[i], base+int64(i)*int64(time.Millisecond)), []byte{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return jtis
}

func openBench(b *testing.B, dir string) *DB {
	b.Helper()
	p := store.TestArgon2Params
	db, err := Open(dir, &Options{Rand: rand.Reader, Argon2: &p})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

const oneMillion = 1_000_000

// BenchmarkRevocations_IsRevoked_1M: lookup cost with 1,000,000 revoked
// entries; half the lookups hit, half miss.
func BenchmarkRevocations_IsRevoked_1M(b *testing.B) {
	dir := b.TempDir()
	jtis := buildRevocations(b, dir, oneMillion)
	db := openBench(b, dir)
	defer db.Close()
	r := db.Revocations()
	ctx := context.Background()
	miss := make([]string, 1024)
	for i := range miss {
		miss[i] = fmt.Sprintf("not-revoked-%d", i)
	}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		var jti string
		if i&1 == 0 {
			jti = jtis[(i*7919)%oneMillion]
		} else {
			jti = miss[i&1023]
		}
		ok, _ := r.IsRevoked(ctx, jti)
		if ok != (i&1 == 0) {
			b.Fatalf("IsRevoked(%s) = %v", jti, ok)
		}
		i++
	}
}

// BenchmarkOpen_1M: open qrngd.db holding 1,000,000 revocations and rebuild
// the index. Reports the heap the open DB retains (index-MB).
func BenchmarkOpen_1M(b *testing.B) {
	dir := b.TempDir()
	buildRevocations(b, dir, oneMillion)
	var heap float64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		db := openBench(b, dir)
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if n, _ := db.Revocations().Len(context.Background()); n != oneMillion {
			b.Fatalf("index holds %d", n)
		}
		heap = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(heap, "index-MB")
}

// run32 runs op from 32 goroutines until b.N operations are done and
// reports acknowledged operations per second.
func run32(b *testing.B, op func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	b.ResetTimer()
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "acks/s")
}

func jtiN(i int64) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[8:], uint64(i))
	binary.BigEndian.PutUint64(raw[:8], 0x9e3779b97f4a7c15*uint64(i))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// BenchmarkRevoke_Concurrent32: Revocations.Revoke from 32 goroutines,
// fsync on, each call returning after its commit.
func BenchmarkRevoke_Concurrent32(b *testing.B) {
	db := openBench(b, b.TempDir())
	defer db.Close()
	r := db.Revocations()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	run32(b, func(i int64) error { return r.Revoke(ctx, jtiN(i), exp) })
}

// BenchmarkBareBoltBatch_Concurrent32 is the baseline: a bare bbolt
// db.Batch put of the same key shape from 32 goroutines on the same disk.
func BenchmarkBareBoltBatch_Concurrent32(b *testing.B) {
	bdb := bareDB(b)
	exp := time.Now().Add(time.Hour).UnixNano()
	run32(b, func(i int64) error { return bareBatchPut(bdb, revKey(jtiN(i), exp)) })
}

func bareDB(b *testing.B) *bbolt.DB {
	bdb, err := bbolt.Open(filepath.Join(b.TempDir(), "bare.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bdb.Close() })
	if err := bdb.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("r")); return err }); err != nil {
		b.Fatal(err)
	}
	return bdb
}

func bareBatchPut(bdb *bbolt.DB, key []byte) error {
	return bdb.Batch(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("r")).Put(key, []byte{}) })
}

// BenchmarkRevoke_VsBareBatch_Concurrent32 alternates rounds of Revoke and
// of the bare Batch put (same disk, same process, interleaved so that load
// from other processes hits both alike) and reports revoke/bare in percent.
func BenchmarkRevoke_VsBareBatch_Concurrent32(b *testing.B) {
	db := openBench(b, b.TempDir())
	defer db.Close()
	bdb := bareDB(b)
	r := db.Revocations()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	const round = 1000
	var tRevoke, tBare time.Duration
	var k atomic.Int64
	par := func(op func(i int64) error) time.Duration {
		var wg sync.WaitGroup
		var left atomic.Int64
		left.Store(round)
		start := time.Now()
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					if err := op(k.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	b.ResetTimer()
	rounds := 0
	for b.Loop() {
		tRevoke += par(func(i int64) error { return r.Revoke(ctx, jtiN(i), exp) })
		tBare += par(func(i int64) error { return bareBatchPut(bdb, revKey(jtiN(i), exp.UnixNano())) })
		rounds++
	}
	b.ReportMetric(float64(rounds*round)/tRevoke.Seconds(), "revoke-acks/s")
	b.ReportMetric(float64(rounds*round)/tBare.Seconds(), "bare-acks/s")
	b.ReportMetric(100*tBare.Seconds()/tRevoke.Seconds(), "revoke/bare-%")
}

// BenchmarkAudit_Append_Concurrent32: Audit.Append from 32 goroutines; each
// returns after its record is durable; the group commit shares fsyncs.
func BenchmarkAudit_Append_Concurrent32(b *testing.B) {
	db := openBench(b, b.TempDir())
	defer db.Close()
	a := db.Audit()
	ctx := context.Background()
	ev := store.AuditEvent{Type: "token.issue", Subject: "client-1", Fields: map[string]string{
		"jti": "x7Hq2ZkP0aW3nV9sLr1tYg", "scope": "random:read", "pool.policy": "fail-closed", "pool.sources": "sim0:healthy"}}
	run32(b, func(int64) error { _, err := a.Append(ctx, ev); return err })
	st := db.Stats()
	b.ReportMetric(float64(st.AuditRecords)/float64(st.AuditCommits), "records/commit")
	if n, err := a.Verify(ctx); err != nil || n < uint64(b.N) {
		b.Fatalf("verify: %d, %v", n, err)
	}
}

// BenchmarkAudit_Append_Concurrent256 shows how the group commit scales
// with more appends in flight (bounded by fsync latency, not CPU).
func BenchmarkAudit_Append_Concurrent256(b *testing.B) {
	db := openBench(b, b.TempDir())
	defer db.Close()
	a := db.Audit()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := a.Append(ctx, store.AuditEvent{Type: "token.issue", Subject: "c"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acks/s")
	st := db.Stats()
	b.ReportMetric(float64(st.AuditRecords)/float64(st.AuditCommits), "records/commit")
}

// BenchmarkUsers_Authenticate compares a wrong password for a known user
// with an unknown user under the production argon2id parameters: the two
// must cost the same, or response time reveals which usernames exist.
func BenchmarkUsers_Authenticate(b *testing.B) {
	db, err := Open(b.TempDir(), &Options{Rand: rand.Reader}) // DefaultArgon2Params
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.Users().Create(ctx, store.User{Username: "ann"}, "right password"); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, user, pw string }{
		{"Right", "ann", "right password"}, {"WrongPassword", "ann", "wrong"}, {"UnknownUser", "nobody", "wrong"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				db.Users().Authenticate(ctx, c.user, c.pw)
			}
		})
	}
}
