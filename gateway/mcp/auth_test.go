package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/qrngd/qrngd/gateway/ratelimit"
)

const md = `resource_metadata="https://qrng.test/.well-known/oauth-protected-resource/mcp"`

func TestAuth_Challenges(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	for _, tc := range []struct {
		name, token, path string
		hdr               map[string]string
		status            int
		www               string
	}{
		{"no token", "", "/mcp", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools"`},
		{"basic scheme", "", "/mcp", hdrs("Authorization", "Basic YTpi"), 401,
			`Bearer ` + md + `, scope="mcp:tools"`},
		{"unknown token", "forged", "/mcp", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_token", error_description="the access token is invalid, expired or revoked"`},
		{"expired", "expired", "/mcp", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_token", error_description="the access token expired"`},
		{"no expiry", "noexp", "/mcp", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_token", error_description="the access token has no expiry"`},
		{"no subject", "nosub", "/mcp", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_token", error_description="the access token names no subject"`},
		{"wrong audience", "wrongaud", "/mcp", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_token", error_description="the access token was not issued for https://qrng.test/mcp"`},
		{"bridge audience is not enough for /mcp", "restaud", "/mcp", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_token", error_description="the access token was not issued for https://qrng.test/mcp"`},
		{"insufficient scope", "noscope", "/mcp", nil, 403,
			`Bearer ` + md + `, scope="mcp:tools", error="insufficient_scope", error_description="the access token lacks scope mcp:tools"`},
		{"token in query", "", "/mcp?access_token=alice", nil, 400,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_request", error_description="access tokens are not accepted in the query string; use the Authorization: Bearer header"`},
		{"token in query and header", "alice", "/mcp?access_token=alice", nil, 400,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_request", error_description="access tokens are not accepted in the query string; use the Authorization: Bearer header"`},
		{"REST no token", "", "/mcp/tools", nil, 401,
			`Bearer ` + md + `, scope="mcp:tools"`},
		{"REST insufficient scope", "noscope", "/mcp/execute", nil, 403,
			`Bearer ` + md + `, scope="mcp:tools", error="insufficient_scope", error_description="the access token lacks scope mcp:tools"`},
		{"REST query token", "", "/mcp/execute?access_token=alice", nil, 400,
			`Bearer ` + md + `, scope="mcp:tools", error="invalid_request", error_description="access tokens are not accepted in the query string; use the Authorization: Bearer header"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			body := initBody
			if tc.path == "/mcp/tools" {
				method, body = "GET", ""
			} else if strings.HasPrefix(tc.path, "/mcp/execute") {
				body = `{"tool":"random_uuid","arguments":{}}`
			}
			resp := f.do(t, method, tc.path, tc.token, body, tc.hdr)
			b := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, b, tc.status)
			}
			if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != tc.www {
				t.Fatalf("WWW-Authenticate:\n got %q\nwant %q", got, tc.www)
			}
			if strings.Contains(b, "alice") || strings.Contains(b, "forged") {
				t.Errorf("body echoes the token: %s", b)
			}
		})
	}
	if n := len(f.audit.records()); n != 0 {
		t.Errorf("%d tool calls ran without valid auth", n)
	}
}

func TestAuth_AudienceForms(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	// aud as a single string, with a trailing slash, is the same resource.
	if resp := f.do(t, "POST", "/mcp", "stringaud", initBody, nil); resp.StatusCode != 200 {
		t.Fatalf("string aud: %d %s", resp.StatusCode, readBody(t, resp))
	}
	// The REST bridge also accepts its extra audience.
	if resp := f.do(t, "GET", "/mcp/tools", "restaud", "", nil); resp.StatusCode != 200 {
		t.Fatalf("bridge audience: %d %s", resp.StatusCode, readBody(t, resp))
	}
}

func TestAuth_ClockSkewAndVerifierFailure(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true; o.ClockSkew = time.Minute })
	f.tokens["fresh"] = tokenInfo("alice", []string{testResource}, ScopeTools)
	f.tokens["fresh"].Expiration = testNow.Add(-30 * time.Second) // within skew
	if resp := f.do(t, "POST", "/mcp", "fresh", initBody, nil); resp.StatusCode != 200 {
		t.Fatalf("within skew: %d", resp.StatusCode)
	}
	f.clockMu.Lock()
	f.now = testNow.Add(2 * time.Minute)
	f.clockMu.Unlock()
	if resp := f.do(t, "POST", "/mcp", "fresh", initBody, nil); resp.StatusCode != 401 {
		t.Fatalf("beyond skew: %d", resp.StatusCode)
	}

	g := newFixture(t, func(o *Options) {
		o.Verifier = func(context.Context, string, *http.Request) (*auth.TokenInfo, error) {
			return nil, errors.New("revocation store down")
		}
	})
	resp := g.do(t, "POST", "/mcp", "alice", initBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 500 || resp.Header.Get("WWW-Authenticate") != "" || strings.Contains(b, "revocation store") {
		t.Fatalf("verifier failure: %d %v %s", resp.StatusCode, resp.Header, b)
	}
}

func TestAuth_ProtectedResourceMetadata(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ path, resource string }{
		{"/.well-known/oauth-protected-resource/mcp", "https://qrng.test/mcp"},
		{"/.well-known/oauth-protected-resource", "https://qrng.test"},
	} {
		resp := f.do(t, "GET", tc.path, "", "", nil)
		body := readBody(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		var m struct {
			Resource     string   `json:"resource"`
			AS           []string `json:"authorization_servers"`
			Scopes       []string `json:"scopes_supported"`
			BearerMethod []string `json:"bearer_methods_supported"`
		}
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if m.Resource != tc.resource || len(m.AS) != 1 || m.AS[0] != testIssuer || m.Scopes[0] != ScopeTools || m.BearerMethod[0] != "header" {
			t.Errorf("%s: %s", tc.path, body)
		}
	}
	if got := f.srv.ResourceMetadataURL(); got != "https://qrng.test/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("ResourceMetadataURL = %s", got)
	}
}

func TestNew_InvalidOptions(t *testing.T) {
	base := func() *Options {
		return &Options{Entropy: newFakeEntropy(1), Verifier: newTokens().verify, Audit: &auditRecorder{},
			ResourceURL: testResource, IssuerURL: testIssuer}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"nil entropy", func(o *Options) { o.Entropy = nil }, "Entropy"},
		{"nil verifier", func(o *Options) { o.Verifier = nil }, "Verifier"},
		{"nil audit", func(o *Options) { o.Audit = nil }, "Audit"},
		{"relative resource", func(o *Options) { o.ResourceURL = "/mcp" }, "ResourceURL"},
		{"resource without path", func(o *Options) { o.ResourceURL = "https://qrng.test" }, "path"},
		{"resource with fragment", func(o *Options) { o.ResourceURL = "https://qrng.test/mcp#x" }, "fragment"},
		{"ftp issuer", func(o *Options) { o.IssuerURL = "ftp://qrng.test" }, "IssuerURL"},
		{"bad origin", func(o *Options) { o.AllowedOrigins = []string{"https://x.test/path"} }, "AllowedOrigins"},
		{"negative body", func(o *Options) { o.MaxBodyBytes = -1 }, "MaxBodyBytes"},
		{"unknown tool scope", func(o *Options) { o.ToolScopes = map[string]string{"nope": "x"} }, "nope"},
		{"bad rate", func(o *Options) { o.RateLimit = &ratelimit.Options{Rate: -1} }, "RateLimit"},
		{"defaults", func(o *Options) {}, ""},
	} {
		o := base()
		tc.mutate(o)
		_, err := New(o)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions naming %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("New(nil) = %v", err)
	}
}
