package bolt

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
)

type appendReq struct {
	pre  preparedEvent
	seq  uint64
	ns   int64 // record time, Unix nanoseconds
	prev store.Hash
	hash store.Hash
	err  error
	done chan struct{}
}

// preparedEvent is the part of a record's stored JSON and of its chain
// hash input that does not depend on its place in the chain. Append
// builds it in the caller's goroutine, so the committer (one goroutine,
// holding bbolt's writer lock) only adds seq, time and the hashes.
type preparedEvent struct {
	canon []byte // store.Canonical between the time and prev: lp(type) lp(subject) nfields fields
	json  []byte // store.MarshalAuditRecord between "time_ns":N, and ,"prev":
}

const auditDomain = "qrngd/audit/v1\x00" // as store.Canonical

func prepareEvent(e store.AuditEvent) preparedEvent {
	keys := make([]string, 0, len(e.Fields))
	n := 12 + len(e.Type) + len(e.Subject)
	for k, v := range e.Fields {
		keys = append(keys, k)
		n += 8 + len(k) + len(v)
	}
	slices.Sort(keys) // encoding/json sorts map keys the same way
	c := make([]byte, 0, n)
	lp := func(s string) {
		c = binary.BigEndian.AppendUint32(c, uint32(len(s)))
		c = append(c, s...)
	}
	lp(e.Type)
	lp(e.Subject)
	c = binary.BigEndian.AppendUint32(c, uint32(len(keys)))
	for _, k := range keys {
		lp(k)
		lp(e.Fields[k])
	}
	j := make([]byte, 0, n+16+6*len(keys))
	j = append(j, `"type":`...)
	j = appendJSONString(j, e.Type)
	j = append(j, `,"subject":`...)
	j = appendJSONString(j, e.Subject)
	if len(keys) > 0 {
		j = append(j, `,"fields":{`...)
		for i, k := range keys {
			if i > 0 {
				j = append(j, ',')
			}
			j = appendJSONString(j, k)
			j = append(j, ':')
			j = appendJSONString(j, e.Fields[k])
		}
		j = append(j, '}')
	}
	return preparedEvent{canon: c, json: j}
}

// appendJSONString appends s as encoding/json encodes it. Strings of
// printable ASCII that encoding/json leaves alone (no quote, backslash or
// HTML-sensitive <, >, &) are copied; anything else goes through
// encoding/json, so escaping is always exactly its own.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// seal computes r's chain hash (store.ChainHash of the sealed record) and
// returns its stored form (store.MarshalAuditRecord), byte for byte.
func (r *appendReq) seal(seq uint64, ns int64, prev store.Hash) []byte {
	r.seq, r.ns, r.prev = seq, ns, prev
	h := sha256.New()
	var hdr [len(auditDomain) + 16]byte
	copy(hdr[:], auditDomain)
	binary.BigEndian.PutUint64(hdr[len(auditDomain):], seq)
	binary.BigEndian.PutUint64(hdr[len(auditDomain)+8:], uint64(ns))
	h.Write(hdr[:])
	h.Write(r.pre.canon)
	h.Write(prev[:])
	h.Sum(r.hash[:0])
	v := make([]byte, 0, len(r.pre.json)+200)
	v = append(v, `{"seq":`...)
	v = strconv.AppendUint(v, seq, 10)
	v = append(v, `,"time_ns":`...)
	v = strconv.AppendInt(v, ns, 10)
	v = append(v, ',')
	v = append(v, r.pre.json...)
	v = append(v, `,"prev":"`...)
	v = hex.AppendEncode(v, prev[:])
	v = append(v, `","hash":"`...)
	v = hex.AppendEncode(v, r.hash[:])
	return append(v, `"}`...)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func readHead(tx *bbolt.Tx) (uint64, store.Hash, error) {
	var h store.Hash
	v := tx.Bucket(bktMeta).Get(keyAuditHead)
	if v == nil {
		return 0, h, nil
	}
	if len(v) != 40 {
		return 0, h, fmt.Errorf("audit head is %d bytes, want 40", len(v))
	}
	copy(h[:], v[8:])
	return u64(v), h, nil
}

type auditLog struct{ db *DB }

func (s auditLog) Append(ctx context.Context, e store.AuditEvent) (store.AuditRecord, error) {
	if err := store.ValidateAuditEvent(e); err != nil {
		return store.AuditRecord{}, errf("audit append: %w", err)
	}
	if err := s.db.check(ctx); err != nil {
		return store.AuditRecord{}, err
	}
	r := &appendReq{pre: prepareEvent(e), done: make(chan struct{})}
	c := s.db.audit
	select {
	case c.reqs <- r:
	case <-c.quit:
		return store.AuditRecord{}, errf("audit append: %w", store.ErrClosed)
	case <-ctx.Done():
		return store.AuditRecord{}, ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		// The record may still commit; it was not acknowledged.
		return store.AuditRecord{}, ctx.Err()
	}
	if r.err != nil {
		return store.AuditRecord{}, errf("audit append: %w", r.err)
	}
	rec := store.AuditRecord{Seq: r.seq, Time: time.Unix(0, r.ns).UTC(), Type: e.Type, Subject: e.Subject,
		Prev: r.prev, Hash: r.hash}
	if len(e.Fields) > 0 {
		rec.Fields = e.Fields // the caller's own map; the stored record was encoded from it
	}
	return rec, nil
}

func (s auditLog) List(ctx context.Context, after uint64, limit int) ([]store.AuditRecord, error) {
	if limit < 1 || limit > store.MaxAuditList {
		return nil, errf("audit list: %w: limit %d outside 1..%d", store.ErrInvalid, limit, store.MaxAuditList)
	}
	out := []store.AuditRecord{}
	if err := s.db.flushAudit(ctx); err != nil {
		return nil, errf("audit list: %w", err)
	}
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bktAudit).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			r, err := store.UnmarshalAuditRecord(v)
			if err != nil {
				return fmt.Errorf("seq %d: %w", u64(k), err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, errf("audit list: %w", err)
	}
	return out, nil
}

func (s auditLog) Verify(ctx context.Context) (uint64, error) {
	var v store.ChainVerifier
	var chainErr error
	if err := s.db.flushAudit(ctx); err != nil {
		return 0, errf("audit verify: %w", err)
	}
	err := s.db.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bktAudit).Cursor()
		i := 0
		for k, val := c.First(); k != nil; k, val = c.Next() {
			if i++; i%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			want := v.N() + 1
			if len(k) != 8 {
				chainErr = &store.AuditChainError{Seq: want, Reason: fmt.Sprintf("malformed key %x", k)}
				return nil
			}
			r, err := store.UnmarshalAuditRecord(val)
			if err != nil {
				chainErr = &store.AuditChainError{Seq: want, Reason: "record undecodable: " + err.Error()}
				return nil
			}
			if r.Seq != u64(k) {
				chainErr = &store.AuditChainError{Seq: want, Reason: fmt.Sprintf("record with seq %d stored under key %d (reordered)", r.Seq, u64(k))}
				return nil
			}
			if err := v.Check(r); err != nil {
				chainErr = err
				return nil
			}
		}
		seq, hash, err := readHead(tx)
		if err != nil {
			chainErr = &store.AuditChainError{Seq: v.N() + 1, Reason: err.Error()}
			return nil
		}
		_, chainErr = v.Finish(seq, hash)
		return nil
	})
	if err != nil {
		return v.N(), errf("audit verify: %w", err)
	}
	if chainErr != nil {
		return v.N(), fmt.Errorf("store/bolt: %w", chainErr)
	}
	return v.N(), nil
}
