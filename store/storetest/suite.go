package storetest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testUsersCRUD(t *testing.T, f *fixture) {
	ctx := context.Background()
	noErr(t, f.Tenants.Create(ctx, store.Tenant{ID: "acme"}), "create tenant")
	u := store.User{Username: "bob", Tenant: "acme", Scopes: []string{"random:read"}}
	noErr(t, f.Users.Create(ctx, u, "pw-bob-123"), "create bob")
	noErr(t, f.Users.Create(ctx, store.User{Username: "alice"}, "pw-alice"), "create alice")
	wantErr(t, f.Users.Create(ctx, store.User{Username: "bob"}, "x"), store.ErrExists, "create bob twice")
	wantErr(t, f.Users.Create(ctx, store.User{Username: "carol", Tenant: "nope"}, "x"), store.ErrNotFound, "unknown tenant")
	wantErr(t, f.Users.Create(ctx, store.User{Username: "dave"}, ""), store.ErrInvalid, "empty password")
	wantErr(t, f.Users.Create(ctx, store.User{Username: "dave"}, strings.Repeat("x", store.MaxPasswordBytes+1)), store.ErrInvalid, "long password")
	wantErr(t, f.Users.Create(ctx, store.User{Username: "dave", Scopes: []string{"a b"}}, "x"), store.ErrInvalid, "bad scope")

	got, err := f.Users.Get(ctx, "bob")
	noErr(t, err, "get bob")
	if got.Username != "bob" || got.Tenant != "acme" || !slices.Equal(got.Scopes, u.Scopes) || got.Disabled || !got.Created.Equal(Epoch) {
		t.Fatalf("get bob = %+v", got)
	}
	_, err = f.Users.Get(ctx, "zed")
	wantErr(t, err, store.ErrNotFound, "get unknown")

	list, err := f.Users.List(ctx)
	noErr(t, err, "list")
	if len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" {
		t.Fatalf("list = %+v", list)
	}

	f.clock.Advance(time.Minute)
	noErr(t, f.Users.Update(ctx, store.User{Username: "bob", Scopes: []string{"a", "b"}, Disabled: true}), "update")
	got, _ = f.Users.Get(ctx, "bob")
	if got.Tenant != "" || !slices.Equal(got.Scopes, []string{"a", "b"}) || !got.Disabled || !got.Created.Equal(Epoch) || !got.Updated.Equal(Epoch.Add(time.Minute)) {
		t.Fatalf("after update = %+v", got)
	}
	wantErr(t, f.Users.Update(ctx, store.User{Username: "zed"}), store.ErrNotFound, "update unknown")
	wantErr(t, f.Users.Update(ctx, store.User{Username: "bob", Tenant: "nope"}), store.ErrNotFound, "update unknown tenant")
	wantErr(t, f.Users.SetPassword(ctx, "zed", "pw"), store.ErrNotFound, "set password unknown")

	// Returned slices are copies.
	got.Scopes[0] = "mutated"
	again, _ := f.Users.Get(ctx, "bob")
	if again.Scopes[0] != "a" {
		t.Fatal("Get returned a slice shared with the store")
	}

	noErr(t, f.Users.Delete(ctx, "bob"), "delete")
	wantErr(t, f.Users.Delete(ctx, "bob"), store.ErrNotFound, "delete twice")
	_, err = f.Users.Get(ctx, "bob")
	wantErr(t, err, store.ErrNotFound, "get deleted")
}

func testUsersAuthenticate(t *testing.T, f *fixture) {
	ctx := context.Background()
	noErr(t, f.Users.Create(ctx, store.User{Username: "Jürgen", Scopes: []string{"s"}}, "correct horse"), "create")
	u, err := f.Users.Authenticate(ctx, "Jürgen", "correct horse")
	noErr(t, err, "authenticate")
	if u.Username != "Jürgen" || !slices.Equal(u.Scopes, []string{"s"}) {
		t.Fatalf("authenticate = %+v", u)
	}
	_, err = f.Users.Authenticate(ctx, "Jürgen", "wrong")
	wantErr(t, err, store.ErrBadCredentials, "wrong password")
	_, err = f.Users.Authenticate(ctx, "nobody", "correct horse")
	wantErr(t, err, store.ErrBadCredentials, "unknown user")
	_, err = f.Users.Authenticate(ctx, "Jürgen", strings.Repeat("x", 5000))
	wantErr(t, err, store.ErrBadCredentials, "oversized password")

	if u.PasswordChanged != (time.Time{}) {
		t.Fatalf("PasswordChanged %v set without SetPassword", u.PasswordChanged)
	}
	f.clock.Advance(time.Second)
	noErr(t, f.Users.SetPassword(ctx, "Jürgen", "battery staple"), "set password")
	u, err = f.Users.Get(ctx, "Jürgen")
	noErr(t, err, "get")
	if !u.PasswordChanged.Equal(f.clock.Now().UTC()) {
		t.Fatalf("PasswordChanged = %v, want the store clock %v", u.PasswordChanged, f.clock.Now())
	}
	f.clock.Advance(time.Second)
	noErr(t, f.Users.Update(ctx, store.User{Username: "Jürgen", Scopes: []string{"s"}, PasswordChanged: time.Time{}}), "update")
	if u2, _ := f.Users.Get(ctx, "Jürgen"); !u2.PasswordChanged.Equal(u.PasswordChanged) {
		t.Fatalf("Update changed PasswordChanged: %v, was %v", u2.PasswordChanged, u.PasswordChanged)
	}
	_, err = f.Users.Authenticate(ctx, "Jürgen", "correct horse")
	wantErr(t, err, store.ErrBadCredentials, "old password")
	_, err = f.Users.Authenticate(ctx, "Jürgen", "battery staple")
	noErr(t, err, "new password")

	noErr(t, f.Users.Update(ctx, store.User{Username: "Jürgen", Disabled: true}), "disable")
	_, err = f.Users.Authenticate(ctx, "Jürgen", "battery staple")
	wantErr(t, err, store.ErrDisabled, "disabled, right password")
	_, err = f.Users.Authenticate(ctx, "Jürgen", "wrong")
	wantErr(t, err, store.ErrBadCredentials, "disabled, wrong password")
}

func testUsersInvalid(t *testing.T, f *fixture) {
	ctx := context.Background()
	bad := map[string]string{
		"empty":           "",
		"too long":        strings.Repeat("a", store.MaxUsernameBytes+1),
		"NUL":             "a\x00b",
		"escape":          "\x1b[31mroot",
		"tab":             "a\tb",
		"space":           "a b",
		"no-break space":  "a\u00a0b",
		"zero width":      "ad\u200bmin",
		"bidi override":   "admin\u202egnp",
		"BOM":             "\ufeffadmin",
		"invalid UTF-8":   "a\xffb",
		"not NFC":         "e\u0301",
		"private use":     "a\ue000",
		"line separator":  "a\u2028b",
		"C1 control":      "a\u0085b",
		"DEL":             "a\x7fb",
		"unassigned rune": "a\U000E0080",
		"leading mark":    "\u0301a",
	}
	for name, u := range bad {
		t.Run(name, func(t *testing.T) {
			wantErr(t, f.Users.Create(ctx, store.User{Username: u}, "pw"), store.ErrInvalid, fmt.Sprintf("username %q", u))
		})
	}
	for _, u := range []string{"alice", "Jürgen", "用户", "o'brien", "a.b-c_d@example.org", "é", strings.Repeat("ü", 32)} {
		noErr(t, f.Users.Create(ctx, store.User{Username: u}, "pw"), fmt.Sprintf("username %q", u))
	}
}

func testTenants(t *testing.T, f *fixture) {
	ctx := context.Background()
	noErr(t, f.Tenants.Create(ctx, store.Tenant{ID: "zeta", Name: "Zeta AG"}), "create zeta")
	noErr(t, f.Tenants.Create(ctx, store.Tenant{ID: "acme"}), "create acme")
	wantErr(t, f.Tenants.Create(ctx, store.Tenant{ID: "acme"}), store.ErrExists, "create twice")
	for _, id := range []string{"", "Acme", "-x", "a/b", "a b", "a'; DROP", strings.Repeat("a", 65)} {
		wantErr(t, f.Tenants.Create(ctx, store.Tenant{ID: id}), store.ErrInvalid, fmt.Sprintf("tenant %q", id))
	}
	wantErr(t, f.Tenants.Create(ctx, store.Tenant{ID: "ok", Name: "a\nb"}), store.ErrInvalid, "control char in name")
	got, err := f.Tenants.Get(ctx, "zeta")
	noErr(t, err, "get")
	if got.Name != "Zeta AG" || !got.Created.Equal(Epoch) {
		t.Fatalf("get = %+v", got)
	}
	_, err = f.Tenants.Get(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "get unknown")
	list, err := f.Tenants.List(ctx)
	noErr(t, err, "list")
	if len(list) != 2 || list[0].ID != "acme" || list[1].ID != "zeta" {
		t.Fatalf("list = %+v", list)
	}
}

func testAPIKeys(t *testing.T, f *fixture) {
	ctx := context.Background()
	_, _, err := f.APIKeys.Create(ctx, store.APIKeySpec{Tenant: "acme"})
	wantErr(t, err, store.ErrNotFound, "unknown tenant")
	noErr(t, f.Tenants.Create(ctx, store.Tenant{ID: "acme"}), "tenant acme")
	noErr(t, f.Tenants.Create(ctx, store.Tenant{ID: "globex"}), "tenant globex")
	_, _, err = f.APIKeys.Create(ctx, store.APIKeySpec{Tenant: "acme", Scopes: []string{"bad\"scope"}})
	wantErr(t, err, store.ErrInvalid, "bad scope")

	k1, s1, err := f.APIKeys.Create(ctx, store.APIKeySpec{Tenant: "acme", Name: "ci", Scopes: []string{"random:read"}})
	noErr(t, err, "create k1")
	k2, s2, err := f.APIKeys.Create(ctx, store.APIKeySpec{Tenant: "acme", Scopes: []string{"tokens:admin"}})
	noErr(t, err, "create k2")
	k3, _, err := f.APIKeys.Create(ctx, store.APIKeySpec{Tenant: "globex"})
	noErr(t, err, "create k3")
	if !strings.HasPrefix(k1.ClientID, store.ClientIDPrefix) || k1.ClientID == k2.ClientID {
		t.Fatalf("client ids %q %q", k1.ClientID, k2.ClientID)
	}
	if len(s1) != 43 || s1 == s2 { // 256 bits, unpadded base64url
		t.Fatalf("secrets %q %q", s1, s2)
	}
	if k1.Tenant != "acme" || k1.Name != "ci" || !slices.Equal(k1.Scopes, []string{"random:read"}) || k1.Revoked || !k1.Created.Equal(Epoch) {
		t.Fatalf("k1 = %+v", k1)
	}
	got, err := f.APIKeys.Get(ctx, k1.ClientID)
	noErr(t, err, "get")
	if got.ClientID != k1.ClientID || got.Name != "ci" {
		t.Fatalf("get = %+v", got)
	}
	if b, _ := json.Marshal(got); strings.Contains(string(b), s1) {
		t.Fatal("secret visible in the stored key")
	}
	_, err = f.APIKeys.Get(ctx, "qk_nope")
	wantErr(t, err, store.ErrNotFound, "get unknown")

	list, err := f.APIKeys.List(ctx, "acme")
	noErr(t, err, "list acme")
	ids := []string{k1.ClientID, k2.ClientID}
	slices.Sort(ids)
	if len(list) != 2 || list[0].ClientID != ids[0] || list[1].ClientID != ids[1] {
		t.Fatalf("list acme = %+v", list)
	}
	all, _ := f.APIKeys.List(ctx, "")
	if len(all) != 3 {
		t.Fatalf("list all = %d keys", len(all))
	}
	none, _ := f.APIKeys.List(ctx, "initech")
	if len(none) != 0 {
		t.Fatalf("list unknown tenant = %+v", none)
	}
	_ = k3

	a, err := f.APIKeys.Authenticate(ctx, k1.ClientID, s1)
	noErr(t, err, "authenticate")
	if a.ClientID != k1.ClientID || a.Tenant != "acme" {
		t.Fatalf("authenticate = %+v", a)
	}
	for name, c := range map[string][2]string{
		"wrong secret":     {k1.ClientID, s2},
		"other key secret": {k2.ClientID, s1},
		"unknown client":   {"qk_nope", s1},
		"empty secret":     {k1.ClientID, ""},
		"huge secret":      {k1.ClientID, strings.Repeat(s1, 100)},
		"truncated secret": {k1.ClientID, s1[:42]},
	} {
		_, err := f.APIKeys.Authenticate(ctx, c[0], c[1])
		wantErr(t, err, store.ErrBadCredentials, name)
	}
	f.clock.Advance(time.Hour)
	noErr(t, f.APIKeys.Revoke(ctx, k1.ClientID), "revoke")
	noErr(t, f.APIKeys.Revoke(ctx, k1.ClientID), "revoke twice")
	wantErr(t, f.APIKeys.Revoke(ctx, "qk_nope"), store.ErrNotFound, "revoke unknown")
	_, err = f.APIKeys.Authenticate(ctx, k1.ClientID, s1)
	wantErr(t, err, store.ErrRevoked, "authenticate revoked")
	_, err = f.APIKeys.Authenticate(ctx, k1.ClientID, s2)
	wantErr(t, err, store.ErrBadCredentials, "revoked, wrong secret")
	got, _ = f.APIKeys.Get(ctx, k1.ClientID)
	if !got.Revoked || !got.RevokedAt.Equal(Epoch.Add(time.Hour)) {
		t.Fatalf("revoked key = %+v", got)
	}
	_, err = f.APIKeys.Authenticate(ctx, k2.ClientID, s2)
	noErr(t, err, "other key still works")
}

func testRevocations(t *testing.T, f *fixture) {
	ctx := context.Background()
	exp := Epoch.Add(time.Hour)
	noErr(t, f.Revocations.Revoke(ctx, "jti-1", exp), "revoke")
	noErr(t, f.Revocations.Revoke(ctx, "jti-1", exp), "revoke twice")
	ok, err := f.Revocations.IsRevoked(ctx, "jti-1")
	noErr(t, err, "is revoked")
	if !ok {
		t.Fatal("jti-1 not revoked")
	}
	if ok, _ := f.Revocations.IsRevoked(ctx, "jti-2"); ok {
		t.Fatal("jti-2 revoked")
	}
	if n, _ := f.Revocations.Len(ctx); n != 1 {
		t.Fatalf("len = %d", n)
	}
	for name, c := range map[string]struct {
		jti string
		exp time.Time
	}{
		"empty jti": {"", exp},
		"long jti":  {strings.Repeat("a", store.MaxIDBytes+1), exp},
		"space":     {"a b", exp},
		"zero exp":  {"j", time.Time{}},
		"1970":      {"j", time.Unix(0, 0)},
		"control":   {"a\x00", exp},
		"non-ascii": {"jé", exp},
	} {
		wantErr(t, f.Revocations.Revoke(ctx, c.jti, c.exp), store.ErrInvalid, name)
	}
}

func testRevocationsPrune(t *testing.T, f *fixture) {
	ctx := context.Background()
	for i := range 10 {
		noErr(t, f.Revocations.Revoke(ctx, fmt.Sprintf("j%d", i), Epoch.Add(time.Duration(i+1)*time.Minute)), "revoke")
	}
	// j3 revoked again with a later expiry survives its first expiry.
	noErr(t, f.Revocations.Revoke(ctx, "j3", Epoch.Add(time.Hour)), "re-revoke j3")
	n, err := f.Revocations.Prune(ctx, Epoch.Add(5*time.Minute))
	noErr(t, err, "prune")
	if n < 4 || n > 5 { // j0..j4 expired; j3 may count once (mem) or as its old entry (bolt)
		t.Fatalf("pruned %d", n)
	}
	for i := range 10 {
		ok, _ := f.Revocations.IsRevoked(ctx, fmt.Sprintf("j%d", i))
		want := i >= 5 || i == 3
		if ok != want {
			t.Fatalf("after prune j%d revoked = %v, want %v", i, ok, want)
		}
	}
	if l, _ := f.Revocations.Len(ctx); l != 6 {
		t.Fatalf("len = %d, want 6", l)
	}
	if n, _ := f.Revocations.Prune(ctx, Epoch.Add(5*time.Minute)); n != 0 {
		t.Fatalf("second prune removed %d", n)
	}
	n, _ = f.Revocations.Prune(ctx, Epoch.Add(24*time.Hour))
	if n != 6 {
		t.Fatalf("final prune removed %d, want 6", n)
	}
	if l, _ := f.Revocations.Len(ctx); l != 0 {
		t.Fatalf("len after final prune = %d", l)
	}
	if f.Reopen != nil {
		s := f.Reopen(t)
		if l, _ := s.Revocations.Len(ctx); l != 0 {
			t.Fatalf("len after reopen = %d", l)
		}
	}
}

func testRevocationsConcurrent(t *testing.T, f *fixture) {
	ctx := context.Background()
	const workers, each = 32, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- f.Revocations.Revoke(ctx, fmt.Sprintf("w%d-%d", w, i), Epoch.Add(time.Hour))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		noErr(t, err, "concurrent revoke")
	}
	check := func(r store.Revocations, when string) {
		t.Helper()
		if n, _ := r.Len(ctx); n != workers*each {
			t.Fatalf("%s: len = %d, want %d", when, n, workers*each)
		}
		for w := range workers {
			for i := range each {
				if ok, err := r.IsRevoked(ctx, fmt.Sprintf("w%d-%d", w, i)); !ok || err != nil {
					t.Fatalf("%s: w%d-%d not revoked (%v)", when, w, i, err)
				}
			}
		}
	}
	check(f.Revocations, "before reopen")
	if f.Reopen != nil {
		check(f.Reopen(t).Revocations, "after reopen")
	}
}

func testRevocationsReopen(t *testing.T, f *fixture) {
	if f.Reopen == nil {
		t.Skip("implementation is not durable")
	}
	ctx := context.Background()
	noErr(t, f.Revocations.Revoke(ctx, "old", Epoch.Add(time.Minute)), "revoke old")
	noErr(t, f.Revocations.Revoke(ctx, "new", Epoch.Add(time.Hour)), "revoke new")
	noErr(t, f.Revocations.Revoke(ctx, "twice", Epoch.Add(time.Minute)), "revoke twice 1")
	noErr(t, f.Revocations.Revoke(ctx, "twice", Epoch.Add(2*time.Hour)), "revoke twice 2")
	s := f.Reopen(t)
	for _, j := range []string{"old", "new", "twice"} {
		if ok, _ := s.Revocations.IsRevoked(ctx, j); !ok {
			t.Fatalf("%s lost across reopen", j)
		}
	}
	if n, _ := s.Revocations.Prune(ctx, Epoch.Add(30*time.Minute)); n != 2 {
		t.Fatalf("prune after reopen removed %d, want 2 (old and twice's first entry)", n)
	}
	s = s.Reopen(t)
	if ok, _ := s.Revocations.IsRevoked(ctx, "old"); ok {
		t.Fatal("pruned entry back after reopen")
	}
	if ok, _ := s.Revocations.IsRevoked(ctx, "twice"); !ok {
		t.Fatal("later revocation of the same jti lost by prune")
	}
	if n, _ := s.Revocations.Len(ctx); n != 2 {
		t.Fatalf("len = %d, want 2", n)
	}
}

func family(id, tok string) store.RefreshFamily {
	return store.RefreshFamily{ID: id, Subject: "alice", Scopes: []string{"random:read"}, Current: tok, ExpiresAt: Epoch.Add(24 * time.Hour)}
}

func testRefreshRotate(t *testing.T, f *fixture) {
	ctx := context.Background()
	noErr(t, f.Refresh.Create(ctx, family("fam1", "t0")), "create")
	wantErr(t, f.Refresh.Create(ctx, family("fam1", "tX")), store.ErrExists, "duplicate family")
	wantErr(t, f.Refresh.Create(ctx, family("fam2", "t0")), store.ErrExists, "duplicate token")
	wantErr(t, f.Refresh.Create(ctx, store.RefreshFamily{ID: "f", Current: "t", Subject: "s"}), store.ErrInvalid, "no expiry")
	wantErr(t, f.Refresh.Create(ctx, family("", "t")), store.ErrInvalid, "empty id")

	g, err := f.Refresh.Rotate(ctx, "t0", "t1")
	noErr(t, err, "rotate 1")
	if g.Current != "t1" || g.Generation != 1 || g.Revoked || g.Subject != "alice" || !g.Created.Equal(Epoch) {
		t.Fatalf("after rotate = %+v", g)
	}
	g, err = f.Refresh.Rotate(ctx, "t1", "t2")
	noErr(t, err, "rotate 2")
	if g.Current != "t2" || g.Generation != 2 {
		t.Fatalf("after rotate 2 = %+v", g)
	}
	noErr(t, f.Refresh.Create(ctx, family("fam2", "u0")), "create fam2")
	_, err = f.Refresh.Rotate(ctx, "t2", "u0")
	wantErr(t, err, store.ErrExists, "rotate onto a known token")
	_, err = f.Refresh.Rotate(ctx, "nope", "t3")
	wantErr(t, err, store.ErrNotFound, "rotate unknown")
	for _, id := range []string{"t0", "t1", "t2"} {
		l, err := f.Refresh.Lookup(ctx, id)
		noErr(t, err, "lookup "+id)
		if l.ID != "fam1" || l.Current != "t2" {
			t.Fatalf("lookup %s = %+v", id, l)
		}
	}
	_, err = f.Refresh.Lookup(ctx, "nope")
	wantErr(t, err, store.ErrNotFound, "lookup unknown")
}

func testRefreshReuse(t *testing.T, f *fixture) {
	ctx := context.Background()
	noErr(t, f.Refresh.Create(ctx, family("fam", "t0")), "create")
	_, err := f.Refresh.Rotate(ctx, "t0", "t1")
	noErr(t, err, "rotate")
	// An attacker replays the stolen t0.
	g, err := f.Refresh.Rotate(ctx, "t0", "evil")
	wantErr(t, err, store.ErrReused, "reuse")
	if !g.Revoked || g.RevokeReason != "reuse" || g.ID != "fam" {
		t.Fatalf("family after reuse = %+v", g)
	}
	// The legitimate holder's current token is dead too.
	_, err = f.Refresh.Rotate(ctx, "t1", "t2")
	wantErr(t, err, store.ErrRevoked, "rotate current after reuse")
	if _, err := f.Refresh.Lookup(ctx, "evil"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("attacker's token was stored: %v", err)
	}
	l, err := f.Refresh.Lookup(ctx, "t1")
	noErr(t, err, "lookup")
	if !l.Revoked {
		t.Fatal("family not revoked in the store")
	}
	if f.Reopen != nil {
		s := f.Reopen(t)
		l, err := s.Refresh.Lookup(ctx, "t0")
		noErr(t, err, "lookup after reopen")
		if !l.Revoked || l.RevokeReason != "reuse" {
			t.Fatalf("reuse revocation not durable: %+v", l)
		}
	}
}

func testRefreshExpire(t *testing.T, f *fixture) {
	ctx := context.Background()
	short := family("short", "s0")
	short.ExpiresAt = Epoch.Add(time.Hour)
	noErr(t, f.Refresh.Create(ctx, short), "create short")
	noErr(t, f.Refresh.Create(ctx, family("long", "l0")), "create long")
	_, err := f.Refresh.Rotate(ctx, "s0", "s1")
	noErr(t, err, "rotate before expiry")

	noErr(t, f.Refresh.Revoke(ctx, "long", "logout"), "revoke")
	noErr(t, f.Refresh.Revoke(ctx, "long", "again"), "revoke twice")
	wantErr(t, f.Refresh.Revoke(ctx, "nope", "x"), store.ErrNotFound, "revoke unknown")
	l, _ := f.Refresh.Lookup(ctx, "l0")
	if !l.Revoked || l.RevokeReason != "logout" || !l.RevokedAt.Equal(Epoch) {
		t.Fatalf("revoked family = %+v", l)
	}
	_, err = f.Refresh.Rotate(ctx, "l0", "l1")
	wantErr(t, err, store.ErrRevoked, "rotate revoked")

	f.clock.Advance(time.Hour)
	_, err = f.Refresh.Rotate(ctx, "s1", "s2")
	wantErr(t, err, store.ErrExpired, "rotate expired")

	n, err := f.Refresh.Prune(ctx, Epoch.Add(time.Hour))
	noErr(t, err, "prune")
	if n != 1 {
		t.Fatalf("pruned %d, want 1", n)
	}
	for _, id := range []string{"s0", "s1"} {
		_, err := f.Refresh.Lookup(ctx, id)
		wantErr(t, err, store.ErrNotFound, "lookup pruned "+id)
	}
	_, err = f.Refresh.Lookup(ctx, "l0")
	noErr(t, err, "unexpired family survives prune")
	// The pruned token ID can be used again.
	noErr(t, f.Refresh.Create(ctx, family("short", "s0")), "recreate pruned family")
}

func testAuditAppendList(t *testing.T, f *fixture) {
	ctx := context.Background()
	n, err := f.Audit.Verify(ctx)
	noErr(t, err, "verify empty")
	if n != 0 {
		t.Fatalf("verify empty = %d", n)
	}
	var prev store.Hash
	for i := range 5 {
		f.clock.Advance(time.Second)
		r, err := f.Audit.Append(ctx, store.AuditEvent{Type: "token.issue", Subject: fmt.Sprintf("user%d", i), Fields: map[string]string{"i": fmt.Sprint(i), "pool.policy": "fail-closed"}})
		noErr(t, err, "append")
		if r.Seq != uint64(i+1) || r.Prev != prev || r.Hash != store.ChainHash(r) || !r.Time.Equal(Epoch.Add(time.Duration(i+1)*time.Second)) {
			t.Fatalf("record %d = %+v", i, r)
		}
		prev = r.Hash
	}
	list, err := f.Audit.List(ctx, 2, 10)
	noErr(t, err, "list")
	if len(list) != 3 || list[0].Seq != 3 || list[2].Seq != 5 || list[0].Subject != "user2" || list[0].Fields["i"] != "2" {
		t.Fatalf("list = %+v", list)
	}
	list, _ = f.Audit.List(ctx, 0, 2)
	if len(list) != 2 || list[1].Seq != 2 {
		t.Fatalf("list limit = %+v", list)
	}
	_, err = f.Audit.List(ctx, 0, 0)
	wantErr(t, err, store.ErrInvalid, "limit 0")
	n, err = f.Audit.Verify(ctx)
	noErr(t, err, "verify")
	if n != 5 {
		t.Fatalf("verified %d", n)
	}
	for name, e := range map[string]store.AuditEvent{
		"no type":      {Subject: "x"},
		"control":      {Type: "a\x1b", Subject: "x"},
		"big value":    {Type: "t", Fields: map[string]string{"k": strings.Repeat("v", store.MaxAuditValueBytes+1)}},
		"empty key":    {Type: "t", Fields: map[string]string{"": "v"}},
		"long subject": {Type: "t", Subject: strings.Repeat("s", store.MaxSubjectBytes+1)},
	} {
		_, err := f.Audit.Append(ctx, e)
		wantErr(t, err, store.ErrInvalid, name)
	}
	if f.Reopen != nil {
		s := f.Reopen(t)
		n, err := s.Audit.Verify(ctx)
		noErr(t, err, "verify after reopen")
		r, err := s.Audit.Append(ctx, store.AuditEvent{Type: "t"})
		noErr(t, err, "append after reopen")
		if n != 5 || r.Seq != 6 || r.Prev != prev {
			t.Fatalf("after reopen n=%d rec=%+v", n, r)
		}
	}
}

func testAuditConcurrent(t *testing.T, f *fixture) {
	ctx := context.Background()
	const workers, each = 32, 10
	var wg sync.WaitGroup
	seqs := make(chan uint64, workers*each)
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := f.Audit.Append(ctx, store.AuditEvent{Type: "revoke", Subject: fmt.Sprintf("w%d", w), Fields: map[string]string{"i": fmt.Sprint(i)}})
				errs <- err
				seqs <- r.Seq
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(seqs)
	for err := range errs {
		noErr(t, err, "append")
	}
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] || s < 1 || s > workers*each {
			t.Fatalf("seq %d duplicated or out of range", s)
		}
		seen[s] = true
	}
	n, err := f.Audit.Verify(ctx)
	noErr(t, err, "verify")
	if n != workers*each {
		t.Fatalf("verified %d", n)
	}
}

func testAuditTamper(t *testing.T, f *fixture) {
	if f.TamperAudit == nil {
		t.Skip("no tamper hook")
	}
	cases := []struct {
		name    string
		how     Tamper
		seq     uint64
		wantSeq uint64
	}{
		{"alter first", TamperAlter, 1, 1},
		{"alter middle", TamperAlter, 4, 4},
		{"alter last", TamperAlter, 8, 8},
		{"remove first", TamperRemove, 1, 1},
		{"remove middle", TamperRemove, 5, 5},
		{"remove last", TamperRemove, 8, 8},
		{"swap", TamperSwap, 3, 3},
		{"swap last two", TamperSwap, 7, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := tc
			fx := setup(t, f.factory)
			ctx := context.Background()
			for i := range 8 {
				_, err := fx.Audit.Append(ctx, store.AuditEvent{Type: "e", Subject: fmt.Sprint(i), Fields: map[string]string{"k": "v"}})
				noErr(t, err, "append")
			}
			_, err := fx.Audit.Verify(ctx)
			noErr(t, err, "verify before tamper")
			fx.TamperAudit(t, g.how, g.seq)
			n, err := fx.Audit.Verify(ctx)
			var ce *store.AuditChainError
			if !errors.Is(err, store.ErrAuditBroken) || !errors.As(err, &ce) {
				t.Fatalf("verify after %s = %d, %v; want ErrAuditBroken", g.name, n, err)
			}
			if ce.Seq != g.wantSeq || n != g.wantSeq-1 {
				t.Fatalf("verify after %s: first bad seq %d (n=%d), want %d: %v", g.name, ce.Seq, n, g.wantSeq, err)
			}
		})
	}
}

func testKeysRotation(t *testing.T, f *fixture) {
	ctx := context.Background()
	_, err := f.Keys.Current(ctx, store.AlgEdDSA)
	wantErr(t, err, store.ErrNotFound, "current before rotate")
	_, err = f.Keys.Rotate(ctx, "HS256", time.Hour)
	wantErr(t, err, store.ErrInvalid, "rotate HS256")
	_, err = f.Keys.Rotate(ctx, store.AlgEdDSA, -time.Second)
	wantErr(t, err, store.ErrInvalid, "negative retireAfter")

	k1, err := f.Keys.Rotate(ctx, store.AlgEdDSA, time.Hour)
	noErr(t, err, "rotate 1")
	cur, err := f.Keys.Current(ctx, store.AlgEdDSA)
	noErr(t, err, "current")
	if cur.KID != k1.KID || !cur.Retired.IsZero() {
		t.Fatalf("current = %v, rotated %v", cur, k1.KID)
	}
	msg := []byte("header.payload")
	sig := ed25519.Sign(cur.Private.(ed25519.PrivateKey), msg)
	if !ed25519.Verify(k1.PublicKey.(ed25519.PublicKey), msg, sig) {
		t.Fatal("current private key does not match the published public key")
	}
	e1, err := f.Keys.Rotate(ctx, store.AlgES256, time.Hour)
	noErr(t, err, "rotate ES256")
	_, err = f.Keys.Current(ctx, store.AlgEdDSA)
	wantErr(t, err, store.ErrNotFound, "EdDSA current after switching to ES256")
	ec, err := f.Keys.Current(ctx, store.AlgES256)
	noErr(t, err, "current ES256")
	digest := sha256.Sum256(msg)
	esig, err := ec.Private.(crypto.Signer).Sign(nil, digest[:], crypto.SHA256)
	noErr(t, err, "ES256 sign")
	if !ecdsa.VerifyASN1(e1.PublicKey.(*ecdsa.PublicKey), digest[:], esig) {
		t.Fatal("ES256 key pair mismatch")
	}

	f.clock.Advance(10 * time.Minute)
	k2, err := f.Keys.Rotate(ctx, store.AlgEdDSA, time.Hour)
	noErr(t, err, "rotate 2")
	if k2.KID == k1.KID {
		t.Fatal("kid reused")
	}
	cur, _ = f.Keys.Current(ctx, store.AlgEdDSA)
	if cur.KID != k2.KID {
		t.Fatalf("current after rotation = %s, want %s", cur.KID, k2.KID)
	}
	pub, err := f.Keys.Public(ctx)
	noErr(t, err, "public")
	var kids []string
	for _, p := range pub {
		kids = append(kids, p.KID)
	}
	want := []string{k1.KID, e1.KID}
	slices.Sort(want)
	if len(kids) != 3 || !slices.Equal(kids[:2], want) && !slices.Equal(kids[:2], []string{want[1], want[0]}) || kids[2] != k2.KID {
		t.Fatalf("public kids = %v, want %v then %s", kids, want, k2.KID)
	}
	old, err := f.Keys.Get(ctx, k1.KID)
	noErr(t, err, "get retired")
	if !old.Retired.Equal(Epoch) || !old.RemoveAfter.Equal(Epoch.Add(time.Hour)) {
		t.Fatalf("key retired by the switch to ES256 = %+v", old)
	}
	if !ed25519.Verify(old.PublicKey.(ed25519.PublicKey), msg, sig) {
		t.Fatal("retired key no longer verifies its tokens")
	}
	ecInfo, _ := f.Keys.Get(ctx, e1.KID)
	if !ecInfo.Retired.Equal(Epoch.Add(10*time.Minute)) || !ecInfo.RemoveAfter.Equal(Epoch.Add(70*time.Minute)) {
		t.Fatalf("ES256 key after switching back to EdDSA = %+v", ecInfo)
	}

	f.clock.Advance(55 * time.Minute) // past k1's RemoveAfter, before e1's
	pub, _ = f.Keys.Public(ctx)
	for _, p := range pub {
		if p.KID == k1.KID {
			t.Fatal("expired retired key still published")
		}
	}
	if len(pub) != 2 {
		t.Fatalf("public after expiry = %d keys", len(pub))
	}
	_, err = f.Keys.Get(ctx, k1.KID)
	wantErr(t, err, store.ErrNotFound, "get expired retired key")
	_, err = f.Keys.Get(ctx, "../../etc/passwd")
	wantErr(t, err, store.ErrNotFound, "get odd kid")
	if f.Reopen != nil {
		s := f.Reopen(t)
		c2, err := s.Keys.Current(ctx, store.AlgEdDSA)
		noErr(t, err, "current after reopen")
		if c2.KID != k2.KID || !c2.PublicKey.(ed25519.PublicKey).Equal(k2.PublicKey) {
			t.Fatal("current key changed across reopen")
		}
	}
}

func testKeysUnpublish(t *testing.T, f *fixture) {
	ctx := context.Background()
	k1, err := f.Keys.Rotate(ctx, store.AlgEdDSA, time.Hour)
	noErr(t, err, "rotate 1")
	k2, err := f.Keys.Rotate(ctx, store.AlgEdDSA, time.Hour) // k1 retired, still published
	noErr(t, err, "rotate 2")
	f.clock.Advance(time.Minute)
	k3, err := f.Keys.Rotate(ctx, store.AlgEdDSA, time.Hour) // k2 retired, still published
	noErr(t, err, "rotate 3")
	got, err := f.Keys.Unpublish(ctx, k3.KID)
	noErr(t, err, "unpublish")
	want := []string{k1.KID, k2.KID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("unpublished %v, want %v", got, want)
	}
	pub, err := f.Keys.Public(ctx)
	noErr(t, err, "public")
	if len(pub) != 1 || pub[0].KID != k3.KID {
		t.Fatalf("public after unpublish = %v, want only %s", pub, k3.KID)
	}
	for _, kid := range want {
		_, err := f.Keys.Get(ctx, kid)
		wantErr(t, err, store.ErrNotFound, "get unpublished "+kid)
	}
	// A clock stepped back (NTP) does not publish them again.
	f.clock.Advance(-time.Minute)
	for _, kid := range want {
		_, err := f.Keys.Get(ctx, kid)
		wantErr(t, err, store.ErrNotFound, "get unpublished "+kid+" after the clock stepped back")
	}
	if pub, err = f.Keys.Public(ctx); err != nil || len(pub) != 1 {
		t.Fatalf("public after the clock stepped back = %v %v, want only %s", pub, err, k3.KID)
	}
	f.clock.Advance(time.Minute)
	cur, err := f.Keys.Current(ctx, store.AlgEdDSA)
	noErr(t, err, "current")
	if cur.KID != k3.KID {
		t.Fatalf("current = %s, want %s", cur.KID, k3.KID)
	}
	// With no key kept, the active one goes too: no current key.
	got, err = f.Keys.Unpublish(ctx, "")
	noErr(t, err, "unpublish all")
	if !slices.Equal(got, []string{k3.KID}) {
		t.Fatalf("unpublished %v, want [%s]", got, k3.KID)
	}
	_, err = f.Keys.Current(ctx, store.AlgEdDSA)
	wantErr(t, err, store.ErrNotFound, "current after unpublishing all")
	if got, err = f.Keys.Unpublish(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("unpublish with nothing published: %v %v", got, err)
	}
}

func testKeysRedaction(t *testing.T, f *fixture) {
	ctx := context.Background()
	_, err := f.Keys.Rotate(ctx, store.AlgEdDSA, time.Hour)
	noErr(t, err, "rotate")
	k, err := f.Keys.Current(ctx, store.AlgEdDSA)
	noErr(t, err, "current")
	priv := k.Private.(ed25519.PrivateKey)
	seedHex := fmt.Sprintf("%x", priv.Seed())
	var logBuf strings.Builder
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("key", "k", k)
	js, _ := json.Marshal(k)
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", k), "%+v": fmt.Sprintf("%+v", k), "%#v": fmt.Sprintf("%#v", k),
		"%x": fmt.Sprintf("%x", k), "json": string(js), "slog": logBuf.String(),
	} {
		if strings.Contains(s, seedHex) || strings.Contains(s, fmt.Sprint([]byte(priv.Seed()))) {
			t.Fatalf("%s formatting leaks the seed: %s", name, s)
		}
		if !strings.Contains(s, k.KID) && name != "%x" {
			t.Fatalf("%s formatting lost the kid: %s", name, s)
		}
	}
	k.Zero()
	if k.Private != nil || !slices.Equal(priv, make(ed25519.PrivateKey, len(priv))) {
		t.Fatal("Zero left key material")
	}
}

func testClosed(t *testing.T, f *fixture) {
	ctx := context.Background()
	noErr(t, f.Close(), "close")
	_, err := f.Users.Get(ctx, "x")
	wantErr(t, err, store.ErrClosed, "users get")
	wantErr(t, f.Revocations.Revoke(ctx, "j", Epoch.Add(time.Hour)), store.ErrClosed, "revoke")
	_, err = f.Revocations.IsRevoked(ctx, "j")
	wantErr(t, err, store.ErrClosed, "is revoked")
	_, err = f.Audit.Append(ctx, store.AuditEvent{Type: "t"})
	wantErr(t, err, store.ErrClosed, "audit append")
	_, err = f.Keys.Rotate(ctx, store.AlgEdDSA, time.Hour)
	wantErr(t, err, store.ErrClosed, "keys rotate")
	_, err = f.Refresh.Lookup(ctx, "t")
	wantErr(t, err, store.ErrClosed, "refresh lookup")
}

func testCanceled(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.Users.Get(ctx, "x")
	wantErr(t, err, context.Canceled, "users get")
	wantErr(t, f.Revocations.Revoke(ctx, "j", Epoch.Add(time.Hour)), context.Canceled, "revoke")
	_, err = f.Revocations.IsRevoked(ctx, "j")
	wantErr(t, err, context.Canceled, "is revoked")
	_, err = f.Audit.Append(ctx, store.AuditEvent{Type: "t"})
	wantErr(t, err, context.Canceled, "audit append")
	_, err = f.Users.Authenticate(ctx, "x", "pw")
	wantErr(t, err, context.Canceled, "authenticate")
	_, err = f.Keys.Current(ctx, store.AlgEdDSA)
	wantErr(t, err, context.Canceled, "current key")
	_, err = f.APIKeys.List(ctx, "")
	wantErr(t, err, context.Canceled, "keys list")
}

func testRefreshRevokeSubject(t *testing.T, f *fixture) {
	ctx := context.Background()
	a1, a2, b := family("a1", "ta1"), family("a2", "ta2"), family("b1", "tb1")
	a2.Subject = a1.Subject
	b.Subject = a1.Subject + "-other"
	for _, fam := range []store.RefreshFamily{a1, a2, b} {
		noErr(t, f.Refresh.Create(ctx, fam), "create "+fam.ID)
	}
	noErr(t, f.Refresh.Revoke(ctx, "a2", "logout"), "revoke a2")
	got, err := f.Refresh.RevokeSubject(ctx, a1.Subject, "password changed")
	noErr(t, err, "revoke subject")
	slices.SortFunc(got, func(x, y store.RefreshFamily) int { return strings.Compare(x.ID, y.ID) })
	if len(got) != 2 || got[0].ID != "a1" || got[1].ID != "a2" || !got[0].Revoked || !got[1].Revoked ||
		got[0].RevokeReason != "password changed" || got[1].RevokeReason != "logout" {
		t.Fatalf("RevokeSubject = %+v", got)
	}
	_, err = f.Refresh.Rotate(ctx, "ta1", "ta1b")
	wantErr(t, err, store.ErrRevoked, "rotate after RevokeSubject")
	if _, err := f.Refresh.Rotate(ctx, "tb1", "tb1b"); err != nil {
		t.Fatalf("another subject's family was hit: %v", err)
	}
	got, err = f.Refresh.RevokeSubject(ctx, "nobody", "x")
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown subject: %v %v", got, err)
	}
	_, err = f.Refresh.RevokeSubject(ctx, a1.Subject, "bad\x00reason")
	wantErr(t, err, store.ErrInvalid, "control character in reason")
}
