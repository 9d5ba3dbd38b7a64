package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
)

// Signing keys are stored as a fixed binary record so that every copy of
// the seed is a slice this package controls and clears:
//
//	version u8 (1) | alg u8 (1 EdDSA, 2 ES256) | created ns i64 |
//	retired ns i64 (0 = active) | removeAfter ns i64 (0 = none) | seed [32]
//
// The file is mode 0600; pages freed by bbolt may retain old seeds until
// reused, so the data directory must be protected like a key file.
const keyRecLen = 2 + 3*8 + store.SeedBytes

type keyRec struct {
	info store.KeyInfo
	seed []byte // owned copy; clear after use
}

var algCodes = map[string]byte{store.AlgEdDSA: 1, store.AlgES256: 2}

func algName(c byte) string {
	for n, v := range algCodes {
		if v == c {
			return n
		}
	}
	return ""
}

func nsOrZero(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func timeOrZero(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

func encodeKey(r keyRec) []byte {
	b := make([]byte, 0, keyRecLen)
	b = append(b, 1, algCodes[r.info.Alg])
	b = binary.BigEndian.AppendUint64(b, nsOrZero(r.info.Created))
	b = binary.BigEndian.AppendUint64(b, nsOrZero(r.info.Retired))
	b = binary.BigEndian.AppendUint64(b, nsOrZero(r.info.RemoveAfter))
	return append(b, r.seed...)
}

func decodeKey(kid, v []byte) (keyRec, error) {
	if len(v) != keyRecLen || v[0] != 1 || algName(v[1]) == "" {
		return keyRec{}, fmt.Errorf("signing key %q: malformed record", kid)
	}
	r := keyRec{info: store.KeyInfo{KID: string(kid), Alg: algName(v[1]),
		Created: timeOrZero(u64(v[2:])), Retired: timeOrZero(u64(v[10:])), RemoveAfter: timeOrZero(u64(v[18:]))}}
	r.seed = clone(v[26:])
	return r, nil
}

type signing struct{ db *DB }

func published(info store.KeyInfo, now time.Time) bool {
	return info.RemoveAfter.IsZero() || now.Before(info.RemoveAfter)
}

// forEach decodes every key; fn owns r.seed (and must clear it).
func forEachKey(tx *bbolt.Tx, fn func(keyRec) error) error {
	return tx.Bucket(bktSigning).ForEach(func(k, v []byte) error {
		r, err := decodeKey(k, v)
		if err != nil {
			return err
		}
		return fn(r)
	})
}

func (s signing) Current(ctx context.Context, alg string) (store.SigningKey, error) {
	if err := store.CheckAlg(alg); err != nil {
		return store.SigningKey{}, errf("current key: %w", err)
	}
	var found *keyRec
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		return forEachKey(tx, func(r keyRec) error {
			if found == nil && r.info.Alg == alg && r.info.Retired.IsZero() {
				found = &r
				return nil
			}
			clear(r.seed)
			return nil
		})
	})
	if err != nil {
		return store.SigningKey{}, errf("current key: %w", err)
	}
	if found == nil {
		return store.SigningKey{}, errf("no %s signing key: %w", alg, store.ErrNotFound)
	}
	defer clear(found.seed)
	priv, pub, err := store.KeyFromSeed(alg, found.seed)
	if err != nil {
		return store.SigningKey{}, errf("key %q: %w", found.info.KID, err)
	}
	info := found.info
	info.PublicKey = pub
	return store.SigningKey{KeyInfo: info, Private: priv}, nil
}

func (s signing) Rotate(ctx context.Context, alg string, retireAfter time.Duration) (store.KeyInfo, error) {
	if err := store.CheckAlg(alg); err != nil {
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	if retireAfter < 0 {
		return store.KeyInfo{}, errf("rotate key: %w: negative retireAfter", store.ErrInvalid)
	}
	seed, err := store.NewSeed(s.db.rand, alg)
	if err != nil {
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	defer clear(seed)
	kid, err := s.db.rand.RandomID(store.KIDBytes)
	if err != nil {
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	_, pub, err := store.KeyFromSeed(alg, seed)
	if err != nil {
		return store.KeyInfo{}, errf("rotate key: %w", err)
	}
	info := store.KeyInfo{KID: kid, Alg: alg}
	err = s.db.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktSigning)
		if b.Get([]byte(kid)) != nil {
			return errf("key %q: %w", kid, store.ErrExists)
		}
		now := s.db.now().UTC()
		var rewrite []keyRec
		var drop [][]byte
		err := forEachKey(tx, func(r keyRec) error {
			switch {
			case r.info.Retired.IsZero():
				r.info.Retired, r.info.RemoveAfter = now, now.Add(retireAfter)
				rewrite = append(rewrite, r)
				return nil
			case !published(r.info, now):
				drop = append(drop, []byte(r.info.KID))
			}
			clear(r.seed)
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range rewrite {
			v := encodeKey(r)
			clear(r.seed)
			if err := b.Put([]byte(r.info.KID), v); err != nil {
				return err
			}
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		info.Created = now
		return b.Put([]byte(kid), encodeKey(keyRec{info: info, seed: seed}))
	})
	if err != nil {
		return store.KeyInfo{}, err
	}
	info.PublicKey = pub
	return info, nil
}

func (s signing) public(r keyRec) (store.KeyInfo, error) {
	defer clear(r.seed)
	_, pub, err := store.KeyFromSeed(r.info.Alg, r.seed)
	if err != nil {
		return store.KeyInfo{}, errf("key %q: %w", r.info.KID, err)
	}
	info := r.info
	info.PublicKey = pub
	return info, nil
}

func (s signing) Get(ctx context.Context, kid string) (store.KeyInfo, error) {
	var info store.KeyInfo
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bktSigning).Get([]byte(kid))
		if v == nil {
			return errf("key %q: %w", kid, store.ErrNotFound)
		}
		r, err := decodeKey([]byte(kid), v)
		if err != nil {
			return errf("%w", err)
		}
		if !published(r.info, s.db.now()) {
			clear(r.seed)
			return errf("key %q: %w", kid, store.ErrNotFound)
		}
		info, err = s.public(r)
		return err
	})
	return info, err
}

func (s signing) Public(ctx context.Context) ([]store.KeyInfo, error) {
	out := []store.KeyInfo{}
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		now := s.db.now()
		return forEachKey(tx, func(r keyRec) error {
			if !published(r.info, now) {
				clear(r.seed)
				return nil
			}
			info, err := s.public(r)
			if err != nil {
				return err
			}
			out = append(out, info)
			return nil
		})
	})
	if err != nil {
		return nil, errf("public keys: %w", err)
	}
	store.SortKeys(out)
	return out, nil
}

func (s signing) Unpublish(ctx context.Context, keep string) ([]string, error) {
	kids := []string{}
	err := s.db.update(ctx, func(tx *bbolt.Tx) error {
		kids = kids[:0]
		b := tx.Bucket(bktSigning)
		now := s.db.now().UTC()
		err := forEachKey(tx, func(r keyRec) error {
			clear(r.seed)
			if r.info.KID != keep && published(r.info, now) {
				kids = append(kids, r.info.KID)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Deleted, not given a RemoveAfter: a clock stepped back must not
		// publish a compromised key again, and its record goes (bbolt may
		// keep the bytes in a free page until the page is reused).
		for _, kid := range kids {
			if err := b.Delete([]byte(kid)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errf("unpublish keys: %w", err)
	}
	slices.Sort(kids)
	return kids, nil
}
