package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/gateway/ratelimit"
	"github.com/qrngd/qrngd/store"
)

// A refresh family keeps the tenant of the login that created it. When an
// operator moves the user to another tenant, or removes the user and
// someone is later created under the same name, the old session must end
// instead of minting tokens with the stale tenant (a global admin moved
// into a tenant would otherwise keep global tokens:admin powers).
func TestRefresh_TenantChangedOrUserRecreated(t *testing.T) {
	for _, backend := range []bool{false, true} {
		h := newHarness(t, &harnessOpts{bolt: backend})
		ctx := context.Background()
		h.addTenant("acme")

		h.addUser("root", "pw-root", "", ScopeTokensAdmin)
		rootTok, _ := h.login("root", "pw-root")

		// Moved from no tenant (global) into acme.
		h.addUser("pat", "pw-pat", "", ScopeTokensAdmin)
		_, rt := h.login("pat", "pw-pat")
		if err := h.st.Users().Update(ctx, store.User{Username: "pat", Tenant: "acme", Scopes: []string{ScopeTokensAdmin}}); err != nil {
			t.Fatal(err)
		}
		if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt+`"}`, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("bolt=%v: refresh after tenant change: %d %s, want 401", backend, r.status, r.body)
		}

		// Removed, then a different person created under the same name.
		h.addUser("quinn", "pw-quinn", "", ScopeRandomRead)
		_, rt = h.login("quinn", "pw-quinn")
		if err := h.st.Users().Delete(ctx, "quinn"); err != nil {
			t.Fatal(err)
		}
		h.clk.Advance(time.Second)
		h.addUser("quinn", "pw-other", "", ScopeRandomRead)
		if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt+`"}`, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("bolt=%v: refresh of a removed user's session after re-creation: %d %s, want 401", backend, r.status, r.body)
		}

		// The password was changed (e.g. after a compromise): sessions
		// begun before the change end.
		h.addUser("sam", "pw-sam", "", ScopeRandomRead)
		_, rt = h.login("sam", "pw-sam")
		h.clk.Advance(time.Second)
		if err := h.st.Users().SetPassword(ctx, "sam", "pw-sam-2"); err != nil {
			t.Fatal(err)
		}
		if r := h.postForm("/oauth/introspect", url.Values{"token": {rt}}, bearerHdr(rootTok)); r.json(t)["active"] != false {
			t.Fatalf("bolt=%v: introspection of a refresh token the password change ended: %s", backend, r.body)
		}
		if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt+`"}`, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("bolt=%v: refresh of a session begun before a password change: %d %s, want 401", backend, r.status, r.body)
		}
		h.clk.Advance(time.Second)
		_, rt = h.login("sam", "pw-sam-2")
		h.clk.Advance(time.Second)
		if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt+`"}`, nil); r.status != http.StatusOK {
			t.Fatalf("bolt=%v: refresh of a session begun after the password change: %d %s", backend, r.status, r.body)
		}

		// An unchanged user still refreshes.
		h.addUser("rae", "pw-rae", "acme", ScopeRandomRead)
		_, rt = h.login("rae", "pw-rae")
		h.clk.Advance(time.Second)
		if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt+`"}`, nil); r.status != http.StatusOK {
			t.Fatalf("bolt=%v: plain refresh: %d %s", backend, r.status, r.body)
		}
	}
}

// "Its own token" means same subject AND same tenant: a subject name that
// happens to equal another tenant's client_id (or a user name reused in
// another tenant) must not grant introspection or revocation across
// tenants.
func TestIntrospectRevoke_SameSubjectOtherTenant(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("acme")
	h.addTenant("globex")
	gid, gsec := h.addKey("globex", ScopeRandomRead)
	globexTok := h.clientToken(gid, gsec, nil)
	// An acme user without tokens:admin whose name equals globex's client_id.
	h.addUser(gid, "pw-x", "acme", ScopeRandomRead)
	at, _ := h.login(gid, "pw-x")

	r := h.postForm("/oauth/introspect", url.Values{"token": {globexTok}}, bearerHdr(at))
	if r.status != http.StatusOK || r.json(t)["active"] != false {
		t.Fatalf("cross-tenant introspect by a same-named subject: %d %s", r.status, r.body)
	}
	if r := h.postForm("/oauth/revoke", url.Values{"token": {globexTok}}, bearerHdr(at)); r.status != http.StatusForbidden {
		t.Fatalf("cross-tenant revoke by a same-named subject: %d %s", r.status, r.body)
	}
	if r := h.get2(globexTok); r.status != http.StatusOK {
		t.Fatalf("globex token after refused revoke: %d", r.status)
	}
	// The user's own token is still its own.
	r = h.postForm("/oauth/introspect", url.Values{"token": {at}}, bearerHdr(at))
	if r.json(t)["active"] != true {
		t.Fatalf("own token introspect: %s", r.body)
	}
}

// Per-IP buckets key IPv6 clients by their /64: one host or LAN holds a
// whole /64, so per-/128 buckets would let it rotate addresses past the
// login limit. IPv4 addresses stay separate.
func TestAllowIP_IPv6Per64(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) {
		o.Limits[RouteLogin] = RouteLimit{IP: &ratelimit.Options{Rate: 1, Burst: 1}}
	}})
	login := func(remote string) int {
		req := httptest.NewRequest(http.MethodPost, "/auth/login", strings.NewReader(`{"username":"nobody","password":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.svc.login(w, req)
		return w.Code
	}
	if c := login("[2001:db8:1:2::1]:40000"); c == http.StatusTooManyRequests {
		t.Fatalf("first request limited")
	}
	if c := login("[2001:db8:1:2:ffff::9]:40001"); c != http.StatusTooManyRequests {
		t.Fatalf("second address in the same /64: %d, want 429", c)
	}
	if c := login("[2001:db8:1:3::1]:40002"); c == http.StatusTooManyRequests {
		t.Fatalf("another /64 limited")
	}
	if c := login("192.0.2.1:1"); c == http.StatusTooManyRequests {
		t.Fatalf("IPv4 limited")
	}
	if c := login("192.0.2.2:1"); c == http.StatusTooManyRequests {
		t.Fatalf("neighbouring IPv4 address shares a bucket")
	}
	if got := limitKey("[::ffff:192.0.2.7]:1"); got != "192.0.2.7" {
		t.Errorf("IPv4-mapped key %q", got)
	}
}

// gatedUsers holds every Authenticate until the test releases it, so that
// many login attempts are in flight at once.
type gatedUsers struct {
	store.Users
	arrived chan struct{}
	release chan struct{}
}

func (g gatedUsers) Authenticate(ctx context.Context, name, pw string) (store.User, error) {
	g.arrived <- struct{}{}
	<-g.release
	return g.Users.Authenticate(ctx, name, pw)
}

type gatedStores struct {
	Stores
	u store.Users
}

func (g gatedStores) Users() store.Users { return g.u }

// The per-username back-off must bound attempts that are in flight at the
// same time, not only those that already failed: otherwise an attacker
// firing many guesses at once (from many addresses) gets every one of
// them checked before the first failure is recorded.
func TestBackoff_ConcurrentAttempts(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("ivan", "pw-ivan", "")
	g := gatedUsers{Users: h.st.Users(), arrived: make(chan struct{}), release: make(chan struct{})}
	svc, err := New(&Options{Issuer: h.base, Entropy: h.ent, Store: gatedStores{Stores: h.st, u: g}, Now: h.clk.Now,
		Limits:  map[string]RouteLimit{RouteLogin: {Off: true}},
		Backoff: Backoff{Free: 2, Base: time.Minute, Max: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	codes := make(chan int, n)
	for i := range n {
		go func() {
			req := httptest.NewRequest(http.MethodPost, "/auth/login", strings.NewReader(`{"username":"ivan","password":"guess`+string(rune('a'+i))+`"}`))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			svc.login(w, req)
			codes <- w.Code
		}()
	}
	// Wait until every attempt is either held inside Authenticate or done.
	held, done, got := 0, 0, map[int]int{}
	for held+done < n {
		select {
		case <-g.arrived:
			held++
		case c := <-codes:
			done++
			got[c]++
		}
	}
	close(g.release)
	for ; done < n; done++ {
		got[<-codes]++
	}
	if held > 3 {
		t.Fatalf("%d guesses reached the password check at once (back-off Free=2 allows 3); codes %v", held, got)
	}
	if got[http.StatusUnauthorized] != held || got[http.StatusTooManyRequests] != n-held {
		t.Fatalf("codes %v with %d checked", got, held)
	}
}

// Verified tokens are cached and shared between requests; what VerifyMCP
// hands to the MCP layer must be its own copy, or a consumer editing the
// audience list would change what later audience checks of the same token
// see (and race with them).
func TestVerifyMCP_AudienceNotShared(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("acme")
	id, sec := h.addKey("acme", ScopeMCPTools)
	tok := h.clientToken(id, sec, url.Values{"resource": {h.base + "/mcp"}})
	ti, err := h.svc.VerifyMCP(context.Background(), tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	ti.Extra["aud"].([]string)[0] = h.base // consumer edits its copy
	if _, err := h.svc.Verify(context.Background(), tok, h.base); err == nil {
		t.Fatal("an MCP-only token verified for the API after a consumer edited the TokenInfo audience")
	}
	if _, err := h.svc.Verify(context.Background(), tok, h.base+"/mcp"); err != nil {
		t.Fatalf("MCP audience lost: %v", err)
	}
}

// Two (or more) clients racing to refresh with the same token: at most one
// rotation can win, every other is reuse, and reuse ends the session, so
// in the end no token of the family works (the winner's included).
func TestRefresh_ConcurrentSameToken(t *testing.T) {
	for _, backend := range []bool{false, true} {
		h := newHarness(t, &harnessOpts{bolt: backend})
		h.addUser("uma", "pw-uma", "", ScopeSourcesRead)
		_, rt := h.login("uma", "pw-uma")
		const n = 8
		type out struct {
			status int
			at, rt string
		}
		res := make(chan out, n)
		start := make(chan struct{})
		for range n {
			go func() {
				<-start
				req, _ := http.NewRequest(http.MethodPost, h.base+"/auth/refresh", strings.NewReader(`{"refresh_token":"`+rt+`"}`))
				req.Header.Set("Content-Type", "application/json")
				o := out{}
				if r, err := h.srv.Client().Do(req); err == nil {
					var m map[string]any
					_ = json.NewDecoder(r.Body).Decode(&m)
					r.Body.Close()
					o.status = r.StatusCode
					o.at, _ = m["access_token"].(string)
					o.rt, _ = m["refresh_token"].(string)
				}
				res <- o
			}()
		}
		close(start)
		var won []out
		for range n {
			o := <-res
			switch o.status {
			case http.StatusOK:
				won = append(won, o)
			case http.StatusUnauthorized:
			default:
				t.Fatalf("bolt=%v: concurrent refresh answered %d", backend, o.status)
			}
		}
		if len(won) > 1 {
			t.Fatalf("bolt=%v: %d concurrent refreshes with one token succeeded", backend, len(won))
		}
		for _, w := range won {
			if r := h.get(w.at); r.status != http.StatusUnauthorized {
				t.Errorf("bolt=%v: winner's access token after the race: %d, want revoked", backend, r.status)
			}
			if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+w.rt+`"}`, nil); r.status != http.StatusUnauthorized {
				t.Errorf("bolt=%v: winner's refresh token after the race: %d, want revoked", backend, r.status)
			}
		}
	}
}

type gatedKeys struct {
	store.APIKeys
	arrived chan struct{}
	release chan struct{}
}

func (g gatedKeys) Authenticate(ctx context.Context, id, secret string) (store.APIKey, error) {
	g.arrived <- struct{}{}
	<-g.release
	return g.APIKeys.Authenticate(ctx, id, secret)
}

type gatedKeyStores struct {
	Stores
	k store.APIKeys
}

func (g gatedKeyStores) APIKeys() store.APIKeys { return g.k }

// A busy API client sends many token requests at once with its (right)
// secret; the per-client back-off must not count those in-flight requests
// as failures and lock it out (only the login back-off charges attempts
// in advance).
func TestBackoff_ConcurrentClientSuccesses(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("acme")
	id, sec := h.addKey("acme", ScopeRandomRead)
	g := gatedKeys{APIKeys: h.st.APIKeys(), arrived: make(chan struct{}), release: make(chan struct{})}
	svc, err := New(&Options{Issuer: h.base, Entropy: h.ent, Store: gatedKeyStores{Stores: h.st, k: g}, Now: h.clk.Now,
		Limits:  map[string]RouteLimit{RouteToken: {Off: true}},
		Backoff: Backoff{Free: 2, Base: time.Minute, Max: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	codes := make(chan int, n)
	for range n {
		go func() {
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {sec}}
			req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			svc.token(w, req)
			codes <- w.Code
		}()
	}
	held, done, got := 0, 0, map[int]int{}
	for held+done < n {
		select {
		case <-g.arrived:
			held++
		case c := <-codes:
			done++
			got[c]++
		}
	}
	close(g.release)
	for ; done < n; done++ {
		got[<-codes]++
	}
	if got[http.StatusOK] != n {
		t.Fatalf("concurrent token requests with the right secret: %v, want %d × 200", got, n)
	}
}
