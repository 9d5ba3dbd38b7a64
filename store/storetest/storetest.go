// Package storetest is the conformance suite every implementation of the
// store interfaces passes (store/bolt and store/mem run it).
package storetest

import (
	"crypto/rand"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

// Env is what the suite hands the factory: the implementation must use
// exactly this random reader, clock and argon2 parameters.
type Env struct {
	Rand   io.Reader
	Now    func() time.Time
	Argon2 *store.Argon2Params
}

// Tamper names a way to damage the audit log behind the store's back.
type Tamper int

const (
	// TamperAlter changes the subject of record seq without re-hashing.
	TamperAlter Tamper = iota
	// TamperRemove deletes record seq.
	TamperRemove
	// TamperSwap exchanges records seq and seq+1.
	TamperSwap
)

// Stores is one set of stores under test.
type Stores struct {
	Users       store.Users
	Tenants     store.Tenants
	APIKeys     store.APIKeys
	Revocations store.Revocations
	Refresh     store.RefreshFamilies
	Audit       store.Audit
	Keys        store.SigningKeys

	// Close closes the underlying database.
	Close func() error
	// Reopen closes and reopens the same durable state with the same Env;
	// nil for implementations that keep nothing.
	Reopen func(t *testing.T) Stores
	// TamperAudit damages the stored audit log directly (raw bucket or
	// slice), bypassing the store's API.
	TamperAudit func(t *testing.T, how Tamper, seq uint64)
}

// Factory makes fresh, empty Stores for one test; it registers its own
// cleanup.
type Factory func(t *testing.T, env Env) Stores

// Clock is a settable clock for the suite.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the current fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Epoch is where every suite clock starts.
var Epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	Stores
	clock   *Clock
	env     Env
	factory Factory
}

func setup(t *testing.T, f Factory) *fixture {
	t.Helper()
	c := NewClock(Epoch)
	p := store.TestArgon2Params
	env := Env{Rand: rand.Reader, Now: c.Now, Argon2: &p}
	return &fixture{Stores: f(t, env), clock: c, env: env, factory: f}
}

// Run runs the whole suite.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"Users_CRUD", testUsersCRUD},
		{"Users_Authenticate", testUsersAuthenticate},
		{"Users_InvalidUsername", testUsersInvalid},
		{"Tenants", testTenants},
		{"APIKeys", testAPIKeys},
		{"Revocations", testRevocations},
		{"Revocations_Prune", testRevocationsPrune},
		{"Revocations_Concurrent32", testRevocationsConcurrent},
		{"Revocations_Reopen", testRevocationsReopen},
		{"Refresh_Rotate", testRefreshRotate},
		{"Refresh_Reuse", testRefreshReuse},
		{"Refresh_ExpireRevokePrune", testRefreshExpire},
		{"Refresh_RevokeSubject", testRefreshRevokeSubject},
		{"Audit_AppendList", testAuditAppendList},
		{"Audit_Concurrent32", testAuditConcurrent},
		{"Audit_Tamper", testAuditTamper},
		{"Keys_Rotation", testKeysRotation},
		{"Keys_Unpublish", testKeysUnpublish},
		{"Keys_Redaction", testKeysRedaction},
		{"Closed", testClosed},
		{"Canceled", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, setup(t, f)) })
	}
}
