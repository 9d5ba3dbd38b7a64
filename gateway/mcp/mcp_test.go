package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qrngd/qrngd/entropy"
)

func callText(res *sdk.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// outSchemas resolves every tool's advertised outputSchema from tools/list.
func outSchemas(t *testing.T, tools []*sdk.Tool) map[string]*jsonschema.Resolved {
	t.Helper()
	m := map[string]*jsonschema.Resolved{}
	for _, tl := range tools {
		b, err := json.Marshal(tl.OutputSchema)
		if err != nil {
			t.Fatal(err)
		}
		var s jsonschema.Schema
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: outputSchema: %v", tl.Name, err)
		}
		if s.Type != "object" {
			t.Errorf("%s: outputSchema type %q, want object", tl.Name, s.Type)
		}
		r, err := s.Resolve(nil)
		if err != nil {
			t.Fatalf("%s: resolve outputSchema: %v", tl.Name, err)
		}
		m[tl.Name] = r
	}
	return m
}

func TestClient_ListAndCallEveryTool(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version string
		mutate  func(*Options)
	}{
		{"sse/2025-11-25", "2025-11-25", nil},
		{"sse/2025-06-18", "2025-06-18", nil},
		{"json/2025-11-25", "2025-11-25", func(o *Options) { o.JSONResponse = true }},
		{"stateless/2025-11-25", "2025-11-25", func(o *Options) { o.Stateless = true; o.JSONResponse = true }},
		{"sdk-default-version", "", nil},
		{"stateless/sdk-default-version", "", func(o *Options) { o.Stateless = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.mutate)
			var opts *sdk.ClientSessionOptions
			if tc.version != "" {
				opts = &sdk.ClientSessionOptions{ProtocolVersion: tc.version}
			}
			cs := f.connect(t, "alice", opts)
			t.Logf("negotiated %s", cs.InitializeResult().ProtocolVersion)
			if tc.version != "" && cs.InitializeResult().ProtocolVersion != tc.version {
				t.Fatalf("negotiated %q, want %q", cs.InitializeResult().ProtocolVersion, tc.version)
			}
			ctx := context.Background()
			lt, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, tl := range lt.Tools {
				names = append(names, tl.Name)
				if tl.Meta["io.qrngd/scope"] != ScopeTools {
					t.Errorf("%s: scope meta %v", tl.Name, tl.Meta)
				}
			}
			if got := strings.Join(names, ","); got != "choose,entropy_status,generate_password,random_bytes,random_integers,random_uuid,shuffle" {
				t.Fatalf("tools = %s", got)
			}
			schemas := outSchemas(t, lt.Tools)
			for _, call := range validCalls {
				res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: call.tool, Arguments: json.RawMessage(call.args)})
				if err != nil {
					t.Fatalf("%s: %v", call.tool, err)
				}
				if res.IsError {
					t.Fatalf("%s %s: isError: %s", call.tool, call.args, callText(res))
				}
				if err := schemas[call.tool].Validate(res.StructuredContent); err != nil {
					t.Errorf("%s: structuredContent does not match outputSchema: %v", call.tool, err)
				}
				// The text block carries the same JSON.
				var fromText any
				if err := json.Unmarshal([]byte(callText(res)), &fromText); err != nil {
					t.Errorf("%s: text block is not JSON: %v", call.tool, err)
				}
				sc := res.StructuredContent.(map[string]any)
				prov, _ := sc["provenance"].(map[string]any)
				if prov == nil || prov["mode"] == nil || prov["sources"] == nil || prov["degraded"] == nil {
					t.Errorf("%s: provenance missing or incomplete: %v", call.tool, sc["provenance"])
				}
				if call.check != nil {
					call.check(t, sc)
				}
			}
			recs := f.audit.records()
			if len(recs) != len(validCalls) {
				t.Fatalf("audit records = %d, want %d", len(recs), len(validCalls))
			}
			for i, r := range recs {
				if r.Tool != validCalls[i].tool || r.Subject != "alice" || r.ClientID != "cli-alice" || r.Outcome != outcomeOK ||
					r.Transport != "mcp" || r.ResultBytes == 0 || len(r.ArgsSHA256) != 64 || r.CorrelationID == "" {
					t.Errorf("audit %d = %+v", i, r)
				}
				if !f.srv.cfg.Stateless && r.SessionID == "" {
					t.Errorf("audit %d: no session id", i)
				}
			}
		})
	}
}

type toolCall struct {
	tool, args string
	check      func(t *testing.T, sc map[string]any)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

var validCalls = []toolCall{
	{"random_bytes", `{"bytes":32}`, func(t *testing.T, sc map[string]any) {
		if d, _ := sc["data"].(string); len(d) != 64 || sc["format"] != "hex" {
			t.Errorf("random_bytes hex: %v", sc)
		}
	}},
	{"random_bytes", `{"bytes":65536,"format":"base64","mode":"full"}`, func(t *testing.T, sc map[string]any) {
		if d, _ := sc["data"].(string); len(d) != 87384 || sc["provenance"].(map[string]any)["mode"] != "full" {
			t.Errorf("random_bytes base64: len %d, provenance %v", len(sc["data"].(string)), sc["provenance"])
		}
	}},
	{"random_integers", `{"min":-5,"max":5,"count":100}`, func(t *testing.T, sc map[string]any) {
		vals := sc["values"].([]any)
		if len(vals) != 100 {
			t.Fatalf("count %d", len(vals))
		}
		for _, v := range vals {
			if f := v.(float64); f < -5 || f > 5 || f != float64(int(f)) {
				t.Errorf("value %v outside [-5,5]", v)
			}
		}
	}},
	{"random_integers", `{"min":-9007199254740991,"max":9007199254740991}`, nil},
	{"random_uuid", `{"count":3}`, func(t *testing.T, sc map[string]any) {
		for _, u := range sc["uuids"].([]any) {
			if !uuidRE.MatchString(u.(string)) {
				t.Errorf("not a v4 UUID: %v", u)
			}
		}
	}},
	{"random_uuid", `{}`, nil},
	{"generate_password", `{"length":12,"classes":["digits","lowercase"]}`, func(t *testing.T, sc map[string]any) {
		pw := sc["password"].(string)
		if len(pw) != 12 || !regexp.MustCompile(`^[a-z0-9]*[0-9][a-z0-9]*$`).MatchString(pw) || !regexp.MustCompile(`[a-z]`).MatchString(pw) {
			t.Errorf("password %q", pw)
		}
		if sc["alphabet_size"] != 36.0 || sc["uniform_entropy_bits"] != 62.04 || sc["entropy_bits"].(float64) >= 62.04 || sc["entropy_bits"].(float64) < 61 {
			t.Errorf("password entropy: %v", sc)
		}
	}},
	{"generate_password", `{}`, func(t *testing.T, sc map[string]any) {
		if sc["length"] != 20.0 || sc["alphabet_size"] != 90.0 {
			t.Errorf("defaults: %v", sc)
		}
	}},
	{"shuffle", `{"items":[1,"two",{"three":3},[4],null,true]}`, func(t *testing.T, sc map[string]any) {
		got, _ := json.Marshal(sc["items"])
		if len(sc["items"].([]any)) != 6 || !strings.Contains(string(got), `{"three":3}`) {
			t.Errorf("shuffle items %s", got)
		}
	}},
	{"shuffle", `{"items":[]}`, nil},
	{"choose", `{"items":["a","b","c","d"],"k":2}`, func(t *testing.T, sc map[string]any) {
		it := sc["items"].([]any)
		if len(it) != 2 || it[0] == it[1] {
			t.Errorf("choose: %v", it)
		}
	}},
	{"entropy_status", `{}`, func(t *testing.T, sc map[string]any) {
		if sc["ready"] != true || sc["policy"] != "fail-closed" || len(sc["sources"].([]any)) != 2 ||
			sc["provenance"].(map[string]any)["mode"] != "none" {
			t.Errorf("entropy_status: %v", sc)
		}
	}},
}

func TestClient_InvalidArguments(t *testing.T) {
	f := newFixture(t, nil)
	cs := f.connect(t, "alice", nil)
	many := `[` + strings.Repeat(`1,`, 10000) + `1]`
	for _, tc := range []struct{ tool, args, want string }{
		{"random_bytes", `{"bytes":0}`, "minimum"},
		{"random_bytes", `{"bytes":65537}`, "maximum"},
		{"random_bytes", `{"bytes":"32"}`, "type"},
		{"random_bytes", `{"bytes":1.5}`, "type"},
		{"random_bytes", `{}`, "required"},
		{"random_bytes", `{"bytes":1,"format":"binary"}`, "enum"},
		{"random_bytes", `{"bytes":1,"mode":"turbo"}`, "enum"},
		{"random_bytes", `{"bytes":1,"extra":true}`, "extra"},
		{"random_bytes", `{"Bytes":1}`, "Bytes"},
		{"random_integers", `{"min":5,"max":1}`, "min (5) is greater than max (1)"},
		{"random_integers", `{"min":0,"max":1,"count":10001}`, "maximum"},
		{"random_integers", `{"min":0,"max":9007199254740993}`, "maximum"},
		{"random_integers", `{"min":0}`, "required"},
		{"random_uuid", `{"count":0}`, "minimum"},
		{"random_uuid", `{"count":1001}`, "maximum"},
		{"generate_password", `{"length":7}`, "minimum"},
		{"generate_password", `{"length":257}`, "maximum"},
		{"generate_password", `{"classes":[]}`, "minItems"},
		{"generate_password", `{"classes":["emoji"]}`, "enum"},
		{"generate_password", `{"classes":["digits","digits"]}`, "unique"},
		{"shuffle", `{"items":5}`, "type"},
		{"shuffle", `{}`, "required"},
		{"shuffle", `{"items":` + many + `}`, "maxItems"},
		{"choose", `{"items":["a","b"],"k":3}`, "k (3) is greater than the number of items (2)"},
		{"choose", `{"items":[],"k":1}`, "minItems"},
		{"choose", `{"items":["a"],"k":0}`, "minimum"},
		{"entropy_status", `{"verbose":true}`, "verbose"},
	} {
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tc.tool, Arguments: json.RawMessage(tc.args)})
		if err != nil {
			t.Errorf("%s %s: protocol error %v, want isError result", tc.tool, tc.args, err)
			continue
		}
		txt := callText(res)
		if !res.IsError || !strings.HasPrefix(txt, "invalid_arguments: invalid arguments") || !strings.Contains(txt, tc.want) {
			t.Errorf("%s %.60s: isError=%v %q, want schema error mentioning %q", tc.tool, tc.args, res.IsError, txt, tc.want)
		}
		if res.StructuredContent != nil {
			t.Errorf("%s: error result carries structuredContent", tc.tool)
		}
	}
	// Every attempt is audited, with the outcome.
	for _, r := range f.audit.records() {
		if r.Outcome != outcomeInvalidArgs || r.Error == "" || r.ResultBytes != 0 {
			t.Errorf("audit %+v", r)
		}
	}
}

func TestClient_UnknownToolIsProtocolError(t *testing.T) {
	f := newFixture(t, nil)
	cs := f.connect(t, "alice", nil)
	_, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "no_such_tool", Arguments: map[string]any{}})
	var werr interface{ Error() string }
	if err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Fatalf("err = %v, want JSON-RPC error for unknown tool", err)
	}
	_ = werr
}

func TestClient_DomainFailuresAreIsError(t *testing.T) {
	t.Run("pool cannot serve", func(t *testing.T) {
		f := newFixture(t, nil)
		cs := f.connect(t, "alice", nil)
		f.ent.setFail(errors.Join(errors.New("pool empty"), entropy.ErrInsufficientEntropy))
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "random_bytes", Arguments: map[string]any{"bytes": 8}})
		if err != nil || !res.IsError || !strings.HasPrefix(callText(res), outcomeUnavailable) {
			t.Fatalf("res=%v err=%v", res, err)
		}
		if r := f.audit.records()[0]; r.Outcome != outcomeUnavailable {
			t.Errorf("audit %+v", r)
		}
	})
	t.Run("rate limit per subject survives re-initialize", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.RateLimit.Rate, o.RateLimit.Burst = 0.001, 3 })
		call := func(cs *sdk.ClientSession) *sdk.CallToolResult {
			res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "random_uuid", Arguments: map[string]any{}})
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		cs1 := f.connect(t, "alice", nil)
		for i := 0; i < 3; i++ {
			if res := call(cs1); res.IsError {
				t.Fatalf("call %d: %s", i, callText(res))
			}
		}
		cs2 := f.connect(t, "alice", nil) // a new session does not reset the subject's budget
		if res := call(cs2); !res.IsError || !strings.HasPrefix(callText(res), outcomeRateLimited) {
			t.Fatalf("4th call in new session: %v %s", res.IsError, callText(res))
		}
		if res := call(f.connect(t, "bob", nil)); res.IsError { // another subject has its own budget
			t.Fatalf("bob: %s", callText(res))
		}
	})
	t.Run("tool scope", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.ToolScopes = map[string]string{"entropy_status": "sources:read"} })
		cs := f.connect(t, "alice", nil)
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "entropy_status", Arguments: map[string]any{}})
		if err != nil || !res.IsError || !strings.Contains(callText(res), `needs scope "sources:read"`) {
			t.Fatalf("res=%v err=%v", callText(res), err)
		}
	})
	t.Run("audit failure withholds the result", func(t *testing.T) {
		f := newFixture(t, nil)
		cs := f.connect(t, "alice", nil)
		f.audit.mu.Lock()
		f.audit.fail = errors.New("disk full")
		f.audit.mu.Unlock()
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "random_bytes", Arguments: map[string]any{"bytes": 8}})
		if err != nil || !res.IsError || !strings.Contains(callText(res), "audit log unavailable") || strings.Contains(callText(res), "data") {
			t.Fatalf("res=%s err=%v", callText(res), err)
		}
	})
	t.Run("degraded provenance", func(t *testing.T) {
		f := newFixture(t, nil)
		f.ent.degraded = true
		cs := f.connect(t, "alice", nil)
		res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "random_integers", Arguments: map[string]any{"min": 1, "max": 6}})
		if err != nil || res.IsError {
			t.Fatal(err, callText(res))
		}
		if p := res.StructuredContent.(map[string]any)["provenance"].(map[string]any); p["degraded"] != true {
			t.Fatalf("provenance %v", p)
		}
	})
}
