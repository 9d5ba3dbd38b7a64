package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/store"
)

func TestPasswordHasher_HashVerify(t *testing.T) {
	ctx := context.Background()
	p := store.TestArgon2Params
	h, err := store.NewPasswordHasher(&p, 1, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(ctx, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string = %s", enc)
	}
	enc2, _ := h.Hash(ctx, "s3cret")
	if enc == enc2 {
		t.Fatal("same salt twice")
	}
	for pw, want := range map[string]bool{"s3cret": true, "s3cres": false, "": false, "s3cret ": false} {
		ok, rehash, err := h.Verify(ctx, enc, pw)
		if err != nil || ok != want || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want %v", pw, ok, rehash, err, want)
		}
	}
	q := p
	q.Time = 2
	h2, _ := store.NewPasswordHasher(&q, 1, rand.Reader)
	if ok, rehash, err := h2.Verify(ctx, enc, "s3cret"); !ok || !rehash || err != nil {
		t.Fatalf("verify with other current params = %v, %v, %v; want match and rehash", ok, rehash, err)
	}
}

// Known answer from the reference implementation (phc-winner-argon2 CLI,
// Debian package argon2 0~20171227):
//
//	echo -n password | argon2 somesaltsomesalt -id -m 6 -t 2 -p 1 -l 32 -e
//
// Our PHC parsing and argon2id must agree with it byte for byte.
func TestPasswordHasher_Verify_ReferenceVector(t *testing.T) {
	const ref = "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Gpj7qOY5RCXJvcMzqcdQqvgR3wcPX7SleI4c9NtXk6E"
	h, _ := store.NewPasswordHasher(&store.TestArgon2Params, 1, rand.Reader)
	ok, rehash, err := h.Verify(context.Background(), ref, "password")
	if err != nil || !ok {
		t.Fatalf("reference hash: ok=%v err=%v", ok, err)
	}
	if !rehash {
		t.Fatal("t=2 differs from the current t=1 but no rehash was asked for")
	}
	if ok, _, _ := h.Verify(context.Background(), ref, "passworD"); ok {
		t.Fatal("wrong password matched the reference hash")
	}
}

func TestPasswordHasher_Verify_Malformed(t *testing.T) {
	ctx := context.Background()
	h, _ := store.NewPasswordHasher(&store.TestArgon2Params, 1, rand.Reader)
	good, _ := h.Hash(ctx, "pw")
	parts := strings.Split(good, "$")
	bad := map[string]string{
		"empty":         "",
		"bcrypt":        "$2a$10$abcdefghijklmnopqrstuu",
		"argon2i":       strings.Replace(good, "argon2id", "argon2i", 1),
		"version 16":    strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":   strings.Replace(good, "m=64", "m=4194304", 1),
		"zero time":     strings.Replace(good, "t=1", "t=0", 1),
		"huge time":     strings.Replace(good, "t=1", "t=100000", 1),
		"zero lanes":    strings.Replace(good, "p=1", "p=0", 1),
		"lanes 300":     strings.Replace(good, "p=1", "p=300", 1),
		"unknown param": strings.Replace(good, "p=1", "p=1,x=2", 1),
		"bad salt":      strings.Join(append(parts[:4:4], "!!!", parts[5]), "$"),
		"short salt":    strings.Join(append(parts[:4:4], "c2FsdA", parts[5]), "$"),
		"short hash":    strings.Join(append(parts[:5:5], "aGFzaA"), "$"),
		"too long":      good + strings.Repeat("A", 600),
	}
	for name, enc := range bad {
		if ok, _, err := h.Verify(ctx, enc, "pw"); ok || !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: Verify = %v, %v; want ErrInvalid", name, ok, err)
		}
	}
}

func TestArgon2Params_Validate(t *testing.T) {
	if err := store.DefaultArgon2Params.Validate(); err != nil {
		t.Fatal(err)
	}
	d := store.DefaultArgon2Params
	if d.Memory != 64*1024 || d.Time != 3 || d.Threads != 4 {
		t.Fatalf("default params %+v are not RFC 9106's second recommendation", d)
	}
	for name, p := range map[string]store.Argon2Params{
		"no threads": {Memory: 64, Time: 1, SaltLen: 16, KeyLen: 32},
		"tiny mem":   {Memory: 7, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"short salt": {Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		"short key":  {Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		if _, err := store.NewPasswordHasher(&p, 1, rand.Reader); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := store.NewPasswordHasher(nil, 1, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("nil rand: %v", err)
	}
}

func TestPasswordHasher_Concurrency_Canceled(t *testing.T) {
	h, _ := store.NewPasswordHasher(&store.TestArgon2Params, 1, rand.Reader)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with canceled ctx: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("pool failed") }

type shortReader struct{}

func (shortReader) Read(p []byte) (int, error) {
	return copy(p, []byte{1}), errors.New("eof after one byte")
}

func TestRandom_NoFallback(t *testing.T) {
	for name, src := range map[string]interface{ Read([]byte) (int, error) }{"error": errReader{}, "short": shortReader{}} {
		r := store.NewRandom(src)
		if _, _, _, err := store.NewAPIKeySecret(r); err == nil {
			t.Errorf("%s: API key secret without randomness", name)
		}
		if _, err := store.NewSeed(r, store.AlgEdDSA); err == nil {
			t.Errorf("%s: seed without randomness", name)
		}
		h, _ := store.NewPasswordHasher(&store.TestArgon2Params, 1, src)
		if _, err := h.Hash(context.Background(), "pw"); err == nil {
			t.Errorf("%s: hash without salt", name)
		}
	}
}

func TestSecret(t *testing.T) {
	r := store.NewRandom(rand.Reader)
	id, secret, hash, err := store.NewAPIKeySecret(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, store.ClientIDPrefix) || len(secret) != 43 {
		t.Fatalf("id %q secret %q", id, secret)
	}
	if !store.SecretMatches(hash[:], secret) || store.SecretMatches(hash[:], secret+"x") || store.SecretMatches(hash[:], "") {
		t.Fatal("SecretMatches wrong")
	}
	if bytes.Contains(hash[:], []byte(secret)) {
		t.Fatal("hash contains secret")
	}
}

func TestValidateUsername(t *testing.T) {
	for _, ok := range []string{"a", "demo", "Jürgen", "用户", "x@y.z", strings.Repeat("a", 64)} {
		if err := store.ValidateUsername(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 65), "a\x00", "\u200d", "a\u202e", "e\u0301", "a b", "\xc3"} {
		err := store.ValidateUsername(bad)
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzValidateUsername(f *testing.F) {
	for _, s := range []string{"alice", "a\u202eb", "e\u0301", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if store.ValidateUsername(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > store.MaxUsernameBytes || strings.ContainsAny(s, " \t\r\n\x00\x1b\u200b\u202e\ufeff") {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzVerifyPHC(f *testing.F) {
	h, _ := store.NewPasswordHasher(&store.TestArgon2Params, 1, rand.Reader)
	good, _ := h.Hash(context.Background(), "pw")
	f.Add(good)
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, enc string) {
		// Must not panic or allocate unbounded memory; parameters are bounded.
		h.Verify(context.Background(), enc, "pw")
	})
}

func TestChain_Canonical(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := store.Seal(store.AuditEvent{Type: "t", Subject: "ab", Fields: map[string]string{"k": "v"}}, 1, at, store.Hash{})
	// Length prefixes keep field boundaries: moving a byte between fields changes the hash.
	b := store.Seal(store.AuditEvent{Type: "ta", Subject: "b", Fields: map[string]string{"k": "v"}}, 1, at, store.Hash{})
	c := store.Seal(store.AuditEvent{Type: "t", Subject: "ab", Fields: map[string]string{"kv": ""}}, 1, at, store.Hash{})
	if a.Hash == b.Hash || a.Hash == c.Hash {
		t.Fatal("canonical encoding is ambiguous")
	}
	// Map iteration order does not matter.
	f := map[string]string{}
	for i := range 20 {
		f[fmt.Sprint(i)] = "x"
	}
	h1 := store.Seal(store.AuditEvent{Type: "t", Fields: f}, 1, at, store.Hash{}).Hash
	for range 10 {
		if store.Seal(store.AuditEvent{Type: "t", Fields: f}, 1, at, store.Hash{}).Hash != h1 {
			t.Fatal("hash depends on map order")
		}
	}
	enc, _ := store.MarshalAuditRecord(a)
	back, err := store.UnmarshalAuditRecord(enc)
	if err != nil || back.Hash != a.Hash || store.ChainHash(back) != a.Hash {
		t.Fatalf("round trip: %v", err)
	}
	var v store.ChainVerifier
	if err := v.Check(a); err != nil {
		t.Fatal(err)
	}
	next := store.Seal(store.AuditEvent{Type: "t"}, 2, at, store.Hash{9})
	if err := v.Check(next); !errors.Is(err, store.ErrAuditBroken) {
		t.Fatalf("broken prev link: %v", err)
	}
}

func ExamplePasswordHasher() {
	p := store.TestArgon2Params // use store.DefaultArgon2Params in production
	h, _ := store.NewPasswordHasher(&p, 0, rand.Reader)
	enc, _ := h.Hash(context.Background(), "correct horse")
	ok, _, _ := h.Verify(context.Background(), enc, "correct horse")
	fmt.Println(strings.SplitN(enc, "$", 5)[1:4], ok)
	// Output: [argon2id v=19 m=64,t=1,p=1] true
}

func TestAuditRecord_JSON(t *testing.T) {
	r := store.Seal(store.AuditEvent{Type: "t", Subject: "s"}, 1, time.Unix(1, 0), store.Hash{1})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"hash":"`+r.Hash.String()+`"`) || !strings.Contains(string(b), `"prev":"01000000`) {
		t.Fatalf("json = %s", b)
	}
	var back store.AuditRecord
	if err := json.Unmarshal(b, &back); err != nil || store.ChainHash(back) != r.Hash {
		t.Fatalf("round trip: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"hash":"zz"}`), &back); err == nil {
		t.Fatal("bad hash accepted")
	}
}
