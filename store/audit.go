package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Audit bounds.
const (
	MaxAuditTypeBytes   = 64
	MaxAuditFields      = 64
	MaxAuditKeyBytes    = 64
	MaxAuditValueBytes  = 4096
	MaxAuditRecordBytes = 64 << 10 // canonical encoding
	MaxAuditList        = 1000
)

// AuditEvent is what a caller appends.
type AuditEvent struct {
	Type    string            `json:"type"`    // e.g. "token.issue", "key.revoke"
	Subject string            `json:"subject"` // who or what it is about
	Fields  map[string]string `json:"fields,omitempty"`
}

// AuditRecord is a stored, chained event.
type AuditRecord struct {
	Seq     uint64            `json:"seq"` // 1, 2, 3, ...
	Time    time.Time         `json:"time"`
	Type    string            `json:"type"`
	Subject string            `json:"subject"`
	Fields  map[string]string `json:"fields,omitempty"`
	Prev    Hash              `json:"prev"` // hash of record Seq-1; zero for Seq 1
	Hash    Hash              `json:"hash"` // ChainHash of this record
}

// Hash is a SHA-256 chain hash; it marshals as lowercase hex.
type Hash [32]byte

// MarshalText encodes h as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText decodes 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	var raw [32]byte
	if n, err := hex.Decode(raw[:], b); err != nil || n != 32 || len(b) != 64 {
		return fmt.Errorf("store: bad hash %q", b)
	}
	*h = raw
	return nil
}

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// AuditChainError says where the audit chain broke.
type AuditChainError struct {
	Seq    uint64 // first bad sequence number
	Reason string
}

func (e *AuditChainError) Error() string {
	return fmt.Sprintf("store: audit chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Unwrap makes errors.Is(err, ErrAuditBroken) true.
func (e *AuditChainError) Unwrap() error { return ErrAuditBroken }

// ValidateAuditEvent bounds an event.
func ValidateAuditEvent(e AuditEvent) error {
	if e.Type == "" {
		return fmt.Errorf("%w: audit type is empty", ErrInvalid)
	}
	if err := ValidateText("audit type", e.Type, MaxAuditTypeBytes); err != nil {
		return err
	}
	if err := ValidateText("audit subject", e.Subject, MaxSubjectBytes); err != nil {
		return err
	}
	if len(e.Fields) > MaxAuditFields {
		return fmt.Errorf("%w: audit event has %d fields, more than %d", ErrInvalid, len(e.Fields), MaxAuditFields)
	}
	for k, v := range e.Fields {
		if k == "" {
			return fmt.Errorf("%w: audit field name is empty", ErrInvalid)
		}
		if err := ValidateText("audit field name", k, MaxAuditKeyBytes); err != nil {
			return err
		}
		if err := ValidateText("audit field "+k, v, MaxAuditValueBytes); err != nil {
			return err
		}
	}
	return nil
}

// Seal fills in seq, time (truncated to what the encoding keeps: UTC
// nanoseconds), prev and hash for e.
func Seal(e AuditEvent, seq uint64, t time.Time, prev Hash) AuditRecord {
	r := AuditRecord{Seq: seq, Time: time.Unix(0, t.UnixNano()).UTC(), Type: e.Type, Subject: e.Subject, Prev: prev}
	if len(e.Fields) > 0 {
		r.Fields = make(map[string]string, len(e.Fields))
		for k, v := range e.Fields {
			r.Fields[k] = v
		}
	}
	r.Hash = ChainHash(r)
	return r
}

const auditDomain = "qrngd/audit/v1\x00"

// Canonical is the byte string a record's hash covers:
//
//	"qrngd/audit/v1\x00" | seq u64 | time unix-ns i64 | lp(type) | lp(subject) |
//	nfields u32 | (lp(key) lp(value)) for keys in byte order | prev [32]
//
// where integers are big-endian and lp(s) = u32 length | bytes. Every field
// is length-prefixed, so no two different records share an encoding.
func Canonical(r AuditRecord) []byte {
	n := len(auditDomain) + 8 + 8 + 4 + len(r.Type) + 4 + len(r.Subject) + 4 + 32
	keys := make([]string, 0, len(r.Fields))
	for k, v := range r.Fields {
		keys = append(keys, k)
		n += 8 + len(k) + len(v)
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, auditDomain...)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	lp := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	lp(r.Type)
	lp(r.Subject)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		lp(k)
		lp(r.Fields[k])
	}
	return append(b, r.Prev[:]...)
}

// ChainHash is SHA-256 over Canonical(r).
func ChainHash(r AuditRecord) Hash { return sha256.Sum256(Canonical(r)) }

// ChainVerifier checks records one at a time in storage order. Both store
// implementations use it so they detect the same faults.
type ChainVerifier struct {
	n    uint64
	prev Hash
}

// Check verifies the next record: its seq must follow the previous one (a
// gap means a removal, a smaller or equal seq a reorder), its Prev must be
// the previous hash and its Hash must match its content.
func (v *ChainVerifier) Check(r AuditRecord) error {
	want := v.n + 1
	switch {
	case r.Seq != want:
		return &AuditChainError{Seq: want, Reason: fmt.Sprintf("found seq %d where %d belongs (record removed or reordered)", r.Seq, want)}
	case r.Prev != v.prev:
		return &AuditChainError{Seq: want, Reason: "previous-hash link does not match the record before it"}
	case ChainHash(r) != r.Hash:
		return &AuditChainError{Seq: want, Reason: "record content does not match its hash (altered)"}
	}
	v.n, v.prev = r.Seq, r.Hash
	return nil
}

// N returns how many records passed Check.
func (v *ChainVerifier) N() uint64 { return v.n }

// Finish compares the end of the walk with the stored head (the seq and
// hash of the last record, written in the same transaction as the record),
// which catches records cut off the end of the log.
func (v *ChainVerifier) Finish(headSeq uint64, headHash Hash) (uint64, error) {
	switch {
	case headSeq > v.n:
		return v.n, &AuditChainError{Seq: v.n + 1, Reason: fmt.Sprintf("log ends at seq %d but the head says %d (records removed)", v.n, headSeq)}
	case headSeq < v.n:
		return v.n, &AuditChainError{Seq: headSeq + 1, Reason: fmt.Sprintf("records after the head seq %d", headSeq)}
	case headHash != v.prev:
		return v.n, &AuditChainError{Seq: v.n, Reason: "last record's hash differs from the head"}
	}
	return v.n, nil
}

// auditJSON is the stored form of a record (used by store/bolt; exported
// through MarshalAuditRecord/UnmarshalAuditRecord).
type auditJSON struct {
	Seq     uint64            `json:"seq"`
	TimeNS  int64             `json:"time_ns"`
	Type    string            `json:"type"`
	Subject string            `json:"subject"`
	Fields  map[string]string `json:"fields,omitempty"`
	Prev    Hash              `json:"prev"`
	Hash    Hash              `json:"hash"`
}

// MarshalAuditRecord encodes r for storage.
func MarshalAuditRecord(r AuditRecord) ([]byte, error) {
	return json.Marshal(auditJSON{Seq: r.Seq, TimeNS: r.Time.UnixNano(), Type: r.Type, Subject: r.Subject,
		Fields: r.Fields, Prev: r.Prev, Hash: r.Hash})
}

// UnmarshalAuditRecord decodes a stored record.
func UnmarshalAuditRecord(b []byte) (AuditRecord, error) {
	var j auditJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return AuditRecord{}, fmt.Errorf("store: audit record: %w", err)
	}
	return AuditRecord{Seq: j.Seq, Time: time.Unix(0, j.TimeNS).UTC(), Type: j.Type, Subject: j.Subject,
		Fields: j.Fields, Prev: j.Prev, Hash: j.Hash}, nil
}
