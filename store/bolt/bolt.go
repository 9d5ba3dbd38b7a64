// Package bolt is the production store: every store of package store in
// one bbolt file, qrngd.db, in the data directory. Audit records are
// acknowledged from a write-ahead file beside it, qrngd.audit-wal (one
// write and one fdatasync per group), and copied into qrngd.db in the
// background; readers of the log and Backup wait for that copy, and Open
// finishes it after a crash (see AuditWALName).
//
// The file is opened with a one-second lock timeout (a second qrngd on the
// same directory fails instead of hanging), all buckets are created in one
// transaction at open, and fsync is never disabled: a write method returns
// nil only after its transaction committed to disk (an audit append: after
// its WAL group was fdatasynced). Byte slices are copied out of
// transactions before use.
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/qrngd/qrngd/store"
)

// FileName is the database file inside the data directory.
const FileName = "qrngd.db"

// Bucket names. All are created at open.
var (
	bktUsers        = []byte("users")
	bktTenants      = []byte("tenants")
	bktAPIKeys      = []byte("apikeys")
	bktRevocations  = []byte("revocations") // expiry-ns u64 BE | jti -> ""
	bktFamilies     = []byte("refresh_families")
	bktTokens       = []byte("refresh_tokens")        // token id -> family id
	bktFamilyTokens = []byte("refresh_family_tokens") // family id | 0x00 | token id -> ""
	bktAudit        = []byte("audit")                 // seq u64 BE -> record JSON
	bktMeta         = []byte("meta")
	bktSigning      = []byte("signing_keys") // kid -> binary key record

	allBuckets = [][]byte{bktUsers, bktTenants, bktAPIKeys, bktRevocations, bktFamilies, bktTokens,
		bktFamilyTokens, bktAudit, bktMeta, bktSigning}

	keyAuditHead = []byte("audit_head") // in bktMeta: seq u64 BE | hash [32]
)

// Options configures Open. Rand is required.
type Options struct {
	// Rand supplies salts, API-key secrets, client IDs, kids and signing
	// seeds: the entropy pool in production. Required; there is no
	// fallback to another generator.
	Rand io.Reader
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Argon2 are the parameters for new password hashes; nil =
	// store.DefaultArgon2Params (RFC 9106 second recommended option).
	Argon2 *store.Argon2Params
	// MaxConcurrentHashes bounds concurrent argon2 runs (each holds
	// Argon2.Memory KiB); ≤ 0 = NumCPU.
	MaxConcurrentHashes int
	// MaxAuditBatch bounds how many audit records share one commit;
	// 0 = 1024.
	MaxAuditBatch int
	// Logger receives operational messages (never secrets); nil = discard.
	Logger *slog.Logger
}

// DB is an open qrngd.db. It provides every store; all are safe for
// concurrent use.
type DB struct {
	db     *bbolt.DB
	now    func() time.Time
	rand   *store.Random
	hasher *store.PasswordHasher
	log    *slog.Logger
	closed atomic.Bool

	rev   revIndex
	audit *committer
	keys  keyCache
}

// Open opens (creating if needed) dir/qrngd.db with mode 0600, creates all
// buckets, rebuilds the revocation index, and copies into qrngd.db any
// audit records still only in dir/AuditWALName (see there).
func Open(dir string, opts *Options) (*DB, error) {
	if opts == nil || opts.Rand == nil {
		return nil, fmt.Errorf("store/bolt: %w: Options.Rand is required", store.ErrInvalid)
	}
	if opts.MaxAuditBatch < 0 {
		return nil, fmt.Errorf("store/bolt: %w: MaxAuditBatch %d is negative", store.ErrInvalid, opts.MaxAuditBatch)
	}
	h, err := store.NewPasswordHasher(opts.Argon2, opts.MaxConcurrentHashes, opts.Rand)
	if err != nil {
		return nil, fmt.Errorf("store/bolt: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store/bolt: data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("store/bolt: open %s: locked by another process (waited 1s): %w", path, err)
		}
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	db := &DB{db: bdb, now: opts.Now, rand: store.NewRandom(opts.Rand), hasher: h, log: opts.Logger}
	if db.now == nil {
		db.now = time.Now
	}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	err = bdb.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err == nil {
		err = db.rev.load(bdb)
	}
	var wal *os.File
	var seq uint64
	var head store.Hash
	if err == nil {
		wal, seq, head, err = openWAL(db, dir)
	}
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	max := opts.MaxAuditBatch
	if max == 0 {
		max = 1024
	}
	db.audit = startCommitter(db, max, wal, seq, head)
	return db, nil
}

// Close stops the audit committer (pending appends fail with
// store.ErrClosed; those already written are synced, answered and copied
// into qrngd.db) and closes the files. Closing twice is a no-op.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	db.audit.stop()
	if err := db.db.Close(); err != nil {
		return fmt.Errorf("store/bolt: close: %w", err)
	}
	return nil
}

// Path returns the database file path.
func (db *DB) Path() string { return db.db.Path() }

// Users returns the user store.
func (db *DB) Users() store.Users { return users{db} }

// Tenants returns the tenant store.
func (db *DB) Tenants() store.Tenants { return tenants{db} }

// APIKeys returns the API-key store.
func (db *DB) APIKeys() store.APIKeys { return apikeys{db} }

// Revocations returns the revocation list.
func (db *DB) Revocations() store.Revocations { return revocations{db} }

// Refresh returns the refresh-token families.
func (db *DB) Refresh() store.RefreshFamilies { return refresh{db} }

// Audit returns the audit log.
func (db *DB) Audit() store.Audit { return auditLog{db} }

// Keys returns the signing keys.
func (db *DB) Keys() store.SigningKeys { return signing{db} }

// Stats are counters for metrics.
type Stats struct {
	AuditCommits uint64 // group commits (one WAL write and one fdatasync each) since Open
	AuditRecords uint64 // records in those commits
	// AuditCommitTime is the summed wall time of those commits (the write
	// and the fdatasync).
	AuditCommitTime time.Duration
	Revocations     int // distinct jtis in the revocation index
}

// Stats returns current counters.
func (db *DB) Stats() Stats {
	db.rev.mu.RLock()
	n := len(db.rev.m)
	db.rev.mu.RUnlock()
	return Stats{AuditCommits: db.audit.commits.Load(), AuditRecords: db.audit.records.Load(),
		AuditCommitTime: time.Duration(db.audit.wall.Load()), Revocations: n}
}

// Backup writes a consistent copy of the whole database to w while the
// store stays in use (bbolt Tx.WriteTo in a read transaction) and returns
// the bytes written. It first waits until every audit record acknowledged
// so far is in qrngd.db, so the copy holds the whole log up to then. The
// copy is a valid qrngd.db. While it runs, a write that must grow the file
// waits for it (bbolt cannot remap under a reader).
func (db *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	if err := db.flushAudit(ctx); err != nil {
		return 0, fmt.Errorf("store/bolt: backup: %w", err)
	}
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store/bolt: backup: %w", err)
	}
	return n, nil
}

// Check runs bbolt's consistency check over the whole file and returns the
// first problem found.
func (db *DB) Check(ctx context.Context) error {
	if err := db.flushAudit(ctx); err != nil { // the audit applier is idle after this unless more appends come
		return fmt.Errorf("store/bolt: check: %w", err)
	}
	return db.view(ctx, func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain fully: the checker goroutine sends every error
			if err != nil && first == nil {
				first = fmt.Errorf("store/bolt: check: %w", err)
			}
		}
		return first
	})
}

type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func errf(format string, a ...any) error { return fmt.Errorf("store/bolt: "+format, a...) }

// mapErr turns bbolt's closed-database error into store.ErrClosed.
func (db *DB) mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) || errors.Is(err, berrors.ErrTxClosed) {
		return errf("%w", store.ErrClosed)
	}
	return err
}

func (db *DB) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.closed.Load() {
		return errf("%w", store.ErrClosed)
	}
	return nil
}

func (db *DB) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	return db.mapErr(db.db.View(fn))
}

func (db *DB) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	return db.mapErr(db.db.Update(fn))
}

// flushAudit waits until every acknowledged audit record is in bbolt.
func (db *DB) flushAudit(ctx context.Context) error {
	if err := db.check(ctx); err != nil {
		return err
	}
	return db.audit.flush(ctx)
}

func u64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func isErr(err, target error) bool { return errors.Is(err, target) }
