package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway"
)

// fakeEntropy is a scripted engine.
type fakeEntropy struct {
	mu     sync.Mutex
	status entropy.Status
	read   func(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error)
	modes  []entropy.Mode
}

// pattern is what the fake engine writes: byte i is 7*i+3.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(7*i + 3)
	}
	return p
}

func (f *fakeEntropy) Read(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
	f.mu.Lock()
	f.modes = append(f.modes, mode)
	read := f.read
	f.mu.Unlock()
	if read != nil {
		return read(ctx, p, mode)
	}
	copy(p, pattern(len(p)))
	return entropy.Provenance{Mode: mode, Sources: []string{"sim0", "usb1"}}, nil
}

func (f *fakeEntropy) setRead(fn func(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read = fn
}

func (f *fakeEntropy) setStatus(st entropy.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st
}

func (f *fakeEntropy) seen() []entropy.Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]entropy.Mode(nil), f.modes...)
}

func (f *fakeEntropy) Status() entropy.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func readyStatus() entropy.Status {
	since := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	return entropy.Status{
		Pool: entropy.PoolStatus{Policy: entropy.PolicyFailClosed, Ready: true, LevelBytes: 4096, CapacityBytes: 1 << 20,
			HealthySources: 1, MinSources: 1, Reseeds: 7},
		Sources: []entropy.SourceStatus{
			{
				SourceInfo: entropy.SourceInfo{Name: "usb1", Kind: "quantis-usb", Vendor: "ID Quantique", Model: "Quantis-USB-4M",
					Serial: "123456A410", BoardVersion: "4", Path: "usb:1-2", SampleBits: 8, NominalRate: 500000, MinEntropy: 7.6},
				State: entropy.StateQuarantined, Samples: 1000, Bytes: 900, DiscardedSamples: 512,
				RCT: entropy.TestCounters{Intermittent: 2}, APT: entropy.TestCounters{Intermittent: 1, Permanent: 1},
				RCTCutoff: 4, APTCutoff: 25, APTWindow: 512, AlphaLog2: 20, FalseAlarmEvery: 2.1, Quarantines: 1,
				LastError: "apt permanent failure", Since: since,
			},
			{
				SourceInfo: entropy.SourceInfo{Name: "sim0", Kind: "sim", SampleBits: 8, NominalRate: 1e6, MinEntropy: 7.5},
				State:      entropy.StateHealthy, Samples: 5000, Bytes: 4000, RCTCutoff: 4, APTCutoff: 26, APTWindow: 512,
				AlphaLog2: 20, FalseAlarmEvery: 1.05, Since: since,
			},
		},
	}
}

type harness struct {
	t   *testing.T
	srv *httptest.Server
	ent *fakeEntropy
	log *bytes.Buffer
	mu  *sync.Mutex
}

// lockedBuffer lets the server goroutines log while the test reads.
type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func newHarness(t *testing.T, opts *gateway.Options) *harness {
	t.Helper()
	h := &harness{t: t, ent: &fakeEntropy{status: readyStatus()}, log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	if opts == nil {
		opts = &gateway.Options{}
	}
	if opts.Entropy == nil {
		opts.Entropy = h.ent
	}
	opts.Logger = slog.New(slog.NewJSONHandler(lockedBuffer{h.mu, h.log}, nil))
	opts.Version = "1.2.3-test"
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	h.srv = httptest.NewServer(g)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) logs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) do(method, path string, hdr map[string]string, body io.Reader) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (h *harness) get(path string) response { return h.do(http.MethodGet, path, nil, nil) }

// errorOf decodes the JSON error shape strictly.
func errorOf(t *testing.T, r response) (code, msg string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want JSON; body %s", ct, r.body)
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body %s: not {\"error\":{\"code\",\"message\"}} (%v)", r.body, err)
	}
	return e.Error.Code, e.Error.Message
}

func TestGateway_Healthz(t *testing.T) {
	h := newHarness(t, nil)
	h.ent.setStatus(entropy.Status{}) // liveness does not depend on the pool
	r := h.get("/healthz")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"ok"`) {
		t.Fatalf("GET /healthz = %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodHead, "/healthz", nil, nil); r.status != http.StatusOK {
		t.Fatalf("HEAD /healthz = %d", r.status)
	}
}

func TestGateway_Readyz(t *testing.T) {
	h := newHarness(t, &gateway.Options{RetryAfter: 1500 * time.Millisecond})
	if r := h.get("/readyz"); r.status != http.StatusOK {
		t.Fatalf("ready pool: GET /readyz = %d %s", r.status, r.body)
	}
	st := readyStatus()
	st.Pool.Ready, st.Pool.HealthySources = false, 0
	h.ent.setStatus(st)
	r := h.get("/readyz")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("unready pool: GET /readyz = %d", r.status)
	}
	code, msg := errorOf(t, r)
	if code != "not_ready" || !strings.Contains(msg, "0 of 2 sources healthy") || !strings.Contains(msg, "fail-closed") {
		t.Fatalf("reason = %q %q", code, msg)
	}
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After = %q, want 2 (1.5 s rounded up)", got)
	}
}

func TestGateway_Health(t *testing.T) {
	h := newHarness(t, &gateway.Options{Features: []string{"mcp"}})
	r := h.get("/health")
	if r.status != http.StatusOK {
		t.Fatalf("GET /health = %d", r.status)
	}
	var b struct {
		Status  string `json:"status"`
		Version string `json:"version"`
		QRNG    struct {
			Policy  string `json:"policy"`
			Sources []struct {
				Name, Kind, State string
				Serial            string `json:"serial"`
			} `json:"sources"`
		} `json:"qrng"`
		Pool struct {
			Ready      bool `json:"ready"`
			LevelBytes int  `json:"level_bytes"`
		} `json:"pool"`
		Features []string `json:"features"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	if b.Status != "degraded" || b.Version != "1.2.3-test" || b.QRNG.Policy != "fail-closed" || !b.Pool.Ready ||
		b.Pool.LevelBytes != 4096 || len(b.QRNG.Sources) != 2 || b.QRNG.Sources[0].Name != "sim0" ||
		b.QRNG.Sources[1].State != "quarantined" || strings.Join(b.Features, ",") != "random,sources,metrics,mcp" {
		t.Fatalf("/health = %s", r.body)
	}
	if strings.Contains(string(r.body), "123456A410") {
		t.Fatalf("/health (no auth) leaks a device serial: %s", r.body)
	}
}

func TestRandom_Formats(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		query  string
		n      int
		format string
		mode   entropy.Mode
	}{
		{"bytes=32", 32, "hex", entropy.ModeDRBG},
		{"bytes=1&format=hex&mode=full", 1, "hex", entropy.ModeFull},
		{"bytes=33&format=base64&mode=pr", 33, "base64", entropy.ModePR},
		{"bytes=1048576&format=base64", 1 << 20, "base64", entropy.ModeDRBG},
		{"bytes=1048576&format=hex&mode=drbg", 1 << 20, "hex", entropy.ModeDRBG},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := h.get("/v1/random?" + tc.query)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control = %q", r.header.Get("Cache-Control"))
			}
			var b struct {
				Bytes    int      `json:"bytes"`
				Format   string   `json:"format"`
				Mode     string   `json:"mode"`
				Data     string   `json:"data"`
				Sources  []string `json:"sources"`
				Degraded *bool    `json:"degraded"`
			}
			dec := json.NewDecoder(bytes.NewReader(r.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&b); err != nil {
				t.Fatalf("decode: %v", err)
			}
			var data []byte
			var err error
			if tc.format == "hex" {
				data, err = hex.DecodeString(b.Data)
			} else {
				data, err = base64.StdEncoding.DecodeString(b.Data)
			}
			if err != nil || !bytes.Equal(data, pattern(tc.n)) {
				t.Fatalf("data does not decode to the engine's %d bytes (err %v)", tc.n, err)
			}
			if b.Bytes != tc.n || b.Format != tc.format || b.Mode != string(tc.mode) ||
				strings.Join(b.Sources, ",") != "sim0,usb1" || b.Degraded == nil || *b.Degraded {
				t.Fatalf("fields: %+v", b)
			}
		})
	}
	if got := h.ent.seen(); len(got) != 5 || got[1] != entropy.ModeFull || got[2] != entropy.ModePR {
		t.Fatalf("engine saw modes %v", got)
	}
}

func TestRandom_Binary(t *testing.T) {
	h := newHarness(t, nil)
	h.ent.setRead(func(_ context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
		copy(p, pattern(len(p)))
		return entropy.Provenance{Mode: mode, Sources: []string{"sim0"}, Degraded: true}, nil
	})
	for _, n := range []int{1, 1000, 1 << 20} {
		r := h.get(fmt.Sprintf("/v1/random?bytes=%d&format=binary&mode=full", n))
		if r.status != http.StatusOK || !bytes.Equal(r.body, pattern(n)) {
			t.Fatalf("n=%d: status %d, %d bytes", n, r.status, len(r.body))
		}
		for k, want := range map[string]string{
			"Content-Type": "application/octet-stream", "Content-Length": fmt.Sprint(n), "Cache-Control": "no-store",
			"X-QRNG-Mode": "full", "X-QRNG-Sources": "sim0", "X-QRNG-Degraded": "true",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("n=%d: %s = %q, want %q", n, k, got, want)
			}
		}
	}
}

func TestRandom_InvalidParameters(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct{ query, param string }{
		{"", "bytes"},
		{"format=hex", "bytes"},
		{"bytes=", "bytes"},
		{"bytes=0", "bytes"},
		{"bytes=1048577", "bytes"},
		{"bytes=-1", "bytes"},
		{"bytes=+5", "bytes"},
		{"bytes=0x10", "bytes"},
		{"bytes=1e3", "bytes"},
		{"bytes=abc", "bytes"},
		{"bytes=%205", "bytes"},
		{"bytes=99999999999999999999", "bytes"},
		{"bytes=16&bytes=32", "bytes"},
		{"bytes=16&format=", "format"},
		{"bytes=16&format=HEX", "format"},
		{"bytes=16&format=xml", "format"},
		{"bytes=16&mode=", "mode"},
		{"bytes=16&mode=fast", "mode"},
		{"bytes=16&mode=full&mode=pr", "mode"},
		{"bytes=16&size=4", "size"},
		{"bytes=16&Bytes=4", "Bytes"},
		{"bytes=16&%zz", "query"},
		{"bytes=16;format=hex", "query"},
		{"bytes=16&=4", "query"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := h.get("/v1/random?" + tc.query)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			code, msg := errorOf(t, r)
			if code != "invalid_parameter" || !strings.Contains(msg, fmt.Sprintf("%q", tc.param)) {
				t.Fatalf("error %q %q does not name parameter %q", code, msg, tc.param)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatal("400 without Cache-Control: no-store")
			}
		})
	}
	if len(h.ent.seen()) != 0 {
		t.Fatalf("engine was read %d times for invalid requests", len(h.ent.seen()))
	}
}

func TestRandom_InsufficientEntropy(t *testing.T) {
	h := newHarness(t, &gateway.Options{RetryAfter: 3 * time.Second})
	h.ent.setRead(func(context.Context, []byte, entropy.Mode) (entropy.Provenance, error) {
		return entropy.Provenance{}, fmt.Errorf("entropy: pool: 0 healthy sources: %w", entropy.ErrInsufficientEntropy)
	})
	for _, format := range []string{"hex", "binary"} {
		r := h.get("/v1/random?bytes=64&mode=full&format=" + format)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "3" ||
			r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: status %d Retry-After %q", format, r.status, r.header.Get("Retry-After"))
		}
		if code, _ := errorOf(t, r); code != "insufficient_entropy" {
			t.Fatalf("code %q", code)
		}
	}
}

func TestRandom_ReadTimeout(t *testing.T) {
	h := newHarness(t, &gateway.Options{FullWait: time.Millisecond})
	h.ent.setRead(func(ctx context.Context, _ []byte, _ entropy.Mode) (entropy.Provenance, error) {
		<-ctx.Done() // the pool never fills: the gateway's FullWait must end the wait
		return entropy.Provenance{}, ctx.Err()
	})
	r := h.get("/v1/random?bytes=64&mode=full")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d", r.status)
	}
	if code, _ := errorOf(t, r); code != "insufficient_entropy" {
		t.Fatalf("code %q", code)
	}
}

func TestRandom_EngineErrors(t *testing.T) {
	h := newHarness(t, nil)
	h.ent.setRead(func(context.Context, []byte, entropy.Mode) (entropy.Provenance, error) {
		return entropy.Provenance{}, errors.New("entropy: drbg: secret internal detail")
	})
	r := h.get("/v1/random?bytes=8")
	code, msg := errorOf(t, r)
	if r.status != http.StatusInternalServerError || code != "internal" || strings.Contains(msg, "secret") {
		t.Fatalf("status %d %q %q", r.status, code, msg)
	}
	if !strings.Contains(h.logs(), "secret internal detail") {
		t.Fatal("engine error not logged")
	}
	h.ent.setRead(func(context.Context, []byte, entropy.Mode) (entropy.Provenance, error) {
		return entropy.Provenance{}, fmt.Errorf("x: %w", entropy.ErrClosed)
	})
	r = h.get("/v1/random?bytes=8")
	if code, _ := errorOf(t, r); r.status != http.StatusServiceUnavailable || code != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Fatalf("closed engine: %d %q", r.status, code)
	}
	h.ent.setRead(func(context.Context, []byte, entropy.Mode) (entropy.Provenance, error) {
		return entropy.Provenance{}, fmt.Errorf("%w: 8 bytes requested, at most 4", entropy.ErrInvalidRequest)
	})
	r = h.get("/v1/random?bytes=8")
	if code, msg := errorOf(t, r); r.status != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(msg, "at most 4") {
		t.Fatalf("engine-refused request: %d %q %q", r.status, code, msg)
	}
}

func TestSources(t *testing.T) {
	h := newHarness(t, nil)
	r := h.get("/v1/sources")
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d", r.status)
	}
	var b struct {
		Policy  string           `json:"policy"`
		Sources []map[string]any `json:"sources"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	if b.Policy != "fail-closed" || len(b.Sources) != 2 {
		t.Fatalf("body %s", r.body)
	}
	usb := b.Sources[1] // sorted by name: sim0, usb1
	want := map[string]any{
		"name": "usb1", "kind": "quantis-usb", "vendor": "ID Quantique", "model": "Quantis-USB-4M", "serial": "123456A410",
		"board_version": "4", "state": "quarantined", "min_entropy_per_sample": 7.6, "samples": 1000.0, "bytes": 900.0,
		"discarded_samples": 512.0, "alpha_log2": 20.0, "expected_false_alarm_interval_seconds": 2.1, "quarantines": 1.0,
		"last_error": "apt permanent failure",
	}
	for k, v := range want {
		if usb[k] != v {
			t.Errorf("%s = %v, want %v", k, usb[k], v)
		}
	}
	f, _ := json.Marshal(usb["failures"])
	c, _ := json.Marshal(usb["cutoffs"])
	if string(f) != `{"apt":{"intermittent":1,"permanent":1},"rct":{"intermittent":2,"permanent":0}}` ||
		string(c) != `{"apt":25,"apt_window":512,"rct":4}` {
		t.Fatalf("failures %s cutoffs %s", f, c)
	}
	if r := h.get("/v1/sources?verbose=1"); r.status != http.StatusBadRequest {
		t.Fatalf("unknown parameter: %d", r.status)
	} else if _, msg := errorOf(t, r); !strings.Contains(msg, `"verbose"`) {
		t.Fatalf("message %q", msg)
	}
}

func TestRouter_NotFoundAndMethod(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/nope", 404, "not_found", ""},
		{"GET", "/v1/random/", 404, "not_found", ""},
		{"GET", "/v1", 404, "not_found", ""},
		{"POST", "/v1/random?bytes=1", 405, "method_not_allowed", "GET"},
		{"DELETE", "/v1/sources", 405, "method_not_allowed", "GET"},
		{"PUT", "/healthz", 405, "method_not_allowed", "GET, HEAD"},
	} {
		r := h.do(tc.method, tc.path, nil, nil)
		code, _ := errorOf(t, r)
		if r.status != tc.status || code != tc.code || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d %q Allow %q", tc.method, tc.path, r.status, code, r.header.Get("Allow"))
		}
	}
}

func TestMiddleware_CorrelationID(t *testing.T) {
	h := newHarness(t, nil)
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tc := range []struct {
		in   string
		echo bool
	}{
		{"abc-123_X.y", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"has space", false},
		{"semi;colon", false},
		{"ünïcode", false},
		{"", false},
	} {
		hdr := map[string]string{}
		if tc.in != "" {
			hdr["X-Correlation-ID"] = tc.in
		}
		r := h.do("GET", "/v1/random?bytes=1", hdr, nil)
		got := r.header.Get("X-Correlation-ID")
		if tc.echo && got != tc.in || !tc.echo && !generated.MatchString(got) {
			t.Errorf("in %q: out %q", tc.in, got)
		}
		if !strings.Contains(h.logs(), `"correlation_id":"`+got+`"`) {
			t.Errorf("access log lacks correlation id %q", got)
		}
	}
}

// TestMiddleware_CorrelationID_ReachesHandlers: a mounted handler (MCP,
// auth) that reads X-Correlation-ID from the request sees the ID the gateway
// answers with and logs, also when the client sent none or an invalid one.
func TestMiddleware_CorrelationID_ReachesHandlers(t *testing.T) {
	var seen string
	h := newHarness(t, &gateway.Options{Routes: []gateway.Route{{
		Methods: []string{"GET"}, Path: "/echo",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Header.Get("X-Correlation-ID")
			if got := r.Header.Values("X-Correlation-ID"); len(got) != 1 {
				t.Errorf("handler sees %d X-Correlation-ID values: %q", len(got), got)
			}
		}),
	}}})
	for _, in := range []string{"", "has space", strings.Repeat("a", 65), "ok-id.1"} {
		hdr := map[string]string{}
		if in != "" {
			hdr["X-Correlation-ID"] = in
		}
		r := h.do("GET", "/echo", hdr, nil)
		if out := r.header.Get("X-Correlation-ID"); out == "" || seen != out {
			t.Errorf("in %q: handler saw %q, response carries %q", in, seen, out)
		}
	}
}

func TestMiddleware_AccessLog(t *testing.T) {
	h := newHarness(t, nil)
	h.do("GET", "/v1/random?bytes=16&format=base64", map[string]string{"X-Correlation-ID": "req-1"}, nil)
	var line map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(h.logs()), "\n") {
		if strings.Contains(l, `"req-1"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line is not JSON: %s", l)
			}
		}
	}
	if line == nil {
		t.Fatalf("no access log line: %s", h.logs())
	}
	for k, v := range map[string]any{"method": "GET", "path": "/v1/random", "route": "/v1/random", "status": 200.0,
		"bytes": float64(len(`{"bytes":16,"format":"base64","mode":"drbg","sources":["sim0","usb1"],"degraded":false,"data":"AwoRGB8mLTQ7QklQV15lbA=="}`))} {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["duration_seconds"]; !ok {
		t.Error("log lacks duration_seconds")
	}
	if strings.Contains(h.logs(), "format=base64") || strings.Contains(h.logs(), "AwoRGB8m") {
		t.Fatal("access log contains the query string or response data")
	}
}

// TestMiddleware_AccessLogErrorsOnly: with LogErrorsOnly a 200 gets no
// access-log line, a 400 and a 404 do, and the metrics count all three.
func TestMiddleware_AccessLogErrorsOnly(t *testing.T) {
	h := newHarness(t, &gateway.Options{LogErrorsOnly: true})
	for id, path := range map[string]string{"ok-1": "/v1/random?bytes=16", "bad-1": "/v1/random?bytes=0", "missing-1": "/nope"} {
		h.do("GET", path, map[string]string{"X-Correlation-ID": id}, nil)
	}
	logs := h.logs()
	if strings.Contains(logs, `"ok-1"`) {
		t.Errorf("a 200 was logged: %s", logs)
	}
	for _, id := range []string{`"bad-1"`, `"missing-1"`} {
		if !strings.Contains(logs, id) {
			t.Errorf("request %s (an error) not logged: %s", id, logs)
		}
	}
	m := h.do("GET", "/metrics", nil, nil)
	if !strings.Contains(string(m.body), `qrng_http_requests_total{code="200",method="GET",route="/v1/random"} 1`) {
		t.Errorf("the unlogged 200 is not counted in the metrics:\n%s", m.body)
	}
}

func TestMiddleware_SecurityHeaders(t *testing.T) {
	h := newHarness(t, nil)
	for _, p := range []string{"/healthz", "/health", "/metrics", "/v1/random?bytes=1", "/nope"} {
		r := h.get(p)
		for k, want := range map[string]string{
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
			"Referrer-Policy": "no-referrer", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s: %s = %q", p, k, got)
			}
		}
	}
}

func TestMiddleware_RecoveryAndBodyLimit(t *testing.T) {
	h := newHarness(t, &gateway.Options{
		MaxRequestBytes: 16,
		Routes: []gateway.Route{
			{Methods: []string{"GET"}, Path: "/x/panic", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				panic("boom: secret state")
			})},
			{Methods: []string{"POST"}, Path: "/x/echo", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					w.WriteHeader(http.StatusRequestEntityTooLarge)
					return
				}
				_, _ = w.Write(b)
			})},
		},
	})
	r := h.get("/x/panic")
	code, msg := errorOf(t, r)
	if r.status != 500 || code != "internal" || strings.Contains(string(r.body), "boom") || strings.Contains(msg, "goroutine") {
		t.Fatalf("panic: %d %s", r.status, r.body)
	}
	if !strings.Contains(h.logs(), "boom: secret state") || !strings.Contains(h.logs(), "goroutine") {
		t.Fatal("panic and stack not logged")
	}
	if r := h.do("POST", "/x/echo", nil, strings.NewReader("0123456789abcdef")); r.status != 200 || string(r.body) != "0123456789abcdef" {
		t.Fatalf("16-byte body: %d %q", r.status, r.body)
	}
	r = h.do("POST", "/x/echo", nil, strings.NewReader("0123456789abcdefX"))
	if code, _ := errorOf(t, r); r.status != http.StatusRequestEntityTooLarge || code != "request_too_large" {
		t.Fatalf("17-byte body: %d %q", r.status, code)
	}
	// Without a declared length the cap applies while reading.
	r = h.do("POST", "/x/echo", nil, io.MultiReader(strings.NewReader("0123456789"), strings.NewReader("abcdefXYZ")))
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked 19-byte body: %d", r.status)
	}
}

// fakeAuth accepts "Bearer good" for every scope and "Bearer weak" for none.
type fakeAuth struct {
	mu     sync.Mutex
	scopes []string
}

func (a *fakeAuth) Authorize(r *http.Request, scope string) (*gateway.Principal, error) {
	a.mu.Lock()
	a.scopes = append(a.scopes, scope)
	a.mu.Unlock()
	switch r.Header.Get("Authorization") {
	case "":
		return nil, gateway.ErrUnauthenticated
	case "Bearer good":
		return &gateway.Principal{Subject: "alice", Scopes: []string{scope}}, nil
	case "Bearer weak":
		return nil, fmt.Errorf("token lacks %s: %w", scope, gateway.ErrInsufficientScope)
	case "Bearer broken":
		return nil, errors.New("revocation store unavailable")
	}
	return nil, fmt.Errorf("expired: %w", gateway.ErrInvalidToken)
}

type challengingAuth struct{ fakeAuth }

func (*challengingAuth) Challenge(_ *http.Request, scope string, _ error) string {
	return `Bearer resource_metadata="https://q.example/.well-known/oauth-protected-resource", scope="` + scope + `"`
}

func TestAuth_Seam(t *testing.T) {
	auth := &fakeAuth{}
	h := newHarness(t, &gateway.Options{Authorizer: auth})
	for _, tc := range []struct {
		path, token string
		status      int
		code, www   string
	}{
		{"/v1/random?bytes=4", "", 401, "unauthenticated", `Bearer realm="qrngd"`},
		{"/v1/random?bytes=4", "Bearer expired", 401, "invalid_token", `Bearer realm="qrngd", error="invalid_token"`},
		{"/v1/random?bytes=4", "Bearer weak", 403, "insufficient_scope", `Bearer realm="qrngd", error="insufficient_scope", scope="random:read"`},
		{"/v1/sources", "Bearer weak", 403, "insufficient_scope", `Bearer realm="qrngd", error="insufficient_scope", scope="sources:read"`},
		{"/v1/sources", "Bearer broken", 500, "internal", ""},
		// Auth runs before parameter validation: no information leaks to anonymous callers.
		{"/v1/random?bytes=0", "", 401, "unauthenticated", `Bearer realm="qrngd"`},
	} {
		r := h.do("GET", tc.path, map[string]string{"Authorization": tc.token}, nil)
		code, _ := errorOf(t, r)
		if r.status != tc.status || code != tc.code || r.header.Get("WWW-Authenticate") != tc.www {
			t.Errorf("%s with %q: %d %q WWW-Authenticate %q", tc.path, tc.token, r.status, code, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := h.do("GET", "/v1/random?bytes=4", map[string]string{"Authorization": "Bearer good"}, nil); r.status != 200 {
		t.Fatalf("good token: %d", r.status)
	}
	if !strings.Contains(h.logs(), `"subject":"alice"`) {
		t.Fatal("access log lacks the subject")
	}
	if strings.Contains(h.logs(), "Bearer") {
		t.Fatal("access log contains a credential")
	}
	auth.mu.Lock()
	n := len(auth.scopes)
	auth.mu.Unlock()
	for _, p := range []string{"/healthz", "/readyz", "/health", "/metrics"} {
		if r := h.get(p); r.status != 200 {
			t.Errorf("%s needs no auth, got %d", p, r.status)
		}
	}
	if len(auth.scopes) != n {
		t.Fatal("authorizer consulted for an open route")
	}

	h2 := newHarness(t, &gateway.Options{Authorizer: &challengingAuth{}})
	r := h2.get("/v1/sources")
	if want := `Bearer resource_metadata="https://q.example/.well-known/oauth-protected-resource", scope="sources:read"`; r.header.Get("WWW-Authenticate") != want {
		t.Fatalf("Challenger not used: %q", r.header.Get("WWW-Authenticate"))
	}
}

func TestAuth_ExtraRouteScope(t *testing.T) {
	auth := &fakeAuth{}
	var got *gateway.Principal
	h := newHarness(t, &gateway.Options{Authorizer: auth, Routes: []gateway.Route{{
		Methods: []string{"GET", "POST"}, Path: "/mcp/tools", Scope: "mcp:tools",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ = gateway.PrincipalFrom(r.Context())
			if gateway.CorrelationID(r.Context()) == "" {
				w.WriteHeader(500)
			}
		}),
	}}})
	if r := h.get("/mcp/tools"); r.status != 401 {
		t.Fatalf("no token: %d", r.status)
	}
	if r := h.do("POST", "/mcp/tools", map[string]string{"Authorization": "Bearer good"}, nil); r.status != 200 || got == nil || got.Subject != "alice" {
		t.Fatalf("good token: %d principal %+v", r.status, got)
	}
	if auth.scopes[0] != "mcp:tools" {
		t.Fatalf("scope %q", auth.scopes[0])
	}
}

func TestNew_Invalid(t *testing.T) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for name, opts := range map[string]*gateway.Options{
		"nil":           nil,
		"no entropy":    {},
		"negative body": {Entropy: &fakeEntropy{}, MaxRequestBytes: -1},
		"route clash":   {Entropy: &fakeEntropy{}, Routes: []gateway.Route{{Methods: []string{"GET"}, Path: "/healthz", Handler: ok}}},
		"route no path": {Entropy: &fakeEntropy{}, Routes: []gateway.Route{{Methods: []string{"GET"}, Path: "x", Handler: ok}}},
		"route no hdlr": {Entropy: &fakeEntropy{}, Routes: []gateway.Route{{Methods: []string{"GET"}, Path: "/x"}}},
	} {
		if g, err := gateway.New(opts); err == nil || g != nil || !strings.HasPrefix(err.Error(), "gateway: ") {
			t.Errorf("%s: New = %v, %v", name, g, err)
		}
	}
}

// TestAuth_LimitHook: the Limit hook runs after the Authorizer accepted a
// request, sees the principal, and a refusal (the hook's own 429) stops the
// handler; refused and anonymous requests never reach it.
func TestAuth_LimitHook(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	budget := 2
	limit := func(w http.ResponseWriter, r *http.Request, p *gateway.Principal) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, p.Subject+" "+r.URL.Path)
		if budget == 0 {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"error":{"code":"rate_limited","message":"slow down"}}`)
			return false
		}
		budget--
		return true
	}
	var ran int
	h := newHarness(t, &gateway.Options{Authorizer: &fakeAuth{}, Limit: limit, Routes: []gateway.Route{
		{Methods: []string{"GET"}, Path: "/x/scoped", Scope: "mcp:tools", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran++ })},
		{Methods: []string{"GET"}, Path: "/x/open", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran++ })},
	}})
	good := map[string]string{"Authorization": "Bearer good"}
	if r := h.get("/v1/random?bytes=4"); r.status != 401 {
		t.Fatalf("anonymous: %d", r.status)
	}
	if r := h.do("GET", "/v1/random?bytes=4", map[string]string{"Authorization": "Bearer weak"}, nil); r.status != 403 {
		t.Fatalf("weak: %d", r.status)
	}
	if r := h.do("GET", "/v1/random?bytes=4", good, nil); r.status != 200 {
		t.Fatalf("first: %d", r.status)
	}
	if r := h.do("GET", "/x/scoped", good, nil); r.status != 200 || ran != 1 {
		t.Fatalf("extra scoped route: %d ran %d", r.status, ran)
	}
	r := h.do("GET", "/x/scoped", good, nil)
	if code, _ := errorOf(t, r); r.status != 429 || code != "rate_limited" || r.header.Get("Retry-After") != "7" || ran != 1 {
		t.Fatalf("over budget: %d %q Retry-After %q ran %d", r.status, code, r.header.Get("Retry-After"), ran)
	}
	if r := h.do("GET", "/v1/sources", good, nil); r.status != 429 {
		t.Fatalf("over budget /v1/sources: %d", r.status)
	}
	// Routes without a scope do their own auth: the hook is not called.
	if r := h.get("/x/open"); r.status != 200 || ran != 2 {
		t.Fatalf("open route: %d", r.status)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"alice /v1/random", "alice /x/scoped", "alice /x/scoped", "alice /v1/sources"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("hook saw %q, want %q", seen, want)
	}
	if !strings.Contains(h.logs(), `"status":429`) {
		t.Fatal("the refused request is not in the access log")
	}
}

// TestMiddleware_RouteBodyLimit: Route.MaxBodyBytes replaces the gateway's
// limit on its route only.
func TestMiddleware_RouteBodyLimit(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = w.Write(b)
	})
	h := newHarness(t, &gateway.Options{MaxRequestBytes: 16, Routes: []gateway.Route{
		{Methods: []string{"POST"}, Path: "/x/big", Handler: echo, MaxBodyBytes: 64},
		{Methods: []string{"POST"}, Path: "/x/small", Handler: echo},
	}})
	body := strings.Repeat("a", 40)
	if r := h.do("POST", "/x/big", nil, strings.NewReader(body)); r.status != 200 || string(r.body) != body {
		t.Fatalf("40 bytes on a 64-byte route: %d", r.status)
	}
	if r := h.do("POST", "/x/big", nil, strings.NewReader(strings.Repeat("a", 65))); r.status != 413 {
		t.Fatalf("65 bytes on a 64-byte route: %d", r.status)
	}
	if r := h.do("POST", "/x/big", nil, io.MultiReader(strings.NewReader(body), strings.NewReader(body))); r.status != 413 {
		t.Fatalf("80 chunked bytes on a 64-byte route: %d", r.status)
	}
	if r := h.do("POST", "/x/small", nil, strings.NewReader(body)); r.status != 413 {
		t.Fatalf("40 bytes on the default 16-byte limit: %d", r.status)
	}
	if _, err := gateway.New(&gateway.Options{Entropy: &fakeEntropy{}, Routes: []gateway.Route{
		{Methods: []string{"POST"}, Path: "/x", Handler: echo, MaxBodyBytes: -1}}}); err == nil {
		t.Fatal("negative MaxBodyBytes accepted")
	}
}

// TestRandom_InFlightBytesBounded: answers in flight are bounded in bytes
// (a slow reader holds its buffers until WriteTimeout); a request over the
// bound waits at most ReadTimeout, then gets 503 busy with Retry-After.
func TestRandom_InFlightBytesBounded(t *testing.T) {
	h := newHarness(t, &gateway.Options{MaxInFlightBytes: 4 << 20, ReadTimeout: 200 * time.Millisecond})
	var mu sync.Mutex
	active, peak, calls := 0, 0, 0
	entered, release := make(chan struct{}), make(chan struct{})
	h.ent.setRead(func(_ context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
		mu.Lock()
		active++
		calls++
		peak = max(peak, active)
		first := calls == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
		mu.Lock()
		active--
		mu.Unlock()
		return entropy.Provenance{Mode: mode}, nil
	})
	done := make(chan response, 1)
	go func() { done <- h.get("/v1/random?bytes=1048576&format=hex") }() // 3 MiB in flight
	<-entered
	r := h.get("/v1/random?bytes=1048576&format=base64") // 1 MiB + 1.33 MiB: over 4 MiB
	close(release)
	if code, _ := errorOf(t, r); r.status != http.StatusServiceUnavailable || code != "busy" || r.header.Get("Retry-After") == "" {
		t.Errorf("second 1 MiB answer while 3 MiB in flight: %d %q", r.status, code)
	}
	if r := <-done; r.status != 200 {
		t.Errorf("first answer: %d", r.status)
	}
	if peak != 1 {
		t.Errorf("%d engine reads at once; the in-flight bound admits one", peak)
	}
	// Once the first answer is written, its share is free again.
	if r := h.get("/v1/random?bytes=1048576&format=base64"); r.status != 200 {
		t.Errorf("after release: %d", r.status)
	}
	if _, err := gateway.New(&gateway.Options{Entropy: h.ent, MaxInFlightBytes: 1 << 20}); err == nil {
		t.Error("MaxInFlightBytes below one hex answer accepted")
	}
}
