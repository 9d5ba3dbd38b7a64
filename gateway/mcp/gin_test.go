package mcp

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// The mount instructions of the package doc work: SSE, sessions and the
// REST bridge through Gin.
func TestGinMount(t *testing.T) {
	gin.SetMode(gin.TestMode)
	f := newFixture(t, nil) // SSE mode
	r := gin.New()
	h := gin.WrapH(f.srv.Handler())
	r.Any("/mcp", h)
	r.GET("/mcp/tools", h)
	r.POST("/mcp/execute", h)
	r.GET("/.well-known/oauth-protected-resource/mcp", h)
	r.GET("/.well-known/oauth-protected-resource", h)
	ts := httptest.NewServer(r)
	defer ts.Close()
	f.ts = ts

	cs := f.connect(t, "alice", &sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "random_uuid", Arguments: map[string]any{"count": 2}})
	if err != nil || res.IsError {
		t.Fatalf("%v %v", err, res)
	}
	for _, p := range []string{"/mcp/tools", "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		if resp := f.do(t, "GET", p, "alice", "", nil); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
	if resp := f.do(t, "POST", "/mcp/execute", "alice", `{"tool":"random_uuid"}`, nil); resp.StatusCode != 200 {
		t.Errorf("execute: %d", resp.StatusCode)
	}
	if err := cs.Close(); err != nil { // DELETE through Gin
		t.Errorf("close: %v", err)
	}
}
