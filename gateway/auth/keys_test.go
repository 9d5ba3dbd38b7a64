package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	hdr, _, _ := strings.Cut(tok, ".")
	b, err := b64.DecodeString(hdr)
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(b), `"kid":"`)
	kid, _, _ := strings.Cut(after, `"`)
	return kid
}

func jwksKids(t *testing.T, h *harness) []string {
	t.Helper()
	set, err := h.svc.keys.set(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// TestSigningKey_ScheduledRotation: with KeyRotation set, the first
// issuance after the active key reached that age signs with a new key,
// once; the rotation is audited; the old key stays in the JWKS until its
// tokens have expired and its tokens verify meanwhile.
func TestSigningKey_ScheduledRotation(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.KeyRotation = 2 * time.Hour }})
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	first := h.clientToken(id, secret, nil)
	h.clk.Advance(2*time.Hour - time.Minute)
	old := h.clientToken(id, secret, nil) // the key is not yet 2 h old
	if kidOf(t, old) != kidOf(t, first) {
		t.Fatal("rotated before the key was KeyRotation old")
	}
	h.clk.Advance(time.Minute)
	rotated := h.clientToken(id, secret, nil)
	if kidOf(t, rotated) == kidOf(t, first) {
		t.Fatal("not rotated once the key was KeyRotation old")
	}
	if again := h.clientToken(id, secret, nil); kidOf(t, again) != kidOf(t, rotated) {
		t.Fatal("rotated twice")
	}
	if kids := jwksKids(t, h); len(kids) != 2 {
		t.Fatalf("JWKS kids %v, want the old and the new key", kids)
	}
	if r := h.get(old); r.status != http.StatusOK {
		t.Fatalf("token of the retired key: %d %s", r.status, r.body)
	}
	var audited int
	for _, rec := range h.auditRecords() {
		if rec.Type == "signing_key.rotate" && rec.Subject == kidOf(t, rotated) && rec.Fields["by"] == "schedule" {
			audited++
		}
	}
	if audited != 1 {
		t.Fatalf("%d signing_key.rotate records by schedule, want 1", audited)
	}
	h.clk.Advance(h.svc.opts.KeyRetire)
	if kids := jwksKids(t, h); len(kids) != 1 || kids[0] != kidOf(t, rotated) {
		t.Fatalf("JWKS kids %v after the old key's tokens expired, want only %s", kids, kidOf(t, rotated))
	}
}

// failingKeys fails Rotate while fail is set.
type failingKeys struct {
	store.SigningKeys
	fail *bool
}

func (f failingKeys) Rotate(ctx context.Context, alg string, retire time.Duration) (store.KeyInfo, error) {
	if *f.fail {
		return store.KeyInfo{}, errors.New("disk full")
	}
	return f.SigningKeys.Rotate(ctx, alg, retire)
}

type failingKeyStores struct {
	Stores
	k failingKeys
}

func (f failingKeyStores) Keys() store.SigningKeys { return f.k }

// TestSigningKey_ScheduledRotationFails: a failing rotation does not stop
// issuance (the current key still signs) and is retried a minute later.
func TestSigningKey_ScheduledRotationFails(t *testing.T) {
	fail := false
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) {
		o.KeyRotation = time.Hour
		o.Store = failingKeyStores{Stores: o.Store, k: failingKeys{SigningKeys: o.Store.Keys(), fail: &fail}}
	}})
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	first := h.clientToken(id, secret, nil)
	fail = true
	h.clk.Advance(time.Hour)
	if tok := h.clientToken(id, secret, nil); kidOf(t, tok) != kidOf(t, first) {
		t.Fatal("a new key although rotation failed")
	}
	fail = false
	h.clk.Advance(30 * time.Second)
	if tok := h.clientToken(id, secret, nil); kidOf(t, tok) != kidOf(t, first) {
		t.Fatal("retried within a minute")
	}
	h.clk.Advance(30 * time.Second)
	if tok := h.clientToken(id, secret, nil); kidOf(t, tok) == kidOf(t, first) {
		t.Fatal("not retried after a minute")
	}
}

// TestSigningKey_AlgSwitchRetiresOldKey: a Service configured with the
// other algorithm on the same store signs with a new key of that algorithm
// and the old key is retired: published (its tokens verify) until they
// have expired, then gone from the JWKS.
func TestSigningKey_AlgSwitchRetiresOldKey(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	old := h.clientToken(id, secret, nil)
	o := h.svc.opts
	o.Alg = store.AlgES256
	svc, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc // JWKS and verification of the harness now go through svc
	k, err := svc.signingKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k.Alg != store.AlgES256 {
		t.Fatalf("signing with %s", k.Alg)
	}
	if kids := jwksKids(t, h); len(kids) != 2 {
		t.Fatalf("JWKS kids %v, want the retired EdDSA key and the ES256 key", kids)
	}
	if _, err := svc.Verify(context.Background(), old, h.base); err != nil {
		t.Fatalf("token of the retired EdDSA key: %v", err)
	}
	h.clk.Advance(o.KeyRetire)
	if kids := jwksKids(t, h); len(kids) != 1 || kids[0] != k.KID {
		t.Fatalf("JWKS kids %v after the EdDSA tokens expired, want only %s", kids, k.KID)
	}
}

// TestSigningKey_UnpublishPrevious: an emergency rotation refuses at once
// every token signed by the previous keys — also one in the verified-token
// cache (cached at issuance) — drops them from the JWKS, audits the kids,
// and the new key signs tokens that verify.
func TestSigningKey_UnpublishPrevious(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	older := h.clientToken(id, secret, nil)
	if _, err := h.svc.RotateSigningKey(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	old := h.clientToken(id, secret, nil)
	if r := h.get(old); r.status != http.StatusOK {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	info, kids, err := h.svc.RotateSigningKeyUnpublish(context.Background(), "ops")
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 2 || !slices.Contains(kids, kidOf(t, older)) || !slices.Contains(kids, kidOf(t, old)) {
		t.Fatalf("unpublished %v, want the kids of both earlier keys", kids)
	}
	for _, tok := range []string{older, old} {
		if r := h.get(tok); r.status != http.StatusUnauthorized {
			t.Fatalf("token of an unpublished key: %d %s", r.status, r.body)
		}
	}
	if got := jwksKids(t, h); len(got) != 1 || got[0] != info.KID {
		t.Fatalf("JWKS %v, want only %s", got, info.KID)
	}
	fresh := h.clientToken(id, secret, nil)
	if kidOf(t, fresh) != info.KID {
		t.Fatal("the new key does not sign")
	}
	if r := h.get(fresh); r.status != http.StatusOK {
		t.Fatalf("new token: %d %s", r.status, r.body)
	}
	var audited bool
	for _, rec := range h.auditRecords() {
		if rec.Type == "signing_key.rotate" && rec.Subject == info.KID && rec.Fields["by"] == "ops" && rec.Fields["unpublished"] == strings.Join(kids, " ") {
			audited = true
		}
	}
	if !audited {
		t.Fatal("the emergency rotation is not in the audit log with its unpublished kids")
	}
}
