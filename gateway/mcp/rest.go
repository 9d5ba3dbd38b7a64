package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpToolHandler adapts a registry tool to tools/call. Domain failures
// (validation, scope, rate limit, pool) are isError results the model can
// read; only protocol faults are JSON-RPC errors (the SDK's own, e.g. an
// unknown tool name → -32602).
func (s *Server) mcpToolHandler(t *tool) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var ti *auth.TokenInfo
		var hdr http.Header
		if req.Extra != nil {
			ti, hdr = req.Extra.TokenInfo, req.Extra.Header
		}
		if ti == nil { // cannot happen behind serveMCP; refuse rather than run unauthenticated
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "unauthenticated call refused"}}}, nil
		}
		p := principal{subject: ti.UserID, clientID: extraString(ti, ClientIDKey), scopes: ti.Scopes,
			correlationID: correlationID(hdr), transport: "mcp"}
		if req.Session != nil {
			p.sessionID = req.Session.ID()
		}
		res := s.execute(ctx, p, t.name, req.Params.Arguments)
		if res.kind != outcomeOK {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: res.kind + ": " + res.msg}}}, nil
		}
		return &sdk.CallToolResult{
			Content:           []sdk.Content{&sdk.TextContent{Text: string(res.JSON)}},
			StructuredContent: json.RawMessage(res.JSON),
		}, nil
	}
}

// REST bridge bodies.
type restError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type restResponse struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *restError      `json:"error,omitempty"`
}

func writeREST(w http.ResponseWriter, status int, resp restResponse) {
	body, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

func writeRESTError(w http.ResponseWriter, status int, code, msg string) {
	writeREST(w, status, restResponse{Error: &restError{Code: code, Message: msg}})
}

// restAuth applies bearer auth with the bridge audiences.
func (s *Server) restAuth(w http.ResponseWriter, r *http.Request) (*auth.TokenInfo, bool) {
	ti, aerr := s.authenticate(r, s.cfg.bridgeAud, ScopeTools)
	if aerr != nil {
		s.writeAuthError(w, aerr, func(status int, code, msg string) { writeRESTError(w, status, code, msg) })
		return nil, false
	}
	return ti, true
}

// ToolInfo is one entry of GET /mcp/tools.
type ToolInfo struct {
	Name         string `json:"name"`
	Title        string `json:"title,omitempty"`
	Description  string `json:"description"`
	Scope        string `json:"scope"`
	InputSchema  any    `json:"inputSchema"`
	OutputSchema any    `json:"outputSchema"`
}

// Tools lists the registry, in the order tools/list gives.
func (s *Server) Tools() []ToolInfo {
	out := make([]ToolInfo, 0, len(s.order))
	for _, t := range s.order {
		out = append(out, ToolInfo{Name: t.name, Title: t.title, Description: t.description, Scope: t.scope,
			InputSchema: t.inSchema, OutputSchema: t.outSchema})
	}
	return out
}

// restCORS applies the REST Origin rule (the same as /mcp's) and answers
// preflights.
func (s *Server) restCORS(w http.ResponseWriter, r *http.Request, methods string) bool {
	return s.cfg.cors(w, r, methods, func() {
		writeRESTError(w, http.StatusForbidden, "origin_not_allowed", "origin not allowed")
	})
}

func (s *Server) serveTools(w http.ResponseWriter, r *http.Request) {
	if !s.restCORS(w, r, "GET, HEAD") {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeRESTError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	if _, ok := s.restAuth(w, r); !ok {
		return
	}
	body, err := json.Marshal(struct {
		Tools []ToolInfo `json:"tools"`
	}{s.Tools()})
	if err != nil {
		writeRESTError(w, http.StatusInternalServerError, outcomeError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

// serveExecute is POST /mcp/execute {"tool","arguments"}.
func (s *Server) serveExecute(w http.ResponseWriter, r *http.Request) {
	if !s.restCORS(w, r, "POST") {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeRESTError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	ti, ok := s.restAuth(w, r)
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeRESTError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeRESTError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
			return
		}
		writeRESTError(w, http.StatusBadRequest, "invalid_request", "reading request body: "+err.Error())
		return
	}
	var req struct {
		Tool      string          `json:"tool"`
		Arguments json.RawMessage `json:"arguments"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeRESTError(w, http.StatusBadRequest, "invalid_request", "body must be {\"tool\": string, \"arguments\": object}: "+err.Error())
		return
	}
	if dec.More() {
		writeRESTError(w, http.StatusBadRequest, "invalid_request", "body must hold one JSON object")
		return
	}
	if req.Tool == "" {
		writeRESTError(w, http.StatusBadRequest, "invalid_request", "missing \"tool\"")
		return
	}
	if s.tools[req.Tool] == nil {
		writeRESTError(w, http.StatusNotFound, outcomeUnknownTool, fmt.Sprintf("unknown tool %q", req.Tool))
		return
	}
	p := principal{subject: ti.UserID, clientID: extraString(ti, ClientIDKey), scopes: ti.Scopes,
		correlationID: correlationID(r.Header), transport: "rest"}
	res := s.execute(r.Context(), p, req.Tool, req.Arguments)
	if res.limited {
		res.decision.SetHeaders(w.Header())
	}
	switch res.kind {
	case outcomeOK:
		writeREST(w, http.StatusOK, restResponse{Success: true, Result: res.JSON})
	case outcomeInvalidArgs:
		writeRESTError(w, http.StatusBadRequest, res.kind, res.msg)
	case outcomeForbidden:
		w.Header().Set("WWW-Authenticate", s.cfg.wwwAuthenticate(&authError{code: "insufficient_scope", scope: res.scope, desc: res.msg}))
		writeRESTError(w, http.StatusForbidden, res.kind, res.msg)
	case outcomeRateLimited:
		writeRESTError(w, http.StatusTooManyRequests, res.kind, res.msg)
	case outcomeUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(1))
		writeRESTError(w, http.StatusServiceUnavailable, res.kind, res.msg)
	case outcomeUnknownTool:
		writeRESTError(w, http.StatusNotFound, res.kind, res.msg)
	default:
		writeRESTError(w, http.StatusInternalServerError, res.kind, res.msg)
	}
}
