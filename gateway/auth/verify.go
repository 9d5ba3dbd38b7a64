package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verification of a token first seen (not in the verified-token cache).
//
// A token whose header segment is byte-for-byte the one qrngd writes for a
// published key (headerSegment) takes parseOwn: the header needs no JSON
// decoding (its alg, kid and typ are that key's), the signature is checked
// before the claims are decoded, and claims in exactly the form
// marshalClaims writes are read by ownClaims without reflection. Every
// other token takes golang-jwt's decoding (parseGeneric). Both apply the
// same rules: the claims are validated by the same jwt.Validator and
// checkClaims, and anything ownClaims does not recognise is decoded by the
// strict decoder (Claims.UnmarshalJSON) instead.

var b64 = base64.RawURLEncoding.Strict()

// headerSegment is the encoded JWS header qrngd writes for a key: as
// golang-jwt encodes its header map, members sorted.
func headerSegment(kid, alg string) (string, error) {
	b, err := json.Marshal(map[string]string{"alg": signingMethod(alg).Alg(), "kid": kid, "typ": TokenType})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// parseOwn verifies a token whose header segment is one qrngd writes.
// ok is false when it is not such a token (nothing was decided).
func (s *Service) parseOwn(ctx context.Context, token string) (c *Claims, ok bool, err error) {
	hdr, rest, _ := strings.Cut(token, ".")
	pk := s.keys.byHeader(hdr)
	if pk == nil {
		return nil, false, nil
	}
	payload, sigSeg, found := strings.Cut(rest, ".")
	if !found || strings.Contains(sigSeg, ".") || b64.DecodedLen(len(sigSeg)) != 64 {
		return nil, false, nil // let golang-jwt name what is wrong
	}
	var sig [64]byte
	if n, err := b64.Decode(sig[:], []byte(sigSeg)); err != nil || n != 64 {
		return nil, false, nil
	}
	// The key may have been unpublished since it was cached.
	key, err := s.keys.verifyKey(ctx, pk.KID, pk.Alg)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if err := key.verify(token[:len(hdr)+1+len(payload)], sig[:]); err != nil {
		return nil, true, fmt.Errorf("%w: %v: %v", ErrInvalidToken, jwt.ErrTokenSignatureInvalid, err)
	}
	raw := make([]byte, b64.DecodedLen(len(payload)))
	n, err := b64.Decode(raw, []byte(payload))
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v: could not base64 decode claim: %v", ErrInvalidToken, jwt.ErrTokenMalformed, err)
	}
	raw = raw[:n]
	c = new(Claims)
	if !ownClaims(raw, c) {
		if err := c.UnmarshalJSON(raw); err != nil {
			return nil, true, fmt.Errorf("%w: %v: could not JSON decode claim: %v", ErrInvalidToken, jwt.ErrTokenMalformed, err)
		}
	}
	if err := s.checkClaims(c); err != nil {
		return nil, true, err
	}
	return c, true, nil
}

// checkClaims applies the claim rules every verified token must meet.
func (s *Service) checkClaims(c *Claims) error {
	if err := s.validator.Validate(c); err != nil {
		return fmt.Errorf("%w: %v: %v", ErrInvalidToken, jwt.ErrTokenInvalidClaims, err)
	}
	if c.ID == "" || c.Subject == "" {
		return fmt.Errorf("%w: jti and sub are required", ErrInvalidToken)
	}
	if c.NotBefore == nil || c.IssuedAt == nil {
		return fmt.Errorf("%w: nbf and iat are required", ErrInvalidToken)
	}
	if len(c.Audience) == 0 {
		return fmt.Errorf("%w: aud is required", ErrInvalidToken)
	}
	return nil
}

// ownClaims decodes b into c if b is exactly what marshalClaims writes for
// claims with iss, sub, aud, exp, nbf, iat, jti, scope and client_id
// (tenant and sid optional), every string printable ASCII that JSON
// copies verbatim and every date whole seconds; on anything else it
// returns false (c is then undefined). On what it accepts it gives the
// same claims as Claims.UnmarshalJSON (FuzzOwnClaims).
func ownClaims(b []byte, c *Claims) bool {
	sc := claimScanner{b: b}
	*c = Claims{}
	var ok bool
	if !sc.lit(`{"iss":`) {
		return false
	}
	if c.Issuer, ok = sc.str(); !ok || !sc.lit(`,"sub":`) {
		return false
	}
	if c.Subject, ok = sc.str(); !ok || !sc.lit(`,"aud":[`) {
		return false
	}
	for {
		a, ok := sc.str()
		if !ok {
			return false
		}
		c.Audience = append(c.Audience, a)
		if sc.lit("]") {
			break
		}
		if !sc.lit(",") {
			return false
		}
	}
	for _, d := range []struct {
		name string
		p    **jwt.NumericDate
	}{{`,"exp":`, &c.ExpiresAt}, {`,"nbf":`, &c.NotBefore}, {`,"iat":`, &c.IssuedAt}} {
		if !sc.lit(d.name) {
			return false
		}
		n, ok := sc.num()
		if !ok {
			return false
		}
		*d.p = jwt.NewNumericDate(time.Unix(n, 0))
	}
	for _, m := range []struct {
		name     string
		p        *string
		optional bool
	}{{`,"jti":`, &c.ID, false}, {`,"scope":`, &c.Scope, false}, {`,"client_id":`, &c.ClientID, false},
		{`,"tenant":`, &c.Tenant, true}, {`,"sid":`, &c.SID, true}} {
		if !sc.lit(m.name) {
			if m.optional {
				continue
			}
			return false
		}
		if *m.p, ok = sc.str(); !ok || (m.optional && *m.p == "") {
			return false // marshalClaims omits an empty optional member
		}
	}
	return sc.lit("}") && sc.i == len(b)
}

type claimScanner struct {
	b []byte
	i int
}

func (s *claimScanner) lit(l string) bool {
	if len(s.b)-s.i < len(l) || string(s.b[s.i:s.i+len(l)]) != l {
		return false
	}
	s.i += len(l)
	return true
}

// str reads a JSON string of bytes encoding/json writes unescaped
// (printable ASCII but " \ < > &), at most MaxTokenBytes long.
func (s *claimScanner) str() (string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := string(s.b[s.i+1 : j])
			s.i = j + 1
			return v, true
		case c < 0x20 || c > 0x7e || c == '\\' || c == '<' || c == '>' || c == '&':
			return "", false
		}
	}
	return "", false
}

// num reads a non-negative integer of at most 12 digits without leading
// zeros (exact as a float64, as golang-jwt decodes dates).
func (s *claimScanner) num() (int64, bool) {
	var n int64
	j := s.i
	for ; j < len(s.b) && j-s.i <= 12 && s.b[j] >= '0' && s.b[j] <= '9'; j++ {
		n = n*10 + int64(s.b[j]-'0')
	}
	if d := j - s.i; d == 0 || d > 12 || (d > 1 && s.b[s.i] == '0') {
		return 0, false
	}
	s.i = j
	return n, true
}
