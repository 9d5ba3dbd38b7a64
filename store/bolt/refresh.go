package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
)

type refresh struct{ db *DB }

func getFamily(tx *bbolt.Tx, id string) (store.RefreshFamily, bool, error) {
	v := tx.Bucket(bktFamilies).Get([]byte(id))
	if v == nil {
		return store.RefreshFamily{}, false, nil
	}
	var f store.RefreshFamily
	if err := json.Unmarshal(v, &f); err != nil {
		return f, false, fmt.Errorf("family %q: decode: %w", id, err)
	}
	return f, true, nil
}

func famTokenKey(fid, tid string) []byte {
	k := make([]byte, 0, len(fid)+1+len(tid))
	k = append(k, fid...)
	k = append(k, 0)
	return append(k, tid...)
}

func addToken(tx *bbolt.Tx, fid, tid string) error {
	if err := tx.Bucket(bktTokens).Put([]byte(tid), []byte(fid)); err != nil {
		return err
	}
	return tx.Bucket(bktFamilyTokens).Put(famTokenKey(fid, tid), []byte{})
}

func (s refresh) Create(ctx context.Context, f store.RefreshFamily) error {
	if err := store.ValidateFamily(f); err != nil {
		return errf("create family: %w", err)
	}
	return s.db.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bktFamilies).Get([]byte(f.ID)) != nil {
			return errf("family %q: %w", f.ID, store.ErrExists)
		}
		if tx.Bucket(bktTokens).Get([]byte(f.Current)) != nil {
			return errf("refresh token %q: %w", f.Current, store.ErrExists)
		}
		f.Created, f.Generation, f.Revoked, f.RevokedAt, f.RevokeReason = s.db.now().UTC(), 0, false, time.Time{}, ""
		if err := putJSON(tx.Bucket(bktFamilies), f.ID, f); err != nil {
			return err
		}
		return addToken(tx, f.ID, f.Current)
	})
}

func (s refresh) Rotate(ctx context.Context, oldID, newID string) (store.RefreshFamily, error) {
	if err := store.ValidateID("token id", oldID); err != nil {
		return store.RefreshFamily{}, errf("rotate: %w", err)
	}
	if err := store.ValidateID("token id", newID); err != nil {
		return store.RefreshFamily{}, errf("rotate: %w", err)
	}
	var f store.RefreshFamily
	reused := false
	err := s.db.update(ctx, func(tx *bbolt.Tx) error {
		fid := tx.Bucket(bktTokens).Get([]byte(oldID))
		if fid == nil {
			return errf("refresh token %q: %w", oldID, store.ErrNotFound)
		}
		var ok bool
		var err error
		if f, ok, err = getFamily(tx, string(fid)); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("family %q of token %q missing", fid, oldID)
			}
			return errf("%w", err)
		}
		now := s.db.now().UTC()
		switch {
		case f.Revoked:
			return errf("family %q: %w", f.ID, store.ErrRevoked)
		case !now.Before(f.ExpiresAt):
			return errf("family %q: %w", f.ID, store.ErrExpired)
		case f.Current != oldID:
			// Reuse: revoke the family in this transaction, report after commit.
			f.Revoked, f.RevokedAt, f.RevokeReason = true, now, "reuse"
			reused = true
			return putJSON(tx.Bucket(bktFamilies), f.ID, f)
		}
		if tx.Bucket(bktTokens).Get([]byte(newID)) != nil {
			return errf("refresh token %q: %w", newID, store.ErrExists)
		}
		f.Current = newID
		f.Generation++
		if err := putJSON(tx.Bucket(bktFamilies), f.ID, f); err != nil {
			return err
		}
		return addToken(tx, f.ID, newID)
	})
	switch {
	case err != nil:
		if f.ID != "" && (isErr(err, store.ErrRevoked) || isErr(err, store.ErrExpired)) {
			return f, err
		}
		return store.RefreshFamily{}, err
	case reused:
		return f, errf("family %q: %w", f.ID, store.ErrReused)
	}
	return f, nil
}

func (s refresh) Lookup(ctx context.Context, tokenID string) (store.RefreshFamily, error) {
	var f store.RefreshFamily
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		fid := tx.Bucket(bktTokens).Get([]byte(tokenID))
		if fid == nil {
			return errf("refresh token %q: %w", tokenID, store.ErrNotFound)
		}
		var ok bool
		var err error
		if f, ok, err = getFamily(tx, string(fid)); err == nil && !ok {
			err = fmt.Errorf("family %q of token %q missing", fid, tokenID)
		}
		return err
	})
	return f, err
}

func (s refresh) Revoke(ctx context.Context, familyID, reason string) error {
	if err := store.ValidateText("reason", reason, store.MaxReasonBytes); err != nil {
		return errf("revoke family: %w", err)
	}
	return s.db.update(ctx, func(tx *bbolt.Tx) error {
		f, ok, err := getFamily(tx, familyID)
		if err != nil {
			return errf("%w", err)
		}
		if !ok {
			return errf("family %q: %w", familyID, store.ErrNotFound)
		}
		if f.Revoked {
			return nil
		}
		f.Revoked, f.RevokedAt, f.RevokeReason = true, s.db.now().UTC(), reason
		return putJSON(tx.Bucket(bktFamilies), familyID, f)
	})
}

func (s refresh) RevokeSubject(ctx context.Context, subject, reason string) ([]store.RefreshFamily, error) {
	if err := store.ValidateText("reason", reason, store.MaxReasonBytes); err != nil {
		return nil, errf("revoke families: %w", err)
	}
	var out []store.RefreshFamily
	err := s.db.update(ctx, func(tx *bbolt.Tx) error {
		out = out[:0]
		b := tx.Bucket(bktFamilies)
		var changed []store.RefreshFamily
		err := b.ForEach(func(k, v []byte) error {
			var f store.RefreshFamily
			if err := json.Unmarshal(v, &f); err != nil { // json copies out of the mmap
				return fmt.Errorf("family %q: decode: %w", k, err)
			}
			if f.Subject != subject {
				return nil
			}
			if !f.Revoked {
				f.Revoked, f.RevokedAt, f.RevokeReason = true, s.db.now().UTC(), reason
				changed = append(changed, f)
			}
			out = append(out, f)
			return nil
		})
		if err != nil {
			return err
		}
		for _, f := range changed { // not inside ForEach: no writes while iterating
			if err := putJSON(b, f.ID, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, errf("revoke families of %q: %w", subject, err)
	}
	return out, nil
}

func (s refresh) Prune(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.db.update(ctx, func(tx *bbolt.Tx) error {
		n = 0
		var expired [][]byte
		err := tx.Bucket(bktFamilies).ForEach(func(k, v []byte) error {
			var f store.RefreshFamily
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("family %q: decode: %w", k, err)
			}
			if !f.ExpiresAt.After(now) {
				expired = append(expired, clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		ft, toks := tx.Bucket(bktFamilyTokens), tx.Bucket(bktTokens)
		for _, fid := range expired {
			prefix := append(clone(fid), 0)
			c := ft.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
				if err := toks.Delete(clone(k[len(prefix):])); err != nil {
					return err
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bktFamilies).Delete(fid); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, errf("prune families: %w", err)
	}
	return n, nil
}
