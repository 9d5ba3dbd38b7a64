package mcp

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/ratelimit"
)

// fakeEntropy serves bytes from a seeded ChaCha8 stream (deterministic, for
// the statistical tests) and can be told to fail like an exhausted pool.
type fakeEntropy struct {
	mu       sync.Mutex
	rng      *rand.ChaCha8
	fail     error
	degraded bool
	status   entropy.Status
	reads    int
	bytes    int
}

func newFakeEntropy(seed uint64) *fakeEntropy {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &fakeEntropy{rng: rand.NewChaCha8(s), status: entropy.Status{
		Pool: entropy.PoolStatus{Policy: entropy.PolicyFailClosed, Ready: true, LevelBytes: 4096, CapacityBytes: 1 << 20, HealthySources: 1, MinSources: 1, Reseeds: 3},
		Sources: []entropy.SourceStatus{
			{SourceInfo: entropy.SourceInfo{Name: "sim0", Kind: "sim", SampleBits: 8, MinEntropy: 7.5}, State: entropy.StateHealthy, Samples: 100, Bytes: 90, RCT: entropy.TestCounters{Intermittent: 1}},
			{SourceInfo: entropy.SourceInfo{Name: "usb1", Kind: "quantis-usb", SampleBits: 8, MinEntropy: 7.9}, State: entropy.StateQuarantined, LastError: "APT cutoff"},
		},
	}}
}

func (f *fakeEntropy) Read(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return entropy.Provenance{}, f.fail
	}
	f.rng.Read(p)
	f.reads++
	f.bytes += len(p)
	return entropy.Provenance{Mode: mode, Sources: []string{"sim0"}, Degraded: f.degraded}, nil
}

func (f *fakeEntropy) Status() entropy.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeEntropy) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

// constEntropy always returns the same byte: a stuck source.
type constEntropy struct{ b byte }

func (c constEntropy) Read(_ context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
	for i := range p {
		p[i] = c.b
	}
	return entropy.Provenance{Mode: mode, Sources: []string{"stuck"}}, nil
}
func (constEntropy) Status() entropy.Status { return entropy.Status{} }

// auditRecorder keeps every record.
type auditRecorder struct {
	mu   sync.Mutex
	recs []AuditRecord
	fail error
}

func (a *auditRecorder) Append(_ context.Context, rec AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.recs = append(a.recs, rec)
	return nil
}

func (a *auditRecorder) records() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuditRecord(nil), a.recs...)
}

const (
	testResource = "https://qrng.test/mcp"
	testIssuer   = "https://qrng.test"
)

// tokenTable is a fake verifier: tokens we mint map to TokenInfo.
type tokenTable map[string]*auth.TokenInfo

func (tt tokenTable) verify(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	if ti, ok := tt[token]; ok {
		return ti, nil
	}
	return nil, fmt.Errorf("unknown token: %w", auth.ErrInvalidToken)
}

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func tokenInfo(sub string, aud []string, scopes ...string) *auth.TokenInfo {
	return &auth.TokenInfo{UserID: sub, Scopes: scopes, Expiration: testNow.Add(time.Hour),
		Extra: map[string]any{AudienceKey: aud, ClientIDKey: "cli-" + sub}}
}

func newTokens() tokenTable {
	expired := tokenInfo("eve", []string{testResource}, ScopeTools)
	expired.Expiration = testNow.Add(-time.Hour)
	noExp := tokenInfo("eve", []string{testResource}, ScopeTools)
	noExp.Expiration = time.Time{}
	return tokenTable{
		"alice":       tokenInfo("alice", []string{testResource}, ScopeTools, "random:read"),
		"bob":         tokenInfo("bob", []string{testResource}, ScopeTools),
		"noscope":     tokenInfo("carol", []string{testResource}, "random:read"),
		"wrongaud":    tokenInfo("dave", []string{"https://other.example/mcp"}, ScopeTools),
		"restaud":     tokenInfo("frank", []string{"https://qrng.test/api"}, ScopeTools),
		"expired":     expired,
		"noexp":       noExp,
		"nosub":       tokenInfo("", []string{testResource}, ScopeTools),
		"stringaud":   {UserID: "gina", Scopes: []string{ScopeTools}, Expiration: testNow.Add(time.Hour), Extra: map[string]any{AudienceKey: testResource + "/"}},
		"bench-alice": tokenInfo("bench", []string{testResource}, ScopeTools),
	}
}

type fixture struct {
	t       *testing.T
	srv     *Server
	ts      *httptest.Server
	ent     *fakeEntropy
	audit   *auditRecorder
	tokens  tokenTable
	clockMu sync.Mutex
	now     time.Time
}

func (f *fixture) clock() time.Time {
	f.clockMu.Lock()
	defer f.clockMu.Unlock()
	return f.now
}

func newFixture(t testing.TB, mutate func(*Options)) *fixture {
	f := &fixture{ent: newFakeEntropy(1), audit: &auditRecorder{}, tokens: newTokens(), now: testNow}
	opts := &Options{
		Entropy: f.ent, Verifier: f.tokens.verify, Audit: f.audit,
		ResourceURL: testResource, IssuerURL: testIssuer,
		BridgeAudiences: []string{"https://qrng.test/api"},
		AllowedOrigins:  []string{"https://app.example.com"},
		RateLimit:       &ratelimit.Options{Rate: 1000, Burst: 1000},
		Version:         "test",
		Now:             f.clock,
	}
	if mutate != nil {
		mutate(opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(f.ts.Close)
	return f
}

// bearerTransport adds the Authorization header, as an MCP client's HTTP
// client does with a token from /oauth/token.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func (f *fixture) httpClient(token string) *http.Client {
	return &http.Client{Transport: bearerTransport{token: token, base: f.ts.Client().Transport}}
}

// connect opens a go-sdk client session over real HTTP with token.
func (f *fixture) connect(t testing.TB, token string, opts *sdk.ClientSessionOptions) *sdk.ClientSession {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "qrngd-test", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{
		Endpoint: f.ts.URL + "/mcp", HTTPClient: f.httpClient(token), MaxRetries: -1, DisableStandaloneSSE: true,
	}, opts)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// post sends a raw request to the server.
func (f *fixture) do(t testing.TB, method, path, token, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// rawSession initializes over raw HTTP and returns the session id.
func (f *fixture) rawSession(t testing.TB, token string) string {
	t.Helper()
	resp := f.do(t, "POST", "/mcp", token, initBody, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("initialize: no session id; %s", body)
	}
	resp = f.do(t, "POST", "/mcp", token, `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
	if b := readBody(t, resp); resp.StatusCode != 202 {
		t.Fatalf("initialized: %d %s", resp.StatusCode, b)
	}
	return sid
}
