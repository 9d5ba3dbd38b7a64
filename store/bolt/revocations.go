package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
)

// revIndex is the in-memory revocation index: the first 128 bits of
// SHA-256(jti) → expiry (Unix ns). Fixed-size keys hold no pointers, so 1M
// entries cost ~40 MB and no GC scanning; a collision would only make an
// unrevoked token look revoked (fail closed) and needs ~2^64 jtis.
type revIndex struct {
	mu sync.RWMutex
	m  map[[16]byte]int64
}

func idxKey(jti []byte) (k [16]byte) {
	h := sha256.Sum256(jti)
	copy(k[:], h[:16])
	return k
}

// load rebuilds the index from the revocations bucket.
func (x *revIndex) load(db *bbolt.DB) error {
	return db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktRevocations)
		m := make(map[[16]byte]int64, b.Stats().KeyN)
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				return fmt.Errorf("revocations: malformed key %x", k)
			}
			exp, ik := int64(u64(k)), idxKey(k[8:])
			if old, ok := m[ik]; !ok || exp > old {
				m[ik] = exp
			}
		}
		x.mu.Lock()
		x.m = m
		x.mu.Unlock()
		return nil
	})
}

type revocations struct{ db *DB }

func revKey(jti string, expNS int64) []byte {
	k := make([]byte, 8, 8+len(jti))
	binary.BigEndian.PutUint64(k, uint64(expNS))
	return append(k, jti...)
}

// maxExpiry is the last instant a uint64 nanosecond key can hold as int64.
var maxExpiry = time.Unix(0, 1<<63-1)

func (s revocations) Revoke(ctx context.Context, jti string, expiry time.Time) error {
	if err := store.ValidateID("jti", jti); err != nil {
		return errf("revoke: %w", err)
	}
	if err := store.CheckExpiry(expiry); err != nil {
		return errf("revoke %q: %w", jti, err)
	}
	if expiry.After(maxExpiry) {
		expiry = maxExpiry
	}
	if err := s.db.check(ctx); err != nil {
		return err
	}
	ns := expiry.UnixNano()
	key := revKey(jti, ns)
	// Batch coalesces concurrent revocations into one fsync'd transaction;
	// the function is idempotent (Batch may run it twice) and Batch
	// returns only after the commit.
	err := s.db.db.Batch(func(tx *bbolt.Tx) error {
		return tx.Bucket(bktRevocations).Put(key, []byte{})
	})
	if err != nil {
		return errf("revoke %q: %w", jti, s.db.mapErr(err))
	}
	ik := idxKey([]byte(jti))
	x := &s.db.rev
	x.mu.Lock()
	if old, ok := x.m[ik]; !ok || ns > old {
		x.m[ik] = ns
	}
	x.mu.Unlock()
	return nil
}

func (s revocations) IsRevoked(ctx context.Context, jti string) (bool, error) {
	if err := s.db.check(ctx); err != nil {
		return false, err
	}
	ik := idxKey([]byte(jti))
	x := &s.db.rev
	x.mu.RLock()
	_, ok := x.m[ik]
	x.mu.RUnlock()
	return ok, nil
}

// pruneChunk bounds one prune transaction so pruning a large backlog does
// not build one huge dirty-page set.
const pruneChunk = 10000

func (s revocations) Prune(ctx context.Context, now time.Time) (int, error) {
	limit := now.UnixNano()
	total := 0
	for {
		type gone struct {
			ik  [16]byte
			exp int64
		}
		var removed []gone
		err := s.db.update(ctx, func(tx *bbolt.Tx) error {
			removed = removed[:0]
			c := tx.Bucket(bktRevocations).Cursor()
			// Keys sort by expiry: seek to the start and delete until the
			// first unexpired one.
			for k, _ := c.Seek(make([]byte, 8)); k != nil && len(removed) < pruneChunk; k, _ = c.Seek(make([]byte, 8)) {
				exp := int64(u64(k))
				if exp > limit {
					break
				}
				removed = append(removed, gone{idxKey(k[8:]), exp})
				if err := c.Delete(); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, errf("prune revocations: %w", err)
		}
		x := &s.db.rev
		x.mu.Lock()
		for _, g := range removed {
			if cur, ok := x.m[g.ik]; ok && cur <= limit {
				delete(x.m, g.ik)
			}
		}
		x.mu.Unlock()
		total += len(removed)
		if len(removed) < pruneChunk {
			return total, nil
		}
	}
}

func (s revocations) Len(ctx context.Context) (int, error) {
	if err := s.db.check(ctx); err != nil {
		return 0, err
	}
	x := &s.db.rev
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.m), nil
}
