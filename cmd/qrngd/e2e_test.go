package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qrngd/qrngd/gateway/admin"
)

// e2eConfig is a dev configuration with a fast simulated source, so the
// pool fills in milliseconds.
const e2eConfig = `mode: dev
listen: 127.0.0.1:0
log_level: info
sources:
  - name: sim0
    kind: sim
    seed: 11
    rate: 50000000
http:
  shutdown_timeout: 5s
`

// liveDaemon is run() in-process on 127.0.0.1:0.
type liveDaemon struct {
	base    string
	dataDir string
	stderr  *syncBuffer
	client  *http.Client
	cancel  context.CancelFunc
	done    chan error
}

// startLive runs qrngd in-process with cfg and waits until /readyz is 200.
func startLive(t *testing.T, cfg string) *liveDaemon {
	t.Helper()
	addrc := make(chan net.Addr, 1)
	onListen = func(a net.Addr) { addrc <- a }
	t.Cleanup(func() { onListen = func(net.Addr) {} })
	t.Setenv("NOTIFY_SOCKET", "")
	d := &liveDaemon{dataDir: t.TempDir(), stderr: &syncBuffer{}, client: &http.Client{Timeout: 10 * time.Second}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	p := writeConfig(t, cfg)
	go func() { d.done <- run(ctx, []string{"-config", p, "-data-dir", d.dataDir}, io.Discard, d.stderr) }()
	select {
	case a := <-addrc:
		d.base = "http://" + a.String()
	case err := <-d.done:
		t.Fatalf("run returned before listening: %v\n%s", err, d.stderr)
	case <-time.After(60 * time.Second):
		t.Fatalf("not listening after 60 s\n%s", d.stderr)
	}
	t.Cleanup(func() { d.shutdown(t) })
	poll(t, 60*time.Second, "/readyz 200", func() bool {
		res, err := d.client.Get(d.base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return d
}

// shutdown cancels run (as SIGTERM does) and checks a clean exit; it is
// idempotent.
func (d *liveDaemon) shutdown(t *testing.T) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("run after cancel: %v\n%s", err, d.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("run did not return 30 s after cancel\n%s", d.stderr)
	}
}

// poll retries cond every 20 ms until it holds; a bounded wait, not a timed
// assertion.
func poll(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no %s after %v", what, limit)
		}
	}
}

// reply is one HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", r.status, err, r.body)
	}
}

// call sends one request; body is JSON unless ctype says otherwise.
func call(t testing.TB, hc *http.Client, method, u, token, ctype string, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return reply{res.StatusCode, res.Header, b}
}

// adminClient speaks the admin API over the unix socket, as qrngctl does.
func adminClient(sock string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

// createKey makes a tenant and an API key through the admin socket.
func createKey(t testing.TB, ac *http.Client, tenant string, scopes ...string) (id, secret string) {
	t.Helper()
	if r := call(t, ac, "POST", "http://admin/v1/tenants", "", "application/json", fmt.Sprintf(`{"id":%q,"name":"test"}`, tenant)); r.status != 201 {
		t.Fatalf("admin: add tenant: %d %s", r.status, r.body)
	}
	sc, _ := json.Marshal(scopes)
	r := call(t, ac, "POST", "http://admin/v1/keys", "", "application/json", fmt.Sprintf(`{"tenant":%q,"name":"e2e","scopes":%s}`, tenant, sc))
	var k struct {
		Key struct {
			ClientID string `json:"client_id"`
		} `json:"key"`
		Secret string `json:"client_secret"`
	}
	r.json(t, &k)
	if r.status != 201 || k.Key.ClientID == "" || k.Secret == "" {
		t.Fatalf("admin: create key: %d %s", r.status, r.body)
	}
	return k.Key.ClientID, k.Secret
}

// auditVerify runs POST /v1/audit/verify on the admin socket.
func auditVerify(t testing.TB, ac *http.Client) admin.AuditResult {
	t.Helper()
	r := call(t, ac, "POST", "http://admin/v1/audit/verify", "", "", "")
	var res admin.AuditResult
	r.json(t, &res)
	if r.status != 200 {
		t.Fatalf("admin: audit verify: %d %s", r.status, r.body)
	}
	return res
}

// clientToken runs the client_credentials grant (client_secret_basic).
func clientToken(t testing.TB, hc *http.Client, base, id, secret string, form url.Values) string {
	t.Helper()
	form.Set("grant_type", "client_credentials")
	req, _ := http.NewRequest("POST", base+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || res.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("/oauth/token: %d %v", res.StatusCode, err)
	}
	return tok.AccessToken
}

// bearer adds the Authorization header, as an MCP client's HTTP client does
// with a token from /oauth/token.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// TestRun_Contract is the seed's contract against the running daemon: demo
// login, /v1/random with and without the token, the REST bridge, /health,
// the admin socket, the per-principal rate-limit hook, and tokens verified
// by a standard JWT library through /.well-known/jwks.json.
func TestRun_Contract(t *testing.T) {
	d := startLive(t, e2eConfig)
	hc := d.client

	// The demo user is seeded once the pool serves its argon2 salt.
	var login reply
	poll(t, 60*time.Second, "demo login", func() bool {
		login = call(t, hc, "POST", d.base+"/auth/login", "", "application/json", `{"username":"demo","password":"demo123"}`)
		return login.status != http.StatusUnauthorized
	})
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
	}
	login.json(t, &tok)
	if login.status != 200 || tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "bearer" || tok.ExpiresIn <= 0 {
		t.Fatalf("POST /auth/login: %d %s", login.status, login.body)
	}
	if r := call(t, hc, "POST", d.base+"/auth/login", "", "application/json", `{"username":"demo","password":"wrong"}`); r.status != 401 {
		t.Fatalf("wrong password: %d %s", r.status, r.body)
	}

	// /v1/random with the token; without it 401 JSON plus the challenge.
	r := call(t, hc, "GET", d.base+"/v1/random?bytes=32&format=hex", tok.AccessToken, "", "")
	var rnd struct {
		Bytes int    `json:"bytes"`
		Data  string `json:"data"`
	}
	r.json(t, &rnd)
	if r.status != 200 || rnd.Bytes != 32 || len(rnd.Data) != 64 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /v1/random with token: %d %s", r.status, r.body)
	}
	// The per-principal limiter is wired: LimitAPI's RateLimit headers.
	if r.header.Get("RateLimit-Limit") == "" || r.header.Get("RateLimit-Remaining") == "" {
		t.Errorf("no RateLimit headers on /v1/random: %v", r.header)
	}
	r = call(t, hc, "GET", d.base+"/v1/random?bytes=32", "", "", "")
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	if r.status != 401 || e.Error.Code == "" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") ||
		!strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/random without token: %d %v %s", r.status, r.header, r.body)
	}
	if r := call(t, hc, "GET", d.base+"/v1/random?bytes=32", tok.AccessToken+"x", "", ""); r.status != 401 ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("tampered token: %d %v", r.status, r.header)
	}
	if r := call(t, hc, "GET", d.base+"/v1/sources", tok.AccessToken, "", ""); r.status != 200 || !bytes.Contains(r.body, []byte(`"sim0"`)) {
		t.Fatalf("GET /v1/sources: %d %s", r.status, r.body)
	}

	// The seed's REST bridge with the login token.
	r = call(t, hc, "GET", d.base+"/mcp/tools", tok.AccessToken, "", "")
	var tools struct {
		Tools []struct{ Name string } `json:"tools"`
	}
	r.json(t, &tools)
	if r.status != 200 || len(tools.Tools) < 7 {
		t.Fatalf("GET /mcp/tools: %d %s", r.status, r.body)
	}
	r = call(t, hc, "POST", d.base+"/mcp/execute", tok.AccessToken, "application/json", `{"tool":"random_bytes","arguments":{"bytes":16}}`)
	var ex struct {
		Success bool `json:"success"`
		Result  struct {
			Bytes int    `json:"bytes"`
			Data  string `json:"data"`
		} `json:"result"`
	}
	r.json(t, &ex)
	if r.status != 200 || !ex.Success || ex.Result.Bytes != 16 || len(ex.Result.Data) != 32 {
		t.Fatalf("POST /mcp/execute: %d %s", r.status, r.body)
	}
	if r := call(t, hc, "POST", d.base+"/mcp/execute", "", "application/json", `{"tool":"random_bytes","arguments":{"bytes":16}}`); r.status != 401 ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("POST /mcp/execute without token: %d %v", r.status, r.header)
	}
	// /mcp bodies may exceed the gateway's 64 KiB limit up to mcp.max_body_bytes.
	big := fmt.Sprintf(`{"tool":"shuffle","arguments":{"items":[%s1]}}`, strings.Repeat(`"xxxxxxxxxx",`, 8000))
	if r := call(t, hc, "POST", d.base+"/mcp/execute", tok.AccessToken, "application/json", big); r.status != 200 || !bytes.Contains(r.body, []byte(`"success":true`)) {
		t.Fatalf("POST /mcp/execute with a %d-byte body: %d %.300s", len(big), r.status, r.body)
	}

	// /health lists the features.
	r = call(t, hc, "GET", d.base+"/health", "", "", "")
	var h struct {
		Status   string   `json:"status"`
		Features []string `json:"features"`
	}
	r.json(t, &h)
	if r.status != 200 || !strings.Contains(strings.Join(h.Features, " "), "auth") || !strings.Contains(strings.Join(h.Features, " "), "mcp") {
		t.Fatalf("GET /health: %d %s", r.status, r.body)
	}

	// RFC 9728 and RFC 8414 metadata name this issuer.
	for _, p := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server"} {
		if r := call(t, hc, "GET", d.base+p, "", "", ""); r.status != 200 || !bytes.Contains(r.body, []byte(d.base)) {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}

	// Tokens verify with a standard JWT library through the JWKS.
	r = call(t, hc, "GET", d.base+"/.well-known/jwks.json", "", "", "")
	var jwks struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string } `json:"keys"`
	}
	r.json(t, &jwks)
	keyfunc := func(tk *jwt.Token) (any, error) {
		for _, k := range jwks.Keys {
			if k.Kid == tk.Header["kid"] && k.Kty == "OKP" && k.Crv == "Ed25519" {
				b, err := base64.RawURLEncoding.DecodeString(k.X)
				if err != nil || len(b) != ed25519.PublicKeySize {
					return nil, fmt.Errorf("bad JWK x")
				}
				return ed25519.PublicKey(b), nil
			}
		}
		return nil, fmt.Errorf("kid %v not in the JWKS", tk.Header["kid"])
	}
	var claims jwt.MapClaims
	parsed, err := jwt.ParseWithClaims(tok.AccessToken, &claims, keyfunc, jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(d.base), jwt.WithAudience(d.base), jwt.WithExpirationRequired())
	if err != nil || !parsed.Valid || parsed.Header["typ"] != "at+jwt" || claims["sub"] != "demo" || len(claims["jti"].(string)) < 22 {
		t.Fatalf("login token through the JWKS: %v %v %v", err, parsed.Header, claims)
	}

	// A client made through the admin socket gets an MCP-audience token.
	ac := adminClient(filepath.Join(d.dataDir, admin.SocketName))
	id, secret := createKey(t, ac, "acme", "mcp:tools", "random:read")
	mcpTok := clientToken(t, hc, d.base, id, secret, url.Values{"resource": {d.base + "/mcp"}, "scope": {"mcp:tools"}})
	claims = jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(mcpTok, &claims, keyfunc, jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithIssuer(d.base), jwt.WithAudience(d.base+"/mcp")); err != nil || claims["client_id"] != id {
		t.Fatalf("client token through the JWKS: %v %v", err, claims)
	}
	// Its audience is /mcp alone: the REST API refuses it.
	if r := call(t, hc, "GET", d.base+"/v1/random?bytes=8", mcpTok, "", ""); r.status != 401 {
		t.Fatalf("MCP-audience token on /v1/random: %d", r.status)
	}

	// Revocation through RFC 7009 is effective at once.
	if r := call(t, hc, "POST", d.base+"/oauth/revoke", tok.AccessToken, "application/x-www-form-urlencoded",
		url.Values{"token": {tok.AccessToken}}.Encode()); r.status != 200 {
		t.Fatalf("POST /oauth/revoke: %d %s", r.status, r.body)
	}
	if r := call(t, hc, "GET", d.base+"/v1/random?bytes=8", tok.AccessToken, "", ""); r.status != 401 {
		t.Fatalf("revoked token: %d", r.status)
	}

	if res := auditVerify(t, ac); !res.OK || res.Records < 4 {
		t.Fatalf("audit verify: %+v", res)
	}
	d.shutdown(t)
	if _, err := os.Stat(filepath.Join(d.dataDir, admin.SocketName)); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind after shutdown: %v", err)
	}
}

// TestRun_MCPClient: an in-process go-sdk MCP client connects to the
// daemon's /mcp with a token from /oauth/token (client created through the
// admin socket), lists the tools and calls each one.
func TestRun_MCPClient(t *testing.T) {
	d := startLive(t, e2eConfig)
	ac := adminClient(filepath.Join(d.dataDir, admin.SocketName))
	id, secret := createKey(t, ac, "agents", "mcp:tools")
	token := clientToken(t, d.client, d.base, id, secret, url.Values{"resource": {d.base + "/mcp"}, "scope": {"mcp:tools"}})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := sdk.NewClient(&sdk.Implementation{Name: "qrngd-e2e", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{
		Endpoint:   d.base + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}},
		MaxRetries: -1,
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, d.stderr)
	}
	defer cs.Close()
	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]string{
		"random_bytes":      `{"bytes":32,"format":"base64"}`,
		"random_integers":   `{"min":1,"max":6,"count":20}`,
		"random_uuid":       `{"count":2}`,
		"generate_password": `{"length":24}`,
		"shuffle":           `{"items":["a","b","c"]}`,
		"choose":            `{"items":["a","b","c"],"k":2}`,
		"entropy_status":    `{}`,
	}
	called := 0
	for _, tool := range lt.Tools {
		a, ok := args[tool.Name]
		if !ok {
			t.Errorf("tool %q has no test call", tool.Name)
			continue
		}
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: tool.Name, Arguments: json.RawMessage(a)})
		if err != nil || res.IsError || res.StructuredContent == nil {
			t.Errorf("tools/call %s: %v %+v", tool.Name, err, res)
			continue
		}
		sc, _ := json.Marshal(res.StructuredContent)
		if !bytes.Contains(sc, []byte(`"sim0"`)) {
			t.Errorf("tools/call %s: no provenance naming sim0: %s", tool.Name, sc)
		}
		called++
	}
	if called != len(args) {
		t.Fatalf("called %d of %d tools (listed %d)", called, len(args), len(lt.Tools))
	}
	// Invalid arguments come back as isError with the schema error.
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "random_bytes", Arguments: json.RawMessage(`{"bytes":0}`)})
	if err != nil || !res.IsError {
		t.Fatalf("random_bytes {bytes:0}: %v %+v", err, res)
	}
	// No token: 401 with the RFC 9728 challenge.
	if r := call(t, d.client, "POST", d.base+"/mcp", "", "application/json", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`); r.status != 401 {
		t.Fatalf("POST /mcp without token: %d", r.status)
	}
	if res := auditVerify(t, ac); !res.OK {
		t.Fatalf("audit verify after MCP calls: %+v", res)
	}
}

// TestRun_PrincipalRateLimit: auth.limits.api reaches the gateway's Limit
// hook: a principal over its bucket gets 429 with Retry-After, while
// another principal from the same address is still served.
func TestRun_PrincipalRateLimit(t *testing.T) {
	d := startLive(t, e2eConfig+`auth:
  limits:
    api: {principal_rate: 0.001, principal_burst: 2}
`)
	ac := adminClient(filepath.Join(d.dataDir, admin.SocketName))
	id1, s1 := createKey(t, ac, "one", "random:read")
	tok1 := clientToken(t, d.client, d.base, id1, s1, url.Values{})
	for i := range 2 {
		if r := call(t, d.client, "GET", d.base+"/v1/random?bytes=8", tok1, "", ""); r.status != 200 {
			t.Fatalf("call %d within the burst: %d %s", i, r.status, r.body)
		}
	}
	r := call(t, d.client, "GET", d.base+"/v1/random?bytes=8", tok1, "", "")
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	r.json(t, &e)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || e.Error.Code == "" {
		t.Fatalf("over the burst: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	// Limits belong to the principal: a new token of the same client is
	// still limited; another client is not.
	tok1b := clientToken(t, d.client, d.base, id1, s1, url.Values{})
	if r := call(t, d.client, "GET", d.base+"/v1/random?bytes=8", tok1b, "", ""); r.status != http.StatusTooManyRequests {
		t.Fatalf("same client, new token: %d", r.status)
	}
	r2 := call(t, ac, "POST", "http://admin/v1/keys", "", "application/json", `{"tenant":"one","name":"two","scopes":["random:read"]}`)
	var k struct {
		Key struct {
			ClientID string `json:"client_id"`
		} `json:"key"`
		Secret string `json:"client_secret"`
	}
	r2.json(t, &k)
	if r2.status != 201 {
		t.Fatalf("second key: %d %s", r2.status, r2.body)
	}
	tok2 := clientToken(t, d.client, d.base, k.Key.ClientID, k.Secret, url.Values{})
	if r := call(t, d.client, "GET", d.base+"/v1/random?bytes=8", tok2, "", ""); r.status != 200 {
		t.Fatalf("another principal: %d %s", r.status, r.body)
	}
}

// TestRun_ShutdownEndsMCPStreams: an open MCP SSE GET stream (the MCP
// Inspector keeps one per session) must not hold graceful shutdown until
// http.shutdown_timeout: the stream ends when the server shuts down, and the
// drain completes.
func TestRun_ShutdownEndsMCPStreams(t *testing.T) {
	d := startLive(t, strings.Replace(e2eConfig, "shutdown_timeout: 5s", "shutdown_timeout: 3s", 1))
	ac := adminClient(filepath.Join(d.dataDir, admin.SocketName))
	id, secret := createKey(t, ac, "agents", "mcp:tools")
	token := clientToken(t, d.client, d.base, id, secret, url.Values{"resource": {d.base + "/mcp"}, "scope": {"mcp:tools"}})
	post := func(body, sid string) *http.Response {
		req, _ := http.NewRequest("POST", d.base+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		}
		res, err := d.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`, "")
	sid := res.Header.Get("Mcp-Session-Id")
	if res.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize: %d session %q", res.StatusCode, sid)
	}
	if res := post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid); res.StatusCode != 202 {
		t.Fatalf("initialized: %d", res.StatusCode)
	}
	req, _ := http.NewRequest("GET", d.base+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	stream, err := (&http.Client{}).Do(req) // no client timeout: the stream is long-lived
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != 200 {
		t.Fatalf("GET stream: %d", stream.StatusCode)
	}
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, stream.Body); close(ended) }()
	d.shutdown(t)
	<-ended
	if strings.Contains(d.stderr.String(), "HTTP drain incomplete") {
		t.Fatalf("shutdown waited for the MCP stream until shutdown_timeout:\n%s", d.stderr)
	}
}
