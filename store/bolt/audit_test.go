package bolt

import (
	"bytes"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

// The committer's sealing (prepared in the caller, finished with seq, time
// and prev) must produce exactly store.Seal's hash and
// store.MarshalAuditRecord's bytes, or Verify and the in-memory twin
// would disagree with what is stored.
func TestAppendReq_Seal_MatchesStore(t *testing.T) {
	prev := store.Hash{1, 2, 3, 31: 0xff}
	for _, tc := range []struct {
		name string
		ev   store.AuditEvent
	}{
		{"NoFields", store.AuditEvent{Type: "token.issue", Subject: "c"}},
		{"EmptyFields", store.AuditEvent{Type: "t", Subject: "", Fields: map[string]string{}}},
		{"Fields", store.AuditEvent{Type: "token.issue", Subject: "client-1", Fields: map[string]string{
			"jti": "x7Hq2ZkP0aW3nV9sLr1tYg", "scope": "random:read sources:read", "pool.policy": "fail-closed",
			"pool.sources": "sim0=healthy,sim1=quarantined", "aud": "https://a.example/v1 https://a.example/mcp"}}},
		{"Escapes", store.AuditEvent{Type: "user.login", Subject: `ä<b>&"\` + "\u2028\x01", Fields: map[string]string{
			"z": "<script>", "a": "tab\there", "é": "\u00e9\U0001F600", "k\"q": "v\\w", "ctl": "\x7f\b\f"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, seq := range []uint64{1, 2, 1 << 40} {
				ts := time.Date(2026, 11, 26, 16, 0, 0, 123456789, time.FixedZone("x", 3600))
				r := &appendReq{pre: prepareEvent(tc.ev)}
				got := r.seal(seq, ts.UnixNano(), prev)
				want := store.Seal(tc.ev, seq, ts, prev)
				wantJSON, err := store.MarshalAuditRecord(want)
				if err != nil {
					t.Fatal(err)
				}
				if r.hash != want.Hash {
					t.Errorf("seq %d: hash %s, store.Seal says %s", seq, r.hash, want.Hash)
				}
				if !bytes.Equal(got, wantJSON) {
					t.Errorf("seq %d: stored form\n got %s\nwant %s", seq, got, wantJSON)
				}
				back, err := store.UnmarshalAuditRecord(got)
				if err != nil || store.ChainHash(back) != r.hash {
					t.Errorf("seq %d: decoded record does not hash to its hash (%v)", seq, err)
				}
			}
		})
	}
}
