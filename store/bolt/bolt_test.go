package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/storetest"
)

// openT opens dir and registers a cleanup that runs bbolt's consistency
// check and closes the file.
func openT(t testing.TB, dir string, opts *Options) *DB {
	t.Helper()
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !db.closed.Load() {
			if err := db.Check(context.Background()); err != nil {
				t.Errorf("consistency check: %v", err)
			}
		}
		db.Close()
	})
	return db
}

func testOptions(env storetest.Env) *Options {
	return &Options{Rand: env.Rand, Now: env.Now, Argon2: env.Argon2}
}

// New is the conformance factory: a fresh database under t.TempDir.
func New(t *testing.T, env storetest.Env) storetest.Stores {
	return stores(t, t.TempDir(), env)
}

func stores(t *testing.T, dir string, env storetest.Env) storetest.Stores {
	t.Helper()
	db := openT(t, dir, testOptions(env))
	return storetest.Stores{
		Users: db.Users(), Tenants: db.Tenants(), APIKeys: db.APIKeys(), Revocations: db.Revocations(),
		Refresh: db.Refresh(), Audit: db.Audit(), Keys: db.Keys(),
		Close: db.Close,
		Reopen: func(t *testing.T) storetest.Stores {
			if err := db.Check(context.Background()); err != nil {
				t.Fatalf("consistency check before reopen: %v", err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			return stores(t, dir, env)
		},
		TamperAudit: func(t *testing.T, how storetest.Tamper, seq uint64) { tamper(t, db.db, how, seq) },
	}
}

// tamper edits the raw audit bucket behind the store's back.
func tamper(t *testing.T, db *bbolt.DB, how storetest.Tamper, seq uint64) {
	t.Helper()
	err := db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktAudit)
		k := seqKey(seq)
		switch how {
		case storetest.TamperAlter:
			r, err := store.UnmarshalAuditRecord(b.Get(k))
			if err != nil {
				return err
			}
			r.Subject += "!" // hash left as it was
			v, err := store.MarshalAuditRecord(r)
			if err != nil {
				return err
			}
			return b.Put(k, v)
		case storetest.TamperRemove:
			return b.Delete(k)
		case storetest.TamperSwap:
			k2 := seqKey(seq + 1)
			v1, v2 := clone(b.Get(k)), clone(b.Get(k2))
			if err := b.Put(k, v2); err != nil {
				return err
			}
			return b.Put(k2, v1)
		}
		return errors.New("unknown tamper")
	})
	if err != nil {
		t.Fatalf("tamper: %v", err)
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, New) }

func TestOpen_RandRequired(t *testing.T) {
	_, err := Open(t.TempDir(), &Options{})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Open without Rand: %v", err)
	}
	_, err = Open(t.TempDir(), nil)
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Open(nil): %v", err)
	}
}

func TestOpen_FileModeAndBuckets(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v", fi.Mode())
	}
	err = db.db.View(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				t.Errorf("bucket %s missing", b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if db.db.NoSync {
		t.Fatal("NoSync is set")
	}
}

func TestOpen_Locked(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	start := time.Now()
	_, err := Open(dir, &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	if err == nil {
		t.Fatal("second Open of a locked database succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second Open hung for %v", d)
	}
}

func TestDB_Backup(t *testing.T) {
	ctx := context.Background()
	p := store.TestArgon2Params
	opts := &Options{Rand: rand.Reader, Argon2: &p}
	db := openT(t, t.TempDir(), opts)
	exp := time.Now().Add(time.Hour)
	if err := db.Revocations().Revoke(ctx, "jti-a", exp); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Audit().Append(ctx, store.AuditEvent{Type: "t", Subject: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Users().Create(ctx, store.User{Username: "ann"}, "pw"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := db.Backup(ctx, &buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("backup = %d, %v (buffer %d)", n, err, buf.Len())
	}
	// The store keeps working during and after the backup.
	if err := db.Revocations().Revoke(ctx, "jti-b", exp); err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, FileName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := openT(t, dir2, opts)
	if ok, _ := restored.Revocations().IsRevoked(ctx, "jti-a"); !ok {
		t.Fatal("backup lost a revocation")
	}
	if ok, _ := restored.Revocations().IsRevoked(ctx, "jti-b"); ok {
		t.Fatal("backup has a revocation made after it")
	}
	if n, err := restored.Audit().Verify(ctx); err != nil || n != 1 {
		t.Fatalf("restored audit: %d, %v", n, err)
	}
	if _, err := restored.Users().Authenticate(ctx, "ann", "pw"); err != nil {
		t.Fatalf("restored user: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Backup(cctx, &buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("backup with canceled ctx: %v", err)
	}
}

// A failing random source fails the operation; nothing falls back.
func TestDB_RandFailure(t *testing.T) {
	ctx := context.Background()
	r := &failAfter{n: 1 << 20}
	p := store.TestArgon2Params
	db := openT(t, t.TempDir(), &Options{Rand: r, Argon2: &p})
	if err := db.Tenants().Create(ctx, store.Tenant{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	r.n = 0
	if _, _, err := db.APIKeys().Create(ctx, store.APIKeySpec{Tenant: "acme"}); err == nil {
		t.Fatal("API key created without randomness")
	}
	if _, err := db.Keys().Rotate(ctx, store.AlgEdDSA, time.Hour); err == nil {
		t.Fatal("signing key created without randomness")
	}
	if err := db.Users().Create(ctx, store.User{Username: "u"}, "pw"); err == nil {
		t.Fatal("password hashed without a salt")
	}
}

type failAfter struct{ n int }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("pool drained")
	}
	f.n -= len(p)
	return rand.Read(p)
}

// Parameters are part of each stored hash, so raising them keeps old
// passwords working and re-hashes them on the next login.
func TestUsers_Rehash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	small := store.TestArgon2Params
	db := openT(t, dir, &Options{Rand: rand.Reader, Argon2: &small})
	if err := db.Users().Create(ctx, store.User{Username: "ann"}, "pw"); err != nil {
		t.Fatal(err)
	}
	hashOf := func(db *DB) string {
		var d userDoc
		db.db.View(func(tx *bbolt.Tx) error { d, _, _ = getUser(tx, "ann"); return nil })
		return d.Hash
	}
	before := hashOf(db)
	db.Close()
	bigger := small
	bigger.Memory, bigger.Time = 128, 2
	db = openT(t, dir, &Options{Rand: rand.Reader, Argon2: &bigger})
	if _, err := db.Users().Authenticate(ctx, "ann", "pw"); err != nil {
		t.Fatalf("old hash after parameter change: %v", err)
	}
	after := hashOf(db)
	if before == after || !bytes.HasPrefix([]byte(after), []byte("$argon2id$v=19$m=128,t=2,p=1$")) {
		t.Fatalf("not re-hashed: %s -> %s", before, after)
	}
	if _, err := db.Users().Authenticate(ctx, "ann", "pw"); err != nil {
		t.Fatalf("after re-hash: %v", err)
	}
}
