package mcp_test

import (
	"log"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/mcp"
)

// Example shows how the gateway mounts the MCP server in Gin. The engine,
// the JWT verifier and the audit store come from their own packages.
func Example() {
	var engine mcp.Entropy        // *entropy.Engine
	var verify auth.TokenVerifier // the JWT verifier of gateway/auth
	var audit mcp.Auditor         // the store-backed audit log
	srv, err := mcp.New(&mcp.Options{
		Entropy: engine, Verifier: verify, Audit: audit,
		ResourceURL:    "https://qrng.example.com/mcp",
		IssuerURL:      "https://qrng.example.com",
		AllowedOrigins: []string{"https://console.example.com"},
	})
	if err != nil {
		log.Print(err) // here: Entropy is nil
		return
	}
	r := gin.New()
	h := gin.WrapH(srv.Handler())
	r.Any("/mcp", h) // POST, GET (SSE), DELETE
	r.GET("/mcp/tools", h)
	r.POST("/mcp/execute", h)
	r.GET("/.well-known/oauth-protected-resource/mcp", h)
	r.GET("/.well-known/oauth-protected-resource", h)
	_ = http.ListenAndServe("127.0.0.1:8000", r)
}

// The engine satisfies the seam.
var _ mcp.Entropy = (*entropy.Engine)(nil)
