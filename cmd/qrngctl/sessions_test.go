package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/gateway/auth"
)

// loginHTTP logs in over the daemon's HTTP endpoint and returns the access
// and refresh tokens.
func (d *daemon) loginHTTP(user, pw string) (string, string) {
	d.t.Helper()
	res, err := http.Post(d.web.URL+"/auth/login", "application/json", strings.NewReader(`{"username":"`+user+`","password":"`+pw+`"}`))
	if err != nil {
		d.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	if res.StatusCode != http.StatusOK {
		d.t.Fatalf("login %s: %d %v", user, res.StatusCode, m)
	}
	return m["access_token"].(string), m["refresh_token"].(string)
}

func (d *daemon) refreshStatus(rt string) int {
	d.t.Helper()
	res, err := http.Post(d.web.URL+"/auth/refresh", "application/json", strings.NewReader(`{"refresh_token":"`+rt+`"}`))
	if err != nil {
		d.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// `user passwd` and `user rm` end the user's sessions at once: the access
// tokens already issued stop verifying (not only after they expire) and
// the refresh tokens are refused; another user's session is untouched.
func TestCLI_UserChangesEndSessions(t *testing.T) {
	d := startDaemon(t, t.TempDir())
	ctx := context.Background()
	d.mustCtl("old-pw\n", "user", "add", "bob", "-scopes", "random:read")
	d.mustCtl("carol-pw\n", "user", "add", "carol", "-scopes", "random:read")
	at1, rt1 := d.loginHTTP("bob", "old-pw")
	at2, _ := d.loginHTTP("bob", "old-pw")
	atC, rtC := d.loginHTTP("carol", "carol-pw")

	d.mustCtl("new-pw\n", "user", "passwd", "bob")
	for i, tok := range []string{at1, at2} {
		if _, err := d.svc.Verify(ctx, tok, d.web.URL); !auth.IsInvalidToken(err) {
			t.Fatalf("session %d's access token after user passwd: %v, want invalid", i+1, err)
		}
	}
	if s := d.refreshStatus(rt1); s != http.StatusUnauthorized {
		t.Fatalf("refresh after user passwd: %d", s)
	}
	if _, err := d.svc.Verify(ctx, atC, d.web.URL); err != nil {
		t.Fatalf("another user's token: %v", err)
	}

	at3, rt3 := d.loginHTTP("bob", "new-pw")
	if _, err := d.svc.Verify(ctx, at3, d.web.URL); err != nil {
		t.Fatalf("token after the password change: %v", err)
	}
	d.mustCtl("", "user", "rm", "bob")
	if _, err := d.svc.Verify(ctx, at3, d.web.URL); !auth.IsInvalidToken(err) {
		t.Fatalf("access token after user rm: %v, want invalid", err)
	}
	if s := d.refreshStatus(rt3); s != http.StatusUnauthorized {
		t.Fatalf("refresh after user rm: %d", s)
	}
	if s := d.refreshStatus(rtC); s != http.StatusOK {
		t.Fatalf("another user's refresh: %d", s)
	}
	recs, _ := d.db.Audit().List(ctx, 0, 1000)
	n := 0
	for _, r := range recs {
		if r.Type == "session.end_all" && r.Subject == "bob" && strings.HasPrefix(r.Fields["by"], "admin-socket") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d session.end_all audit records, want 2", n)
	}
}
