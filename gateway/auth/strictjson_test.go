package auth

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeStrings(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"username":"a","password":"b"}`, true},
		{` {"password":"b", "username":"a"} `, true},
		{`{"username":"a","password":"b","username":"c"}`, false},
		{`{"USERNAME":"a","password":"b"}`, false},
		{`{"username":"a"}`, false},
		{`{"username":"a","password":null}`, false},
		{`{"username":"a","password":"b"}x`, false},
		{`{"username":"a","password":"b"}{}`, false},
		{`[]`, false},
		{``, false},
		{`{"username":"a","password":["b"]}`, false},
	} {
		_, err := decodeStrings([]byte(tc.in), []string{"username", "password"})
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// FuzzDecodeStrings: whatever the strict decoder accepts, encoding/json
// accepts too and decodes to the same values (strictness only removes).
func FuzzDecodeStrings(f *testing.F) {
	for _, s := range []string{`{"username":"a","password":"b"}`, `{"username":"\u00e9","password":"\\"}`, `{"a":1}`, `{"username":"x","username":"y","password":""}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := decodeStrings([]byte(in), []string{"username", "password"})
		if err != nil {
			return
		}
		var std struct {
			Username *string `json:"username"`
			Password *string `json:"password"`
		}
		if err := json.Unmarshal([]byte(in), &std); err != nil {
			t.Fatalf("strict accepted %q, encoding/json refused: %v", in, err)
		}
		if std.Username == nil || std.Password == nil || *std.Username != m["username"] || *std.Password != m["password"] {
			t.Fatalf("%q: strict %v, std %v %v", in, m, std.Username, std.Password)
		}
	})
}

// FuzzClaims: the claims decoder never panics, and accepts only objects
// whose names are all known claims.
func FuzzClaims(f *testing.F) {
	f.Add(`{"iss":"x","sub":"s","aud":["a"],"exp":1,"iat":1,"nbf":1,"jti":"j","scope":"a b","client_id":"c"}`)
	f.Add(`{"aud":"a","exp":1.5}`)
	f.Add(`{"Iss":"x"}`)
	f.Fuzz(func(t *testing.T, in string) {
		var c Claims
		if err := json.Unmarshal([]byte(in), &c); err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(in), &m); err != nil {
			t.Fatalf("claims accepted %q but it is not an object: %v", in, err)
		}
		for k := range m {
			if !strings.Contains(" iss sub aud exp iat nbf jti scope client_id tenant sid ", " "+k+" ") {
				t.Fatalf("claims accepted unknown member %q", k)
			}
		}
	})
}
