package auth

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a qrngd access token (RFC 9068 shape): iss, sub,
// aud, exp, iat, nbf, jti, scope (space-separated), client_id, plus tenant
// (the tenant the subject belongs to, if any) and sid (the refresh-token
// family a login token belongs to, so logout can revoke the whole session).
type Claims struct {
	jwt.RegisteredClaims
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	Tenant   string `json:"tenant,omitempty"`
	SID      string `json:"sid,omitempty"`
}

// Scopes returns the scope claim split on spaces.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether the token grants s.
func (c *Claims) HasScope(s string) bool {
	for _, g := range strings.Fields(c.Scope) {
		if g == s {
			return true
		}
	}
	return false
}

// UnmarshalJSON decodes claims strictly: member names are matched exactly,
// duplicates and unknown members are refused (STYLE rule 20). qrngd only
// verifies tokens it issued itself, so it knows the complete claim set.
func (c *Claims) UnmarshalJSON(data []byte) error {
	*c = Claims{}
	return strictObject(data, func(name string, raw json.RawMessage) error {
		var err error
		switch name {
		case "iss":
			c.Issuer, err = jsonString(name, raw)
		case "sub":
			c.Subject, err = jsonString(name, raw)
		case "jti":
			c.ID, err = jsonString(name, raw)
		case "scope":
			c.Scope, err = jsonString(name, raw)
		case "client_id":
			c.ClientID, err = jsonString(name, raw)
		case "tenant":
			c.Tenant, err = jsonString(name, raw)
		case "sid":
			c.SID, err = jsonString(name, raw)
		case "aud":
			err = c.Audience.UnmarshalJSON(raw)
		case "exp":
			c.ExpiresAt = new(jwt.NumericDate)
			err = c.ExpiresAt.UnmarshalJSON(raw)
		case "iat":
			c.IssuedAt = new(jwt.NumericDate)
			err = c.IssuedAt.UnmarshalJSON(raw)
		case "nbf":
			c.NotBefore = new(jwt.NumericDate)
			err = c.NotBefore.UnmarshalJSON(raw)
		default:
			return fmt.Errorf("%w: unknown claim %q", errJSON, name)
		}
		if err != nil {
			return fmt.Errorf("%w: claim %q: %v", errJSON, name, err)
		}
		return nil
	})
}
