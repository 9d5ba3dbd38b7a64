package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/admin"
)

// writeConfig writes body to a temp file and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qrngd.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validBase = `mode: dev
listen: 127.0.0.1:0
sources:
  - name: sim0
    kind: sim
`

func TestConfig_Valid(t *testing.T) {
	p := writeConfig(t, `# every key
mode: production
listen: "[::1]:9000"
data_dir: /srv/qrngd
log_level: debug
pool:
  policy: os
  min_healthy_sources: 2
  capacity_bytes: 65536
  reseed_interval: 30s
  full_wait: 500ms
health:
  alpha_log2: 30
  permanent_alpha_log2: 60
  max_intermittent: 4
  intermittent_window: 2m
  quarantine_for: 10s
  max_quarantines: 2
  quarantine_window: 2h
sources:
  - name: a
    kind: sim
    min_entropy: 7.25
    rate: 1000
    seed: 42
  - name: b.2
    kind: sim
    health:
      alpha_log2: 40
      permanent_alpha_log2: 80
http:
  read_header_timeout: 3s
  read_timeout: 20s
  write_timeout: 40s
  idle_timeout: 1m
  shutdown_timeout: 5s
  max_body_bytes: 2048
`)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != "production" || c.Listen != "[::1]:9000" || c.DataDir != "/srv/qrngd" || c.LogLevel != slog.LevelDebug {
		t.Errorf("top: %+v", c)
	}
	if c.Pool != (PoolConfig{entropy.PolicyOS, 2, 65536, 30 * time.Second, 500 * time.Millisecond}) {
		t.Errorf("pool: %+v", c.Pool)
	}
	if c.HTTP != (HTTPConfig{3 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, 5 * time.Second, 2048, 0, "all"}) {
		t.Errorf("http: %+v", c.HTTP)
	}
	a, b := c.Sources[0], c.Sources[1]
	if a.Spec.Name != "a" || a.Spec.Kind != "sim" || a.Spec.MinEntropy != 7.25 || a.Spec.Params["rate"] != 1000 ||
		a.Spec.Params["seed"] != 42 || len(a.Spec.Params) != 2 || a.keyLines["rate"] != 24 {
		t.Errorf("source a: %+v lines %v", a.Spec, a.keyLines)
	}
	want := entropy.HealthConfig{AlphaLog2: 30, PermanentAlphaLog2: 60, MaxIntermittent: 4, IntermittentWindow: 2 * time.Minute,
		QuarantineFor: 10 * time.Second, MaxQuarantines: 2, QuarantineWindow: 2 * time.Hour}
	if a.Health != want {
		t.Errorf("a health %+v", a.Health)
	}
	want.AlphaLog2, want.PermanentAlphaLog2 = 40, 80
	if b.Health != want || len(b.Spec.Params) != 0 {
		t.Errorf("b health %+v params %v", b.Health, b.Spec.Params)
	}

	// Defaults.
	c, err = ParseConfig("min.yaml", []byte(validBase))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pool.Policy != entropy.PolicyFailClosed || c.Pool.MinHealthySources != 1 || c.HTTP.ReadHeaderTimeout != 5*time.Second ||
		c.DataDir != "/var/lib/qrngd" || c.LogLevel != slog.LevelInfo || c.Sources[0].Health != (entropy.HealthConfig{}) {
		t.Errorf("defaults: %+v", c)
	}
}

// TestConfig_Invalid: every invalid configuration names the file, the key
// path, the line and why, and run exits with status 2.
func TestConfig_Invalid(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       string // after "FILE:"
	}{
		{"unknown top key", "listn: x\n" + validBase, `1: listn: unknown key (known: auth, data_dir, health, http, listen, log_level, mcp, mode, pool, sources)`},
		{"unknown nested key", validBase + "pool:\n  polcy: os\n", `7: pool.polcy: unknown key`},
		{"unknown health key", validBase + "    health:\n      alpha: 30\n", `7: sources[0].health.alpha: unknown key`},
		{"wrong type int", validBase + "pool:\n  min_healthy_sources: two\n", `7: pool.min_healthy_sources: want an integer, got "two"`},
		{"wrong type float int", validBase + "pool:\n  capacity_bytes: 1.5\n", `7: pool.capacity_bytes: want an integer, got "1.5"`},
		{"wrong type duration", validBase + "pool:\n  reseed_interval: 5\n", `7: pool.reseed_interval: want a duration`},
		{"wrong type string", "mode: [dev]\n", `1: mode: want a non-empty string, got a list`},
		{"section not mapping", validBase + "http: 5\n", `6: http: want a mapping of keys, got "5"`},
		{"range alpha", validBase + "health:\n  alpha_log2: 10\n", `7: health.alpha_log2: 10 is out of range 20..40`},
		{"range body", validBase + "http:\n  max_body_bytes: 100000000\n", `7: http.max_body_bytes: 100000000 is out of range 1024..16777216`},
		{"range duration", validBase + "pool:\n  full_wait: 2h\n", `7: pool.full_wait: 2h0m0s is out of range 1ms..1m0s`},
		{"key rotation below key retirement", validBase + "auth:\n  access_ttl: 2h\n  signing_key_rotation: 1h\n", `8: auth.signing_key_rotation: 1h0m0s is shorter than auth.access_ttl + auth.leeway + 1m (2h1m30s)`},
		{"log_requests enum", validBase + "http:\n  log_requests: some\n", `7: http.log_requests: "some" is not one of all, errors`},
		{"verified cache 0", validBase + "auth:\n  verified_cache_entries: 0\n", `7: auth.verified_cache_entries: 0 is ambiguous: -1 turns the cache off, 1..1048576 sizes it`},
		{"key rotation below 1h", validBase + "auth:\n  signing_key_rotation: 30m\n", `7: auth.signing_key_rotation: 30m0s is below 1h (0s turns scheduled rotation off)`},
		{"range min entropy", validBase + "    min_entropy: 9\n", `6: sources[0].min_entropy: 9 is out of range (0, 8]`},
		{"range min entropy zero", validBase + "    min_entropy: 0\n", `6: sources[0].min_entropy: 0 is out of range (0, 8]`},
		{"permanent below alpha", validBase + "health:\n  alpha_log2: 30\n  permanent_alpha_log2: 25\n", `8: health.permanent_alpha_log2: 25 must exceed alpha_log2 30`},
		{"permanent equals alpha", validBase + "    health:\n      alpha_log2: 30\n      permanent_alpha_log2: 30\n", `8: sources[0].health.permanent_alpha_log2: 30 must exceed alpha_log2 30`},
		{"enum mode", "mode: staging\n", `1: mode: "staging" is not one of dev, production`},
		{"enum policy", validBase + "pool:\n  policy: open\n", `7: pool.policy: "open" is not one of fail-closed, os`},
		{"enum log level", "log_level: verbose\n", `1: log_level: "verbose" is not one of debug, info, warn, error`},
		{"listen", "listen: localhost\n", `1: listen: "localhost" is not host:port`},
		{"listen port", "listen: 'localhost:http2x'\n", `1: listen: "localhost:http2x" has no valid port`},
		{"duplicate key", "mode: dev\nmode: production\n", `2: mode: duplicate key (first at line 1)`},
		{"duplicate source", validBase + "  - name: sim0\n    kind: sim\n", `6: sources[1].name: duplicate source name "sim0" (first at line 4)`},
		{"unknown kind", "sources:\n  - name: q\n    kind: quantum-foo\n", `3: sources[0].kind: unknown source kind "quantum-foo" (known kinds: `},
		{"missing kind", "sources:\n  - name: q\n", `2: sources[0].kind: required`},
		{"missing name", "sources:\n  - kind: sim\n", `2: sources[0].name: required`},
		{"bad name", "sources:\n  - name: 'a b'\n    kind: sim\n", `2: sources[0].name: "a b" is not 1 to 64 characters`},
		{"sources not list", "sources:\n  name: a\n", `2: sources: want a list of sources, got a mapping`},
		{"no sources", "mode: dev\n", ` sources: at least one source is required`},
		{"empty sources", "sources: []\n", `1: sources: at least one source is required`},
		{"min sources", validBase + "pool:\n  min_healthy_sources: 2\n", `7: pool.min_healthy_sources: 2 exceeds the 1 configured sources`},
		{"syntax", "mode: dev\n  listen: [\n", `2: (syntax): mapping values are not allowed`},
		{"empty file", "", ` sources: at least one source is required`},
		{"auth unknown key", validBase + "auth:\n  isuer: http://x\n", `7: auth.isuer: unknown key (known: access_ttl, alg, disabled, issuer, leeway, limits, refresh_ttl, signing_key_rotation, users, verified_cache_entries)`},
		{"auth disabled production", strings.Replace(validBase, "mode: dev", "mode: production", 1) + "auth:\n  disabled: true\n", `7: auth.disabled: production mode requires authentication`},
		{"auth disabled type", validBase + "auth:\n  disabled: yes please\n", `7: auth.disabled: want true or false, got "yes please"`},
		{"auth issuer scheme", validBase + "auth:\n  issuer: ftp://x\n", `7: auth.issuer: "ftp://x" is not an absolute http(s) URL`},
		{"auth issuer slash", validBase + "auth:\n  issuer: https://q.example/\n", `7: auth.issuer: "https://q.example/" must have no query, fragment or trailing slash`},
		{"auth alg", validBase + "auth:\n  alg: HS256\n", `7: auth.alg: "HS256" is not one of EdDSA, ES256`},
		{"auth leeway", validBase + "auth:\n  leeway: 2m\n", `7: auth.leeway: 2m0s is out of range 0s..1m0s`},
		{"auth ttl order", validBase + "auth:\n  access_ttl: 2h\n  refresh_ttl: 1h\n", `8: auth.refresh_ttl: 1h0m0s is shorter than auth.access_ttl 2h0m0s`},
		{"auth limits route", validBase + "auth:\n  limits:\n    logn: {off: true}\n", `8: auth.limits.logn: unknown key (known: api, discovery, introspect, keys, login, logout, refresh, revoke, token)`},
		{"auth limits rate", validBase + "auth:\n  limits:\n    api: {ip_rate: -1}\n", `8: auth.limits.api.ip_rate: -1 is out of range (0, 1e+06]`},
		{"auth user scope", validBase + "auth:\n  users:\n    - {username: bob, password: pw12345678, scopes: [root]}\n", `8: auth.users[0].scopes: unknown scope "root"`},
		{"auth user name", validBase + "auth:\n  users:\n    - {username: \"a\\u0007b\", password: pw12345678}\n", `8: auth.users[0].username: `},
		{"auth user no password", validBase + "auth:\n  users:\n    - {username: bob}\n", `8: auth.users[0]: username and password are required`},
		{"mcp origin path", validBase + "mcp:\n  allowed_origins: [\"https://a.example/x\"]\n", `7: mcp.allowed_origins[0]: "https://a.example/x" is not an origin`},
		{"mcp stateless", validBase + "mcp:\n  stateless: 1\n", `7: mcp.stateless: want true or false, got "1"`},
		{"mcp body", validBase + "mcp:\n  max_body_bytes: 10\n", `7: mcp.max_body_bytes: 10 is out of range 1024..16777216`},
		{"mcp tool limit half", validBase + "mcp:\n  tool_limit: {rate: 5}\n", `7: mcp.tool_limit: want both rate and burst`},
		{"mcp session limit key", validBase + "mcp:\n  session_limit: {rate: 1, burst: 2, per: 1m}\n", `7: mcp.session_limit.per: unknown key (known: burst, rate)`},
		{"http in flight", validBase + "http:\n  max_in_flight_bytes: 1024\n", `7: http.max_in_flight_bytes: 1024 is out of range 3145728..17179869184`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			_, err := LoadConfig(p)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("LoadConfig: %v, want a *ConfigError", err)
			}
			if want := p + ":" + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error\n  %s\nwant prefix\n  %s", err, want)
			}
			var stdout, stderr bytes.Buffer
			err = run(context.Background(), []string{"-config", p}, &stdout, &stderr)
			if code := exitCode(err); code != 2 {
				t.Fatalf("run: exit %d (%v), want 2", code, err)
			}
		})
	}
}

// TestConfig_DriverParams: the sim driver's parameter errors come back as
// configuration errors naming sources[i].key and its line (exit status 2).
func TestConfig_DriverParams(t *testing.T) {
	for _, tc := range []struct{ name, extra, want string }{
		{"unknown key", "    sampel_bits: 8\n", `:6: sources[0].sampel_bits: unknown key for this source kind`},
		{"wrong type", "    rate: fast\n", `:6: sources[0].rate: want a `},
		{"out of range", "    sample_bits: 9\n", `:6: sources[0].sample_bits: `},
		{"dependent key", "    stuck_value: 3\n", `:6: sources[0].stuck_value: needs "stuck_after"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, validBase+tc.extra)
			if _, err := LoadConfig(p); err != nil {
				t.Fatalf("LoadConfig: %v (driver keys are checked by the driver)", err)
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"-config", p, "-data-dir", t.TempDir()}, &stdout, &stderr)
			if code := exitCode(err); code != 2 || !strings.HasPrefix(err.Error(), p+tc.want) {
				t.Fatalf("run: exit %d: %v\nwant prefix %s", code, err, p+tc.want)
			}
		})
	}
}

func TestConfig_ShippedFiles(t *testing.T) {
	for _, f := range []string{"../../systemd/qrngd.dev.yaml", "../../systemd/qrngd.yaml"} {
		c, err := LoadConfig(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if c.Pool.Policy != entropy.PolicyFailClosed || len(c.Sources) == 0 {
			t.Errorf("%s: policy %q, %d sources", f, c.Pool.Policy, len(c.Sources))
		}
	}
	c, _ := LoadConfig("../../systemd/qrngd.dev.yaml")
	if c == nil || c.Mode != modeDev || c.Listen != "127.0.0.1:8000" || c.DataDir != "./var" || len(c.Sources) != 1 || c.Sources[0].Spec.Kind != "sim" {
		t.Fatalf("dev config: %+v", c)
	}
}

func TestRun_Flags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-version"}, 0, "qrngd "},
		{[]string{"-list-devices"}, 0, "KIND"},
		{[]string{}, 2, ""},
		{[]string{"-bogus"}, 2, ""},
		{[]string{"-config", "x.yaml", "extra"}, 2, ""},
		{[]string{"-config", "/nonexistent/qrngd.yaml"}, 2, ""},
		{[]string{"-config", "../../systemd/qrngd.dev.yaml", "-listen", "nope"}, 2, ""},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		if code := exitCode(err); code != tc.code || !strings.Contains(stdout.String(), tc.out) {
			t.Errorf("%q: exit %d (%v), stdout %q", tc.args, code, err, stdout.String())
		}
	}
}

// TestConfig_AuthMCP: the auth and mcp sections, their defaults, and the
// keys production refuses.
func TestConfig_AuthMCP(t *testing.T) {
	c, err := ParseConfig("a.yaml", []byte(validBase+`auth:
  issuer: https://qrng.example.com
  alg: ES256
  access_ttl: 5m
  refresh_ttl: 48h
  leeway: 10s
  signing_key_rotation: 2160h
  verified_cache_entries: 1000
  limits:
    api: {principal_rate: 5, principal_burst: 7}
    revoke: {off: true}
  users:
    - username: alice
      password: correct horse
      scopes: [random:read, mcp:tools]
mcp:
  allowed_origins: ["http://localhost:6274", "https://app.example.com"]
  stateless: true
  disable_loopback_host_check: true
  json_response: true
  session_idle_timeout: 2m
  max_body_bytes: 4096
  tool_limit: {rate: 2.5, burst: 4}
  session_limit: {rate: 0.5, burst: 3}
http:
  max_in_flight_bytes: 8388608
  log_requests: errors
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Auth
	if a.Disabled || a.Issuer != "https://qrng.example.com" || a.Alg != "ES256" || a.AccessTTL != 5*time.Minute ||
		a.RefreshTTL != 48*time.Hour || a.Leeway != 10*time.Second || a.KeyRotation != 90*24*time.Hour || a.VerifiedCache != 1000 || len(a.Users) != 1 ||
		a.Users[0].Username != "alice" || a.Users[0].Password != "correct horse" || len(a.Users[0].Scopes) != 2 {
		t.Errorf("auth: %+v", a)
	}
	if l := a.Limits["api"]; l.Off || l.IP != nil || l.Principal == nil || l.Principal.Rate != 5 || l.Principal.Burst != 7 || !a.Limits["revoke"].Off {
		t.Errorf("limits: %+v", a.Limits)
	}
	if len(a.plaintext) != 1 || a.plaintext[0] != "auth.users[0].password" || a.plaintextLine != 19 {
		t.Errorf("plaintext keys %v at line %d", a.plaintext, a.plaintextLine)
	}
	m := c.MCP
	if len(m.AllowedOrigins) != 2 || !m.Stateless || !m.DisableLoopbackHostCheck || !m.JSONResponse || m.SessionIdleTimeout != 2*time.Minute || m.MaxBodyBytes != 4096 {
		t.Errorf("mcp: %+v", m)
	}
	if m.ToolLimit == nil || m.ToolLimit.Rate != 2.5 || m.ToolLimit.Burst != 4 ||
		m.SessionLimit == nil || m.SessionLimit.Rate != 0.5 || m.SessionLimit.Burst != 3 {
		t.Errorf("mcp limits: tool %+v session %+v", m.ToolLimit, m.SessionLimit)
	}
	if c.HTTP.MaxInFlightBytes != 8<<20 {
		t.Errorf("http.max_in_flight_bytes = %d", c.HTTP.MaxInFlightBytes)
	}
	if c.HTTP.LogRequests != "errors" {
		t.Errorf("http.log_requests = %q", c.HTTP.LogRequests)
	}
	c, err = ParseConfig("min.yaml", []byte(validBase))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Disabled || c.Auth.Issuer != "" || c.Auth.Alg != "EdDSA" || c.Auth.AccessTTL != 15*time.Minute ||
		c.MCP.Stateless || c.MCP.DisableLoopbackHostCheck || c.MCP.MaxBodyBytes != 1<<20 || c.MCP.SessionIdleTimeout != 15*time.Minute {
		t.Errorf("defaults: auth %+v mcp %+v", c.Auth, c.MCP)
	}
	// qrngctl's default socket is admin.sock in the default data directory.
	if got := filepath.Join(c.DataDir, admin.SocketName); got != "/var/lib/qrngd/admin.sock" {
		t.Errorf("admin socket by default at %s, qrngctl looks in /var/lib/qrngd/admin.sock", got)
	}
}

// TestRun_ProductionRefusesPlaintext: production with a plaintext password
// in the configuration stops with exit status 2, naming the key and its line.
func TestRun_ProductionRefusesPlaintext(t *testing.T) {
	p := writeConfig(t, strings.Replace(validBase, "mode: dev", "mode: production", 1)+
		"    seed: 3\nauth:\n  users:\n    - username: bob\n      password: hunter2hunter2\n")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-config", p, "-data-dir", t.TempDir()}, &stdout, &stderr)
	want := p + ":10: auth.users[0].password: gateway/auth: not allowed in production mode: plaintext passwords in the configuration"
	if exitCode(err) != 2 || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("production with a plaintext password: exit %d: %v\nwant prefix %s", exitCode(err), err, want)
	}
	if strings.Contains(err.Error()+stderr.String(), "hunter2") {
		t.Fatal("the password leaked into the error or the log")
	}
}

// unavailableDriver is kind "test-unavailable": its device is never present.
type unavailableDriver struct{}

func (unavailableDriver) Kind() string                                       { return "test-unavailable" }
func (unavailableDriver) Discover(context.Context) ([]drivers.Device, error) { return nil, nil }
func (unavailableDriver) Open(context.Context, drivers.Spec) (entropy.Source, error) {
	return nil, errors.New("test: device not found")
}

func init() { drivers.MustRegister(unavailableDriver{}) }

// TestOpenSources_Unavailable: production refuses to start with fewer
// sources than it needs; dev logs the failure and carries on.
func TestOpenSources_Unavailable(t *testing.T) {
	body := validBase + "  - name: gone\n    kind: test-unavailable\n"
	for _, tc := range []struct {
		mode, min string
		wantErr   string
		opened    int
	}{
		{"dev", "1", "", 1},
		{"dev", "2", "", 1},
		{"production", "1", "", 1},
		{"production", "2", "only 1 of 2 sources opened; the pool needs 2", 0},
	} {
		c, err := ParseConfig("x.yaml", []byte(strings.Replace(body, "mode: dev", "mode: "+tc.mode+"\npool:\n  min_healthy_sources: "+tc.min, 1)))
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		srcs, err := openSources(context.Background(), c, slog.New(slog.NewJSONHandler(&logs, nil)))
		if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) || tc.wantErr == "" && err != nil || len(srcs) != tc.opened {
			t.Errorf("%s min %s: %d opened, err %v", tc.mode, tc.min, len(srcs), err)
		}
		for _, s := range srcs {
			_ = s.Close()
		}
		if !strings.Contains(logs.String(), `"msg":"source failed to open","source":"gone","kind":"test-unavailable","err":"test: device not found"`) {
			t.Errorf("failure not logged: %s", logs.String())
		}
	}
}

// TestConfig_PasswordNeverEchoed: a password of the wrong YAML type is an
// error naming the key, but the message (stderr, the journal) never holds
// the value.
func TestConfig_PasswordNeverEchoed(t *testing.T) {
	for _, pw := range []string{"91827364554", "true", "[s3cr3tpart]", "{a: s3cr3tpart}"} {
		_, err := ParseConfig("f.yaml", []byte(validBase+"auth:\n  users:\n    - username: bob\n      password: "+pw+"\n"))
		if err == nil || !strings.Contains(err.Error(), "auth.users[0].password") {
			t.Errorf("password %s: %v, want an error naming auth.users[0].password", pw, err)
			continue
		}
		if strings.Contains(err.Error(), strings.Trim(pw, "[]{}a: ")) {
			t.Errorf("password %s echoed: %v", pw, err)
		}
	}
}
