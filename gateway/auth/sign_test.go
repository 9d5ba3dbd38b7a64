package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/store"
)

// signToken must produce what golang-jwt's Token.SignedString produces
// for the same header and claims (Ed25519 is deterministic, so the whole
// token; ES256 signatures are randomized, so the signing input and a
// signature that verifies).
func TestSignToken_MatchesGolangJWT(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1764172800, 987654321)
	base := Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "https://qrng.example", Subject: "cl_abc",
		Audience: jwt.ClaimStrings{"https://qrng.example/v1"}, ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute)),
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ID: "x7Hq2ZkP0aW3nV9sLr1tYg"},
		Scope: "random:read", ClientID: "cl_abc"}
	variants := map[string]func(*Claims){
		"Plain":       func(*Claims) {},
		"TwoAud":      func(c *Claims) { c.Audience = jwt.ClaimStrings{"https://a/v1", "https://a/mcp"} },
		"TenantSID":   func(c *Claims) { c.Tenant, c.SID = "acme", "fam_1" },
		"EmptyScope":  func(c *Claims) { c.Scope = "" },
		"Escapes":     func(c *Claims) { c.Subject, c.Tenant = `ä<b>&"\`+"\u2028", "t\x01" },
		"NoTimes":     func(c *Claims) { c.NotBefore, c.IssuedAt = nil, nil },
		"NoIssSubAud": func(c *Claims) { c.Issuer, c.Subject, c.Audience = "", "", nil },
	}
	for name, mut := range variants {
		for _, key := range []*store.SigningKey{
			{KeyInfo: store.KeyInfo{KID: "kid-ed", Alg: store.AlgEdDSA}, Private: edPriv},
			{KeyInfo: store.KeyInfo{KID: "kid-ec", Alg: store.AlgES256}, Private: ecPriv},
		} {
			t.Run(name+"/"+key.Alg, func(t *testing.T) {
				c := base
				mut(&c)
				ref := jwt.NewWithClaims(signingMethod(key.Alg), &c)
				ref.Header["typ"] = TokenType
				ref.Header["kid"] = key.KID
				want, err := ref.SignedString(key.Private)
				if err != nil {
					t.Fatal(err)
				}
				var hc headerCache
				for range 2 { // second round: cached header
					got, err := signToken(&hc, key, &c)
					if err != nil {
						t.Fatal(err)
					}
					if key.Alg == store.AlgEdDSA && got != want {
						t.Fatalf("token\n got %s\nwant %s", got, want)
					}
					i := strings.LastIndexByte(got, '.')
					if wi := strings.LastIndexByte(want, '.'); got[:i] != want[:wi] {
						t.Fatalf("signing input\n got %s\nwant %s", got[:i], want[:wi])
					}
					sig, err := jwt.NewParser().DecodeSegment(got[i+1:])
					if err != nil {
						t.Fatal(err)
					}
					pub := any(edPriv.Public())
					if key.Alg == store.AlgES256 {
						pub = &ecPriv.PublicKey
					}
					if err := signingMethod(key.Alg).Verify(got[:i], sig, pub); err != nil {
						t.Fatalf("signature does not verify: %v", err)
					}
				}
			})
		}
	}
}
