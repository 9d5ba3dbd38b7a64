package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/store"
)

func TestLogin_ContractAndAudit(t *testing.T) {
	for _, bolt := range []bool{false, true} {
		t.Run(fmt.Sprintf("bolt=%v", bolt), func(t *testing.T) {
			h := newHarness(t, &harnessOpts{bolt: bolt})
			if err := SeedDemo(context.Background(), h.st.Users()); err != nil {
				t.Fatal(err)
			}
			r := h.postJSON("/auth/login", `{"username":"demo","password":"demo123"}`, nil)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
			m := r.json(t)
			if m["token_type"] != "bearer" || m["expires_in"].(float64) != 900 || m["access_token"] == "" || m["refresh_token"] == "" {
				t.Fatalf("login body %s", r.body)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			tok := m["access_token"].(string)
			c, err := h.svc.Verify(context.Background(), tok, h.base)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Scopes(), AllScopes) || c.Subject != "demo" || c.Issuer != h.base ||
				!slices.Equal([]string(c.Audience), []string{h.base, h.base + "/mcp"}) {
				t.Errorf("claims %+v", c)
			}
			if raw, _ := base64.RawURLEncoding.DecodeString(c.ID); len(raw) < 16 {
				t.Errorf("jti %q has fewer than 128 bits", c.ID)
			}
			// The issuance record is durable (List reads it back) and
			// carries the pool health snapshot.
			recs := h.auditRecords()
			last := recs[len(recs)-1]
			if last.Type != "token.issue" || last.Fields["jti"] != c.ID || last.Fields["pool.policy"] != "fail-closed" ||
				last.Fields["pool.sources"] != "sim0=healthy" || last.Fields["pool.ready"] != "true" || last.Fields["entropy.sources"] != "sim0" {
				t.Errorf("audit record %+v", last)
			}
			if n, err := h.audit.Verify(context.Background()); err != nil || n == 0 {
				t.Errorf("audit verify: %d %v", n, err)
			}
			if r := h.postJSON("/auth/login", `{"username":"demo","password":"wrong"}`, nil); r.status != http.StatusUnauthorized || r.errCode(t) != "invalid_credentials" {
				t.Errorf("wrong password: %d %s", r.status, r.body)
			}
			if r := h.postJSON("/auth/login", `{"username":"nobody","password":"demo123"}`, nil); r.status != http.StatusUnauthorized || r.errCode(t) != "invalid_credentials" {
				t.Errorf("unknown user: %d %s", r.status, r.body)
			}
		})
	}
}

func TestLogin_BadInput(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("carol", "pw-carol", "")
	long := `{"username":"carol","password":"` + strings.Repeat("a", 20<<10) + `"}`
	cases := []struct {
		name, ctype, body string
		status            int
		code              string
	}{
		{"malformed JSON", "application/json", `{"username":"carol",`, 400, "bad_request"},
		{"not an object", "application/json", `["carol","pw"]`, 400, "bad_request"},
		{"trailing data", "application/json", `{"username":"carol","password":"pw-carol"} {}`, 400, "bad_request"},
		{"duplicate member", "application/json", `{"username":"x","username":"carol","password":"pw-carol"}`, 400, "bad_request"},
		{"case-variant member", "application/json", `{"Username":"carol","password":"pw-carol"}`, 400, "bad_request"},
		{"unknown member", "application/json", `{"username":"carol","password":"pw-carol","admin":"true"}`, 400, "bad_request"},
		{"number password", "application/json", `{"username":"carol","password":123}`, 400, "bad_request"},
		{"missing password", "application/json", `{"username":"carol"}`, 400, "bad_request"},
		{"wrong content type", "text/plain", `{"username":"carol","password":"pw-carol"}`, 415, "unsupported_media_type"},
		{"form content type", "application/x-www-form-urlencoded", `username=carol&password=pw-carol`, 415, "unsupported_media_type"},
		{"no content type", "", `{"username":"carol","password":"pw-carol"}`, 415, "unsupported_media_type"},
		{"oversized body", "application/json", long, 413, "request_too_large"},
		{"NUL in username", "application/json", `{"username":"car\u0000ol","password":"pw"}`, 400, "bad_request"},
		{"escape in username", "application/json", `{"username":"carol\u001b[31m","password":"pw"}`, 400, "bad_request"},
		{"bidi override in username", "application/json", `{"username":"carol\u202e","password":"pw"}`, 400, "bad_request"},
		{"zero-width joiner", "application/json", `{"username":"ca\u200drol","password":"pw"}`, 400, "bad_request"},
		{"space in username", "application/json", `{"username":"car ol","password":"pw"}`, 400, "bad_request"},
		{"non-NFC username", "application/json", `{"username":"cafe\u0301","password":"pw"}`, 400, "bad_request"},
		{"invalid UTF-8", "application/json", "{\"username\":\"car\xffol\",\"password\":\"pw\"}", 400, "bad_request"},
		{"65-byte username", "application/json", `{"username":"` + strings.Repeat("u", 65) + `","password":"pw"}`, 400, "bad_request"},
		{"fullwidth lookalike is just unknown", "application/json", `{"username":"ｃａｒｏｌ","password":"pw-carol"}`, 401, "invalid_credentials"},
		{"unicode username ok but unknown", "application/json", `{"username":"café","password":"pw"}`, 401, "invalid_credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(http.MethodPost, "/auth/login", tc.ctype, strings.NewReader(tc.body), nil)
			if r.status != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	t.Run("chunked oversized body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, h.base+"/auth/login", struct{ *strings.Reader }{strings.NewReader(long)})
		req.Header.Set("Content-Type", "application/json")
		res, err := h.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 413 || req.ContentLength > 0 {
			t.Fatalf("got %d (content length %d), want 413", res.StatusCode, req.ContentLength)
		}
	})
}

func TestRefresh_RotationAndReuse(t *testing.T) {
	h := newHarness(t, &harnessOpts{bolt: true})
	h.addUser("dave", "pw-dave", "", ScopeSourcesRead)
	_, rt1 := h.login("dave", "pw-dave")
	r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt1+`"}`, nil)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	m := r.json(t)
	at2, rt2 := m["access_token"].(string), m["refresh_token"].(string)
	if rt2 == rt1 {
		t.Fatal("refresh token not rotated")
	}
	if r := h.get(at2); r.status != http.StatusOK {
		t.Fatalf("refreshed token: %d", r.status)
	}
	// Reuse of the rotated-away token: refused, family revoked, audited.
	if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt1+`"}`, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("reuse: %d %s", r.status, r.body)
	}
	if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt2+`"}`, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("current token after reuse: %d %s, want the family revoked", r.status, r.body)
	}
	if r := h.get(at2); r.status != http.StatusUnauthorized {
		t.Fatalf("access token of the reused family: %d, want revoked", r.status)
	}
	var found bool
	for _, rec := range h.auditRecords() {
		found = found || rec.Type == "token.refresh_reuse" && rec.Subject == "dave"
	}
	if !found {
		t.Error("reuse not audited")
	}
	for _, bad := range []string{`{"refresh_token":"qrt_short"}`, `{"refresh_token":"` + RefreshPrefix + strings.Repeat("A", 43) + `"}`} {
		if r := h.postJSON("/auth/refresh", bad, nil); r.status != http.StatusUnauthorized {
			t.Errorf("%s: %d", bad, r.status)
		}
	}
}

func TestLogout_RevokesTokenAndFamily(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("erin", "pw-erin", "", ScopeSourcesRead)
	at, rt := h.login("erin", "pw-erin")
	r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt+`"}`, nil)
	at2 := r.json(t)["access_token"].(string)
	rt2 := r.json(t)["refresh_token"].(string)
	if r := h.do(http.MethodPost, "/auth/logout", "", nil, bearerHdr(at2)); r.status != http.StatusOK {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	for _, tok := range []string{at, at2} {
		if r := h.get(tok); r.status != http.StatusUnauthorized {
			t.Errorf("token of the logged-out session still works: %d", r.status)
		}
	}
	if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt2+`"}`, nil); r.status != http.StatusUnauthorized {
		t.Errorf("refresh after logout: %d", r.status)
	}
	if r := h.do(http.MethodPost, "/auth/logout", "", nil, nil); r.status != http.StatusUnauthorized {
		t.Errorf("logout without token: %d", r.status)
	}
}

func TestOAuthToken_ClientCredentials(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("acme")
	id, secret := h.addKey("acme", ScopeRandomRead, ScopeSourcesRead)
	t.Run("basic", func(t *testing.T) {
		tok := h.clientToken(id, secret, nil)
		c, err := h.svc.Verify(context.Background(), tok, h.base+"/mcp")
		if err != nil {
			t.Fatal(err)
		}
		if c.ClientID != id || c.Subject != id || c.Tenant != "acme" || c.Scope != "random:read sources:read" {
			t.Errorf("claims %+v", c)
		}
	})
	t.Run("post", func(t *testing.T) {
		r := h.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret},
			"scope": {"random:read"}, "resource": {h.base + "/mcp"}}, nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		m := r.json(t)
		if m["token_type"] != "Bearer" || m["scope"] != "random:read" {
			t.Errorf("%s", r.body)
		}
		c, err := h.svc.Verify(context.Background(), m["access_token"].(string), h.base+"/mcp")
		if err != nil || len(c.Audience) != 1 {
			t.Fatalf("aud %v, err %v", c, err)
		}
		if _, err := h.svc.Verify(context.Background(), m["access_token"].(string), h.base); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("MCP-only token accepted for the API: %v", err)
		}
		// And through HTTP: the API refuses it.
		if r := h.get(m["access_token"].(string)); r.status != 401 {
			t.Errorf("MCP-audience token on /v1: %d", r.status)
		}
	})
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	bad := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":nope"))
	cases := []struct {
		name   string
		form   url.Values
		auth   string
		status int
		code   string
	}{
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}}, bad, 401, "invalid_client"},
		{"no credentials", url.Values{"grant_type": {"client_credentials"}}, "", 401, "invalid_client"},
		{"both methods", url.Values{"grant_type": {"client_credentials"}, "client_secret": {secret}}, basic, 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"password"}}, basic, 400, "unsupported_grant_type"},
		{"no grant", url.Values{}, basic, 400, "invalid_request"},
		{"scope not granted", url.Values{"grant_type": {"client_credentials"}, "scope": {"tokens:admin"}}, basic, 400, "invalid_scope"},
		{"resource not served", url.Values{"grant_type": {"client_credentials"}, "resource": {"https://evil.example/api"}}, basic, 400, "invalid_target"},
		{"relative resource", url.Values{"grant_type": {"client_credentials"}, "resource": {"/mcp"}}, basic, 400, "invalid_target"},
		{"duplicate parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, basic, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			r := h.postForm("/oauth/token", tc.form, hdr)
			if r.status != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if _, ok := r.json(t)["error_description"]; !ok {
				t.Error("no error_description")
			}
		})
	}
	t.Run("wrong content type", func(t *testing.T) {
		r := h.do(http.MethodPost, "/oauth/token", "application/json", strings.NewReader(`{"grant_type":"client_credentials"}`), map[string]string{"Authorization": basic})
		if r.status != 415 || r.errCode(t) != "invalid_request" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("revoked key", func(t *testing.T) {
		id2, sec2 := h.addKey("acme", ScopeRandomRead)
		if err := h.st.APIKeys().Revoke(context.Background(), id2); err != nil {
			t.Fatal(err)
		}
		r := h.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id2}, "client_secret": {sec2}}, nil)
		if r.status != 401 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
}

func TestIssuance_EntropyGated(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("frank", "pw-frank", "", ScopeRandomRead)
	h.addTenant("acme")
	id, secret := h.addKey("acme", ScopeRandomRead)
	_ = h.clientToken(id, secret, nil) // signing key exists
	before := len(h.auditRecords())
	h.ent.fail.Store(true)
	r := h.postJSON("/auth/login", `{"username":"frank","password":"pw-frank"}`, nil)
	if r.status != 503 || r.errCode(t) != "entropy_unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	r = h.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, nil)
	if r.status != 503 || r.errCode(t) != "temporarily_unavailable" {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	if n := len(h.auditRecords()); n != before {
		t.Errorf("%d issuance records written while the pool could not serve", n-before)
	}
	h.ent.fail.Store(false)
	if tok := h.clientToken(id, secret, nil); tok == "" {
		t.Fatal("no token after recovery")
	}
}

func TestRateLimit_Headers(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) {
		o.Limits[RouteToken] = RouteLimit{IP: ratelimitOpts(1, 2)}
	}})
	h.addTenant("acme")
	id, secret := h.addKey("acme", ScopeRandomRead)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	for i := range 2 {
		r := h.postForm("/oauth/token", form, nil)
		if r.status != 200 || r.header.Get("RateLimit-Limit") != "2" || r.header.Get("RateLimit-Remaining") != fmt.Sprint(1-i) {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	r := h.postForm("/oauth/token", form, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "1" || r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") == "" {
		t.Fatalf("third request: %d %v %s", r.status, r.header, r.body)
	}
	h.clk.Advance(time.Second)
	if r := h.postForm("/oauth/token", form, nil); r.status != 200 {
		t.Fatalf("after refill: %d", r.status)
	}
}

func TestBackoff_LoginFailures(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.Backoff = Backoff{Free: 2, Base: 4 * time.Second, Max: time.Minute} }})
	h.addUser("gina", "pw-gina", "")
	bad := `{"username":"gina","password":"nope"}`
	for i := range 3 {
		if r := h.postJSON("/auth/login", bad, nil); r.status != 401 {
			t.Fatalf("failure %d: %d", i, r.status)
		}
	}
	// Locked now, even with the right password.
	r := h.postJSON("/auth/login", `{"username":"gina","password":"pw-gina"}`, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "4" {
		t.Fatalf("during back-off: %d %v %s", r.status, r.header, r.body)
	}
	// Another user is unaffected.
	h.addUser("hank", "pw-hank", "")
	h.login("hank", "pw-hank")
	h.clk.Advance(4 * time.Second)
	h.login("gina", "pw-gina")
	// Clients back off too.
	h.addTenant("acme")
	id, _ := h.addKey("acme", ScopeRandomRead)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {"wrong"}}
	for range 3 {
		h.postForm("/oauth/token", form, nil)
	}
	if r := h.postForm("/oauth/token", form, nil); r.status != 429 || r.errCode(t) != "rate_limited" {
		t.Fatalf("client back-off: %d %s", r.status, r.body)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("acme")
	h.addTenant("globex")
	h.addUser("acme-admin", "pw-a", "acme", ScopeTokensAdmin, ScopeRandomRead)
	h.addUser("root", "pw-r", "", ScopeTokensAdmin)
	acmeKey, acmeSec := h.addKey("acme", ScopeRandomRead)
	globexKey, globexSec := h.addKey("globex", ScopeRandomRead)
	admin, _ := h.login("acme-admin", "pw-a")
	root, _ := h.login("root", "pw-r")
	acmeTok := h.clientToken(acmeKey, acmeSec, nil)
	globexTok := h.clientToken(globexKey, globexSec, nil)

	// Keys: the tenant admin lists only its tenant's keys.
	r := h.do(http.MethodGet, "/v1/keys", "", nil, bearerHdr(admin))
	var list struct{ Keys []store.APIKey }
	_ = json.Unmarshal(r.body, &list)
	if r.status != 200 || len(list.Keys) != 1 || list.Keys[0].ClientID != acmeKey {
		t.Fatalf("tenant admin key list: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/v1/keys?tenant=globex", "", nil, bearerHdr(admin)); !strings.Contains(string(r.body), acmeKey) || strings.Contains(string(r.body), globexKey) {
		t.Fatalf("tenant admin escaped with ?tenant=: %s", r.body)
	}
	if r := h.do(http.MethodGet, "/v1/keys", "", nil, bearerHdr(root)); !strings.Contains(string(r.body), globexKey) {
		t.Fatalf("global admin list: %s", r.body)
	}
	// Keys: revoking another tenant's key is a 404; its own works.
	if r := h.do(http.MethodDelete, "/v1/keys/"+globexKey, "", nil, bearerHdr(admin)); r.status != 404 {
		t.Fatalf("cross-tenant key revoke: %d %s", r.status, r.body)
	}
	if k, _ := h.st.APIKeys().Get(context.Background(), globexKey); k.Revoked {
		t.Fatal("globex key revoked by acme admin")
	}
	if r := h.postJSON("/v1/keys", `{"scope":"random:read","tenant":"globex"}`, bearerHdr(admin)); r.status != 403 {
		t.Fatalf("cross-tenant key create: %d %s", r.status, r.body)
	}
	if r := h.postJSON("/v1/keys", `{"scope":"sources:admin"}`, bearerHdr(admin)); r.status != 403 {
		t.Fatalf("escalating key create: %d %s", r.status, r.body)
	}
	r = h.postJSON("/v1/keys", `{"scope":"random:read","name":"ci"}`, bearerHdr(admin))
	if r.status != 201 || r.json(t)["client_secret"] == "" {
		t.Fatalf("own key create: %d %s", r.status, r.body)
	}
	// Tokens: introspection and revocation of another tenant's token fail.
	r = h.postForm("/oauth/introspect", url.Values{"token": {globexTok}}, bearerHdr(admin))
	if r.status != 200 || r.json(t)["active"] != false {
		t.Fatalf("cross-tenant introspect: %d %s", r.status, r.body)
	}
	r = h.postForm("/oauth/introspect", url.Values{"token": {acmeTok}}, bearerHdr(admin))
	if m := r.json(t); m["active"] != true || m["client_id"] != acmeKey || m["tenant"] != "acme" {
		t.Fatalf("own-tenant introspect: %s", r.body)
	}
	if r := h.postForm("/oauth/revoke", url.Values{"token": {globexTok}}, bearerHdr(admin)); r.status != 403 {
		t.Fatalf("cross-tenant revoke: %d %s", r.status, r.body)
	}
	if r := h.get2(globexTok); r.status != 200 {
		t.Fatalf("globex token hurt by refused revoke: %d", r.status)
	}
	// A client can revoke its own token without tokens:admin.
	if r := h.postForm("/oauth/revoke", url.Values{"token": {acmeTok}, "client_id": {acmeKey}, "client_secret": {acmeSec}}, nil); r.status != 200 {
		t.Fatalf("own revoke: %d %s", r.status, r.body)
	}
	if r := h.get2(acmeTok); r.status != 401 {
		t.Fatalf("revoked token: %d", r.status)
	}
	// A client without tokens:admin cannot see another client's token.
	r = h.postForm("/oauth/introspect", url.Values{"token": {globexTok}, "client_id": {acmeKey}, "client_secret": {acmeSec}}, nil)
	if r.json(t)["active"] != false {
		t.Fatalf("client introspected a foreign token: %s", r.body)
	}
	// The global admin can revoke anything.
	if r := h.postForm("/oauth/revoke", url.Values{"token": {globexTok}}, bearerHdr(root)); r.status != 200 {
		t.Fatalf("global revoke: %d %s", r.status, r.body)
	}
	if r := h.get2(globexTok); r.status != 401 {
		t.Fatalf("revoked by global admin: %d", r.status)
	}
	// RFC 7009: unknown tokens are not an error; callers must authenticate.
	if r := h.postForm("/oauth/revoke", url.Values{"token": {"garbage"}}, bearerHdr(root)); r.status != 200 {
		t.Fatalf("garbage revoke: %d", r.status)
	}
	if r := h.postForm("/oauth/revoke", url.Values{"token": {acmeTok}}, nil); r.status != 401 {
		t.Fatalf("anonymous revoke: %d", r.status)
	}
	if r := h.postForm("/oauth/introspect", url.Values{"token": {acmeTok}}, nil); r.status != 401 {
		t.Fatalf("anonymous introspect: %d", r.status)
	}
}

// get2 calls /v1/random (scope random:read).
func (h *harness) get2(tok string) resp {
	return h.do(http.MethodGet, "/v1/random?bytes=4", "", nil, bearerHdr(tok))
}

// TestJWKS_StandardVerification verifies issued tokens with golang-jwt
// using nothing but the JWKS document fetched over HTTP (keys parsed from
// the JSON here, RFC 7517/8037), for both algorithms.
func TestJWKS_StandardVerification(t *testing.T) {
	for _, alg := range []string{store.AlgEdDSA, store.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.Alg = alg }})
			h.addUser("ivy", "pw-ivy", "", ScopeRandomRead)
			tok, _ := h.login("ivy", "pw-ivy")
			// Rotate: the old key must stay published for its tokens.
			if _, err := h.svc.RotateSigningKey(context.Background(), "test"); err != nil {
				t.Fatal(err)
			}
			tok2, _ := h.login("ivy", "pw-ivy")
			r := h.do(http.MethodGet, "/.well-known/jwks.json", "", nil, nil)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			var set struct {
				Keys []map[string]string `json:"keys"`
			}
			if err := json.Unmarshal(r.body, &set); err != nil || len(set.Keys) != 2 {
				t.Fatalf("jwks %s (%v)", r.body, err)
			}
			keys := map[string]any{}
			for _, k := range set.Keys {
				x, _ := base64.RawURLEncoding.DecodeString(k["x"])
				switch k["kty"] + "/" + k["crv"] {
				case "OKP/Ed25519":
					keys[k["kid"]] = ed25519.PublicKey(x)
				case "EC/P-256":
					y, _ := base64.RawURLEncoding.DecodeString(k["y"])
					keys[k["kid"]] = &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
				default:
					t.Fatalf("unexpected key %v", k)
				}
				if k["alg"] != alg || k["use"] != "sig" {
					t.Errorf("key %v", k)
				}
			}
			for _, tk := range []string{tok, tok2} {
				parsed, err := jwt.Parse(tk, func(t *jwt.Token) (any, error) { return keys[t.Header["kid"].(string)], nil },
					jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(h.base), jwt.WithAudience(h.base), jwt.WithExpirationRequired())
				if err != nil || !parsed.Valid {
					t.Fatalf("standard verification: %v", err)
				}
				if parsed.Header["typ"] != "at+jwt" {
					t.Errorf("typ %v", parsed.Header["typ"])
				}
			}
		})
	}
}

func TestMetadata_RFC8414(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", nil, nil)
	m := r.json(t)
	if r.status != 200 || m["issuer"] != h.base || m["token_endpoint"] != h.base+"/oauth/token" ||
		m["jwks_uri"] != h.base+"/.well-known/jwks.json" || m["revocation_endpoint"] != h.base+"/oauth/revoke" ||
		m["introspection_endpoint"] != h.base+"/oauth/introspect" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if g := fmt.Sprint(m["grant_types_supported"]); g != "[client_credentials]" {
		t.Errorf("grant types %s", g)
	}
}

func TestIntrospect_RefreshAndAccess(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("jack", "pw-jack", "", ScopeRandomRead)
	at, rt := h.login("jack", "pw-jack")
	for _, tok := range []string{at, rt} {
		r := h.postForm("/oauth/introspect", url.Values{"token": {tok}}, bearerHdr(at))
		if m := r.json(t); m["active"] != true || m["sub"] != "jack" {
			t.Fatalf("introspect own %s: %s", tok[:4], r.body)
		}
	}
	// Revoking the refresh token ends the family (and its access tokens).
	if r := h.postForm("/oauth/revoke", url.Values{"token": {rt}}, bearerHdr(at)); r.status != 200 {
		t.Fatalf("revoke refresh: %d %s", r.status, r.body)
	}
	if r := h.get2(at); r.status != 401 {
		t.Fatalf("access token after its refresh family was revoked: %d", r.status)
	}
}

func TestVerifyMCP_TokenInfo(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("acme")
	id, sec := h.addKey("acme", ScopeMCPTools)
	tok := h.clientToken(id, sec, url.Values{"resource": {h.base + "/mcp"}})
	ti, err := h.svc.MCPVerifier()(context.Background(), tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ti.UserID != id || !slices.Equal(ti.Scopes, []string{ScopeMCPTools}) || ti.Expiration.IsZero() ||
		!slices.Equal(ti.Extra["aud"].([]string), []string{h.base + "/mcp"}) || ti.Extra["client_id"] != id {
		t.Fatalf("%+v", ti)
	}
	bad := h.craft(func(c *Claims, _ map[string]any) { c.Audience = jwt.ClaimStrings{"https://evil.example"} }, nil, nil)
	if _, err := h.svc.VerifyMCP(context.Background(), bad, nil); !errors.Is(err, sdkInvalid) {
		t.Fatalf("foreign audience: %v", err)
	}
}

func TestCheckProduction(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	if err := CheckProduction(ctx, h.st.Users(), nil); err != nil {
		t.Fatal(err)
	}
	if err := CheckProduction(ctx, h.st.Users(), []string{"auth.users[0].password"}); !errors.Is(err, ErrProduction) || !strings.Contains(err.Error(), "auth.users[0].password") {
		t.Fatalf("plaintext: %v", err)
	}
	if err := SeedDemo(ctx, h.st.Users()); err != nil {
		t.Fatal(err)
	}
	if err := SeedDemo(ctx, h.st.Users()); err != nil {
		t.Fatalf("seeding twice: %v", err)
	}
	if err := CheckProduction(ctx, h.st.Users(), nil); !errors.Is(err, ErrProduction) {
		t.Fatalf("demo user: %v", err)
	}
}

func TestNew_Options(t *testing.T) {
	ent := &fakeEntropy{}
	h := newHarness(t, nil)
	for name, o := range map[string]*Options{
		"nil":              nil,
		"no issuer":        {Entropy: ent, Store: h.st},
		"relative issuer":  {Issuer: "/x", Entropy: ent, Store: h.st},
		"issuer query":     {Issuer: "https://x?y", Entropy: ent, Store: h.st},
		"trailing slash":   {Issuer: "https://x/", Entropy: ent, Store: h.st},
		"no entropy":       {Issuer: "https://x", Store: h.st},
		"bad alg":          {Issuer: "https://x", Entropy: ent, Store: h.st, Alg: "HS256"},
		"short ttl":        {Issuer: "https://x", Entropy: ent, Store: h.st, AccessTTL: time.Second},
		"unknown route":    {Issuer: "https://x", Entropy: ent, Store: h.st, Limits: map[string]RouteLimit{"nope": {}}},
		"refresh < access": {Issuer: "https://x", Entropy: ent, Store: h.st, AccessTTL: time.Hour, RefreshTTL: time.Minute},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSigningKey_FromPoolFullEntropy: the first issuance creates the
// signing key from full-entropy pool reads (the store's reader), and when
// the pool cannot serve, even key creation is refused with 503.
func TestSigningKey_FromPoolFullEntropy(t *testing.T) {
	h := newHarness(t, &harnessOpts{bolt: true})
	h.addTenant("acme")
	id, secret := h.addKey("acme", ScopeRandomRead)
	h.ent.fail.Store(true)
	r := h.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, nil)
	if r.status != 503 {
		t.Fatalf("issuance without a signing key and without entropy: %d %s", r.status, r.body)
	}
	if _, err := h.st.Keys().Current(context.Background(), store.AlgEdDSA); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a signing key was created without entropy: %v", err)
	}
	h.ent.fail.Store(false)
	before := h.ent.full.Load()
	h.clientToken(id, secret, nil)
	if h.ent.full.Load() == before {
		t.Fatal("signing key seed not drawn in mode full")
	}
	if _, err := h.st.Keys().Current(context.Background(), store.AlgEdDSA); err != nil {
		t.Fatal(err)
	}
}

func TestRateLimit_PerPrincipal(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) {
		o.Limits[RouteToken] = RouteLimit{IP: ratelimitOpts(1000, 1000), Principal: ratelimitOpts(1, 1)}
	}})
	h.addTenant("acme")
	a, as := h.addKey("acme", ScopeRandomRead)
	b, bs := h.addKey("acme", ScopeRandomRead)
	form := func(id, sec string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {sec}}
	}
	if r := h.postForm("/oauth/token", form(a, as), nil); r.status != 200 {
		t.Fatalf("%d", r.status)
	}
	r := h.postForm("/oauth/token", form(a, as), nil)
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Limit") != "1" {
		t.Fatalf("second request of client a: %d %v", r.status, r.header)
	}
	if r := h.postForm("/oauth/token", form(b, bs), nil); r.status != 200 {
		t.Fatalf("client b limited by client a: %d", r.status)
	}
}

func TestEntropyReader(t *testing.T) {
	ent := &fakeEntropy{}
	r := NewEntropyReader(ent, "full", time.Second)
	p := make([]byte, 100<<10)
	if n, err := r.Read(p); n != len(p) || err != nil || ent.full.Load() != 2 {
		t.Fatalf("%d %v (full reads %d)", n, err, ent.full.Load())
	}
	ent.fail.Store(true)
	if n, err := r.Read(p); n != 0 || err == nil || !isEntropyErr(err) {
		t.Fatalf("failing pool: %d %v", n, err)
	}
	if slices.ContainsFunc(p, func(b byte) bool { return b != 0 }) {
		t.Fatal("buffer not cleared after a failed read")
	}
}

func TestRevokeClient_KillsItsTokens(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("acme")
	h.addUser("acme-admin", "pw-a", "acme", ScopeTokensAdmin, ScopeRandomRead)
	id, sec := h.addKey("acme", ScopeRandomRead)
	other, osec := h.addKey("acme", ScopeRandomRead)
	tok := h.clientToken(id, sec, nil)
	otherTok := h.clientToken(other, osec, nil)
	admin, _ := h.login("acme-admin", "pw-a")
	if r := h.do(http.MethodDelete, "/v1/keys/"+id, "", nil, bearerHdr(admin)); r.status != 200 {
		t.Fatalf("revoke key: %d %s", r.status, r.body)
	}
	if r := h.get2(tok); r.status != 401 {
		t.Fatalf("token of a revoked key: %d", r.status)
	}
	if r := h.get2(otherTok); r.status != 200 {
		t.Fatalf("token of another key: %d", r.status)
	}
	r := h.postForm("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {sec}}, nil)
	if r.status != 401 {
		t.Fatalf("issuance for a revoked key: %d", r.status)
	}
}

func TestPrune(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("kim", "pw-kim", "", ScopeRandomRead)
	at, _ := h.login("kim", "pw-kim")
	if r := h.do(http.MethodPost, "/auth/logout", "", nil, bearerHdr(at)); r.status != 200 {
		t.Fatal(r.status)
	}
	ctx := context.Background()
	if n, _ := h.st.Revocations().Len(ctx); n != 2 { // jti + session
		t.Fatalf("%d revocation entries", n)
	}
	if r, f, err := h.svc.Prune(ctx); err != nil || r != 0 || f != 0 {
		t.Fatalf("early prune removed %d, %d (%v)", r, f, err)
	}
	h.clk.Advance(25*time.Hour + 16*time.Minute)
	if r, f, err := h.svc.Prune(ctx); err != nil || r != 2 || f != 1 {
		t.Fatalf("prune: %d revocations, %d families, %v", r, f, err)
	}
}

func TestLimitAPI(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) {
		o.Limits[RouteAPI] = RouteLimit{IP: ratelimitOpts(100, 100), Principal: ratelimitOpts(1, 2)}
	}})
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := h.svc.Authorize(r, ScopeRandomRead)
		if err != nil {
			http.Error(w, err.Error(), 401)
			return
		}
		if h.svc.LimitAPI(w, r, p) {
			w.WriteHeader(204)
		}
	}))
	h.addUser("lee", "pw-lee", "", ScopeRandomRead)
	h.addUser("max", "pw-max", "", ScopeRandomRead)
	lee, _ := h.login("lee", "pw-lee")
	mx, _ := h.login("max", "pw-max")
	call := func(tok string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/random", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for i := range 2 {
		if res := call(lee); res.StatusCode != 204 {
			t.Fatalf("call %d: %d", i, res.StatusCode)
		}
	}
	res := call(lee)
	if res.StatusCode != 429 || res.Header.Get("Retry-After") != "1" || res.Header.Get("RateLimit-Limit") != "2" {
		t.Fatalf("third call: %d %v", res.StatusCode, res.Header)
	}
	if res := call(mx); res.StatusCode != 204 {
		t.Fatalf("other principal: %d", res.StatusCode)
	}
}

// TestRotate_ConcurrentIssuance rotates the signing key while tokens are
// being issued: every token issued must verify (run with -race).
func TestRotate_ConcurrentIssuance(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	g := grant{kind: "client_credentials", subject: "c", clientID: "c", scopes: []string{ScopeRandomRead}, aud: h.svc.Resources()}
	var wg sync.WaitGroup
	toks := make(chan string, 400)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				tk, err := h.svc.issue(ctx, g)
				if err != nil {
					t.Error(err)
					return
				}
				toks <- tk.token
			}
		}()
	}
	for range 5 {
		if _, err := h.svc.RotateSigningKey(ctx, "test"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(toks)
	n := 0
	for tk := range toks {
		if _, err := h.svc.Verify(ctx, tk, h.base); err != nil {
			t.Fatalf("token %d: %v", n, err)
		}
		n++
	}
	if n != 200 {
		t.Fatalf("%d tokens", n)
	}
}

// TestIssuance_RealEngineFailClosed uses the real entropy engine with no
// healthy source under policy fail-closed: token endpoints answer 503.
func TestIssuance_RealEngineFailClosed(t *testing.T) {
	eng, err := entropy.New(&entropy.Options{Policy: entropy.PolicyFailClosed, MinHealthySources: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.Entropy = eng }})
	h.addUser("nina", "pw-nina", "", ScopeRandomRead)
	r := h.postJSON("/auth/login", `{"username":"nina","password":"pw-nina"}`, nil)
	if r.status != 503 || r.errCode(t) != "entropy_unavailable" {
		t.Fatalf("login with an unservable pool: %d %s", r.status, r.body)
	}
}

func TestRefresh_LimitedOrDisabled(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) {
		o.Limits[RouteRefresh] = RouteLimit{IP: ratelimitOpts(100, 100), Principal: ratelimitOpts(1, 1)}
	}})
	h.addUser("olga", "pw-olga", "", ScopeRandomRead)
	_, rt := h.login("olga", "pw-olga")
	r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt+`"}`, nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	rt2 := r.json(t)["refresh_token"].(string)
	if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt2+`"}`, nil); r.status != 429 {
		t.Fatalf("second refresh within the limit window: %d %s", r.status, r.body)
	}
	// The refused request did not consume rt2.
	h.clk.Advance(time.Second)
	r = h.postJSON("/auth/refresh", `{"refresh_token":"`+rt2+`"}`, nil)
	if r.status != 200 {
		t.Fatalf("rt2 after the limit: %d %s", r.status, r.body)
	}
	rt3 := r.json(t)["refresh_token"].(string)
	at3 := r.json(t)["access_token"].(string)
	// A disabled account cannot refresh, and its session ends.
	if err := h.st.Users().Update(context.Background(), store.User{Username: "olga", Scopes: []string{ScopeRandomRead}, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(time.Second)
	if r := h.postJSON("/auth/refresh", `{"refresh_token":"`+rt3+`"}`, nil); r.status != 401 {
		t.Fatalf("disabled user refresh: %d %s", r.status, r.body)
	}
	if r := h.get2(at3); r.status != 401 {
		t.Fatalf("access token of a disabled user's session: %d", r.status)
	}
}

// With store/bolt the API key's record is cached after its first use; a
// revocation must still refuse the very next token request, and a wrong
// secret for a cached key must still fail.
func TestOAuthToken_KeyRevokedAfterUse(t *testing.T) {
	h := newHarness(t, &harnessOpts{bolt: true})
	h.addTenant("acme")
	id, secret := h.addKey("acme", ScopeRandomRead)
	_ = h.clientToken(id, secret, nil)
	_ = h.clientToken(id, secret, nil)
	form := func(sec string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {sec}}
	}
	if r := h.postForm("/oauth/token", form(secret+"x"), nil); r.status != 401 || r.errCode(t) != "invalid_client" {
		t.Fatalf("wrong secret for a cached key: %d %s", r.status, r.body)
	}
	if err := h.st.APIKeys().Revoke(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if r := h.postForm("/oauth/token", form(secret), nil); r.status != 401 || r.errCode(t) != "invalid_client" {
		t.Fatalf("token for a key revoked after use: %d %s", r.status, r.body)
	}
}
