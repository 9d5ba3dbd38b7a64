package mcp

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qrngd/qrngd/gateway/ratelimit"
)

// Server is qrngd's MCP endpoint: the go-sdk Streamable HTTP transport with
// the specification gaps of go-sdk v1.8.0 closed, OAuth resource-server
// behaviour, the entropy tools, and the seed's REST bridge.
type Server struct {
	cfg      *config
	tools    map[string]*tool
	order    []*tool
	limiter  *ratelimit.Limiter // tool calls per subject
	sessLim  *ratelimit.Limiter // initialize per subject
	sdk      *sdk.Server
	inner    http.Handler // SDK handler behind RequireBearerToken(verifiedTokenInfo)
	events   *sdk.MemoryEventStore
	versions []string
	mux      *http.ServeMux
}

// New validates opts and builds the server.
func New(opts *Options) (*Server, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	lim, err := ratelimit.New(&cfg.rateLimitOpts)
	if err != nil {
		return nil, fmt.Errorf("%w: RateLimit: %w", ErrInvalidOptions, err)
	}
	sessLim, err := ratelimit.New(&cfg.sessionLimit)
	if err != nil {
		return nil, fmt.Errorf("%w: SessionRateLimit: %w", ErrInvalidOptions, err)
	}
	s := &Server{cfg: cfg, tools: map[string]*tool{}, limiter: lim, sessLim: sessLim}
	for _, t := range newTools() {
		t.scope = cfg.toolScope(t.name)
		s.tools[t.name] = t
		s.order = append(s.order, t)
	}
	slices.SortFunc(s.order, func(a, b *tool) int { return strings.Compare(a.name, b.name) }) // tools/list order
	for name := range cfg.toolScopes {
		if s.tools[name] == nil {
			return nil, fmt.Errorf("%w: ToolScopes names unknown tool %q", ErrInvalidOptions, name)
		}
	}

	s.sdk = sdk.NewServer(&sdk.Implementation{Name: "qrngd", Title: "qrngd quantum entropy", Version: cfg.Version}, &sdk.ServerOptions{
		Logger:       cfg.Logger,
		Instructions: "Random data from qrngd's health-tested quantum entropy pool. Every result carries provenance (mode, sources, degraded).",
		GetSessionID: rand.Text, // 26 base32 characters, 130 random bits
		HasTools:     true,
	})
	for _, t := range s.order {
		s.sdk.AddTool(&sdk.Tool{
			Name: t.name, Title: t.title, Description: t.description,
			InputSchema: t.inSchema, OutputSchema: t.outSchema,
			Annotations: &sdk.ToolAnnotations{Title: t.title, ReadOnlyHint: t.name == "entropy_status", OpenWorldHint: new(bool)},
			Meta:        sdk.Meta{"io.qrngd/scope": t.scope},
		}, s.mcpToolHandler(t))
	}
	s.versions = sdk.SupportedProtocolVersions()
	hopts := &sdk.StreamableHTTPOptions{
		Stateless:                  cfg.Stateless,
		JSONResponse:               cfg.JSONResponse,
		Logger:                     cfg.Logger,
		SessionTimeout:             cfg.SessionIdleTimeout,
		DisableLocalhostProtection: cfg.DisableLoopbackHostCheck,
		MaxRequestBodyBytes:        cfg.MaxBodyBytes,
	}
	if !cfg.Stateless {
		s.events = sdk.NewMemoryEventStore(nil)
		s.events.SetMaxBytes(cfg.EventStoreMaxBytes)
		hopts.EventStore = s.events
	}
	streamable := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.sdk }, hopts)
	s.inner = auth.RequireBearerToken(verifiedTokenInfo, &auth.RequireBearerTokenOptions{
		// authenticate already enforced expiry with our clock and skew; the
		// SDK's own check (time.Now, no skew) must not second-guess it.
		AllowMissingExpiration: true,
		ClockSkew:              100 * 365 * 24 * time.Hour,
	})(streamable)

	s.mux = http.NewServeMux()
	s.mux.Handle(cfg.resource.Path, http.HandlerFunc(s.serveMCP))
	s.mux.Handle("/mcp/tools", http.HandlerFunc(s.serveTools))
	s.mux.Handle("/mcp/execute", http.HandlerFunc(s.serveExecute))
	s.mux.Handle(cfg.metadataPath, s.MetadataHandler())
	s.mux.Handle("/.well-known/oauth-protected-resource", s.RootMetadataHandler())
	return s, nil
}

// Handler serves, when mounted at the root: the MCP endpoint at
// ResourceURL's path (/mcp), GET /mcp/tools, POST /mcp/execute, and the
// RFC 9728 metadata at /.well-known/oauth-protected-resource/mcp and
// /.well-known/oauth-protected-resource.
func (s *Server) Handler() http.Handler { return s.mux }

// MCPHandler serves the Streamable HTTP endpoint (POST, GET, DELETE) alone.
func (s *Server) MCPHandler() http.Handler { return http.HandlerFunc(s.serveMCP) }

// ToolsHandler serves GET /mcp/tools alone.
func (s *Server) ToolsHandler() http.Handler { return http.HandlerFunc(s.serveTools) }

// ExecuteHandler serves POST /mcp/execute alone.
func (s *Server) ExecuteHandler() http.Handler { return http.HandlerFunc(s.serveExecute) }

// MetadataHandler serves the path-form RFC 9728 metadata
// (/.well-known/oauth-protected-resource/mcp); its resource is ResourceURL.
func (s *Server) MetadataHandler() http.Handler {
	return s.protectedResourceMetadata(s.cfg.ResourceURL)
}

// RootMetadataHandler serves the root-form metadata
// (/.well-known/oauth-protected-resource). Per RFC 9728 §3.1/§3.3 its
// resource is the identifier the root URL is built from: ResourceURL's
// origin. Clients try the path form first (MCP authorization spec).
func (s *Server) RootMetadataHandler() http.Handler {
	return s.protectedResourceMetadata(s.cfg.selfOrigin)
}

// ResourceMetadataURL is the path-form metadata URL advertised in
// WWW-Authenticate.
func (s *Server) ResourceMetadataURL() string { return s.cfg.metadataURL }

// Sweep drops idle rate-limit buckets; call it from a ticker.
func (s *Server) Sweep() {
	s.limiter.Sweep()
	s.sessLim.Sweep()
}

// Known server-side methods of go-sdk v1.8.0 (its serverMethodInfos). A
// request for any other method gets JSON-RPC -32601 (see serveMCP).
var knownMethods = map[string]bool{
	"initialize": true, "ping": true, "tools/list": true, "tools/call": true,
	"prompts/list": true, "prompts/get": true, "resources/list": true, "resources/templates/list": true,
	"resources/read": true, "resources/subscribe": true, "resources/unsubscribe": true,
	"completion/complete": true, "logging/setLevel": true, "server/discover": true, "subscriptions/listen": true,
	"notifications/initialized": true, "notifications/cancelled": true, "notifications/progress": true,
	"notifications/roots/list_changed": true,
}

// JSON-RPC error codes.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeUnauthorized   = -32001 // server-defined: HTTP-level auth and Origin failures
)

// writeRPCError answers with a JSON-RPC error. id nil means the request id
// is unknown or the message was not a request: the member is then omitted,
// as the transport spec asks for HTTP-level rejections.
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, code int, msg string) {
	type rpcErr struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id,omitempty"`
		Error   rpcErr          `json:"error"`
	}{"2.0", id, rpcErr{code, msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

// serveMCP is the Streamable HTTP endpoint. In order: Origin (403), bearer
// token (400/401/403/500 with WWW-Authenticate), MCP-Protocol-Version (400);
// for POST: media type (415), body size (413), JSON (400 -32700), a session
// id on everything but initialize (400) — then the SDK, which answers 404
// for unknown or terminated sessions and 403 for another subject's session.
// A request for an unknown method gets a JSON-RPC -32601 response instead of
// the SDK's bare 400.
func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.cors(w, r, "GET, POST, DELETE", func() {
		writeRPCError(w, http.StatusForbidden, nil, codeUnauthorized, "origin not allowed")
	}) {
		return
	}
	ti, aerr := s.authenticate(r, []string{s.cfg.ResourceURL}, ScopeTools)
	if aerr != nil {
		s.writeAuthError(w, aerr, func(status int, code, msg string) {
			writeRPCError(w, status, nil, codeUnauthorized, code+": "+msg)
		})
		return
	}
	if v := r.Header.Get("MCP-Protocol-Version"); v != "" && !slices.Contains(s.versions, v) {
		writeRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest,
			fmt.Sprintf("unsupported MCP-Protocol-Version %q; supported: %s", v, strings.Join(s.versions, ", ")))
		return
	}
	r = r.WithContext(withTokenInfo(r.Context(), ti))
	nw := &noStoreWriter{ResponseWriter: w}

	if r.Method != http.MethodPost {
		s.inner.ServeHTTP(nw, r)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeRPCError(w, http.StatusUnsupportedMediaType, nil, codeInvalidRequest, "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeRPCError(w, http.StatusRequestEntityTooLarge, nil, codeInvalidRequest, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
			return
		}
		writeRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest, "reading request body: "+err.Error())
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))

	var unknownID json.RawMessage
	unknown := false
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '[' { // batches: the SDK refuses them (400) for >= 2025-06-18
		msg, err := peekMessage(body)
		if err != nil {
			writeRPCError(w, http.StatusBadRequest, nil, codeParseError, "parse error: "+err.Error())
			return
		}
		if !s.cfg.Stateless && msg.Method != "initialize" && r.Header.Get("Mcp-Session-Id") == "" {
			writeRPCError(w, http.StatusBadRequest, nil, codeInvalidRequest, "missing Mcp-Session-Id header: send initialize first")
			return
		}
		if msg.Method == "initialize" && !s.cfg.Stateless {
			if d := s.sessLim.Allow(ti.UserID); !d.Allowed {
				d.SetHeaders(w.Header())
				writeRPCError(w, http.StatusTooManyRequests, nil, codeInvalidRequest,
					fmt.Sprintf("too many new sessions for %s; retry after %s or reuse a session", ti.UserID, d.RetryAfter.Round(time.Second)))
				return
			}
		}
		if msg.Method != "" && !knownMethods[msg.Method] {
			unknown, unknownID = true, msg.ID
		}
	}
	if !unknown {
		s.inner.ServeHTTP(nw, r)
		return
	}
	// Let the SDK judge the session first (404/403 win), then turn its
	// "JSON RPC not handled" 400 into a proper JSON-RPC error.
	cw := &captureWriter{ResponseWriter: nw}
	s.inner.ServeHTTP(cw, r)
	if !cw.captured {
		return
	}
	if cw.status == http.StatusBadRequest && bytes.Contains(cw.body.Bytes(), []byte("not handled")) {
		if len(unknownID) > 0 && string(unknownID) != "null" {
			writeRPCError(nw, http.StatusOK, unknownID, codeMethodNotFound, "method not found")
		} else { // a notification: nobody to answer, but the POST is rejected
			writeRPCError(nw, http.StatusBadRequest, nil, codeMethodNotFound, "method not found")
		}
		return
	}
	dst := nw.Header()
	for k, v := range cw.header {
		dst[k] = v
	}
	nw.WriteHeader(cw.status)
	nw.Write(cw.body.Bytes())
}

// rpcHead is the part of a JSON-RPC message serveMCP judges before the SDK.
type rpcHead struct {
	ID     json.RawMessage
	Method string
}

// peekMessage reads "id" and "method" with exact, case-sensitive key
// matching, as the SDK's decoder does. encoding/json's struct decoding
// matches keys case-insensitively, so {"method":"tools/list",
// "Method":"initialize"} would read as initialize here while the SDK runs
// tools/list — slipping past the session-id and session-rate checks.
func peekMessage(body []byte) (rpcHead, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return rpcHead{}, err
	}
	h := rpcHead{ID: fields["id"]}
	if m, ok := fields["method"]; ok {
		if err := json.Unmarshal(m, &h.Method); err != nil {
			return rpcHead{}, fmt.Errorf("method: %w", err)
		}
	}
	return h, nil
}

// writeAuthError sets WWW-Authenticate (for 400/401/403) and writes the body.
func (s *Server) writeAuthError(w http.ResponseWriter, e *authError, body func(status int, code, msg string)) {
	if e.status != http.StatusInternalServerError {
		w.Header().Set("WWW-Authenticate", s.cfg.wwwAuthenticate(e))
	}
	code := e.code
	if code == "" {
		code = "unauthorized"
	}
	body(e.status, code, e.desc)
}

// noStoreWriter replaces the SDK's "Cache-Control: no-cache" with no-store:
// tool results are secrets and must not be stored by any cache.
type noStoreWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *noStoreWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.ResponseWriter.Header().Set("Cache-Control", "no-store")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *noStoreWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *noStoreWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *noStoreWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter buffers a 4xx answer so serveMCP can rewrite it; any other
// status passes straight through (streams keep streaming).
type captureWriter struct {
	http.ResponseWriter
	decided  bool
	captured bool
	status   int
	header   http.Header
	body     bytes.Buffer
}

func (w *captureWriter) Header() http.Header {
	if w.captured {
		return w.header
	}
	return w.ResponseWriter.Header()
}

func (w *captureWriter) WriteHeader(code int) {
	if w.decided {
		return
	}
	w.decided = true
	if code >= 400 && code < 500 {
		w.captured, w.status = true, code
		w.header = w.ResponseWriter.Header().Clone()
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(p []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.captured {
		if w.body.Len()+len(p) > 64<<10 {
			return 0, errors.New("gateway/mcp: captured response too large")
		}
		return w.body.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *captureWriter) Flush() {
	if !w.captured {
		http.NewResponseController(w.ResponseWriter).Flush()
	}
}

func (w *captureWriter) Unwrap() http.ResponseWriter {
	if w.captured {
		return nil
	}
	return w.ResponseWriter
}

// correlationID returns the request's X-Correlation-ID when it is sane
// (1..128 visible ASCII), else a fresh random one.
func correlationID(h http.Header) string {
	if v := h.Get("X-Correlation-ID"); v != "" && len(v) <= 128 && !strings.ContainsFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return v
	}
	return rand.Text()
}
