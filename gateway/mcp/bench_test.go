package mcp

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/ratelimit"
)

// countingAuditor stands in for the store-backed audit log: it takes a lock
// and keeps the last record, like an append to a buffered log.
type countingAuditor struct {
	mu   sync.Mutex
	n    int
	last AuditRecord
}

func (a *countingAuditor) Append(_ context.Context, rec AuditRecord) error {
	a.mu.Lock()
	a.n++
	a.last = rec
	a.mu.Unlock()
	return nil
}

type bareIn struct {
	Bytes  int    `json:"bytes"`
	Format string `json:"format,omitempty"`
}

type bareOut struct {
	Bytes  int    `json:"bytes"`
	Format string `json:"format"`
	Data   string `json:"data"`
}

// bareServer is a plain go-sdk v1.8.0 server with the same tool on the same
// fake entropy: no auth, no Origin/session wrapper, no rate limit, no audit.
func bareServer(ent Entropy) http.Handler {
	s := sdk.NewServer(&sdk.Implementation{Name: "bare", Version: "1"}, nil)
	sdk.AddTool(s, &sdk.Tool{Name: "random_bytes", Description: "random bytes"},
		func(ctx context.Context, _ *sdk.CallToolRequest, in bareIn) (*sdk.CallToolResult, bareOut, error) {
			buf := make([]byte, in.Bytes)
			if _, err := ent.Read(ctx, buf, entropy.ModeDRBG); err != nil {
				return nil, bareOut{}, err
			}
			return nil, bareOut{Bytes: in.Bytes, Format: "hex", Data: hex.EncodeToString(buf)}, nil
		})
	return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s }, &sdk.StreamableHTTPOptions{JSONResponse: true})
}

const benchSessions = 16

type benchTarget struct {
	name     string
	sessions []*sdk.ClientSession
	lat      []time.Duration
	elapsed  time.Duration
	calls    int
}

func openSessions(b *testing.B, url string, hc *http.Client) []*sdk.ClientSession {
	out := make([]*sdk.ClientSession, benchSessions)
	for i := range out {
		c := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
		cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1, DisableStandaloneSSE: true},
			&sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cs.Close() })
		out[i] = cs
	}
	return out
}

// run makes n tools/call random_bytes {bytes:32} spread over the sessions,
// one goroutine per session, and records each call's latency.
func (bt *benchTarget) run(b *testing.B, n int) {
	var next atomic.Int64
	lat := make([][]time.Duration, len(bt.sessions))
	var wg sync.WaitGroup
	start := time.Now()
	for i, cs := range bt.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			params := &sdk.CallToolParams{Name: "random_bytes", Arguments: map[string]any{"bytes": 32}}
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				res, err := cs.CallTool(context.Background(), params)
				d := time.Since(t0)
				if err != nil || res.IsError {
					b.Errorf("%s: %v %v", bt.name, err, res)
					return
				}
				lat[i] = append(lat[i], d)
			}
		}()
	}
	wg.Wait()
	bt.elapsed += time.Since(start)
	bt.calls += n
	for _, l := range lat {
		bt.lat = append(bt.lat, l...)
	}
}

func (bt *benchTarget) p99() time.Duration {
	slices.Sort(bt.lat)
	if len(bt.lat) == 0 {
		return 0
	}
	return bt.lat[(len(bt.lat)*99+99)/100-1]
}

// BenchmarkToolsCall compares qrngd's /mcp (auth, Origin and session
// wrapper, rate limit, schema validation, audit) with a bare go-sdk server,
// interleaved in rounds in the same run: 16 sessions each initialized once,
// JSON response mode, tools/call random_bytes {bytes: 32}. b.N is the number
// of calls per target.
//
//	go test -run '^$' -bench BenchmarkToolsCall -benchtime 20000x ./gateway/mcp/
func BenchmarkToolsCall(b *testing.B) {
	ent := newFakeEntropy(42)
	tokens := newTokens()
	srv, err := New(&Options{
		Entropy: ent, Verifier: tokens.verify, Audit: &countingAuditor{},
		ResourceURL: testResource, IssuerURL: testIssuer, JSONResponse: true,
		RateLimit:        &ratelimit.Options{Rate: 1e9, Burst: 1 << 30},
		SessionRateLimit: &ratelimit.Options{Rate: 1, Burst: benchSessions},
		Now:              func() time.Time { return testNow },
	})
	if err != nil {
		b.Fatal(err)
	}
	qts := httptest.NewServer(srv.Handler())
	defer qts.Close()
	bts := httptest.NewServer(bareServer(ent))
	defer bts.Close()

	transport := &http.Transport{MaxIdleConnsPerHost: 2 * benchSessions, MaxConnsPerHost: 4 * benchSessions}
	defer transport.CloseIdleConnections()
	q := &benchTarget{name: "qrngd", sessions: openSessions(b, qts.URL+"/mcp",
		&http.Client{Transport: bearerTransport{token: "bench-alice", base: transport}})}
	bare := &benchTarget{name: "bare", sessions: openSessions(b, bts.URL, &http.Client{Transport: transport})}

	// Warm up both (connections, schema caches).
	q.run(b, 4*benchSessions)
	bare.run(b, 4*benchSessions)
	*q, *bare = benchTarget{name: q.name, sessions: q.sessions}, benchTarget{name: bare.name, sessions: bare.sessions}

	b.ResetTimer()
	const rounds = 4
	for r := 0; r < rounds; r++ {
		n := b.N / rounds
		if r == rounds-1 {
			n = b.N - 3*(b.N/rounds)
		}
		if r%2 == 0 {
			bare.run(b, n)
			q.run(b, n)
		} else {
			q.run(b, n)
			bare.run(b, n)
		}
	}
	b.StopTimer()
	qRate := float64(q.calls) / q.elapsed.Seconds()
	bareRate := float64(bare.calls) / bare.elapsed.Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(qRate, "qrngd_calls/s")
	b.ReportMetric(float64(q.p99().Microseconds())/1000, "qrngd_p99_ms")
	b.ReportMetric(bareRate, "bare_calls/s")
	b.ReportMetric(float64(bare.p99().Microseconds())/1000, "bare_p99_ms")
	b.ReportMetric(100*qRate/bareRate, "pct_of_bare")
}
