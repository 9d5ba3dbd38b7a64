package auth

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/store"
)

// TestParseOwn_AgreesWithGeneric: for tokens in qrngd's header, the fast
// path (parseOwn) takes them and reaches the same verdict and claims as
// golang-jwt's decoding (parseGeneric): valid ones, ones its claim
// scanner hands to the strict decoder, and forged or invalid ones.
func TestParseOwn_AgreesWithGeneric(t *testing.T) {
	for _, alg := range []string{store.AlgEdDSA, store.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.Alg = alg }})
			ctx := context.Background()
			h.addUser("alice", "pw-alice", "", AllScopes...)
			loginTok, _ := h.login("alice", "pw-alice")
			cases := []struct {
				name  string
				tok   string
				valid bool
			}{
				{"login token", loginTok, true},
				{"crafted", h.craft(nil, nil, nil), true},
				{"tenant and sid", h.craft(func(c *Claims, _ map[string]any) { c.Tenant, c.SID = "t1", "s1" }, nil, nil), true},
				{"unicode subject (strict decoder)", h.craft(func(c *Claims, _ map[string]any) { c.Subject = "zoë<admin>" }, nil, nil), true},
				{"one audience", h.craft(func(c *Claims, _ map[string]any) { c.Audience = c.Audience[:1] }, nil, nil), true},
				{"claims out of order (strict decoder)", smuggledOrder(h), true},
				{"case-smuggled claim", smuggled(h), false},
				{"tampered signature", flip(h.craft(nil, nil, nil), 2, 5), false},
				{"tampered payload", flip(h.craft(nil, nil, nil), 1, 30), false},
				{"expired", h.craft(func(c *Claims, _ map[string]any) { c.ExpiresAt = jwt.NewNumericDate(h.clk.Now().Add(-time.Hour)) }, nil, nil), false},
				{"wrong iss", h.craft(func(c *Claims, _ map[string]any) { c.Issuer = "https://evil.example" }, nil, nil), false},
				{"no jti", h.craft(func(c *Claims, _ map[string]any) { c.ID = "" }, nil, nil), false},
				{"signature cut", func() string { tok := h.craft(nil, nil, nil); return tok[:len(tok)-10] }(), false},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					own, ok, ownErr := h.svc.parseOwn(ctx, tc.tok)
					gen, genErr := h.svc.parseGeneric(ctx, tc.tok)
					if tc.valid && !ok {
						t.Fatal("a token in qrngd's header did not take the fast path")
					}
					if !ok {
						own, ownErr = gen, genErr
					}
					if (ownErr == nil) != tc.valid || (genErr == nil) != tc.valid {
						t.Fatalf("fast path err %v, golang-jwt path err %v; want valid=%v", ownErr, genErr, tc.valid)
					}
					if tc.valid && !reflect.DeepEqual(own, gen) {
						t.Fatalf("claims differ:\nfast    %+v\ngeneric %+v", own, gen)
					}
				})
			}
		})
	}
}

// smuggledOrder is a validly signed token in qrngd's header whose claims
// are valid but not in marshalClaims' order.
func smuggledOrder(h *harness) string {
	s := smuggled(h)
	// smuggled's payload with the duplicate-by-case member removed.
	parts := strings.Split(s, ".")
	p, _ := b64.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), `,"Scope":"sources:read"`, "", 1))
	sk, _ := h.svc.keys.current(context.Background())
	signing := parts[0] + "." + b64.EncodeToString(p)
	sig, err := signingMethod(sk.Alg).Sign(signing, sk.Private)
	if err != nil {
		h.t.Fatal(err)
	}
	return signing + "." + b64.EncodeToString(sig)
}

// TestOwnClaims_RoundTrip: what marshalClaims writes, ownClaims reads back
// (or, with characters JSON escapes, leaves to the strict decoder).
func TestOwnClaims_RoundTrip(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	base := Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "https://q.example", Subject: "alice",
		Audience: jwt.ClaimStrings{"https://q.example/v1", "https://q.example/mcp"}, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now), ID: "jti1"}, Scope: "random:read", ClientID: "c"}
	for _, tc := range []struct {
		name   string
		mutate func(*Claims)
		own    bool
	}{
		{"plain", func(*Claims) {}, true},
		{"tenant and sid", func(c *Claims) { c.Tenant, c.SID = "t", "s" }, true},
		{"empty scope", func(c *Claims) { c.Scope = "" }, true},
		{"escaped subject", func(c *Claims) { c.Subject = `a"b` }, false},
		{"non-ASCII subject", func(c *Claims) { c.Subject = "zoë" }, false},
		{"no jti", func(c *Claims) { c.ID = "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.Audience = append(jwt.ClaimStrings(nil), base.Audience...)
			tc.mutate(&c)
			b, err := marshalClaims(&c)
			if err != nil {
				t.Fatal(err)
			}
			var got Claims
			if ok := ownClaims(b, &got); ok != tc.own {
				t.Fatalf("ownClaims(%s) = %v, want %v", b, ok, tc.own)
			}
			if tc.own && !reflect.DeepEqual(got, c) {
				t.Fatalf("read back %+v, want %+v", got, c)
			}
		})
	}
}

// FuzzOwnClaims: whatever ownClaims accepts, the strict decoder accepts
// with the same claims.
func FuzzOwnClaims(f *testing.F) {
	now := time.Unix(1_790_000_000, 0)
	c := &Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "i", Subject: "s", Audience: jwt.ClaimStrings{"a", "b"},
		ExpiresAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now), ID: "j"},
		Scope: "x y", ClientID: "c", Tenant: "t", SID: "d"}
	b, _ := marshalClaims(c)
	f.Add(b)
	f.Add([]byte(`{"iss":"i","sub":"s","aud":["a"],"exp":0,"nbf":1,"iat":123456789012,"jti":"j","scope":"","client_id":""}`))
	f.Add([]byte(`{"iss":"i","sub":"s","aud":["a"],"exp":01,"nbf":1,"iat":1,"jti":"j","scope":"","client_id":"","sid":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var own, strict Claims
		if !ownClaims(b, &own) {
			return
		}
		if err := strict.UnmarshalJSON(b); err != nil {
			t.Fatalf("ownClaims accepted %q, the strict decoder refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(own, strict) {
			t.Fatalf("%q: ownClaims %+v, strict decoder %+v", b, own, strict)
		}
	})
}

// TestVerify_IssuedTokenPrimed: a token is in the verified-token cache from
// its issuance, and a cache hit still applies revocation and expiry.
func TestVerify_IssuedTokenPrimed(t *testing.T) {
	h := newHarness(t, nil)
	h.addTenant("t1")
	id, secret := h.addKey("t1", ScopeSourcesRead)
	tok := h.clientToken(id, secret, nil)
	if h.svc.cache.get(tokenKey(tok)) == nil {
		t.Fatal("an issued token is not in the verified-token cache")
	}
	if r := h.get(tok); r.status != http.StatusOK {
		t.Fatalf("first presentation: %d %s", r.status, r.body)
	}
	if r := h.postForm("/oauth/revoke", url.Values{"token": {tok}, "client_id": {id}, "client_secret": {secret}}, nil); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if r := h.get(tok); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked, cached token: %d %s", r.status, r.body)
	}
	tok = h.clientToken(id, secret, nil)
	h.clk.Advance(h.svc.opts.AccessTTL + h.svc.opts.Leeway + time.Second)
	if r := h.get(tok); r.status != http.StatusUnauthorized {
		t.Fatalf("expired, cached token: %d %s", r.status, r.body)
	}
}
