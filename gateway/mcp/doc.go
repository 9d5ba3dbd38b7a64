// Package mcp serves qrngd's MCP endpoint: the Streamable HTTP transport of
// github.com/modelcontextprotocol/go-sdk v1.8.0 (protocol revisions
// 2025-03-26, 2025-06-18 and 2025-11-25 with sessions; 2026-07-28 in
// stateless mode, as the SDK negotiates it), wrapped to close the SDK's gaps
// against the 2025-11-25 specification, as an OAuth 2.1 resource server, with
// the entropy tools and the seed's REST bridge (GET /mcp/tools,
// POST /mcp/execute) over one tool registry.
//
// # Mounting
//
// Handler serves everything when mounted at the root; in Gin:
//
//	h := gin.WrapH(srv.Handler())
//	r.Any("/mcp", h)           // POST, GET (SSE stream / resume), DELETE
//	r.GET("/mcp/tools", h)
//	r.POST("/mcp/execute", h)
//	r.GET("/.well-known/oauth-protected-resource/mcp", h)
//	r.GET("/.well-known/oauth-protected-resource", h)
//
// MCPHandler, ToolsHandler, ExecuteHandler, MetadataHandler and
// RootMetadataHandler serve one route each. Gin must not buffer or compress
// /mcp responses (SSE). Call Server.Sweep from a ticker to drop idle
// rate-limit buckets when traffic stops.
//
// # What the wrapper adds to go-sdk v1.8.0
//
//   - Origin: a request with an Origin header must come from ResourceURL's
//     origin or Options.AllowedOrigins, else 403 (before authentication).
//     Requests without Origin are allowed: browsers always send Origin on
//     cross-origin requests and on POST, so its absence means a non-browser
//     client, which a web page cannot drive, and which still needs a bearer
//     token that no browser attaches by itself. Allowed origins get CORS
//     (preflight answered, Mcp-Session-Id and WWW-Authenticate exposed).
//   - A non-initialize POST without Mcp-Session-Id gets 400 (the SDK would
//     silently start a session). Unknown or terminated (DELETE, idle
//     timeout) sessions get 404, another subject's session 403 (the SDK's
//     binding of the session to TokenInfo.UserID, which this package feeds).
//   - An unknown method gets a JSON-RPC -32601 response (HTTP 200, with the
//     request id) instead of the SDK's text/plain 400; for an unknown
//     notification, 400 with an id-less -32601 error.
//   - MCP-Protocol-Version must be one the SDK supports, else 400 (the SDK
//     alone lets any value >= "2026-07-28", e.g. "garbage", through).
//   - SSE (the default; Options.JSONResponse switches to application/json):
//     an in-memory EventStore bounded by EventStoreMaxBytes gives every event
//     an id <stream>_<n>, a priming event (2025-11-25) and replay with GET +
//     Last-Event-ID.
//   - Bodies over MaxBodyBytes (default 1 MiB) get 413; non-JSON media types
//     415; unparsable JSON 400 with -32700. Responses carry
//     Cache-Control: no-store (the SDK sends no-cache; results are secrets).
//
// Session ids are crypto/rand.Text (26 characters, 130 bits). New sessions
// are rate-limited per subject (SessionRateLimit; 429 beyond it) and idle
// ones closed after SessionIdleTimeout, which bounds the sessions held. Stateless mode
// keeps no session state at all, so any number of instances can serve one
// endpoint behind a load balancer; GET streams and resumption need sessions
// and are then unavailable (405).
//
// # Authorization
//
// Every request needs "Authorization: Bearer <JWT>" verified by
// Options.Verifier (signature, exp, iss, revocation). This package then
// requires an expiry (checked with Options.Now and ClockSkew), a subject, an
// aud naming ResourceURL (Extra[AudienceKey]; the REST bridge also accepts
// BridgeAudiences) and the scope mcp:tools. Failures:
//
//	no credentials       401  WWW-Authenticate: Bearer resource_metadata="…", scope="mcp:tools"
//	bad/expired/foreign  401  … , error="invalid_token", error_description="…"
//	missing scope        403  … , error="insufficient_scope", error_description="…"
//	?access_token=…      400  … , error="invalid_request"
//
// RFC 6750 §3.1 says a request without any credentials gets no error code,
// so only the second case carries error="invalid_token". A token in the
// query string is refused even when a header is present: MCP forbids it, and
// it is a malformed request (RFC 6750 invalid_request, 400), not a bad token.
//
// RFC 9728 metadata is served at /.well-known/oauth-protected-resource/mcp
// (resource = ResourceURL, which MCP clients try first) and at the root form
// (resource = ResourceURL's origin, the identifier that URL is built from,
// RFC 9728 §3.3); both name IssuerURL as the authorization server.
//
// # Tools
//
// Every tool has typed input and output with JSON Schemas (inputSchema with
// bounds and enums, outputSchema, structuredContent plus the same JSON as a
// text block), a scope (mcp:tools; Options.ToolScopes overrides), a per
// subject rate limit (gateway/ratelimit; re-initializing resets nothing) and
// an audit record (tool, subject, client, session, correlation id,
// SHA-256 of the arguments, result size, duration, outcome, provenance). If
// the audit log refuses the record the result is withheld.
// Arguments are validated against the schema (unknown and wrongly cased
// properties are refused) and decoded with DisallowUnknownFields. Schema,
// scope, rate-limit and pool failures are isError results the model can
// read; protocol faults (unknown tool, malformed request) are JSON-RPC
// errors. Every result carries provenance: mode, contributing sources,
// degraded.
//
// All integer draws use rejection sampling: draw k whole bytes (2^(8k) >= n
// values), reject the lowest 2^(8k) mod n so the rest fall into equal
// classes mod n. shuffle is Fisher–Yates, choose its first k steps.
// generate_password draws every character uniformly from the union of the
// requested classes and rejects the whole password unless each class
// occurs; accepted passwords are uniform over S, the set of such passwords,
// and entropy_bits = log2|S| (inclusion–exclusion), slightly below
// length·log2(alphabet), which is reported as uniform_entropy_bits.
// Forcing a missing class into a random position would favour passwords
// with exactly one member of that class; whole-password rejection does not.
package mcp
