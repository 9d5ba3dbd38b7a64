package bolt

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/qrngd/qrngd/store"
)

func openKeyDB(t *testing.T) (*DB, store.APIKey, string) {
	t.Helper()
	db := openT(t, t.TempDir(), &Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	ctx := context.Background()
	if err := db.Tenants().Create(ctx, store.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	k, secret, err := db.APIKeys().Create(ctx, store.APIKeySpec{Tenant: "acme", Name: "k", Scopes: []string{"random:read"}})
	if err != nil {
		t.Fatal(err)
	}
	return db, k, secret
}

// A cached key is still checked against the presented secret, and a
// revocation is seen by the very next call.
func TestAPIKeys_Authenticate_Cached(t *testing.T) {
	db, k, secret := openKeyDB(t)
	ctx := context.Background()
	keys := db.APIKeys()
	if _, err := keys.Authenticate(ctx, k.ClientID, secret); err != nil {
		t.Fatal(err)
	}
	if db.keys.get(k.ClientID) == nil {
		t.Fatal("key not cached after a successful authentication")
	}
	for _, tc := range []struct{ name, id, secret string }{
		{"WrongSecret", k.ClientID, secret + "x"},
		{"EmptySecret", k.ClientID, ""},
		{"UnknownClient", "no-such-client", secret},
	} {
		if _, err := keys.Authenticate(ctx, tc.id, tc.secret); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("%s: err = %v, want ErrBadCredentials", tc.name, err)
		}
	}
	if db.keys.get("no-such-client") != nil {
		t.Error("an unknown client id was cached")
	}
	got, err := keys.Authenticate(ctx, k.ClientID, secret)
	if err != nil || got.ClientID != k.ClientID || len(got.Scopes) != 1 {
		t.Fatalf("after failures: %+v, %v", got, err)
	}
	got.Scopes[0] = "mutated" // callers get their own copy
	if err := keys.Revoke(ctx, k.ClientID); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(ctx, k.ClientID, secret); !errors.Is(err, store.ErrRevoked) {
		t.Fatalf("after revoke: err = %v, want ErrRevoked", err)
	}
	if _, err := keys.Authenticate(ctx, k.ClientID, "wrong"); !errors.Is(err, store.ErrBadCredentials) {
		t.Fatalf("revoked key, wrong secret: err = %v, want ErrBadCredentials", err)
	}
	if e := db.keys.get(k.ClientID); e == nil || e.key.Scopes[0] != "random:read" {
		t.Fatal("revoked key not re-cached from the database, or the cache shares scopes with callers")
	}
	db.Close()
	if _, err := keys.Authenticate(ctx, k.ClientID, secret); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("after close: err = %v, want ErrClosed", err)
	}
}

// Authentications racing a revocation: once Revoke has returned, no call
// that starts afterwards succeeds (a lookup that read the database before
// the commit must not leave the unrevoked record in the cache).
func TestAPIKeys_Authenticate_RevokeRace(t *testing.T) {
	db, k, secret := openKeyDB(t)
	ctx := context.Background()
	keys := db.APIKeys()
	var revoked atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				after := revoked.Load()
				_, err := keys.Authenticate(ctx, k.ClientID, secret)
				if after && err == nil {
					errc <- errors.New("authenticated after Revoke returned")
					return
				}
				if after && i > 50 {
					return
				}
				db.keys.invalidate("other") // churn gen so misses keep happening
			}
		}()
	}
	if err := keys.Revoke(ctx, k.ClientID); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestKeyCache_Bounded(t *testing.T) {
	var c keyCache
	for i := range maxCachedKeys * 2 {
		c.put(string(rune('a'+i%26))+itoa(i), &cachedKey{}, c.generation())
		if n := c.len(); n > maxCachedKeys {
			t.Fatalf("cache holds %d entries, bound %d", n, maxCachedKeys)
		}
	}
	g := c.generation()
	c.invalidate("x")
	c.put("stale", &cachedKey{}, g)
	if c.get("stale") != nil {
		t.Fatal("an entry read before a write was cached")
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}
