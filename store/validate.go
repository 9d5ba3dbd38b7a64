package store

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Input bounds.
const (
	MaxUsernameBytes = 64   // usernames: 1..64 bytes of UTF-8
	MaxPasswordBytes = 1024 // passwords: 1..1024 bytes
	MaxTenantIDBytes = 64
	MaxNameBytes     = 128 // tenant and API-key labels
	MaxIDBytes       = 256 // jti, token IDs, family IDs, client IDs, kids
	MaxScopes        = 64
	MaxScopeBytes    = 128
	MaxSubjectBytes  = 256
	MaxReasonBytes   = 256
)

// ValidateUsername reports whether name is acceptable as a username.
//
// The rule: 1..64 bytes of valid UTF-8 in Unicode normalization form C,
// made only of letters, marks, digits, punctuation and symbols
// (unicode.IsGraphic minus spaces). Control characters (Cc), format
// characters (Cf, e.g. zero-width joiners and bidi overrides), private-use,
// unassigned code points, every kind of white space and a leading
// combining mark are refused, so a username cannot hide characters,
// reorder text in logs or carry a terminal escape. Usernames are compared byte for byte (case-sensitive);
// requiring NFC means "é" cannot be registered twice in two spellings.
func ValidateUsername(name string) error {
	if name == "" {
		return fmt.Errorf("%w: username is empty", ErrInvalid)
	}
	if len(name) > MaxUsernameBytes {
		return fmt.Errorf("%w: username is %d bytes, more than %d", ErrInvalid, len(name), MaxUsernameBytes)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: username is not valid UTF-8", ErrInvalid)
	}
	for i, r := range name {
		switch {
		case unicode.IsControl(r):
			return fmt.Errorf("%w: username has control character U+%04X at byte %d", ErrInvalid, r, i)
		case unicode.Is(unicode.Cf, r):
			return fmt.Errorf("%w: username has format character U+%04X at byte %d", ErrInvalid, r, i)
		case unicode.IsSpace(r) || unicode.Is(unicode.Zs, r):
			return fmt.Errorf("%w: username has white space U+%04X at byte %d", ErrInvalid, r, i)
		case !unicode.IsGraphic(r) || unicode.Is(unicode.Co, r):
			return fmt.Errorf("%w: username has non-printable character U+%04X at byte %d", ErrInvalid, r, i)
		case i == 0 && unicode.Is(unicode.M, r):
			return fmt.Errorf("%w: username starts with combining mark U+%04X", ErrInvalid, r)
		}
	}
	if !norm.NFC.IsNormalString(name) {
		return fmt.Errorf("%w: username is not in Unicode normalization form C", ErrInvalid)
	}
	return nil
}

// ValidatePassword bounds a password: 1..1024 bytes. Strength policy is the
// caller's business.
func ValidatePassword(pw string) error {
	if pw == "" {
		return fmt.Errorf("%w: password is empty", ErrInvalid)
	}
	if len(pw) > MaxPasswordBytes {
		return fmt.Errorf("%w: password is longer than %d bytes", ErrInvalid, MaxPasswordBytes)
	}
	return nil
}

// ValidateTenantID: 1..64 bytes of [a-z0-9._-], starting with a letter or digit.
func ValidateTenantID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: tenant id is empty", ErrInvalid)
	}
	if len(id) > MaxTenantIDBytes {
		return fmt.Errorf("%w: tenant id is longer than %d bytes", ErrInvalid, MaxTenantIDBytes)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("%w: tenant id %q: character %q at %d not allowed (use a-z, 0-9, '.', '_', '-')", ErrInvalid, id, c, i)
		}
	}
	return nil
}

// ValidateID checks an opaque identifier (jti, token ID, family ID, client
// ID, kid): 1..256 bytes of printable ASCII without spaces.
func ValidateID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, what, MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return fmt.Errorf("%w: %s has byte 0x%02x at %d (printable ASCII only)", ErrInvalid, what, id[i], i)
		}
	}
	return nil
}

// ValidateScopes checks a scope list: at most 64 scopes of 1..128 bytes of
// printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3).
func ValidateScopes(scopes []string) error {
	if len(scopes) > MaxScopes {
		return fmt.Errorf("%w: %d scopes, more than %d", ErrInvalid, len(scopes), MaxScopes)
	}
	for _, s := range scopes {
		if s == "" || len(s) > MaxScopeBytes {
			return fmt.Errorf("%w: scope %q must be 1..%d bytes", ErrInvalid, s, MaxScopeBytes)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return fmt.Errorf("%w: scope %q has byte 0x%02x not allowed by RFC 6749", ErrInvalid, s, c)
			}
		}
	}
	return nil
}

// ValidateText bounds a free-text label: valid UTF-8, no control characters.
func ValidateText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, what, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%w: %s has a control character at byte %d", ErrInvalid, what, i)
	}
	return nil
}

// ValidateUser checks a user record as given to Create or Update.
func ValidateUser(u User) error {
	if err := ValidateUsername(u.Username); err != nil {
		return err
	}
	if u.Tenant != "" {
		if err := ValidateTenantID(u.Tenant); err != nil {
			return err
		}
	}
	return ValidateScopes(u.Scopes)
}

// ValidateFamily checks a refresh family as given to Create.
func ValidateFamily(f RefreshFamily) error {
	if err := ValidateID("family id", f.ID); err != nil {
		return err
	}
	if err := ValidateID("token id", f.Current); err != nil {
		return err
	}
	if err := ValidateText("subject", f.Subject, MaxSubjectBytes); err != nil {
		return err
	}
	if f.Subject == "" {
		return fmt.Errorf("%w: subject is empty", ErrInvalid)
	}
	if f.Tenant != "" {
		if err := ValidateTenantID(f.Tenant); err != nil {
			return err
		}
	}
	if f.ClientID != "" {
		if err := ValidateID("client id", f.ClientID); err != nil {
			return err
		}
	}
	if f.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: family expiry is zero", ErrInvalid)
	}
	return ValidateScopes(f.Scopes)
}

// CheckExpiry refuses a zero or pre-1970 revocation expiry.
func CheckExpiry(t time.Time) error {
	if t.IsZero() || t.Unix() <= 0 {
		return fmt.Errorf("%w: expiry %v is not a real time", ErrInvalid, t)
	}
	return nil
}

// Clone returns a copy of s (nil stays nil) so records never share slices.
func Clone(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}
