package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// HeaderCorrelationID carries the correlation ID in and out.
const HeaderCorrelationID = "X-Correlation-ID"

// maxCorrelationID bounds an accepted X-Correlation-ID.
const maxCorrelationID = 64

// validCorrelationID accepts 1..64 characters of [A-Za-z0-9._-].
func validCorrelationID(s string) bool {
	if len(s) == 0 || len(s) > maxCorrelationID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// newCorrelationID returns 128 random bits in hex. Correlation IDs are not
// secrets, so they come from the OS RNG rather than the pool.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// correlate takes a valid X-Correlation-ID from the request or makes one,
// echoes it, and stores it in the request context and the request header.
func (g *Gateway) correlate(c *gin.Context) {
	id := c.GetHeader(HeaderCorrelationID)
	if !validCorrelationID(id) {
		id = newCorrelationID()
	}
	c.Header(HeaderCorrelationID, id)
	// Mounted handlers (MCP audit records, auth) read the request header:
	// they must see the ID the response and the access log carry.
	c.Request.Header.Set(HeaderCorrelationID, id)
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), keyCorrelation, id))
	c.Next()
}

// routeLabel bounds the route label: the matched route template, or
// "unmatched" for 404s (never the raw path).
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// maxLoggedPath bounds the path in the access log.
const maxLoggedPath = 256

// observe records the request metrics and writes one access-log line. The
// query string is never logged.
func (g *Gateway) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	d := time.Since(start)
	status := c.Writer.Status()
	route, method := routeLabel(c), methodLabel(c.Request.Method)
	g.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	g.metrics.duration.WithLabelValues(route, method).Observe(d.Seconds())
	if g.errorsOnly && status < 400 {
		return
	}

	path := c.Request.URL.Path
	if len(path) > maxLoggedPath {
		path = path[:maxLoggedPath] + "…"
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("path", path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_seconds", d.Seconds()),
		slog.Int("bytes", max(c.Writer.Size(), 0)),
		slog.String("correlation_id", CorrelationID(c.Request.Context())),
		slog.String("remote", c.ClientIP()),
	}
	if p, ok := PrincipalFrom(c.Request.Context()); ok {
		attrs = append(attrs, slog.String("subject", p.Subject))
	}
	// 503 is the engine's verdict (not ready, insufficient entropy), which
	// probes see every few seconds: a warning, not an error.
	level := slog.LevelInfo
	switch {
	case status == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case status >= 500:
		level = slog.LevelError
	}
	g.log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
}

// recovery turns a panic into a JSON 500; the stack goes to the log only.
func (g *Gateway) recovery(c *gin.Context) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler { //nolint:errorlint // sentinel panic value
			panic(p)
		}
		g.log.ErrorContext(c.Request.Context(), "panic serving request",
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()),
			"correlation_id", CorrelationID(c.Request.Context()))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		g.fail(c, http.StatusInternalServerError, "internal", "internal error")
	}()
	c.Next()
}

// secure sets the security headers every response carries. Nothing qrngd
// serves may be cached: random bytes are secrets, and status is live.
func (g *Gateway) secure(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if c.Request.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	c.Next()
}

// limitBody refuses a declared body over the limit and caps the rest. The
// limit is the route's own (Route.MaxBodyBytes) or the gateway's.
func (g *Gateway) limitBody(c *gin.Context) {
	limit := g.maxBody
	if n, ok := g.routeBody[c.FullPath()]; ok {
		limit = n
	}
	if c.Request.ContentLength > limit {
		g.fail(c, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", c.Request.ContentLength, limit))
		return
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	c.Next()
}

// require authorizes the request for scope through the Authorizer; with no
// Authorizer every request passes (dev only).
func (g *Gateway) require(scope string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if g.auth == nil {
			c.Next()
			return
		}
		p, err := g.auth.Authorize(c.Request, scope)
		if err == nil && p == nil {
			err = fmt.Errorf("%w: authorizer returned no principal", ErrInvalidToken)
		}
		if err == nil {
			c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), keyPrincipal, p))
			if g.limit != nil && !g.limit(c.Writer, c.Request, p) {
				c.Abort()
				return
			}
			c.Next()
			return
		}
		var status int
		var code, msg, param string
		switch {
		case errors.Is(err, ErrInsufficientScope):
			status, code, msg = http.StatusForbidden, "insufficient_scope", "this request needs scope "+scope
			param = fmt.Sprintf(`, error="insufficient_scope", scope=%q`, scope)
		case errors.Is(err, ErrInvalidToken):
			status, code, msg = http.StatusUnauthorized, "invalid_token", "the access token is invalid, expired or revoked"
			param = `, error="invalid_token"`
		case errors.Is(err, ErrUnauthenticated):
			status, code, msg = http.StatusUnauthorized, "unauthenticated", "this request needs a bearer token with scope "+scope
		default:
			g.log.ErrorContext(c.Request.Context(), "authorizer failed", "err", err,
				"correlation_id", CorrelationID(c.Request.Context()))
			g.fail(c, http.StatusInternalServerError, "internal", "internal error")
			return
		}
		challenge := `Bearer realm="qrngd"` + param
		if ch, ok := g.auth.(Challenger); ok {
			challenge = ch.Challenge(c.Request, scope, err)
		}
		c.Header("WWW-Authenticate", challenge)
		g.fail(c, status, code, msg)
	}
}

// errorBody is the JSON shape of every error.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail writes the JSON error and stops the chain.
func (g *Gateway) fail(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}
