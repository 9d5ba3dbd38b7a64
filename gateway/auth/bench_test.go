package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/bolt"
)

// BenchmarkOAuthToken_Loopback32 issues client_credentials tokens over
// loopback HTTP from 32 concurrent connections against store/bolt on disk
// (fsync on). Each response is sent only after the token's audit record
// committed (group commit); the benchmark checks every response is 200
// and that the audit log holds one issuance record per token.
//
//	go test -run '^$' -bench OAuthToken_Loopback32 -benchtime 20000x ./gateway/auth/
func BenchmarkOAuthToken_Loopback32(b *testing.B) {
	h := newHarness(b, &harnessOpts{bolt: true})
	h.addTenant("bench")
	id, secret := h.addKey("bench", ScopeRandomRead)
	_ = h.clientToken(id, secret, nil) // create the signing key outside the timing
	before := len(h.auditRecordsAll())
	st0 := h.st.(*bolt.DB).Stats()
	el := load32(b, h.base+"/oauth/token", id, secret)
	if got := len(h.auditRecordsAll()) - before; got != b.N {
		b.Fatalf("%d issuance audit records for %d tokens", got, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "tokens/s")
	st1 := h.st.(*bolt.DB).Stats()
	b.ReportMetric(float64(st1.AuditRecords-st0.AuditRecords)/float64(st1.AuditCommits-st0.AuditCommits), "records/commit")
	// Wall time of one group commit: its write to the audit WAL and the
	// fdatasync, plus waiting for a processor between them.
	b.ReportMetric(float64((st1.AuditCommitTime-st0.AuditCommitTime).Microseconds())/float64(st1.AuditCommits-st0.AuditCommits), "commit-µs")
}

// load32 POSTs a client_credentials request b.N times from 32 concurrent
// keep-alive connections and returns the elapsed time; any failure fails b.
func load32(b *testing.B, target, id, secret string) time.Duration {
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	const conns = 32
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
			defer hc.CloseIdleConnections()
			for next.Add(1) <= int64(b.N) {
				req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(id, secret)
				res, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var m struct {
					AccessToken string `json:"access_token"`
				}
				if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&m) != nil || m.AccessToken == "" {
					failed.Add(1)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
	// Process CPU (server and client together) per request, and how many
	// cores were busy on average: below GOMAXPROCS means the run waited
	// (fsync, hand-offs, other load on the machine), not that CPU ran out.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(cpu.Seconds()/el.Seconds(), "cores")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed", n, b.N)
	}
	return el
}

// BenchmarkBaseline_GatewaySignLoopback32 is the ceiling for the one
// above, measured in the same run: the same gateway (Gin, middleware),
// the same client load, a handler that only signs an EdDSA JWT — no
// client authentication, no pool read, no audit record.
//
//	go test -run '^$' -bench 'Loopback32' -benchtime 20000x ./gateway/auth/
func BenchmarkBaseline_GatewaySignLoopback32(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var n atomic.Int64
	sign := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{Issuer: "x", Subject: "c", ID: itoa64(n.Add(1)),
			Audience: jwt.ClaimStrings{"x"}, ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), IssuedAt: jwt.NewNumericDate(now)})
		t.Header["kid"] = "k"
		s, err := t.SignedString(priv)
		if err != nil {
			b.Error(err)
		}
		writeJSON(w, 200, tokenResponse{AccessToken: s, TokenType: "Bearer", ExpiresIn: 60})
	})
	gw, err := gateway.New(&gateway.Options{Entropy: &fakeEntropy{}, Routes: []gateway.Route{{Methods: []string{"POST"}, Path: "/sign", Handler: sign}}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptestServer(b, gw)
	el := load32(b, srv.URL+"/sign", "id", "secret")
	b.ReportMetric(float64(b.N)/el.Seconds(), "tokens/s")
}

// auditRecordsAll pages through the whole audit log.
func (h *harness) auditRecordsAll() []store.AuditRecord {
	var all []store.AuditRecord
	var after uint64
	for {
		recs, err := h.audit.List(context.Background(), after, store.MaxAuditList)
		if err != nil {
			h.t.Fatal(err)
		}
		all = append(all, recs...)
		if len(recs) < store.MaxAuditList {
			return all
		}
		after = recs[len(recs)-1].Seq
	}
}

// BenchmarkVerify_P99 measures Verify (signature, claims, audience and the
// revocation check against store/bolt's in-memory index holding 10,000
// revoked entries) one call at a time, and reports p50/p90/p99/max
// latency in three cases: "repeat", a token presented again (a client
// reusing its token); "first", the first presentation of a token this
// process issued (in the verified-token cache from its issuance); "cold",
// the verified-token cache off, so every call does the public-key
// operation, as for a token issued before a restart.
//
//	go test -run '^$' -bench Verify_P99 -benchtime 20000x ./gateway/auth/
func BenchmarkVerify_P99(b *testing.B) {
	for _, alg := range []string{store.AlgEdDSA, store.AlgES256} {
		for _, mode := range []string{"repeat", "first", "cold"} {
			b.Run(alg+"-"+mode, func(b *testing.B) {
				h := newHarness(b, &harnessOpts{bolt: true, mutate: func(o *Options) {
					o.Alg = alg
					if mode == "cold" {
						o.VerifiedCache = -1
					}
				}})
				ctx := context.Background()
				rev := h.st.Revocations()
				parallel(32, 10000, func(i int) {
					if err := rev.Revoke(ctx, "revoked-"+itoa64(int64(i)), time.Now().Add(time.Hour)); err != nil {
						b.Error(err)
					}
				})
				h.addUser("bench", "pw", "", AllScopes...)
				tok, _ := h.login("bench", "pw")
				const batch = 1000
				toks := make([]string, batch)
				lat := make([]time.Duration, b.N)
				b.ResetTimer()
				for i := range b.N {
					if mode == "first" && i%batch == 0 {
						b.StopTimer()
						parallel(32, batch, func(j int) {
							it, err := h.svc.issue(ctx, grant{kind: "password", subject: "bench", scopes: AllScopes, aud: h.svc.Resources()})
							if err != nil {
								b.Error(err)
								return
							}
							toks[j] = it.token
						})
						b.StartTimer()
					}
					if mode == "first" {
						tok = toks[i%batch]
					}
					t0 := time.Now()
					if _, err := h.svc.Verify(ctx, tok, h.base); err != nil {
						b.Fatal(err)
					}
					lat[i] = time.Since(t0)
				}
				b.StopTimer()
				slices.Sort(lat)
				q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
				b.ReportMetric(q(0.5), "p50-µs")
				b.ReportMetric(q(0.9), "p90-µs")
				b.ReportMetric(q(0.99), "p99-µs")
				b.ReportMetric(q(1), "max-µs")
			})
		}
	}
}

// parallel runs f(0..n-1) on g goroutines.
func parallel(g, n int, f func(i int)) {
	var wg sync.WaitGroup
	for k := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < n; i += g {
				f(i)
			}
		}()
	}
	wg.Wait()
}
