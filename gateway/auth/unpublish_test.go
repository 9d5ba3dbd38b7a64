package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

// hookAudit runs *hook (once) inside Append of an event of type typ,
// before the record is written.
type hookAudit struct {
	store.Audit
	typ  string
	hook *func(ctx context.Context)
}

func (a hookAudit) Append(ctx context.Context, e store.AuditEvent) (store.AuditRecord, error) {
	if h := *a.hook; h != nil && e.Type == a.typ {
		*a.hook = nil
		h(ctx)
	}
	return a.Audit.Append(ctx, e)
}

// hookKeys runs the hooks (once each) inside Get after the store answered
// and inside Rotate after it succeeded; unpublishErr fails Unpublish.
type hookKeys struct {
	store.SigningKeys
	get, rotate  *func()
	unpublishErr *error
	currentErr   *error // once
}

func (k hookKeys) Current(ctx context.Context, alg string) (store.SigningKey, error) {
	if err := *k.currentErr; err != nil {
		*k.currentErr = nil
		return store.SigningKey{}, err
	}
	return k.SigningKeys.Current(ctx, alg)
}

func (k hookKeys) Get(ctx context.Context, kid string) (store.KeyInfo, error) {
	info, err := k.SigningKeys.Get(ctx, kid)
	if h := *k.get; h != nil {
		*k.get = nil
		h()
	}
	return info, err
}

func (k hookKeys) Rotate(ctx context.Context, alg string, retire time.Duration) (store.KeyInfo, error) {
	info, err := k.SigningKeys.Rotate(ctx, alg, retire)
	if h := *k.rotate; h != nil && err == nil {
		*k.rotate = nil
		h()
	}
	return info, err
}

func (k hookKeys) Unpublish(ctx context.Context, keep string) ([]string, error) {
	if *k.unpublishErr != nil {
		return nil, *k.unpublishErr
	}
	return k.SigningKeys.Unpublish(ctx, keep)
}

type hookStores struct {
	Stores
	a hookAudit
	k hookKeys
}

func (s hookStores) Audit() store.Audit      { return s.a }
func (s hookStores) Keys() store.SigningKeys { return s.k }

type unpublishHooks struct {
	issue        func(ctx context.Context) // inside the token.issue audit append
	get, rotate  func()
	unpublishErr error
	currentErr   error
}

func newUnpublishHarness(t *testing.T, hk *unpublishHooks) *harness {
	return newHarness(t, &harnessOpts{mutate: func(o *Options) {
		o.Store = hookStores{Stores: o.Store,
			a: hookAudit{Audit: o.Store.Audit(), typ: "token.issue", hook: &hk.issue},
			k: hookKeys{SigningKeys: o.Store.Keys(), get: &hk.get, rotate: &hk.rotate, unpublishErr: &hk.unpublishErr, currentErr: &hk.currentErr}}
	}})
}

// TestSigningKey_UnpublishDuringIssuance: an issuance that took the old
// key before an emergency rotation and finishes after it must not leave
// its token in the verified-token cache: it is refused like every token
// of the unpublished key.
func TestSigningKey_UnpublishDuringIssuance(t *testing.T) {
	hk := &unpublishHooks{}
	h := newUnpublishHarness(t, hk)
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	before := h.clientToken(id, secret, nil) // creates the key
	ran := false
	hk.issue = func(ctx context.Context) { // signed, not yet cached
		ran = true
		if _, _, err := h.svc.RotateSigningKeyUnpublish(ctx, "ops"); err != nil {
			t.Error(err)
		}
	}
	tok := h.clientToken(id, secret, nil)
	if !ran {
		t.Fatal("the rotation did not run during the issuance")
	}
	if kidOf(t, tok) != kidOf(t, before) {
		t.Fatal("the token was not signed by the old key")
	}
	for i := 0; i < 2; i++ {
		if r := h.get(tok); r.status != http.StatusUnauthorized {
			t.Fatalf("token signed by the unpublished key, presented after the rotation: %d %s", r.status, r.body)
		}
	}
	if _, err := h.svc.Verify(context.Background(), tok, ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify = %v, want ErrInvalidToken", err)
	}
}

// TestSigningKey_UnpublishDuringVerification: a verification that looked
// the old key up before an emergency rotation may answer for itself, but
// must not cache the token: presented again it is refused.
func TestSigningKey_UnpublishDuringVerification(t *testing.T) {
	hk := &unpublishHooks{}
	h := newUnpublishHarness(t, hk)
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	old := h.clientToken(id, secret, nil)
	if _, err := h.svc.RotateSigningKey(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	h.svc.cache.clear() // forget the issued token: its next presentation looks the key up
	ran := false
	hk.get = func() { // the old key's info is read, not yet used
		ran = true
		if _, _, err := h.svc.RotateSigningKeyUnpublish(context.Background(), "ops"); err != nil {
			t.Error(err)
		}
	}
	_, _ = h.svc.Verify(context.Background(), old, "") // in flight during the rotation: either answer
	if !ran {
		t.Fatal("the rotation did not run during the verification")
	}
	for i := 0; i < 2; i++ {
		if r := h.get(old); r.status != http.StatusUnauthorized {
			t.Fatalf("token of the unpublished key after the rotation: %d %s", r.status, r.body)
		}
	}
}

// TestSigningKey_UnpublishFails: when Unpublish fails after Rotate
// succeeded, the error says the new key is active, the rotation is still
// audited, and the old keys' tokens keep verifying (nothing was
// unpublished) while new tokens use the new key.
func TestSigningKey_UnpublishFails(t *testing.T) {
	hk := &unpublishHooks{}
	h := newUnpublishHarness(t, hk)
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	old := h.clientToken(id, secret, nil)
	hk.unpublishErr = errors.New("disk full")
	info, kids, err := h.svc.RotateSigningKeyUnpublish(context.Background(), "ops")
	if err == nil || kids != nil || info.KID == "" || kidOf(t, h.clientToken(id, secret, nil)) != info.KID {
		t.Fatalf("RotateSigningKeyUnpublish = %+v %v %v, want the new key and an error", info, kids, err)
	}
	var audited bool
	for _, rec := range h.auditRecords() {
		audited = audited || rec.Type == "signing_key.rotate" && rec.Subject == info.KID && rec.Fields["by"] == "ops"
	}
	if !audited {
		t.Fatal("the rotation that happened is not audited")
	}
	if r := h.get(old); r.status != http.StatusOK {
		t.Fatalf("old token (its key still published): %d", r.status)
	}
}

// TestSigningKey_UnpublishCallerGone: the operator's request ending right
// after the new key is made does not leave the compromised keys published.
func TestSigningKey_UnpublishCallerGone(t *testing.T) {
	hk := &unpublishHooks{}
	h := newUnpublishHarness(t, hk)
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	old := h.clientToken(id, secret, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hk.rotate = cancel
	info, kids, err := h.svc.RotateSigningKeyUnpublish(ctx, "ops")
	if err != nil || !slices.Equal(kids, []string{kidOf(t, old)}) {
		t.Fatalf("RotateSigningKeyUnpublish = %+v %v %v", info, kids, err)
	}
	if r := h.get(old); r.status != http.StatusUnauthorized {
		t.Fatalf("old token: %d", r.status)
	}
}

// TestSigningKey_RotateLoadFails: when the new key cannot be loaded right
// after the store rotated, the keyring must not keep signing with the old
// (now retired, or unpublished) key: the next issuance loads the new one.
func TestSigningKey_RotateLoadFails(t *testing.T) {
	for _, unpublish := range []bool{false, true} {
		hk := &unpublishHooks{}
		h := newUnpublishHarness(t, hk)
		h.addTenant("t1")
		id, secret := h.addKey("t1", ScopeSourcesRead)
		old := h.clientToken(id, secret, nil)
		hk.rotate = func() { hk.currentErr = errors.New("I/O error") }
		var info store.KeyInfo
		var err error
		if unpublish {
			info, _, err = h.svc.RotateSigningKeyUnpublish(context.Background(), "ops")
		} else {
			info, err = h.svc.RotateSigningKey(context.Background(), "ops")
		}
		if err == nil {
			t.Fatal("no error although the new key could not be loaded")
		}
		tok := h.clientToken(id, secret, nil)
		if kidOf(t, tok) == kidOf(t, old) || (info.KID != "" && kidOf(t, tok) != info.KID) {
			t.Fatalf("unpublish=%v: issued with %s after the rotation to %q", unpublish, kidOf(t, tok), info.KID)
		}
		if r := h.get(tok); r.status != http.StatusOK {
			t.Fatalf("unpublish=%v: new token: %d %s", unpublish, r.status, r.body)
		}
		if r := h.get(old); unpublish && r.status != http.StatusUnauthorized {
			t.Fatalf("old token after the emergency rotation: %d", r.status)
		}
	}
}
