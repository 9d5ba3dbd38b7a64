package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/store"
)

// AuditWALName is the audit log's write-ahead file beside FileName.
//
// An audit record is acknowledged once it is in this file and the file is
// fdatasynced (on Linux through AIO, see walSyncer): one write and one
// fdatasync per group of records (the
// appends arriving during one fdatasync form the next group). A background
// applier then copies the records into qrngd.db (the audit bucket and the
// head) in large bbolt transactions; List, Verify, Check and Backup first
// wait until every acknowledged record is there, so qrngd.db alone (and so
// a backup) holds the whole verifiable log. Open copies whatever the file holds beyond
// qrngd.db's head into qrngd.db and empties the file; a torn tail (a group
// whose write did not complete, never acknowledged) fails its checksum and
// is dropped there.
//
// Frame: length u32 BE | CRC-32C of the payload u32 BE | payload, where the
// payload is the record's stored form (store.MarshalAuditRecord).
const AuditWALName = "qrngd.audit-wal"

const (
	walLimit = 16 << 20 // the writer empties the file once it exceeds this
	// maxWALFrame is above any valid record: 64 fields of ≤ 64+4096 bytes,
	// each byte escaped to at most 6 in JSON, is < 1.6 MiB.
	maxWALFrame   = 4 << 20
	maxGroupBytes = 8 << 20                                  // the writer stops gathering at this much record JSON
	maxWALRead    = walLimit + 4*maxWALFrame + maxGroupBytes // the most the file can hold, with margin
	applyMax      = 4096                                     // records per bbolt transaction of the applier
	applyDelay    = 50 * time.Millisecond
)

// testWALLimit replaces walLimit when > 0 (tests only).
var testWALLimit int64

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCommitterStopped fails appends after a write or sync error: the
// file's state past the last synced group is unknown, so nothing more is
// appended until the store is reopened (which replays what is valid).
var errCommitterStopped = errors.New("audit log stopped after an I/O error; reopen the store")

// committer is the audit log's group commit. The writer goroutine takes
// every append waiting (up to max; more gather during its fdatasync),
// seals them onto the chain, writes them in one write, fdatasyncs and
// answers them; the applier goroutine copies acknowledged records into
// bbolt. (A separate syncer goroutine, writing the next group while the
// previous one syncs, measured no faster: the records then wait in the
// syncer's queue instead of the writer's.)
type committer struct {
	db   *DB
	max  int
	wal  *os.File
	sync *walSyncer
	reqs chan *appendReq
	quit chan struct{}
	done chan struct{} // writer and applier returned

	toApply chan *walGroup

	// Owned by the writer.
	walLimit  int64 // walLimit, lower in tests
	seq       uint64
	prev      store.Hash
	walSize   int64
	prevGroup int // records in the last group

	acked   atomic.Uint64 // last seq fdatasynced (acknowledged)
	applied atomic.Uint64 // last seq committed to bbolt
	failed  atomic.Pointer[error]

	mu      sync.Mutex
	applyCh chan struct{} // closed and replaced when applied or failed changes
	hurry   chan struct{} // someone waits for the applier

	commits, records atomic.Uint64 // successful group commits and the records in them
	wall             atomic.Int64  // nanoseconds from a group's write to the end of its fdatasync
}

// walGroup is one write: its requests and their records.
type walGroup struct {
	reqs  []*appendReq
	vals  [][]byte
	last  uint64
	hash  store.Hash
	start time.Time
}

// openWAL opens (creating) dir/AuditWALName, copies every valid record in
// it beyond bbolt's head into bbolt, empties it and returns it with the
// head.
func openWAL(db *DB, dir string) (*os.File, uint64, store.Hash, error) {
	var seq uint64
	var prev store.Hash
	if err := db.db.View(func(tx *bbolt.Tx) error {
		var err error
		seq, prev, err = readHead(tx)
		return err
	}); err != nil {
		return nil, 0, prev, err
	}
	path := filepath.Join(dir, AuditWALName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, prev, fmt.Errorf("audit wal: %w", err)
	}
	fail := func(err error) (*os.File, uint64, store.Hash, error) {
		f.Close()
		return nil, 0, prev, fmt.Errorf("audit wal %s: %w", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxWALRead+1))
	if err != nil {
		return fail(err)
	}
	if len(data) > maxWALRead {
		return fail(fmt.Errorf("%w: larger than %d bytes; the audit log never lets it grow so large", store.ErrInvalid, maxWALRead))
	}
	type kv struct{ k, v []byte }
	var pending []kv
	off := 0
	for off+8 <= len(data) {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n == 0 || n > maxWALFrame || off+8+n > len(data) {
			break
		}
		payload := data[off+8 : off+8+n]
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(data[off+4:]) {
			break
		}
		r, err := store.UnmarshalAuditRecord(payload)
		if err != nil {
			break
		}
		if r.Seq > seq {
			if r.Seq != seq+1 || r.Prev != prev || store.ChainHash(r) != r.Hash {
				break // not the continuation of this database's chain: stale or damaged
			}
			pending = append(pending, kv{seqKey(r.Seq), payload})
			seq, prev = r.Seq, r.Hash
		}
		off += 8 + n
	}
	if off < len(data) {
		db.log.Warn("audit wal: dropped an unacknowledged or stale tail", "path", path, "bytes", len(data)-off)
	}
	if len(pending) > 0 {
		err := db.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bktAudit)
			b.FillPercent = 0.95 // appends in key order: fuller pages, fewer of them
			for _, p := range pending {
				if err := b.Put(p.k, p.v); err != nil {
					return err
				}
			}
			return putHead(tx, seq, prev)
		})
		if err != nil {
			return fail(err)
		}
		db.log.Info("audit wal: recovered records into the database", "records", len(pending), "head", seq)
	}
	if len(data) > 0 {
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if d, err := os.Open(dir); err == nil { // the file's directory entry is durable too
		err = d.Sync()
		d.Close()
		if err != nil {
			return fail(err)
		}
	}
	return f, seq, prev, nil
}

func putHead(tx *bbolt.Tx, seq uint64, h store.Hash) error {
	head := make([]byte, 8, 40)
	binary.BigEndian.PutUint64(head, seq)
	return tx.Bucket(bktMeta).Put(keyAuditHead, append(head, h[:]...))
}

func startCommitter(db *DB, max int, wal *os.File, seq uint64, prev store.Hash) *committer {
	c := &committer{db: db, max: max, wal: wal, sync: newWALSyncer(db.log), reqs: make(chan *appendReq), quit: make(chan struct{}),
		done: make(chan struct{}), toApply: make(chan *walGroup, 1024),
		seq: seq, prev: prev, applyCh: make(chan struct{}), hurry: make(chan struct{}, 1)}
	c.walLimit = walLimit
	if testWALLimit > 0 {
		c.walLimit = testWALLimit
	}
	if ok, why := c.sync.usesAIO(); !ok {
		db.log.Info("audit WAL: syncing with fdatasync, which holds a processor while the disk works", "aio", why.Error())
	}
	c.acked.Store(seq)
	c.applied.Store(seq)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.write() }()
	go func() { defer wg.Done(); c.apply() }()
	go func() { wg.Wait(); close(c.done) }()
	return c
}

// stop answers what is in flight, applies it to bbolt, empties the WAL
// when everything is there, and closes it.
func (c *committer) stop() {
	close(c.quit)
	<-c.done
	if c.failed.Load() == nil && c.applied.Load() == c.seq {
		_ = c.wal.Truncate(0)
	}
	c.sync.close()
	c.wal.Close()
}

func (c *committer) fail(err error) {
	c.failed.CompareAndSwap(nil, &err)
	c.notify()
}

func (c *committer) err() error {
	if p := c.failed.Load(); p != nil {
		return fmt.Errorf("%w: %v", errCommitterStopped, *p)
	}
	return nil
}

func (c *committer) notify() {
	c.mu.Lock()
	close(c.applyCh)
	c.applyCh = make(chan struct{})
	c.mu.Unlock()
}

func (c *committer) waitCh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applyCh
}

// waitApplied returns once bbolt holds every record up to seq.
func (c *committer) waitApplied(ctx context.Context, seq uint64) error {
	for {
		ch := c.waitCh()
		if c.applied.Load() >= seq {
			return nil
		}
		if err := c.err(); err != nil {
			return err
		}
		select {
		case c.hurry <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-c.done:
			if c.applied.Load() >= seq {
				return nil
			}
			return store.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush returns once every record acknowledged so far is in bbolt.
func (c *committer) flush(ctx context.Context) error { return c.waitApplied(ctx, c.acked.Load()) }

func (c *committer) write() {
	defer close(c.toApply)
	batch := make([]*appendReq, 0, c.max)
	var buf []byte
	for {
		select {
		case r := <-c.reqs:
			batch = append(batch[:0], r)
			c.gather(&batch)
			buf = c.writeGroup(batch, buf[:0])
			clear(batch)
		case <-c.quit:
			return
		}
	}
}

func (c *committer) writeGroup(batch []*appendReq, buf []byte) []byte {
	answer := func(err error) {
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
	}
	if err := c.err(); err != nil {
		answer(err)
		return buf
	}
	if c.walSize > c.walLimit { // empty the file once bbolt has all of it
		if err := c.waitApplied(context.Background(), c.seq); err != nil {
			answer(err)
			return buf
		}
		if err := c.wal.Truncate(0); err != nil {
			c.fail(err)
			answer(c.err())
			return buf
		}
		c.walSize = 0
	}
	g := &walGroup{reqs: batch, vals: make([][]byte, len(batch)), start: time.Now()}
	ns := c.db.now().UnixNano() // one time for the group: one commit
	seq, prev := c.seq, c.prev
	for i, r := range batch {
		seq++
		v := r.seal(seq, ns, prev)
		prev = r.hash
		g.vals[i] = v
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(v)))
		buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(v, castagnoli))
		buf = append(buf, v...)
	}
	if _, err := c.wal.Write(buf); err != nil {
		c.fail(err)
		answer(c.err())
		return buf
	}
	c.walSize += int64(len(buf))
	c.seq, c.prev = seq, prev
	g.last, g.hash = seq, prev
	c.syncGroup(g)
	return buf
}

// gather takes every append already waiting (up to c.max records and
// about maxGroupBytes). Callers just answered by the
// previous sync are usually runnable but not yet at the channel, so it
// yields the processor while that brings in more (a few rounds at most).
// Under heavy concurrency (the previous group had groupWindowMin records
// or more) it then waits up to groupWindow for more: each sync also costs
// CPU in the kernel, so fewer, larger groups leave more of it to the
// callers (BENCHMARKS.md, OAuthToken_Loopback32).
// Lightly concurrent callers never wait for it (a lone caller right after
// a burst waits once).
func (c *committer) gather(batch *[]*appendReq) {
	n := 0
	for _, r := range *batch {
		n += len(r.pre.json)
	}
	defer func() { c.prevGroup = len(*batch) }()
	full := func() bool { return len(*batch) >= c.max || n >= maxGroupBytes }
	start := time.Now()
	for yields := 0; !full(); {
		select {
		case r := <-c.reqs:
			*batch = append(*batch, r)
			n += len(r.pre.json)
			continue
		default:
		}
		if yields == maxGatherYields {
			break
		}
		had := len(*batch)
		runtime.Gosched()
		yields++
		select {
		case r := <-c.reqs:
			*batch = append(*batch, r)
			n += len(r.pre.json)
		default:
			if len(*batch) == had {
				yields = maxGatherYields // nobody arrived while we yielded
			}
		}
	}
	if c.prevGroup < groupWindowMin || full() {
		return
	}
	left := groupWindow - time.Since(start)
	if left <= 0 {
		return
	}
	t := time.NewTimer(left)
	defer t.Stop()
	for !full() {
		select {
		case r := <-c.reqs:
			*batch = append(*batch, r)
			n += len(r.pre.json)
		case <-t.C:
			return
		case <-c.quit:
			return
		}
	}
}

const (
	maxGatherYields = 8
	groupWindow     = 300 * time.Microsecond
	groupWindowMin  = 8
)

// syncGroup fdatasyncs, answers g's appends and hands its records to the
// applier.
func (c *committer) syncGroup(g *walGroup) {
	err := c.err()
	if err == nil {
		if serr := c.sync.sync(c.wal); serr != nil {
			c.fail(serr)
			err = c.err()
		}
	}
	if err == nil {
		c.acked.Store(g.last)
		c.commits.Add(1)
		c.records.Add(uint64(len(g.reqs)))
		c.wall.Add(int64(time.Since(g.start)))
	}
	for _, r := range g.reqs {
		r.err = err
		close(r.done)
	}
	if err == nil {
		g.reqs = nil
		c.toApply <- g
	}
}

// apply copies synced records into bbolt. It is off the acknowledgement
// path, so it lets records gather (up to applyMax records or applyDelay)
// to spread each transaction's fixed cost, unless a reader or the writer
// is waiting for them (hurry).
func (c *committer) apply() {
	var groups []*walGroup
	timer := time.NewTimer(applyDelay)
	timer.Stop()
	for g := range c.toApply {
		groups = append(groups[:0], g)
		n := len(g.vals)
		timer.Reset(applyDelay)
	collect:
		for n < applyMax {
			select {
			case g, ok := <-c.toApply:
				if !ok {
					break collect
				}
				groups = append(groups, g)
				n += len(g.vals)
			case <-c.hurry:
				for n < applyMax {
					select {
					case g, ok := <-c.toApply:
						if !ok {
							break collect
						}
						groups = append(groups, g)
						n += len(g.vals)
						continue
					default:
					}
					break collect
				}
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		if c.err() != nil {
			continue // the WAL keeps them; Open replays it
		}
		last := groups[len(groups)-1]
		err := c.db.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bktAudit)
			b.FillPercent = 0.95 // appends in key order: fuller pages, fewer of them
			for _, g := range groups {
				for i, v := range g.vals {
					if err := b.Put(seqKey(g.last-uint64(len(g.vals)-1-i)), v); err != nil {
						return err
					}
				}
			}
			return putHead(tx, last.last, last.hash)
		})
		if err != nil {
			c.db.log.Error("audit: copying records into the database failed; they stay in the WAL", "err", err)
			c.fail(err)
			continue
		}
		c.applied.Store(last.last)
		c.notify()
		clear(groups)
	}
}
