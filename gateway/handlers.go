package gateway

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/qrngd/qrngd/entropy"
)

// healthz is liveness: the process serves HTTP.
func (g *Gateway) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// notReadyReason explains why the pool cannot serve.
func notReadyReason(st entropy.Status) string {
	p := st.Pool
	if p.HealthySources < p.MinSources {
		return fmt.Sprintf("%d of %d sources healthy, policy %q needs %d", p.HealthySources, len(st.Sources), p.Policy, p.MinSources)
	}
	return fmt.Sprintf("pool not ready (level %d of %d bytes, policy %q)", p.LevelBytes, p.CapacityBytes, p.Policy)
}

// readyz is 200 only when the pool can serve under its policy.
func (g *Gateway) readyz(c *gin.Context) {
	st := g.ent.Status()
	if st.Pool.Ready {
		c.JSON(http.StatusOK, gin.H{"status": "ready", "degraded": st.Pool.Degraded})
		return
	}
	c.Header("Retry-After", g.retryAfter)
	g.fail(c, http.StatusServiceUnavailable, "not_ready", notReadyReason(st))
}

// healthSource is the public summary of a source on /health (no serials or
// paths: /health needs no credentials).
type healthSource struct {
	Name  string        `json:"name"`
	Kind  string        `json:"kind"`
	State entropy.State `json:"state"`
}

type healthPool struct {
	Ready          bool `json:"ready"`
	Degraded       bool `json:"degraded"`
	LevelBytes     int  `json:"level_bytes"`
	CapacityBytes  int  `json:"capacity_bytes"`
	HealthySources int  `json:"healthy_sources"`
	MinSources     int  `json:"min_healthy_sources"`
}

type healthBody struct {
	Status  string     `json:"status"` // ok, degraded or unavailable
	Version string     `json:"version"`
	QRNG    healthQRNG `json:"qrng"`
	Pool    healthPool `json:"pool"`
	// Features lists what this gateway serves.
	Features []string `json:"features"`
}

type healthQRNG struct {
	Policy  entropy.Policy `json:"policy"`
	Sources []healthSource `json:"sources"`
}

// health keeps the seed's shape: status, version, qrng {sources, policy},
// pool, features. It always answers 200; "status" carries the verdict and
// /readyz is the probe.
func (g *Gateway) health(c *gin.Context) {
	st := g.ent.Status()
	b := healthBody{
		Status:  "ok",
		Version: g.version,
		QRNG:    healthQRNG{Policy: st.Pool.Policy, Sources: make([]healthSource, 0, len(st.Sources))},
		Pool: healthPool{
			Ready: st.Pool.Ready, Degraded: st.Pool.Degraded,
			LevelBytes: st.Pool.LevelBytes, CapacityBytes: st.Pool.CapacityBytes,
			HealthySources: st.Pool.HealthySources, MinSources: st.Pool.MinSources,
		},
		Features: g.features,
	}
	for _, s := range st.Sources {
		b.QRNG.Sources = append(b.QRNG.Sources, healthSource{Name: s.Name, Kind: s.Kind, State: s.State})
		if s.State != entropy.StateHealthy && b.Status == "ok" {
			b.Status = "degraded"
		}
	}
	sort.Slice(b.QRNG.Sources, func(i, j int) bool { return b.QRNG.Sources[i].Name < b.QRNG.Sources[j].Name })
	switch {
	case !st.Pool.Ready:
		b.Status = "unavailable"
	case st.Pool.Degraded:
		b.Status = "degraded"
	}
	c.JSON(http.StatusOK, b)
}

// Formats of GET /v1/random.
const (
	FormatHex    = "hex"
	FormatBase64 = "base64"
	FormatBinary = "binary"
)

// paramError is a 400 naming the query parameter.
type paramError struct {
	param, reason string
}

func (e *paramError) Error() string { return fmt.Sprintf("query parameter %q: %s", e.param, e.reason) }

// checkQuery parses raw, rejects malformed queries, unknown and repeated
// parameters, and returns the single value of each known one.
func checkQuery(raw string, known ...string) (map[string]string, *paramError) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, &paramError{param: "query", reason: "malformed query string"}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, len(q))
	for _, k := range keys {
		if k == "" {
			return nil, &paramError{param: "query", reason: "a parameter has an empty name"}
		}
		if !slices.Contains(known, k) {
			name := k
			if len(name) > 64 {
				name = name[:64] + "…"
			}
			return nil, &paramError{param: name, reason: "unknown parameter (known: " + strings.Join(known, ", ") + ")"}
		}
		if len(q[k]) > 1 {
			return nil, &paramError{param: k, reason: "given more than once"}
		}
		out[k] = q[k][0]
	}
	return out, nil
}

// randomQuery is a validated GET /v1/random request.
type randomQuery struct {
	n      int
	format string
	mode   entropy.Mode
}

// parseRandomQuery validates bytes, format and mode.
func parseRandomQuery(raw string) (randomQuery, *paramError) {
	q, perr := checkQuery(raw, "bytes", "format", "mode")
	if perr != nil {
		return randomQuery{}, perr
	}
	rq := randomQuery{format: FormatHex, mode: entropy.ModeDRBG}
	s, ok := q["bytes"]
	if !ok {
		return rq, &paramError{param: "bytes", reason: fmt.Sprintf("required: an integer from 1 to %d", MaxRandomBytes)}
	}
	n, err := strconv.Atoi(s)
	// Decimal digits only: no sign, no spaces, bounded length.
	if err != nil || len(s) > 8 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 || n < 1 || n > MaxRandomBytes {
		return rq, &paramError{param: "bytes", reason: fmt.Sprintf("must be an integer from 1 to %d", MaxRandomBytes)}
	}
	rq.n = n
	if f, ok := q["format"]; ok {
		switch f {
		case FormatHex, FormatBase64, FormatBinary:
			rq.format = f
		default:
			return rq, &paramError{param: "format", reason: "must be one of hex, base64, binary"}
		}
	}
	if m, ok := q["mode"]; ok {
		switch entropy.Mode(m) {
		case entropy.ModeDRBG, entropy.ModeFull, entropy.ModePR:
			rq.mode = entropy.Mode(m)
		default:
			return rq, &paramError{param: "mode", reason: "must be one of drbg, full, pr"}
		}
	}
	return rq, nil
}

// Headers carrying provenance on binary answers.
const (
	HeaderMode     = "X-QRNG-Mode"
	HeaderSources  = "X-QRNG-Sources"
	HeaderDegraded = "X-QRNG-Degraded"
)

// random serves GET /v1/random.
func (g *Gateway) random(c *gin.Context) {
	rq, perr := parseRandomQuery(c.Request.URL.RawQuery)
	if perr != nil {
		g.fail(c, http.StatusBadRequest, "invalid_parameter", perr.Error())
		return
	}
	to := g.readTO
	if rq.mode == entropy.ModeFull {
		to = g.fullWait
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), to)
	defer cancel()
	// Bound the memory held by answers in flight: a slow reader keeps its
	// buffers until WriteTimeout, and the per-principal rate alone would
	// let one caller pin gigabytes.
	// Answers above pooledRandom borrow a pooled MaxRandomBytes buffer,
	// which counts in full; smaller ones get a buffer of their own size.
	held := rq.n
	if rq.n > pooledRandom {
		held = MaxRandomBytes
	}
	weight := int64(held) + int64(encodedLen(rq.format, rq.n))
	if err := g.inflight.Acquire(ctx, weight); err != nil {
		c.Header("Retry-After", g.retryAfter)
		if c.Request.Context().Err() != nil {
			g.fail(c, http.StatusServiceUnavailable, "unavailable", "the request was cancelled")
			return
		}
		g.log.WarnContext(ctx, "random request refused: too many bytes in flight", "bytes", rq.n, "format", rq.format,
			"correlation_id", CorrelationID(ctx))
		g.fail(c, http.StatusServiceUnavailable, "busy", "too many random answers are in flight; retry later")
		return
	}
	defer g.inflight.Release(weight)
	var buf []byte
	if rq.n > pooledRandom {
		bp := g.bufs.Get().(*[]byte)
		buf = (*bp)[:rq.n]
		defer func() {
			clear(buf) // random bytes are secrets: zeroize before reuse
			g.bufs.Put(bp)
		}()
	} else {
		buf = make([]byte, rq.n)
		defer clear(buf)
	}

	prov, err := g.ent.Read(ctx, buf, rq.mode)
	cancel()
	if err != nil {
		g.readFailed(c, rq, err)
		return
	}
	g.metrics.served.WithLabelValues(string(rq.mode)).Add(float64(rq.n))
	mode := prov.Mode
	if mode == "" {
		mode = rq.mode
	}
	sources := prov.Sources
	if sources == nil {
		sources = []string{}
	}

	if rq.format == FormatBinary {
		h := c.Writer.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.Itoa(rq.n))
		h.Set(HeaderMode, string(mode))
		h.Set(HeaderSources, strings.Join(sources, ","))
		h.Set(HeaderDegraded, strconv.FormatBool(prov.Degraded))
		c.Status(http.StatusOK)
		_, _ = c.Writer.Write(buf) // a write error means the client went away
		return
	}

	head, err := json.Marshal(struct {
		Bytes    int          `json:"bytes"`
		Format   string       `json:"format"`
		Mode     entropy.Mode `json:"mode"`
		Sources  []string     `json:"sources"`
		Degraded bool         `json:"degraded"`
	}{rq.n, rq.format, mode, sources, prov.Degraded})
	if err != nil {
		g.fail(c, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	encLen := encodedLen(rq.format, rq.n)
	out := make([]byte, 0, len(head)+len(`,"data":""}`)+encLen)
	out = append(out, head[:len(head)-1]...) // drop '}'
	out = append(out, `,"data":"`...)
	enc := out[len(out) : len(out)+encLen]
	if rq.format == FormatHex {
		hex.Encode(enc, buf)
	} else {
		base64.StdEncoding.Encode(enc, buf)
	}
	out = append(out[:len(out)+encLen], `"}`...)
	defer clear(out)
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(out)
}

// pooledRandom: answers larger than this use the buffer pool.
const pooledRandom = 64 << 10

// encodedLen is the size of n bytes in format (0 for binary).
func encodedLen(format string, n int) int {
	switch format {
	case FormatHex:
		return hex.EncodedLen(n)
	case FormatBase64:
		return base64.StdEncoding.EncodedLen(n)
	}
	return 0
}

// readFailed maps an engine error to a JSON answer.
func (g *Gateway) readFailed(c *gin.Context, rq randomQuery, err error) {
	ctx := c.Request.Context()
	switch {
	case errors.Is(err, entropy.ErrInsufficientEntropy),
		errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		g.log.WarnContext(ctx, "random request refused", "mode", rq.mode, "bytes", rq.n, "err", err,
			"correlation_id", CorrelationID(ctx))
		c.Header("Retry-After", g.retryAfter)
		g.fail(c, http.StatusServiceUnavailable, "insufficient_entropy",
			fmt.Sprintf("the entropy pool cannot serve %d bytes in mode %s now; retry later", rq.n, rq.mode))
	case errors.Is(err, entropy.ErrInvalidRequest):
		g.fail(c, http.StatusBadRequest, "invalid_request", err.Error())
	case errors.Is(err, entropy.ErrClosed), ctx.Err() != nil:
		c.Header("Retry-After", g.retryAfter)
		g.fail(c, http.StatusServiceUnavailable, "unavailable", "the entropy engine is shutting down or the request was cancelled")
	default:
		g.log.ErrorContext(ctx, "entropy read failed", "mode", rq.mode, "bytes", rq.n, "err", err,
			"correlation_id", CorrelationID(ctx))
		g.fail(c, http.StatusInternalServerError, "internal", "internal error")
	}
}

// sourceView is one source on GET /v1/sources.
type sourceView struct {
	Name         string        `json:"name"`
	Kind         string        `json:"kind"`
	Vendor       string        `json:"vendor,omitempty"`
	Model        string        `json:"model,omitempty"`
	Serial       string        `json:"serial,omitempty"`
	BoardVersion string        `json:"board_version,omitempty"`
	Path         string        `json:"path,omitempty"`
	State        entropy.State `json:"state"`
	Since        time.Time     `json:"since"`
	SampleBits   int           `json:"sample_bits"`
	NominalRate  float64       `json:"nominal_bytes_per_second"`
	MinEntropy   float64       `json:"min_entropy_per_sample"` // credited H
	Samples      uint64        `json:"samples"`
	Bytes        uint64        `json:"bytes"`
	Discarded    uint64        `json:"discarded_samples"`
	Failures     struct {
		RCT entropy.TestCounters `json:"rct"`
		APT entropy.TestCounters `json:"apt"`
	} `json:"failures"`
	Cutoffs struct {
		RCT       int `json:"rct"`
		APT       int `json:"apt"`
		APTWindow int `json:"apt_window"`
	} `json:"cutoffs"`
	AlphaLog2       int     `json:"alpha_log2"`
	FalseAlarmEvery float64 `json:"expected_false_alarm_interval_seconds"`
	Quarantines     uint64  `json:"quarantines"`
	LastError       string  `json:"last_error,omitempty"`
}

// sources serves GET /v1/sources.
func (g *Gateway) sources(c *gin.Context) {
	if _, perr := checkQuery(c.Request.URL.RawQuery); perr != nil {
		g.fail(c, http.StatusBadRequest, "invalid_parameter", perr.Error())
		return
	}
	st := g.ent.Status()
	out := make([]sourceView, 0, len(st.Sources))
	for _, s := range st.Sources {
		v := sourceView{
			Name: s.Name, Kind: s.Kind, Vendor: s.Vendor, Model: s.Model, Serial: s.Serial,
			BoardVersion: s.BoardVersion, Path: s.Path, State: s.State, Since: s.Since,
			SampleBits: s.SampleBits, NominalRate: s.NominalRate, MinEntropy: s.MinEntropy,
			Samples: s.Samples, Bytes: s.Bytes, Discarded: s.DiscardedSamples,
			AlphaLog2: s.AlphaLog2, FalseAlarmEvery: s.FalseAlarmEvery,
			Quarantines: s.Quarantines, LastError: s.LastError,
		}
		v.Failures.RCT, v.Failures.APT = s.RCT, s.APT
		v.Cutoffs.RCT, v.Cutoffs.APT, v.Cutoffs.APTWindow = s.RCTCutoff, s.APTCutoff, s.APTWindow
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	c.JSON(http.StatusOK, gin.H{"sources": out, "policy": st.Pool.Policy})
}
