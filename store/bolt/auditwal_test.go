package bolt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

func walFrame(t *testing.T, r store.AuditRecord) []byte {
	t.Helper()
	v, err := store.MarshalAuditRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(len(v)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(v, castagnoli))
	return append(b, v...)
}

// appendN appends n records and returns the last.
func appendN(t *testing.T, db *DB, n int) store.AuditRecord {
	t.Helper()
	var last store.AuditRecord
	for i := range n {
		r, err := db.Audit().Append(context.Background(), store.AuditEvent{Type: "token.issue", Subject: "c", Fields: map[string]string{"i": string(rune('a' + i))}})
		if err != nil {
			t.Fatal(err)
		}
		last = r
	}
	return last
}

// Records that only reached the WAL (acknowledged, not yet copied into
// bbolt when the process died) are copied in at Open; a torn tail (a group
// whose write never completed, so never acknowledged) is dropped; the
// chain verifies and goes on from the recovered head.
func TestAuditWAL_Open_ReplaysAndDropsTornTail(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params}
	db := openT(t, dir, opts)
	head := appendN(t, db, 3)
	db.Close()
	if fi, err := os.Stat(filepath.Join(dir, AuditWALName)); err != nil || fi.Size() != 0 {
		t.Fatalf("after a clean close the WAL should be empty: %v %v", fi, err)
	}

	// Three more records, chained on, only in the WAL; then half a frame.
	var wal []byte
	var want []store.AuditRecord
	prev := head
	for i := range 3 {
		r := store.Seal(store.AuditEvent{Type: "token.issue", Subject: "wal", Fields: map[string]string{"n": string(rune('0' + i))}},
			prev.Seq+1, time.Unix(1800000000, int64(i)), prev.Hash)
		want = append(want, r)
		wal = append(wal, walFrame(t, r)...)
		prev = r
	}
	torn := walFrame(t, store.Seal(store.AuditEvent{Type: "token.issue", Subject: "torn"}, prev.Seq+1, time.Unix(1800000001, 0), prev.Hash))
	wal = append(wal, torn[:len(torn)/2]...)
	if err := os.WriteFile(filepath.Join(dir, AuditWALName), wal, 0o600); err != nil {
		t.Fatal(err)
	}

	db = openT(t, dir, opts)
	ctx := context.Background()
	if n, err := db.Audit().Verify(ctx); err != nil || n != 6 {
		t.Fatalf("Verify after replay = %d, %v; want 6 records", n, err)
	}
	got, err := db.Audit().List(ctx, 3, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("List after seq 3: %d records, want the 3 from the WAL", len(got))
	}
	for i, r := range got {
		if r.Hash != want[i].Hash || r.Subject != "wal" {
			t.Errorf("record %d: %+v, want %+v", r.Seq, r, want[i])
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, AuditWALName)); err != nil || fi.Size() != 0 {
		t.Fatalf("Open should empty the WAL once replayed: %v %v", fi, err)
	}
	next := appendN(t, db, 1)
	if next.Seq != 7 || next.Prev != prev.Hash {
		t.Fatalf("append after replay: seq %d prev %s; want 7 after %s", next.Seq, next.Prev, prev.Hash)
	}
	if n, err := db.Audit().Verify(ctx); err != nil || n != 7 {
		t.Fatalf("Verify = %d, %v; want 7", n, err)
	}
}

// A WAL whose records do not continue this database's chain (left over
// beside a restored backup, or damaged) is not applied: the log stays as
// qrngd.db has it and verifies.
func TestAuditWAL_Open_IgnoresForeignChain(t *testing.T) {
	dir := t.TempDir()
	opts := &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params}
	db := openT(t, dir, opts)
	head := appendN(t, db, 2)
	db.Close()
	for _, tc := range []struct {
		name string
		r    store.AuditRecord
	}{
		{"WrongPrev", store.Seal(store.AuditEvent{Type: "x", Subject: "y"}, head.Seq+1, time.Unix(1, 0), store.Hash{9})},
		{"Gap", store.Seal(store.AuditEvent{Type: "x", Subject: "y"}, head.Seq+2, time.Unix(1, 0), head.Hash)},
		{"BadHash", func() store.AuditRecord {
			r := store.Seal(store.AuditEvent{Type: "x", Subject: "y"}, head.Seq+1, time.Unix(1, 0), head.Hash)
			r.Subject = "altered"
			return r
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, AuditWALName), walFrame(t, tc.r), 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if n, err := db.Audit().Verify(context.Background()); err != nil || n != head.Seq {
				t.Fatalf("Verify = %d, %v; want %d", n, err, head.Seq)
			}
		})
	}
}

// Appends are acknowledged from the WAL; List, Verify and Backup see them
// at once (they wait for the applier instead of its delay).
func TestAuditWAL_ReadersSeeAcknowledged(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	ctx := context.Background()
	for i := range 20 {
		last := appendN(t, db, 1)
		recs, err := db.Audit().List(ctx, last.Seq-1, 1)
		if err != nil || len(recs) != 1 || recs[0].Hash != last.Hash {
			t.Fatalf("append %d: List right after = %v, %v", i, recs, err)
		}
	}
	st := db.Stats()
	if st.AuditRecords != 20 || st.AuditCommits == 0 || st.AuditCommits > st.AuditRecords {
		t.Fatalf("stats %+v", st)
	}
}

// The writer empties the WAL once it passes its limit (after the applier
// has copied everything into bbolt), so the file stays bounded; nothing is
// lost across that and a reopen.
func TestAuditWAL_Append_EmptiesFileAtLimit(t *testing.T) {
	testWALLimit = 4 << 10
	t.Cleanup(func() { testWALLimit = 0 })
	dir := t.TempDir()
	opts := &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params}
	db := openT(t, dir, opts)
	path := filepath.Join(dir, AuditWALName)
	var peak int64
	var last store.AuditRecord
	for range 60 {
		last = appendN(t, db, 1)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, fi.Size())
	}
	if peak > 8<<10 {
		t.Fatalf("WAL grew to %d bytes with a limit of %d", peak, testWALLimit)
	}
	if n, err := db.Audit().Verify(context.Background()); err != nil || n != 60 {
		t.Fatalf("Verify = %d, %v; want 60", n, err)
	}
	db.Close()
	db = openT(t, dir, opts)
	if n, err := db.Audit().Verify(context.Background()); err != nil || n != 60 {
		t.Fatalf("Verify after reopen = %d, %v; want 60", n, err)
	}
	if next := appendN(t, db, 1); next.Prev != last.Hash {
		t.Fatalf("chain does not continue after reopen")
	}
}
