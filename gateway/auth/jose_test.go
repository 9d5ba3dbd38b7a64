package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/qrngd/qrngd/store"
)

// TestJWKS_GoJose verifies issued tokens with a second, independent JOSE
// implementation (go-jose: its own JWKS parsing, JWS parsing and claim
// validation) from nothing but /.well-known/jwks.json, for both
// algorithms and across a rotation; a token with one flipped signature
// bit is refused.
func TestJWKS_GoJose(t *testing.T) {
	for _, alg := range []string{store.AlgEdDSA, store.AlgES256} {
		t.Run(alg, func(t *testing.T) {
			h := newHarness(t, &harnessOpts{mutate: func(o *Options) { o.Alg = alg }})
			h.addUser("ivy", "pw-ivy", "", ScopeRandomRead)
			old, _ := h.login("ivy", "pw-ivy")
			if _, err := h.svc.RotateSigningKey(context.Background(), "test"); err != nil {
				t.Fatal(err)
			}
			cur, _ := h.login("ivy", "pw-ivy")
			r := h.do(http.MethodGet, "/.well-known/jwks.json", "", nil, nil)
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(r.body, &set); r.status != 200 || err != nil || len(set.Keys) != 2 {
				t.Fatalf("jwks %d %s (%v)", r.status, r.body, err)
			}
			verify := func(tok string) (*josejwt.Claims, error) {
				parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
				if err != nil {
					return nil, err
				}
				keys := set.Key(parsed.Headers[0].KeyID)
				if len(keys) != 1 {
					t.Fatalf("kid %q: %d keys in the JWKS", parsed.Headers[0].KeyID, len(keys))
				}
				var c josejwt.Claims
				if err := parsed.Claims(keys[0].Key, &c); err != nil {
					return nil, err
				}
				return &c, c.ValidateWithLeeway(josejwt.Expected{Issuer: h.base, AnyAudience: josejwt.Audience{h.base}, Time: h.clk.Now()}, 0)
			}
			for _, tok := range []string{old, cur} {
				c, err := verify(tok)
				if err != nil || c.Subject != "ivy" || len(c.ID) < 22 {
					t.Fatalf("go-jose: %v %+v", err, c)
				}
			}
			if _, err := verify(flip(cur, 2, 10)); err == nil {
				t.Fatal("go-jose accepted a tampered signature")
			}
		})
	}
}
