package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/qrngd/qrngd/gateway/ratelimit"
	"github.com/qrngd/qrngd/store"
)

// craft signs claims the way the issuer does (real key, real kid) after
// letting mutate change claims and header; method and key override the
// signer when non-nil.
func (h *harness) craft(mutate func(c *Claims, hdr map[string]any), method jwt.SigningMethod, key any) string {
	h.t.Helper()
	sk, err := h.svc.keys.current(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	now := h.clk.Now()
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: h.base, Subject: "demo", Audience: jwt.ClaimStrings(h.svc.Resources()),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now), ID: "jti-" + rand.Text(),
		},
		Scope: strings.Join(AllScopes, " "), ClientID: h.base,
	}
	if method == nil {
		method, key = signingMethod(sk.Alg), sk.Private
	}
	t := jwt.NewWithClaims(method, c)
	t.Header["typ"] = TokenType
	t.Header["kid"] = sk.KID
	if mutate != nil {
		mutate(c, t.Header)
	}
	s, err := t.SignedString(key)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// get calls GET /v1/sources (scope sources:read) with a bearer token.
func (h *harness) get(tok string) resp {
	return h.do(http.MethodGet, "/v1/sources", "", nil, bearerHdr(tok))
}

func flip(tok string, part, idx int) string {
	parts := strings.Split(tok, ".")
	b := []byte(parts[part])
	if b[idx] == 'A' {
		b[idx] = 'B'
	} else {
		b[idx] = 'A'
	}
	parts[part] = string(b)
	return strings.Join(parts, ".")
}

func TestVerify_Attacks(t *testing.T) {
	for _, alg := range []string{store.AlgEdDSA, store.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.Alg = alg }})
			sk, err := h.svc.keys.current(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var pubBytes []byte
			switch pk := sk.PublicKey.(type) {
			case ed25519.PublicKey:
				pubBytes = pk
			case *ecdsa.PublicKey:
				pubBytes, _ = pk.Bytes()
			}
			// Sanity: the baseline crafted token is accepted, so every
			// rejection below is caused by its one change.
			if r := h.get(h.craft(nil, nil, nil)); r.status != http.StatusOK {
				t.Fatalf("baseline token refused: %d %s", r.status, r.body)
			}
			revoked := h.craft(nil, nil, nil)
			if r := h.postForm("/oauth/revoke", url.Values{"token": {revoked}}, bearerHdr(revoked)); r.status != http.StatusOK {
				t.Fatalf("revoke: %d %s", r.status, r.body)
			}
			other := "ES256"
			if alg == store.AlgES256 {
				other = "EdDSA"
			}
			otherKey := func() any {
				if other == "EdDSA" {
					_, k, _ := ed25519.GenerateKey(rand.Reader)
					return k
				}
				k, _ := ecdsa.GenerateKey(ellipticP256(), rand.Reader)
				return k
			}()
			foreign := func() any {
				if alg == store.AlgEdDSA {
					_, k, _ := ed25519.GenerateKey(rand.Reader)
					return k
				}
				k, _ := ecdsa.GenerateKey(ellipticP256(), rand.Reader)
				return k
			}()
			big := h.craft(func(c *Claims, _ map[string]any) { c.Scope += " " + strings.Repeat("x", MaxTokenBytes) }, nil, nil)
			cases := []struct {
				name string
				tok  string
			}{
				{"alg none", h.craft(nil, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)},
				{"HS256 keyed with the public key", h.craft(nil, jwt.SigningMethodHS256, pubBytes)},
				{"other alg, same kid", h.craft(func(_ *Claims, hd map[string]any) {}, jwt.GetSigningMethod(other), otherKey)},
				{"signed by a foreign key", h.craft(nil, signingMethod(alg), foreign)},
				{"unknown kid", h.craft(func(_ *Claims, hd map[string]any) { hd["kid"] = "AAAAAAAAAAAAAAAA" }, nil, nil)},
				{"kid path traversal", h.craft(func(_ *Claims, hd map[string]any) { hd["kid"] = "../../../etc/passwd" }, nil, nil)},
				{"kid SQL", h.craft(func(_ *Claims, hd map[string]any) { hd["kid"] = "x' OR '1'='1" }, nil, nil)},
				{"kid NUL", h.craft(func(_ *Claims, hd map[string]any) { hd["kid"] = sk.KID + "\x00" }, nil, nil)},
				{"kid not a string", h.craft(func(_ *Claims, hd map[string]any) { hd["kid"] = 7 }, nil, nil)},
				{"no kid", h.craft(func(_ *Claims, hd map[string]any) { delete(hd, "kid") }, nil, nil)},
				{"typ JWT", h.craft(func(_ *Claims, hd map[string]any) { hd["typ"] = "JWT" }, nil, nil)},
				{"expired", h.craft(func(c *Claims, _ map[string]any) {
					c.ExpiresAt = jwt.NewNumericDate(h.clk.Now().Add(-2 * time.Minute))
				}, nil, nil)},
				{"no exp", h.craft(func(c *Claims, _ map[string]any) { c.ExpiresAt = nil }, nil, nil)},
				{"nbf in the future", h.craft(func(c *Claims, _ map[string]any) {
					c.NotBefore = jwt.NewNumericDate(h.clk.Now().Add(5 * time.Minute))
				}, nil, nil)},
				{"iat in the future", h.craft(func(c *Claims, _ map[string]any) {
					c.IssuedAt = jwt.NewNumericDate(h.clk.Now().Add(5 * time.Minute))
				}, nil, nil)},
				{"wrong iss", h.craft(func(c *Claims, _ map[string]any) { c.Issuer = "https://evil.example" }, nil, nil)},
				{"wrong aud", h.craft(func(c *Claims, _ map[string]any) { c.Audience = jwt.ClaimStrings{"https://evil.example"} }, nil, nil)},
				{"aud is the MCP resource only", h.craft(func(c *Claims, _ map[string]any) { c.Audience = jwt.ClaimStrings{h.base + "/mcp"} }, nil, nil)},
				{"tampered payload", func() string {
					tok := h.craft(func(c *Claims, _ map[string]any) { c.Scope = ScopeRandomRead }, nil, nil)
					parts := strings.Split(tok, ".")
					p, _ := base64.RawURLEncoding.DecodeString(parts[1])
					p = []byte(strings.Replace(string(p), `"scope":"random:read"`, `"scope":"sources:read"`, 1))
					parts[1] = base64.RawURLEncoding.EncodeToString(p)
					return strings.Join(parts, ".")
				}()},
				{"tampered signature", flip(h.craft(nil, nil, nil), 2, 5)},
				{"tampered header", flip(h.craft(nil, nil, nil), 0, 3)},
				{"revoked jti", revoked},
				{"larger than 8 KiB", big},
				{"garbage", "not-a-jwt"},
				{"four parts", h.craft(nil, nil, nil) + ".x"},
				{"case-smuggled claim", h.craft(func(c *Claims, _ map[string]any) {}, nil, nil)[:0] + smuggled(h)},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := h.get(tc.tok)
					if r.status != http.StatusUnauthorized || r.errCode(t) != "invalid_token" {
						t.Fatalf("got %d %s, want 401 invalid_token", r.status, r.body)
					}
					if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
						t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
					}
				})
			}
			// The oversized token is valid apart from its size: only the
			// size bound refused it.
			if c, err := h.svc.parserNoLimit(big); err != nil || c.Subject != "demo" {
				t.Errorf("oversized token did not verify without the bound (%v): the test proves nothing", err)
			}
		})
	}
}

// smuggled is a validly signed token whose payload carries "Scope" besides
// "scope": encoding/json would match it case-insensitively.
func smuggled(h *harness) string {
	sk, _ := h.svc.keys.current(context.Background())
	now := h.clk.Now().Unix()
	payload := `{"iss":"` + h.base + `","sub":"demo","aud":["` + h.base + `"],"exp":` + itoa64(now+300) +
		`,"iat":` + itoa64(now) + `,"nbf":` + itoa64(now) + `,"jti":"smuggle","scope":"random:read","Scope":"sources:read","client_id":"x"}`
	hdr := `{"alg":"` + sk.Alg + `","kid":"` + sk.KID + `","typ":"at+jwt"}`
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(hdr)) + "." + enc([]byte(payload))
	sig, err := signingMethod(sk.Alg).Sign(signing, sk.Private)
	if err != nil {
		h.t.Fatal(err)
	}
	return signing + "." + enc(sig)
}

func TestVerify_Leeway(t *testing.T) {
	h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.Leeway = 30 * time.Second }})
	tok := h.craft(func(c *Claims, _ map[string]any) {
		c.ExpiresAt = jwt.NewNumericDate(h.clk.Now().Add(-10 * time.Second))
		c.NotBefore = jwt.NewNumericDate(h.clk.Now().Add(10 * time.Second))
	}, nil, nil)
	if r := h.get(tok); r.status != http.StatusOK {
		t.Fatalf("token within leeway: %d %s", r.status, r.body)
	}
	h.clk.Advance(25 * time.Second)
	if r := h.get(tok); r.status != http.StatusUnauthorized {
		t.Fatalf("token past exp+leeway: %d %s", r.status, r.body)
	}
	if _, err := New(&Options{Issuer: "https://x", Entropy: h.ent, Store: h.st, Leeway: 61 * time.Second}); err == nil {
		t.Error("leeway over 60 s accepted")
	}
}

func TestVerify_ExpiresWithClock(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("alice", "pw-alice", "", ScopeSourcesRead)
	tok, _ := h.login("alice", "pw-alice")
	if r := h.get(tok); r.status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", r.status, r.body)
	}
	h.clk.Advance(15*time.Minute + 31*time.Second)
	if r := h.get(tok); r.status != http.StatusUnauthorized {
		t.Fatalf("expired token: %d %s", r.status, r.body)
	}
}

func TestVerify_Scope(t *testing.T) {
	h := newHarness(t, nil)
	h.addUser("bob", "pw-bob", "", ScopeRandomRead)
	tok, _ := h.login("bob", "pw-bob")
	r := h.get(tok)
	if r.status != http.StatusForbidden || r.errCode(t) != "insufficient_scope" {
		t.Fatalf("got %d %s, want 403 insufficient_scope", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/v1/sources", "", nil, nil); r.status != http.StatusUnauthorized || r.errCode(t) != "unauthenticated" {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func ellipticP256() elliptic.Curve { return elliptic.P256() }

// parserNoLimit verifies like verifySignature but without the size bound.
func (s *Service) parserNoLimit(tok string) (*Claims, error) {
	c := new(Claims)
	_, err := s.parser.ParseWithClaims(tok, c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		pk, err := s.keys.verifyKey(context.Background(), kid, t.Method.Alg())
		if err != nil {
			return nil, err
		}
		return pk.PublicKey, nil
	})
	return c, err
}

func ratelimitOpts(rate float64, burst int) *ratelimit.Options {
	return &ratelimit.Options{Rate: rate, Burst: burst}
}

var sdkInvalid = sdkauth.ErrInvalidToken
