package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/store"
)

// signedHeader is the encoded JWS header segment of one signing key.
type signedHeader struct {
	kid, alg, seg string
}

// headerCache holds the header segment of the key last signed with: it is
// the same for every token of a key, so it is encoded once per key.
type headerCache struct{ p atomic.Pointer[signedHeader] }

func (c *headerCache) segment(key *store.SigningKey) (string, error) {
	if h := c.p.Load(); h != nil && h.kid == key.KID && h.alg == key.Alg {
		return h.seg, nil
	}
	seg, err := headerSegment(key.KID, key.Alg)
	if err != nil {
		return "", err
	}
	h := &signedHeader{kid: key.KID, alg: key.Alg, seg: seg}
	c.p.Store(h)
	return h.seg, nil
}

// signToken returns the JWS compact serialization of c signed with key,
// the same bytes golang-jwt's Token.SignedString produces (header map
// {alg, kid, typ}; claims as json.Marshal encodes Claims) without its
// per-token map and reflection encoding.
func signToken(hc *headerCache, key *store.SigningKey, c *Claims) (string, error) {
	hdr, err := hc.segment(key)
	if err != nil {
		return "", err
	}
	claims, err := marshalClaims(c)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	n := len(hdr) + 1 + enc.EncodedLen(len(claims))
	buf := make([]byte, 0, n+1+enc.EncodedLen(64)) // EdDSA and ES256 JWS signatures are 64 bytes
	buf = append(buf, hdr...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, claims)
	var sig []byte
	if priv, ok := key.Private.(ed25519.PrivateKey); ok && key.Alg == store.AlgEdDSA && len(priv) == ed25519.PrivateKeySize {
		sig = edSign(priv, buf) // the bytes jwt's SigningMethodEd25519 makes, without copying buf to a string
	} else if sig, err = signingMethod(key.Alg).Sign(string(buf), key.Private); err != nil {
		return "", err
	}
	buf = append(buf, '.')
	return string(enc.AppendEncode(buf, sig)), nil
}

// marshalClaims is json.Marshal(c) for the claims qrngd issues, written
// out by hand; with golang-jwt settings other than its defaults (whole
// seconds, aud always an array) or absent exp/nbf/iat it uses
// json.Marshal itself.
func marshalClaims(c *Claims) ([]byte, error) {
	if jwt.TimePrecision != time.Second || !jwt.MarshalSingleStringAsArray ||
		c.ExpiresAt == nil || c.NotBefore == nil || c.IssuedAt == nil {
		return json.Marshal(c)
	}
	b := make([]byte, 0, 256+len(c.Scope))
	b = append(b, '{')
	str := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = appendJSONString(b, v)
	}
	date := func(name string, d *jwt.NumericDate) {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, d.Unix(), 10) // Truncate(time.Second).Unix() is Unix()
	}
	str("iss", c.Issuer, true)
	str("sub", c.Subject, true)
	if len(c.Audience) > 0 {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"aud":[`...)
		for i, a := range c.Audience {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	if len(b) == 1 { // no iss, sub or aud: not a token qrngd issues
		return json.Marshal(c)
	}
	date("exp", c.ExpiresAt)
	date("nbf", c.NotBefore)
	date("iat", c.IssuedAt)
	str("jti", c.ID, true)
	str("scope", c.Scope, false)
	str("client_id", c.ClientID, false)
	str("tenant", c.Tenant, true)
	str("sid", c.SID, true)
	return append(b, '}'), nil
}

// appendJSONString appends s as encoding/json encodes it: printable ASCII
// without quote, backslash or the HTML-escaped <, >, & is copied, anything
// else goes through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
