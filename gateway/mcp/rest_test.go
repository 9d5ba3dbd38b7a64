package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/entropy"
)

type restBody struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result"`
	Error   *restError      `json:"error"`
}

func decodeREST(t *testing.T, body string) restBody {
	t.Helper()
	var r restBody
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("REST body %q: %v", body, err)
	}
	return r
}

func TestREST_Tools(t *testing.T) {
	f := newFixture(t, nil)
	resp := f.do(t, "GET", "/mcp/tools", "alice", "", nil)
	body := readBody(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got struct{ Tools []map[string]any }
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	// Same registry and schemas as tools/list.
	cs := f.connect(t, "alice", nil)
	lt, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tools) != len(lt.Tools) {
		t.Fatalf("REST lists %d tools, MCP %d", len(got.Tools), len(lt.Tools))
	}
	for i, tl := range lt.Tools {
		in, _ := json.Marshal(tl.InputSchema)
		out, _ := json.Marshal(tl.OutputSchema)
		rin, _ := json.Marshal(got.Tools[i]["inputSchema"])
		rout, _ := json.Marshal(got.Tools[i]["outputSchema"])
		if got.Tools[i]["name"] != tl.Name || string(in) != string(rin) || string(out) != string(rout) || got.Tools[i]["scope"] != ScopeTools {
			t.Errorf("tool %d differs:\nREST %v\nMCP  %s %s", i, got.Tools[i], in, out)
		}
	}
	if resp := f.do(t, "POST", "/mcp/tools", "alice", "{}", nil); resp.StatusCode != 405 {
		t.Errorf("POST /mcp/tools: %d", resp.StatusCode)
	}
}

func TestREST_Execute(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.MaxBodyBytes = 2048 })
	for _, tc := range []struct {
		name, token, body string
		hdr               map[string]string
		status            int
		code              string
	}{
		{"ok", "alice", `{"tool":"random_bytes","arguments":{"bytes":4,"format":"base64"}}`, nil, 200, ""},
		{"ok without arguments", "alice", `{"tool":"entropy_status"}`, nil, 200, ""},
		{"ok with bridge audience", "restaud", `{"tool":"random_uuid","arguments":{"count":2}}`, nil, 200, ""},
		{"no token", "", `{"tool":"random_uuid"}`, nil, 401, "unauthorized"},
		{"bad token", "forged", `{"tool":"random_uuid"}`, nil, 401, "invalid_token"},
		{"wrong audience", "wrongaud", `{"tool":"random_uuid"}`, nil, 401, "invalid_token"},
		{"no scope", "noscope", `{"tool":"random_uuid"}`, nil, 403, "insufficient_scope"},
		{"schema violation", "alice", `{"tool":"random_bytes","arguments":{"bytes":0}}`, nil, 400, outcomeInvalidArgs},
		{"domain violation", "alice", `{"tool":"choose","arguments":{"items":[1],"k":2}}`, nil, 400, outcomeInvalidArgs},
		{"unknown field", "alice", `{"tool":"random_uuid","args":{}}`, nil, 400, "invalid_request"},
		{"trailing data", "alice", `{"tool":"random_uuid"} {}`, nil, 400, "invalid_request"},
		{"missing tool", "alice", `{"arguments":{}}`, nil, 400, "invalid_request"},
		{"not JSON", "alice", `tool=random_uuid`, nil, 400, "invalid_request"},
		{"unknown tool", "alice", `{"tool":"nope"}`, nil, 404, outcomeUnknownTool},
		{"wrong content type", "alice", `{"tool":"random_uuid"}`, hdrs("Content-Type", "text/plain"), 415, "unsupported_media_type"},
		{"oversized", "alice", `{"tool":"shuffle","arguments":{"items":[` + strings.Repeat(`"abcdefgh",`, 300) + `"x"]}}`, nil, 413, "body_too_large"},
		{"foreign origin", "alice", `{"tool":"random_uuid"}`, hdrs("Origin", "https://evil.example"), 403, "origin_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(t, "POST", "/mcp/execute", tc.token, tc.body, tc.hdr)
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			r := decodeREST(t, body)
			if tc.status == 200 {
				if !r.Success || r.Error != nil || len(r.Result) == 0 || resp.Header.Get("RateLimit-Limit") == "" {
					t.Fatalf("%s %v", body, resp.Header)
				}
				var res map[string]any
				if err := json.Unmarshal(r.Result, &res); err != nil || res["provenance"] == nil {
					t.Fatalf("result %s: %v", r.Result, err)
				}
				return
			}
			if r.Success || r.Error == nil || r.Error.Code != tc.code || r.Error.Message == "" || r.Result != nil {
				t.Fatalf("body %s, want error code %q", body, tc.code)
			}
		})
	}
	if resp := f.do(t, "GET", "/mcp/execute", "alice", "", nil); resp.StatusCode != 405 {
		t.Errorf("GET /mcp/execute: %d", resp.StatusCode)
	}
}

func TestREST_Execute_RateLimitAndPool(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RateLimit.Rate, o.RateLimit.Burst = 0.5, 2 })
	exec := func() (int, string, map[string][]string) {
		resp := f.do(t, "POST", "/mcp/execute", "alice", `{"tool":"random_integers","arguments":{"min":1,"max":6}}`, nil)
		return resp.StatusCode, readBody(t, resp), resp.Header
	}
	for i := 0; i < 2; i++ {
		if st, b, h := exec(); st != 200 || h["Ratelimit-Remaining"][0] != []string{"1", "0"}[i] {
			t.Fatalf("call %d: %d %s %v", i, st, b, h)
		}
	}
	st, b, h := exec()
	if st != 429 || decodeREST(t, b).Error.Code != outcomeRateLimited || h["Retry-After"][0] != "2" || h["Ratelimit-Limit"][0] != "2" || h["Ratelimit-Reset"][0] != "4" {
		t.Fatalf("over limit: %d %s %v", st, b, h)
	}

	g := newFixture(t, nil)
	g.ent.setFail(errors.Join(errors.New("no healthy source"), entropy.ErrInsufficientEntropy))
	resp := g.do(t, "POST", "/mcp/execute", "alice", `{"tool":"random_bytes","arguments":{"bytes":8}}`, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || decodeREST(t, body).Error.Code != outcomeUnavailable {
		t.Fatalf("pool: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	recs := g.audit.records()
	if len(recs) != 1 || recs[0].Transport != "rest" || recs[0].Outcome != outcomeUnavailable || recs[0].Subject != "alice" {
		t.Fatalf("audit %+v", recs)
	}
}

// ctxAudit refuses records whose context is done, as the bbolt store does.
type ctxAudit struct{ auditRecorder }

func (a *ctxAudit) Append(ctx context.Context, rec AuditRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return a.auditRecorder.Append(ctx, rec)
}

// TestExecute_AuditSurvivesCancellation: a call the client cancelled (here
// before the tool ran) is still audited; the store's context check must not
// drop the record.
func TestExecute_AuditSurvivesCancellation(t *testing.T) {
	a := &ctxAudit{}
	f := newFixture(t, func(o *Options) { o.Audit = a })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := f.srv.execute(ctx, principal{subject: "alice", scopes: []string{ScopeTools}, transport: "rest", correlationID: "c1"},
		"random_bytes", []byte(`{"bytes":8}`))
	recs := a.records()
	if len(recs) != 1 || recs[0].Subject != "alice" || recs[0].Tool != "random_bytes" || recs[0].CorrelationID != "c1" {
		t.Fatalf("audit records %+v after a cancelled call (result %s: %s)", recs, res.kind, res.msg)
	}
}
