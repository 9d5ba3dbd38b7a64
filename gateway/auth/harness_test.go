package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/store"
	"github.com/qrngd/qrngd/store/bolt"
	"github.com/qrngd/qrngd/store/mem"
)

// fakeEntropy serves crypto/rand (tests only) and can be told to fail the
// way the engine does when the pool cannot serve.
type fakeEntropy struct {
	fail  atomic.Bool
	reads atomic.Int64
	full  atomic.Int64 // reads in mode full
}

func (f *fakeEntropy) Read(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
	f.reads.Add(1)
	if mode == entropy.ModeFull {
		f.full.Add(1)
	}
	if f.fail.Load() {
		return entropy.Provenance{Mode: mode}, fmt.Errorf("%w: 0 healthy sources, policy fail-closed needs 1", entropy.ErrInsufficientEntropy)
	}
	if _, err := rand.Read(p); err != nil {
		return entropy.Provenance{}, err
	}
	return entropy.Provenance{Mode: mode, Sources: []string{"sim0"}}, nil
}

func (f *fakeEntropy) Status() entropy.Status {
	st := entropy.StateHealthy
	h := 1
	if f.fail.Load() {
		st, h = entropy.StateQuarantined, 0
	}
	return entropy.Status{
		Pool:    entropy.PoolStatus{Policy: entropy.PolicyFailClosed, Ready: h > 0, HealthySources: h, MinSources: 1},
		Sources: []entropy.SourceStatus{{SourceInfo: entropy.SourceInfo{Name: "sim0", Kind: "sim", SampleBits: 8, MinEntropy: 7}, State: st}},
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     testing.TB
	svc   *Service
	st    Stores
	ent   *fakeEntropy
	clk   *clock
	srv   *httptest.Server
	base  string // issuer = server URL
	audit store.Audit
}

type harnessOpts struct {
	bolt   bool
	mutate func(*Options)
}

func newHarness(t testing.TB, ho *harnessOpts) *harness {
	t.Helper()
	if ho == nil {
		ho = &harnessOpts{}
	}
	h := &harness{t: t, ent: &fakeEntropy{}, clk: &clock{t: time.Now().Truncate(time.Second)}}
	var st Stores
	if ho.bolt {
		db, err := bolt.Open(t.TempDir(), &bolt.Options{Rand: NewEntropyReader(h.ent, entropy.ModeFull, time.Second), Now: h.clk.Now, Argon2: &store.TestArgon2Params})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st = db
	} else {
		db, err := mem.New(&mem.Options{Rand: NewEntropyReader(h.ent, entropy.ModeFull, time.Second), Now: h.clk.Now, Argon2: &store.TestArgon2Params})
		if err != nil {
			t.Fatal(err)
		}
		st = db
	}
	h.st, h.audit = st, st.Audit()
	// The issuer must be the server's URL, which exists only once the
	// server does: start it with a handler that is swapped in below.
	var handler atomic.Value
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	h.base = h.srv.URL
	o := &Options{Issuer: h.base, Entropy: h.ent, Store: st, Now: h.clk.Now,
		Limits: map[string]RouteLimit{}, Backoff: Backoff{Off: true}}
	for _, r := range []string{RouteLogin, RouteRefresh, RouteLogout, RouteToken, RouteRevoke, RouteIntrospect, RouteKeys, RouteDiscovery, RouteAPI} {
		o.Limits[r] = RouteLimit{Off: true}
	}
	if ho.mutate != nil {
		ho.mutate(o)
	}
	svc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	gw, err := gateway.New(&gateway.Options{Entropy: h.ent, Authorizer: svc, Routes: svc.Routes()})
	if err != nil {
		t.Fatal(err)
	}
	handler.Store(http.Handler(gw))
	return h
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", r.status, r.body, err)
	}
	return m
}

// errCode returns the gateway-shape error code or the OAuth error.
func (r resp) errCode(t testing.TB) string {
	m := r.json(t)
	switch e := m["error"].(type) {
	case string:
		return e
	case map[string]any:
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (h *harness) do(method, path, ctype string, body io.Reader, hdr map[string]string) resp {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (h *harness) postJSON(path, body string, hdr map[string]string) resp {
	return h.do(http.MethodPost, path, "application/json", strings.NewReader(body), hdr)
}

func (h *harness) postForm(path string, v url.Values, hdr map[string]string) resp {
	return h.do(http.MethodPost, path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()), hdr)
}

func bearerHdr(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

func (h *harness) addUser(name, pw, tenant string, scopes ...string) {
	h.t.Helper()
	if err := h.st.Users().Create(context.Background(), store.User{Username: name, Tenant: tenant, Scopes: scopes}, pw); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) addTenant(id string) {
	h.t.Helper()
	if err := h.st.Tenants().Create(context.Background(), store.Tenant{ID: id}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) addKey(tenant string, scopes ...string) (id, secret string) {
	h.t.Helper()
	k, sec, err := h.st.APIKeys().Create(context.Background(), store.APIKeySpec{Tenant: tenant, Scopes: scopes})
	if err != nil {
		h.t.Fatal(err)
	}
	return k.ClientID, sec
}

// login returns access and refresh tokens.
func (h *harness) login(name, pw string) (string, string) {
	h.t.Helper()
	r := h.postJSON("/auth/login", fmt.Sprintf(`{"username":%q,"password":%q}`, name, pw), nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("login %s: %d %s", name, r.status, r.body)
	}
	m := r.json(h.t)
	return m["access_token"].(string), m["refresh_token"].(string)
}

// clientToken gets a client_credentials token (client_secret_basic).
func (h *harness) clientToken(id, secret string, extra url.Values) string {
	h.t.Helper()
	v := url.Values{"grant_type": {"client_credentials"}}
	for k, vs := range extra {
		v[k] = vs
	}
	req, _ := http.NewRequest(http.MethodPost, h.base+"/oauth/token", strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	res, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		h.t.Fatalf("token: %d %s", res.StatusCode, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m["access_token"].(string)
}

// auditTypes lists the types of all audit records.
func (h *harness) auditRecords() []store.AuditRecord {
	h.t.Helper()
	recs, err := h.audit.List(context.Background(), 0, store.MaxAuditList)
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

func httptestServer(t testing.TB, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}
