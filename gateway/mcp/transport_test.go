package mcp

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/gateway/ratelimit"
)

const callBody = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"random_bytes","arguments":{"bytes":16}}}`

func hdrs(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type rpcResp struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeRPC(t *testing.T, body string) rpcResp {
	t.Helper()
	var r rpcResp
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("not JSON-RPC: %v: %q", err, body)
	}
	return r
}

func TestMCP_Origin(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", 200},                        // non-browser client
		{"https://qrng.test", 200},       // same origin as the resource
		{"https://qrng.test:443", 200},   // default port normalized
		{"https://app.example.com", 200}, // configured
		{"https://APP.example.com", 200}, // host is case-insensitive
		{"https://evil.example", 403},    // foreign
		{"http://app.example.com", 403},  // scheme matters
		{"https://app.example.com:8443", 403},
		{"null", 403},
		{"not a url", 403},
	} {
		resp := f.do(t, "POST", "/mcp", "alice", initBody, hdrs("Origin", tc.origin))
		body := readBody(t, resp)
		if resp.StatusCode != tc.want {
			t.Errorf("Origin %q: %d %s, want %d", tc.origin, resp.StatusCode, body, tc.want)
		}
		if tc.want == 403 {
			if r := decodeRPC(t, body); r.Error == nil || r.ID != nil {
				t.Errorf("Origin %q: body %s, want JSON-RPC error without id", tc.origin, body)
			}
		}
	}
	// The Origin check comes before auth: no token needed to be refused.
	if resp := f.do(t, "POST", "/mcp", "", initBody, hdrs("Origin", "https://evil.example")); resp.StatusCode != 403 {
		t.Errorf("foreign origin without token: %d", resp.StatusCode)
	}
	// Same rule on the REST bridge.
	if resp := f.do(t, "GET", "/mcp/tools", "alice", "", hdrs("Origin", "https://evil.example")); resp.StatusCode != 403 {
		t.Errorf("REST foreign origin: %d", resp.StatusCode)
	}
}

func TestMCP_Sessions(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	sid := f.rawSession(t, "alice")
	if len(sid) != 26 || strings.ContainsFunc(sid, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		t.Errorf("session id %q: want 26 visible ASCII characters (crypto/rand.Text)", sid)
	}
	if other := f.rawSession(t, "alice"); other == sid {
		t.Errorf("two sessions share id %q", sid)
	}
	v := "2025-11-25"
	t.Run("valid", func(t *testing.T) {
		resp := f.do(t, "POST", "/mcp", "alice", callBody, hdrs("Mcp-Session-Id", sid, "MCP-Protocol-Version", v))
		body := readBody(t, resp)
		if resp.StatusCode != 200 || decodeRPC(t, body).Result == nil || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
		}
	})
	t.Run("missing session id", func(t *testing.T) {
		resp := f.do(t, "POST", "/mcp", "alice", callBody, hdrs("MCP-Protocol-Version", v))
		body := readBody(t, resp)
		if r := decodeRPC(t, body); resp.StatusCode != 400 || r.Error == nil || !strings.Contains(r.Error.Message, "Mcp-Session-Id") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		// GET and DELETE need it too (the SDK's own check).
		for _, m := range []string{"GET", "DELETE"} {
			if resp := f.do(t, m, "/mcp", "alice", "", nil); resp.StatusCode != 400 {
				t.Errorf("%s without session: %d", m, resp.StatusCode)
			}
		}
	})
	t.Run("unknown session", func(t *testing.T) {
		resp := f.do(t, "POST", "/mcp", "alice", callBody, hdrs("Mcp-Session-Id", "NOSUCHSESSION", "MCP-Protocol-Version", v))
		if b := readBody(t, resp); resp.StatusCode != 404 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})
	t.Run("another subject", func(t *testing.T) {
		resp := f.do(t, "POST", "/mcp", "bob", callBody, hdrs("Mcp-Session-Id", sid, "MCP-Protocol-Version", v))
		if b := readBody(t, resp); resp.StatusCode != 403 {
			t.Fatalf("bob on alice's session: %d %s", resp.StatusCode, b)
		}
		if n := len(f.audit.records()); n != 1 {
			t.Errorf("bob's refused call ran a tool: %d audit records", n)
		}
	})
	t.Run("terminated session", func(t *testing.T) {
		sid2 := f.rawSession(t, "alice")
		if resp := f.do(t, "DELETE", "/mcp", "bob", "", hdrs("Mcp-Session-Id", sid2)); resp.StatusCode != 403 {
			t.Fatalf("bob deleting alice's session: %d", resp.StatusCode)
		}
		if resp := f.do(t, "DELETE", "/mcp", "alice", "", hdrs("Mcp-Session-Id", sid2, "MCP-Protocol-Version", v)); resp.StatusCode != 204 {
			t.Fatalf("DELETE: %d", resp.StatusCode)
		}
		resp := f.do(t, "POST", "/mcp", "alice", callBody, hdrs("Mcp-Session-Id", sid2, "MCP-Protocol-Version", v))
		if b := readBody(t, resp); resp.StatusCode != 404 {
			t.Fatalf("after DELETE: %d %s", resp.StatusCode, b)
		}
	})
}

func TestMCP_ProtocolVersionHeader(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	sid := f.rawSession(t, "alice")
	for _, tc := range []struct {
		version string
		want    int
	}{
		{"2025-11-25", 200},
		{"2025-06-18", 200},
		{"", 200}, // absent: assumed 2025-03-26 by the spec
		{"2024-01-01", 400},
		{"2099-12-31", 400}, // the SDK alone lets anything >= 2026-07-28 through
		{"garbage", 400},
	} {
		resp := f.do(t, "POST", "/mcp", "alice", callBody, hdrs("Mcp-Session-Id", sid, "MCP-Protocol-Version", tc.version))
		body := readBody(t, resp)
		if resp.StatusCode != tc.want {
			t.Errorf("version %q: %d %s, want %d", tc.version, resp.StatusCode, body, tc.want)
		}
		if tc.want == 400 && !strings.Contains(body, "unsupported MCP-Protocol-Version") {
			t.Errorf("version %q: body %s", tc.version, body)
		}
	}
}

func TestMCP_UnknownMethod(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	sid := f.rawSession(t, "alice")
	h := hdrs("Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
	resp := f.do(t, "POST", "/mcp", "alice", `{"jsonrpc":"2.0","id":"x-9","method":"tools/frobnicate","params":{}}`, h)
	body := readBody(t, resp)
	r := decodeRPC(t, body)
	if resp.StatusCode != 200 || r.Error == nil || r.Error.Code != -32601 || string(r.ID) != `"x-9"` || r.JSONRPC != "2.0" {
		t.Fatalf("unknown method: %d %s", resp.StatusCode, body)
	}
	// An unknown notification has no id to answer: 400 with an id-less error.
	resp = f.do(t, "POST", "/mcp", "alice", `{"jsonrpc":"2.0","method":"notifications/frobnicated"}`, h)
	body = readBody(t, resp)
	if r := decodeRPC(t, body); resp.StatusCode != 400 || r.Error == nil || r.Error.Code != -32601 || r.ID != nil {
		t.Fatalf("unknown notification: %d %s", resp.StatusCode, body)
	}
	// Session checks still come first.
	resp = f.do(t, "POST", "/mcp", "alice", `{"jsonrpc":"2.0","id":1,"method":"tools/frobnicate"}`, hdrs("Mcp-Session-Id", "GONE", "MCP-Protocol-Version", "2025-11-25"))
	if b := readBody(t, resp); resp.StatusCode != 404 {
		t.Fatalf("unknown method on unknown session: %d %s", resp.StatusCode, b)
	}
	// The session still works afterwards.
	resp = f.do(t, "POST", "/mcp", "alice", callBody, h)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("after unknown method: %d %s", resp.StatusCode, b)
	}
}

func TestMCP_MalformedRequests(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true; o.MaxBodyBytes = 4096 })
	sid := f.rawSession(t, "alice")
	h := hdrs("Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shuffle","arguments":{"items":[` + strings.Repeat(`"xxxxxxxx",`, 500) + `"x"]}}}`
	for _, tc := range []struct {
		name, body string
		hdr        map[string]string
		want       int
		code       int
	}{
		{"oversized body", big, h, 413, -32600},
		{"parse error", `{"jsonrpc":`, h, 400, -32700},
		{"wrong content type", callBody, hdrs("Mcp-Session-Id", sid, "Content-Type", "text/plain"), 415, -32600},
		{"batch", `[` + callBody + `]`, h, 400, 0},
		{"Accept json only", callBody, hdrs("Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25", "Accept", "application/json"), 400, 0},
	} {
		resp := f.do(t, "POST", "/mcp", "alice", tc.body, tc.hdr)
		body := readBody(t, resp)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.want)
			continue
		}
		if tc.code != 0 {
			if r := decodeRPC(t, body); r.Error == nil || r.Error.Code != tc.code {
				t.Errorf("%s: body %s, want JSON-RPC code %d", tc.name, body, tc.code)
			}
		}
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct{ name, id, data string }

func readSSE(t *testing.T, resp *http.Response) []sseEvent {
	t.Helper()
	defer resp.Body.Close()
	var evs []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seen := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if seen {
				evs = append(evs, cur)
			}
			cur, seen = sseEvent{}, false
		case strings.HasPrefix(line, ":"):
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			seen = true
			switch k {
			case "event":
				cur.name = v
			case "id":
				cur.id = v
			case "data":
				cur.data += v
			}
		}
	}
	return evs
}

func TestMCP_SSE_PrimingAndResume(t *testing.T) {
	f := newFixture(t, nil) // SSE mode, stateful: event store on
	sid := f.rawSession(t, "alice")
	h := hdrs("Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25")
	resp := f.do(t, "POST", "/mcp", "alice", callBody, h)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST: %d %q %v", resp.StatusCode, ct, resp.Header)
	}
	evs := readSSE(t, resp)
	if len(evs) != 2 {
		t.Fatalf("events = %+v, want priming + response", evs)
	}
	prime, msg := evs[0], evs[1]
	if prime.data != "" || prime.id == "" {
		t.Fatalf("priming event %+v: want an id and empty data", prime)
	}
	stream, idx, ok := strings.Cut(prime.id, "_")
	if !ok || idx != "0" || msg.id != stream+"_1" {
		t.Fatalf("event ids %q, %q: want <stream>_0 then <stream>_1", prime.id, msg.id)
	}
	if r := decodeRPC(t, msg.data); string(r.ID) != "7" || r.Result == nil {
		t.Fatalf("response event %s", msg.data)
	}
	// Resume after the priming event: the response is replayed, same id.
	resp = f.do(t, "GET", "/mcp", "alice", "", map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25",
		"Last-Event-ID": prime.id, "Accept": "text/event-stream", "Content-Type": ""})
	if resp.StatusCode != 200 {
		t.Fatalf("resume: %d %s", resp.StatusCode, readBody(t, resp))
	}
	replay := readSSE(t, resp)
	if len(replay) != 1 || replay[0].id != msg.id || replay[0].data != msg.data {
		t.Fatalf("replay = %+v, want the response event %q again", replay, msg.id)
	}
	// Another subject cannot resume alice's stream.
	resp = f.do(t, "GET", "/mcp", "bob", "", map[string]string{"Mcp-Session-Id": sid, "Last-Event-ID": prime.id, "Accept": "text/event-stream", "Content-Type": ""})
	if b := readBody(t, resp); resp.StatusCode != 403 {
		t.Fatalf("bob resuming: %d %s", resp.StatusCode, b)
	}
	// A malformed Last-Event-ID is refused.
	resp = f.do(t, "GET", "/mcp", "alice", "", map[string]string{"Mcp-Session-Id": sid, "Last-Event-ID": "junk", "Accept": "text/event-stream", "Content-Type": ""})
	if b := readBody(t, resp); resp.StatusCode != 400 {
		t.Fatalf("junk Last-Event-ID: %d %s", resp.StatusCode, b)
	}
}

func TestMCP_Stateless(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Stateless = true; o.JSONResponse = true })
	// initialize gets no session id; any later request needs none.
	resp := f.do(t, "POST", "/mcp", "alice", initBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") != "" {
		t.Fatalf("initialize: %d sid=%q %s", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), b)
	}
	// Two "instances" behind a load balancer: a call on the second one,
	// without any shared state, works.
	g := newFixture(t, func(o *Options) { o.Stateless = true; o.JSONResponse = true })
	resp = g.do(t, "POST", "/mcp", "alice", callBody, hdrs("MCP-Protocol-Version", "2025-11-25"))
	body := readBody(t, resp)
	if resp.StatusCode != 200 || decodeRPC(t, body).Result == nil {
		t.Fatalf("call on another instance: %d %s", resp.StatusCode, body)
	}
	if resp := g.do(t, "GET", "/mcp", "alice", "", hdrs("Accept", "text/event-stream")); resp.StatusCode != 405 {
		t.Errorf("GET in stateless mode: %d, want 405", resp.StatusCode)
	}
	// Still authenticated, still rate limited per subject.
	if resp := g.do(t, "POST", "/mcp", "", callBody, nil); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if recs := g.audit.records(); len(recs) != 1 || recs[0].Subject != "alice" || recs[0].SessionID != "" {
		t.Errorf("audit %+v", recs)
	}
}

func TestMCP_StandaloneStream(t *testing.T) {
	f := newFixture(t, nil)
	sid := f.rawSession(t, "alice")
	resp := f.do(t, "GET", "/mcp", "alice", "", map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25",
		"Accept": "text/event-stream", "Content-Type": ""})
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET stream: %d %v", resp.StatusCode, resp.Header)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != ": ok\n" {
		t.Fatalf("first line %q, %v: headers must be flushed through the wrappers", line, err)
	}
	// Ending the session ends the stream.
	if d := f.do(t, "DELETE", "/mcp", "alice", "", hdrs("Mcp-Session-Id", sid)); d.StatusCode != 204 {
		t.Fatalf("DELETE: %d", d.StatusCode)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

func TestMCP_LoopbackHostCheck(t *testing.T) {
	// A DNS-rebinding page reaches a loopback listener with a foreign Host.
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	if resp := f.do(t, "POST", "/mcp", "alice", initBody, hdrs("Host", "rebind.evil.example")); resp.StatusCode != 403 {
		t.Errorf("foreign Host on loopback: %d, want 403", resp.StatusCode)
	}
	// Behind a local reverse proxy that forwards the public Host, the check is
	// turned off; Origin and the bearer token still apply.
	g := newFixture(t, func(o *Options) { o.JSONResponse = true; o.DisableLoopbackHostCheck = true })
	if resp := g.do(t, "POST", "/mcp", "alice", initBody, hdrs("Host", "qrng.test")); resp.StatusCode != 200 {
		t.Errorf("proxied Host with check disabled: %d", resp.StatusCode)
	}
}

func TestMCP_SessionCreationLimitedPerSubject(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.JSONResponse = true
		o.SessionRateLimit = &ratelimit.Options{Rate: 0.01, Burst: 2}
	})
	f.rawSession(t, "alice")
	f.rawSession(t, "alice")
	resp := f.do(t, "POST", "/mcp", "alice", initBody, nil)
	body := readBody(t, resp)
	if r := decodeRPC(t, body); resp.StatusCode != 429 || r.Error == nil || resp.Header.Get("Retry-After") != "100" || resp.Header.Get("Mcp-Session-Id") != "" {
		t.Fatalf("3rd session: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	f.rawSession(t, "bob") // per subject
}

func TestMCP_CORS(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	for _, path := range []string{"/mcp", "/mcp/execute", "/mcp/tools"} {
		pre := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization, content-type, mcp-session-id", "Content-Type": ""}
		resp := f.do(t, "OPTIONS", path, "", "", pre)
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Mcp-Session-Id") {
			t.Errorf("%s preflight: %d %v", path, resp.StatusCode, resp.Header)
		}
		pre["Origin"] = "https://evil.example"
		if resp := f.do(t, "OPTIONS", path, "", "", pre); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s foreign preflight: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	resp := f.do(t, "POST", "/mcp", "alice", initBody, hdrs("Origin", "https://app.example.com"))
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Errorf("CORS on POST: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := f.do(t, "POST", "/mcp", "alice", initBody, nil); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS header without Origin: %v", resp.Header)
	}
}

// TestMCP_SessionRequired_CaseVariantKey: the session-id check reads "method"
// as the SDK does (case-sensitively). A second key "Method" that
// encoding/json would fold onto the same field must not make a tools/list
// without a session look like initialize and reach the SDK.
func TestMCP_SessionRequired_CaseVariantKey(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.JSONResponse = true })
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"initialize"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"initialize"}`,
		`{"jsonrpc":"2.0","id":1,"Method":"initialize","method":"tools/list"}`,
	} {
		resp := f.do(t, "POST", "/mcp", "alice", body, hdrs("MCP-Protocol-Version", "2025-11-25"))
		b := readBody(t, resp)
		if r := decodeRPC(t, b); resp.StatusCode != 400 || r.Error == nil || !strings.Contains(r.Error.Message, "Mcp-Session-Id") {
			t.Errorf("%s: %d %s, want 400 missing Mcp-Session-Id", body, resp.StatusCode, b)
		}
	}
	// A non-string method is a parse error, not a pass to the SDK.
	resp := f.do(t, "POST", "/mcp", "alice", `{"jsonrpc":"2.0","id":1,"method":7}`, nil)
	if b := readBody(t, resp); resp.StatusCode != 400 || decodeRPC(t, b).Error == nil {
		t.Errorf("numeric method: %d %s", resp.StatusCode, b)
	}
}
