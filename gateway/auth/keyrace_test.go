package auth

import (
	"context"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/mem"
)

// hookedGetKeys runs *hook (once) inside Get after the store answered:
// whatever the hook does lands between a verifier's lookup and its use.
type hookedGetKeys struct {
	store.SigningKeys
	hook *func()
}

func (k hookedGetKeys) Get(ctx context.Context, kid string) (store.KeyInfo, error) {
	info, err := k.SigningKeys.Get(ctx, kid)
	if h := *k.hook; h != nil {
		*k.hook = nil
		h()
	}
	return info, err
}

// TestKeyring_RotationDuringLookup: a rotation that lands while a
// verification is looking up the key it retires must not leave that
// key cached as active: once its RemoveAfter has passed it no longer
// verifies (as the JWKS no longer lists it), on either verification path.
func TestKeyring_RotationDuringLookup(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now().Truncate(time.Second)}
	db, err := mem.New(&mem.Options{Rand: NewEntropyReader(&fakeEntropy{}, entropy.ModeFull, time.Second), Now: clk.Now, Argon2: &store.TestArgon2Params})
	if err != nil {
		t.Fatal(err)
	}
	var hook func()
	ks := hookedGetKeys{SigningKeys: db.Keys(), hook: &hook}
	k := newKeyring(ks, store.AlgEdDSA, time.Hour, clk.Now)
	old, err := ks.Rotate(ctx, store.AlgEdDSA, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hook = func() {
		if _, err := k.rotate(ctx); err != nil {
			t.Error(err)
		}
	}
	if _, err := k.verifyKey(ctx, old.KID, store.AlgEdDSA); err != nil {
		t.Fatalf("key active when looked up: %v", err)
	}
	if hook != nil {
		t.Fatal("the rotation did not run during the lookup")
	}
	clk.Advance(time.Hour) // the old key's RemoveAfter
	if _, err := db.Keys().Get(ctx, old.KID); err == nil {
		t.Fatal("the store still publishes the retired key")
	}
	if _, err := k.verifyKey(ctx, old.KID, store.AlgEdDSA); err == nil {
		t.Fatal("the retired key still verifies after its RemoveAfter")
	}
}

// TestKeyring_FirstKeyRetiresCachedKey: after a switch of algorithm, the
// old algorithm's key may be looked up (a token of it presented) before
// the first issuance creates the new key, which retires the old one; the
// cached old key must then stop verifying at its RemoveAfter too.
func TestKeyring_FirstKeyRetiresCachedKey(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now().Truncate(time.Second)}
	db, err := mem.New(&mem.Options{Rand: NewEntropyReader(&fakeEntropy{}, entropy.ModeFull, time.Second), Now: clk.Now, Argon2: &store.TestArgon2Params})
	if err != nil {
		t.Fatal(err)
	}
	old, err := db.Keys().Rotate(ctx, store.AlgEdDSA, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	k := newKeyring(db.Keys(), store.AlgES256, time.Hour, clk.Now)
	if _, err := k.verifyKey(ctx, old.KID, store.AlgEdDSA); err != nil {
		t.Fatalf("EdDSA key before the first ES256 issuance: %v", err)
	}
	if _, err := k.current(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour) // the EdDSA key's RemoveAfter
	if _, err := k.verifyKey(ctx, old.KID, store.AlgEdDSA); err == nil {
		t.Fatal("the EdDSA key retired by the switch still verifies after its RemoveAfter")
	}
}
