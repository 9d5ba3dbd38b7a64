package mem

import (
	"slices"
	"testing"

	"github.com/qrngd/qrngd/store/storetest"
)

func newStores(t *testing.T, env storetest.Env) storetest.Stores {
	t.Helper()
	db, err := New(&Options{Rand: env.Rand, Now: env.Now, Argon2: env.Argon2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return storetest.Stores{
		Users: db.Users(), Tenants: db.Tenants(), APIKeys: db.APIKeys(), Revocations: db.Revocations(),
		Refresh: db.Refresh(), Audit: db.Audit(), Keys: db.Keys(),
		Close: db.Close,
		TamperAudit: func(t *testing.T, how storetest.Tamper, seq uint64) {
			db.mu.Lock()
			defer db.mu.Unlock()
			i := int(seq - 1)
			switch how {
			case storetest.TamperAlter:
				db.audit[i].Subject += "!"
			case storetest.TamperRemove:
				db.audit = slices.Delete(db.audit, i, i+1)
			case storetest.TamperSwap:
				db.audit[i], db.audit[i+1] = db.audit[i+1], db.audit[i]
			}
		},
	}
}

func TestConformance(t *testing.T) { storetest.Run(t, newStores) }

func TestNew_RandRequired(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Fatal("New(nil) succeeded without a random reader")
	}
	if _, err := New(&Options{}); err == nil {
		t.Fatal("New without Rand succeeded")
	}
}
