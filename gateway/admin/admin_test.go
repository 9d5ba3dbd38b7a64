package admin_test

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/gateway/admin"
	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/mem"
)

func TestServer_Errors(t *testing.T) {
	db, err := mem.New(&mem.Options{Rand: rand.Reader, Argon2: &store.TestArgon2Params})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.New(&admin.Options{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
	}{
		{"tenant created", "POST", "/v1/tenants", "application/json", `{"id":"acme"}`, 201},
		{"tenant exists", "POST", "/v1/tenants", "application/json", `{"id":"acme"}`, 409},
		{"bad tenant id", "POST", "/v1/tenants", "application/json", `{"id":"ACME/.."}`, 400},
		{"unknown field", "POST", "/v1/tenants", "application/json", `{"id":"x","admin":true}`, 400},
		{"malformed", "POST", "/v1/tenants", "application/json", `{"id":`, 400},
		{"trailing data", "POST", "/v1/tenants", "application/json", `{"id":"y"} {"id":"z"}`, 400},
		{"wrong content type", "POST", "/v1/tenants", "text/plain", `{"id":"x"}`, 415},
		{"oversized", "POST", "/v1/tenants", "application/json", `{"name":"` + strings.Repeat("a", 70<<10) + `"}`, 413},
		{"user in unknown tenant", "POST", "/v1/users", "application/json", `{"username":"u","password":"p","tenant":"nope"}`, 404},
		{"control char username", "POST", "/v1/users", "application/json", `{"username":"u\u0007","password":"p"}`, 400},
		{"rm unknown user", "DELETE", "/v1/users/ghost", "", ``, 404},
		{"revoke unknown key", "POST", "/v1/keys/qk_nope/revoke", "", ``, 404},
		{"no backup", "GET", "/v1/backup", "", ``, 501},
		{"no status", "GET", "/v1/status", "", ``, 501},
		{"no tokens", "POST", "/v1/tokens/revoke", "application/json", `{"jti":"x"}`, 501},
		{"unknown route", "GET", "/v1/nope", "", ``, 404},
		{"wrong method", "PATCH", "/v1/users", "", ``, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
			if rec.Code >= 400 && rec.Code != http.StatusMethodNotAllowed && !strings.Contains(rec.Body.String(), `"code"`) {
				t.Errorf("error body %s", rec.Body)
			}
		})
	}
	if _, err := admin.New(nil); err == nil {
		t.Error("nil options accepted")
	}
}
