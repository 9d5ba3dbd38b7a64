package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/gateway/admin"
	"github.com/qrngd/qrngd/gateway/auth"
	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/bolt"
)

// testEntropy serves crypto/rand (tests only) with a fixed status.
type testEntropy struct{}

func (testEntropy) Read(_ context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
	_, err := rand.Read(p)
	return entropy.Provenance{Mode: mode, Sources: []string{"sim0"}}, err
}

func (testEntropy) Status() entropy.Status {
	return entropy.Status{
		Pool: entropy.PoolStatus{Policy: entropy.PolicyFailClosed, Ready: true, HealthySources: 1, MinSources: 1, LevelBytes: 512, CapacityBytes: 4096},
		Sources: []entropy.SourceStatus{{SourceInfo: entropy.SourceInfo{Name: "sim0", Kind: "sim", SampleBits: 8, MinEntropy: 7.5},
			State: entropy.StateHealthy, Samples: 1000, Bytes: 900}},
	}
}

type daemon struct {
	t      *testing.T
	dir    string
	db     *bolt.DB
	svc    *auth.Service
	web    *httptest.Server
	socket string
	stop   func()
}

// startDaemon opens a bolt store in dir and serves the admin API on a
// socket in a fresh temp dir, plus the auth endpoints over HTTP.
func startDaemon(t *testing.T, dir string) *daemon {
	t.Helper()
	db, err := bolt.Open(dir, &bolt.Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir, db: db}
	var h http.Handler
	d.web = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	d.svc, err = auth.New(&auth.Options{Issuer: d.web.URL, Entropy: testEntropy{}, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(&gateway.Options{Entropy: testEntropy{}, Authorizer: d.svc, Routes: d.svc.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	h = gw
	srv, err := admin.New(&admin.Options{Store: db, Backup: db, Status: testEntropy{}, Tokens: d.svc, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	d.socket = filepath.Join(t.TempDir(), admin.SocketName)
	ln, err := admin.Listen(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListener(ctx, ln) }()
	d.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		d.web.Close()
		db.Close()
	}
	t.Cleanup(func() {
		if d.stop != nil {
			d.stop()
		}
	})
	return d
}

func (d *daemon) shutdown() {
	d.stop()
	d.stop = nil
}

// ctl runs qrngctl against the daemon's socket.
func (d *daemon) ctl(stdin string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"-socket", d.socket}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String() + errb.String(), err
}

func (d *daemon) mustCtl(stdin string, args ...string) string {
	d.t.Helper()
	out, err := d.ctl(stdin, args...)
	if err != nil {
		d.t.Fatalf("qrngctl %v: %v\n%s", args, err, out)
	}
	return out
}

func (d *daemon) ctlJSON(v any, args ...string) {
	d.t.Helper()
	out := d.mustCtl("", append(args, "-json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("qrngctl %v -json: %v\n%s", args, err, out)
	}
}

func TestCLI_EndToEnd(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	ctx := context.Background()

	fi, err := os.Stat(d.socket)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&fs.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}

	// Tenants.
	d.mustCtl("", "tenant", "add", "acme", "-name", "ACME Corp")
	var tenants struct{ Tenants []store.Tenant }
	d.ctlJSON(&tenants, "tenant", "list")
	if len(tenants.Tenants) != 1 || tenants.Tenants[0].ID != "acme" || tenants.Tenants[0].Name != "ACME Corp" {
		t.Fatalf("tenants %+v", tenants)
	}
	if out, err := d.ctl("", "tenant", "add", "acme"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate tenant: %v %s", err, out)
	}

	// Users.
	d.mustCtl("s3cret-pw\n", "user", "add", "alice", "-tenant", "acme", "-scopes", "random:read,tokens:admin")
	if _, err := d.db.Users().Authenticate(ctx, "alice", "s3cret-pw"); err != nil {
		t.Fatalf("alice cannot authenticate: %v", err)
	}
	var users struct{ Users []store.User }
	d.ctlJSON(&users, "user", "list")
	if len(users.Users) != 1 || users.Users[0].Tenant != "acme" || strings.Join(users.Users[0].Scopes, " ") != "random:read tokens:admin" {
		t.Fatalf("users %+v", users)
	}
	if out := d.mustCtl("", "user", "list"); !strings.Contains(out, "alice") || !strings.Contains(out, "USERNAME") {
		t.Fatalf("user list table: %s", out)
	}
	d.mustCtl("n3w-pw\n", "user", "passwd", "alice")
	if _, err := d.db.Users().Authenticate(ctx, "alice", "n3w-pw"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := d.ctl("pw\n", "user", "add", "bad\x1bname"); err == nil {
		t.Fatal("control character in username accepted")
	}
	if _, err := d.ctl("", "user", "add", "bob"); err == nil {
		t.Fatal("user add without a password on stdin succeeded")
	}

	// API keys.
	var created struct {
		Key          store.APIKey `json:"key"`
		ClientSecret string       `json:"client_secret"`
	}
	d.ctlJSON(&created, "key", "create", "-tenant", "acme", "-name", "ci", "-scopes", "random:read")
	if created.ClientSecret == "" || created.Key.Tenant != "acme" {
		t.Fatalf("key create %+v", created)
	}
	if _, err := d.db.APIKeys().Authenticate(ctx, created.Key.ClientID, created.ClientSecret); err != nil {
		t.Fatalf("created key does not authenticate: %v", err)
	}
	var keys struct{ Keys []store.APIKey }
	d.ctlJSON(&keys, "key", "list", "-tenant", "acme")
	if len(keys.Keys) != 1 || keys.Keys[0].ClientID != created.Key.ClientID {
		t.Fatalf("keys %+v", keys)
	}
	// A token issued to the key dies with it.
	form := strings.NewReader("grant_type=client_credentials")
	req, _ := http.NewRequest(http.MethodPost, d.web.URL+"/oauth/token", form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(created.Key.ClientID, created.ClientSecret)
	tres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var issued map[string]any
	_ = json.NewDecoder(tres.Body).Decode(&issued)
	tres.Body.Close()
	keyTok, _ := issued["access_token"].(string)
	if _, err := d.svc.Verify(ctx, keyTok, d.web.URL); err != nil {
		t.Fatalf("key token: %v", err)
	}
	d.mustCtl("", "key", "revoke", created.Key.ClientID)
	if k, _ := d.db.APIKeys().Get(ctx, created.Key.ClientID); !k.Revoked {
		t.Fatal("key not revoked")
	}
	if _, err := d.svc.Verify(ctx, keyTok, d.web.URL); !auth.IsInvalidToken(err) {
		t.Fatalf("token of the revoked key still verifies: %v", err)
	}
	if _, err := d.ctl("", "key", "revoke", "qk_unknown"); err == nil {
		t.Fatal("revoking an unknown key succeeded")
	}

	// Tokens: log in over HTTP, revoke with qrngctl, see it refused.
	res, err := http.Post(d.web.URL+"/auth/login", "application/json", strings.NewReader(`{"username":"alice","password":"n3w-pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]any
	_ = json.NewDecoder(res.Body).Decode(&login)
	res.Body.Close()
	tok, _ := login["access_token"].(string)
	if _, err := d.svc.Verify(ctx, tok, d.web.URL); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	var rv auth.Revoked
	if out := d.mustCtl(tok+"\n", "token", "revoke", "-", "-json"); json.Unmarshal([]byte(out), &rv) != nil || rv.Subject != "alice" {
		t.Fatalf("token revoke: %s", out)
	}
	if _, err := d.svc.Verify(ctx, tok, d.web.URL); !auth.IsInvalidToken(err) {
		t.Fatalf("revoked token still verifies: %v", err)
	}
	d.mustCtl("", "token", "revoke", "-jti", "some-jti-123")
	if r, _ := d.db.Revocations().IsRevoked(ctx, "some-jti-123"); !r {
		t.Fatal("jti not revoked")
	}
	if _, err := d.ctl("", "token", "revoke", "not.a.token"); err == nil {
		t.Fatal("garbage token revoke succeeded")
	}

	// Status and sources.
	var st statusAnswer
	d.ctlJSON(&st, "status")
	if st.Version != "test" || !st.Status.Pool.Ready || st.Status.Pool.HealthySources != 1 {
		t.Fatalf("status %+v", st)
	}
	if out := d.mustCtl("", "sources"); !strings.Contains(out, "sim0") || !strings.Contains(out, "healthy") {
		t.Fatalf("sources: %s", out)
	}

	// Every change above is in the audit log, which verifies.
	var av admin.AuditResult
	d.ctlJSON(&av, "audit", "verify")
	if !av.OK || av.Records < 8 {
		t.Fatalf("audit verify %+v", av)
	}
	recs, _ := d.db.Audit().List(ctx, 0, 1000)
	types := map[string]int{}
	for _, r := range recs {
		types[r.Type]++
		if strings.HasPrefix(r.Type, "user.") && !strings.HasPrefix(r.Fields["by"], "admin-socket uid=") {
			t.Errorf("admin record without peer credentials: %+v", r)
		}
	}
	for _, want := range []string{"tenant.add", "user.add", "user.passwd", "key.create", "key.revoke", "token.issue", "token.revoke"} {
		if types[want] == 0 {
			t.Errorf("no %s audit record (have %v)", want, types)
		}
	}

	// Remove the user last.
	d.mustCtl("", "user", "rm", "alice")
	if _, err := d.db.Users().Get(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("alice still there: %v", err)
	}
}

func TestCLI_Backup(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	d.mustCtl("", "tenant", "add", "acme")
	d.mustCtl("pw-1\n", "user", "add", "carol")
	dst := filepath.Join(t.TempDir(), bolt.FileName)
	out := d.mustCtl("", "backup", dst)
	if !strings.Contains(out, "consistency check passed") {
		t.Fatalf("backup: %s", out)
	}
	if _, err := d.ctl("", "backup", dst); err == nil {
		t.Fatal("backup overwrote an existing file without -force")
	}
	// The copy opens as a qrngd database and holds the data.
	db, err := bolt.Open(filepath.Dir(dst), &bolt.Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Users().Authenticate(context.Background(), "carol", "pw-1"); err != nil {
		t.Fatalf("backup lacks carol: %v", err)
	}
	if n, err := db.Audit().Verify(context.Background()); err != nil || n < 2 {
		t.Fatalf("backup audit chain: %d %v", n, err)
	}
}

// TestCLI_AuditVerify_Tamper alters, removes and reorders records in the
// file behind the daemon's back and expects `audit verify` to fail.
func TestCLI_AuditVerify_Tamper(t *testing.T) {
	for _, how := range []string{"alter", "remove", "reorder"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			d := startDaemon(t, dir)
			for i := range 4 {
				d.mustCtl("", "tenant", "add", fmt.Sprintf("t%d", i))
			}
			d.mustCtl("", "audit", "verify")
			d.shutdown()

			raw, err := bbolt.Open(filepath.Join(dir, bolt.FileName), 0o600, &bbolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = raw.Update(func(tx *bbolt.Tx) error {
				b := tx.Bucket([]byte("audit"))
				k2 := []byte{0, 0, 0, 0, 0, 0, 0, 2}
				k3 := []byte{0, 0, 0, 0, 0, 0, 0, 3}
				v2 := append([]byte(nil), b.Get(k2)...)
				v3 := append([]byte(nil), b.Get(k3)...)
				switch how {
				case "alter":
					return b.Put(k2, bytes.Replace(v2, []byte(`"t1"`), []byte(`"tX"`), 1))
				case "remove":
					return b.Delete(k2)
				default:
					if err := b.Put(k2, v3); err != nil {
						return err
					}
					return b.Put(k3, v2)
				}
			})
			raw.Close()
			if err != nil {
				t.Fatal(err)
			}
			d = startDaemon(t, dir)
			out, err := d.ctl("", "audit", "verify")
			if !errors.Is(err, errAuditBroken) || !strings.Contains(out, "BROKEN at seq 2") {
				t.Fatalf("tampering (%s) not detected: %v\n%s", how, err, out)
			}
		})
	}
}

func TestCLI_Usage(t *testing.T) {
	var ue *usageError
	for _, args := range [][]string{{}, {"frobnicate"}, {"user"}, {"user", "add"}, {"key", "create"}, {"backup"},
		{"token", "revoke"}, {"token", "revoke", "-jti", "x", "-until", "yesterday"}, {"-nope"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, strings.NewReader(""), &out, &out); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"-socket", filepath.Join(t.TempDir(), "none.sock"), "status"}, nil, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "cannot reach qrngd") {
		t.Errorf("no daemon: %v", err)
	}
}

func TestAdmin_Socket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, admin.SocketName)
	// A stale socket (no listener) is replaced.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := admin.Listen(path)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	// A live one is not.
	if _, err := admin.Listen(path); !errors.Is(err, admin.ErrSocketInUse) {
		t.Fatalf("live socket: %v", err)
	}
	ln2.Close()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Listen(path); err == nil {
		t.Fatal("regular file replaced by the socket")
	}
}

// TestCLI_AuditVerify_Anchor: the head a verification prints is an anchor;
// a later verification given it passes while the log only grew, and fails
// when the anchored record is gone (log cut back) or differs (rewritten).
func TestCLI_AuditVerify_Anchor(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	d.mustCtl("", "tenant", "add", "t0")
	d.mustCtl("", "tenant", "add", "t1")
	var first admin.AuditResult
	d.ctlJSON(&first, "audit", "verify")
	if !first.OK || first.Head == nil || first.Head.Seq != first.Records {
		t.Fatalf("verify: %+v", first)
	}
	anchor := fmt.Sprintf("%d:%s", first.Head.Seq, first.Head.Hash)
	if out := d.mustCtl("", "audit", "verify"); !strings.Contains(out, "head "+anchor) {
		t.Fatalf("verify does not print the head %s:\n%s", anchor, out)
	}

	d.mustCtl("", "tenant", "add", "t2")
	if out := d.mustCtl("", "audit", "verify", "-anchor", anchor); !strings.Contains(out, "audit chain OK") {
		t.Fatalf("a grown log fails its anchor:\n%s", out)
	}

	other := strings.Repeat("0", 64)
	out, err := d.ctl("", "audit", "verify", "-anchor", fmt.Sprintf("%d:%s", first.Head.Seq, other))
	if !errors.Is(err, errAuditBroken) || !strings.Contains(out, "rewritten") {
		t.Fatalf("anchor with another hash: %v\n%s", err, out)
	}
	out, err = d.ctl("", "audit", "verify", "-anchor", fmt.Sprintf("%d:%s", first.Head.Seq+100, first.Head.Hash))
	if !errors.Is(err, errAuditBroken) || !strings.Contains(out, "cut back") {
		t.Fatalf("anchor past the end of the log: %v\n%s", err, out)
	}
	for _, bad := range []string{"x", "0:" + other, "3", "3:zz"} {
		if out, err := d.ctl("", "audit", "verify", "-anchor", bad); err == nil {
			t.Errorf("-anchor %q accepted:\n%s", bad, out)
		}
	}
}

// TestCLI_SigningKeyRotate: `signing-key rotate` makes a new active key
// that signs the next token, the old key stays published (list and
// /.well-known/jwks.json) and its tokens keep verifying, and the rotation
// is audited with the operator as the actor.
func TestCLI_SigningKeyRotate(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	ctx := context.Background()
	old, err := d.svc.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 0 {
		t.Fatalf("%d keys before the first issuance", len(old))
	}
	d.mustCtl("", "signing-key", "rotate") // the first key
	var first store.KeyInfo
	d.ctlJSON(&first, "signing-key", "rotate")
	var list struct {
		Keys []store.KeyInfo `json:"keys"`
	}
	d.ctlJSON(&list, "signing-key", "list")
	if len(list.Keys) != 2 || list.Keys[1].KID != first.KID || !list.Keys[1].Retired.IsZero() || list.Keys[0].Retired.IsZero() {
		t.Fatalf("signing-key list = %+v, want the retired first key then %s active", list.Keys, first.KID)
	}
	text := d.mustCtl("", "signing-key", "list")
	rows := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			rows[f[0]] = f[1] + " " + f[2]
		}
	}
	if rows[first.KID] != "EdDSA active" || rows[list.Keys[0].KID] != "EdDSA retired" {
		t.Fatalf("signing-key list:\n%s", text)
	}
	res, err := http.Get(d.web.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, k := range list.Keys {
		if !strings.Contains(string(body), k.KID) {
			t.Fatalf("JWKS lacks %s: %s", k.KID, body)
		}
	}
	recs, err := d.db.Audit().List(ctx, 0, store.MaxAuditList)
	if err != nil {
		t.Fatal(err)
	}
	var by string
	for _, r := range recs {
		if r.Type == "signing_key.rotate" && r.Subject == first.KID {
			by = r.Fields["by"]
		}
	}
	if !strings.HasPrefix(by, "admin-socket") {
		t.Fatalf("rotation of %s audited by %q, want the peer's uid", first.KID, by)
	}

	// Suspected compromise: every previous key leaves the JWKS at once.
	var emergency struct {
		store.KeyInfo
		Unpublished []string `json:"unpublished"`
	}
	d.ctlJSON(&emergency, "signing-key", "rotate", "-unpublish-previous")
	want := []string{list.Keys[0].KID, first.KID}
	slices.Sort(want)
	if !slices.Equal(emergency.Unpublished, want) || emergency.KID == "" {
		t.Fatalf("rotate -unpublish-previous = %+v, want %v unpublished", emergency, want)
	}
	d.ctlJSON(&list, "signing-key", "list")
	if len(list.Keys) != 1 || list.Keys[0].KID != emergency.KID {
		t.Fatalf("after -unpublish-previous: %+v", list.Keys)
	}
	if out, err := d.ctl("", "signing-key", "rotate", "-unpublish-previous"); err != nil || !strings.Contains(out, "unpublished now: "+emergency.KID) {
		t.Fatalf("text output: %v\n%s", err, out)
	}
}
