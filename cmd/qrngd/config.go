package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	neturl "net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qrngd/qrngd/drivers"
	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/auth"
	"github.com/qrngd/qrngd/gateway/ratelimit"
	"github.com/qrngd/qrngd/store"
)

// maxConfigBytes bounds the configuration file.
const maxConfigBytes = 1 << 20

// Config is the daemon's configuration file (YAML). Every key is documented
// in systemd/qrngd.yaml.
type Config struct {
	file string

	Mode     string // "dev" or "production"
	Listen   string
	DataDir  string
	LogLevel slog.Level
	Pool     PoolConfig
	Health   entropy.HealthConfig // defaults for every source
	Sources  []SourceConfig
	HTTP     HTTPConfig
	Auth     AuthConfig
	MCP      MCPConfig
}

// AuthConfig is the `auth:` section.
type AuthConfig struct {
	// Disabled serves every route without authentication: dev only,
	// production refuses it.
	Disabled   bool
	Issuer     string // "" = http://<bound listen address>
	Alg        string // EdDSA or ES256
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Leeway     time.Duration
	// KeyRotation rotates the JWT signing key once it is this old
	// (0 = only by `qrngctl signing-key rotate`).
	KeyRotation time.Duration
	// VerifiedCache is how many verified and issued tokens skip the
	// signature check when presented (-1 = off).
	VerifiedCache int
	Users         []UserConfig               // dev only: seeded at start
	Limits        map[string]auth.RouteLimit // per route name (auth.Route*)

	// plaintext lists the keys holding plaintext passwords
	// ("auth.users[0].password"), which production refuses.
	plaintext []string
	// plaintextLine is the line of the first of them.
	plaintextLine int
}

// UserConfig is one `auth.users` entry (dev only).
type UserConfig struct {
	Username string
	Password string
	Scopes   []string
}

// MCPConfig is the `mcp:` section.
type MCPConfig struct {
	AllowedOrigins     []string
	Stateless          bool
	JSONResponse       bool
	SessionIdleTimeout time.Duration
	MaxBodyBytes       int64
	// DisableLoopbackHostCheck: a reverse proxy on this host forwards the
	// public Host header to a loopback listener (go-sdk refuses that
	// otherwise, as a DNS-rebinding guard).
	DisableLoopbackHostCheck bool
	// ToolLimit and SessionLimit are per token subject (nil: gateway/mcp's
	// defaults, 10 calls/s burst 20 and 1 initialize per 10 s burst 10).
	ToolLimit, SessionLimit *ratelimit.Options
}

// PoolConfig is the `pool:` section.
type PoolConfig struct {
	Policy            entropy.Policy
	MinHealthySources int
	CapacityBytes     int
	ReseedInterval    time.Duration
	FullWait          time.Duration
}

// SourceConfig is one `sources:` entry.
type SourceConfig struct {
	Spec   drivers.Spec
	Health entropy.HealthConfig // defaults merged with the entry's overrides

	index    int
	line     int            // line of the entry
	keyLines map[string]int // line of each kind-specific key
}

// HTTPConfig is the `http:` section.
type HTTPConfig struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	MaxBodyBytes      int64
	MaxInFlightBytes  int64  // memory /v1/random answers may hold at once; 0 = gateway default
	LogRequests       string // "all" (default) or "errors": which requests get an access-log line
}

const (
	modeDev        = "dev"
	modeProduction = "production"
)

// defaultConfig holds the defaults that apply when a key is absent.
func defaultConfig(file string) *Config {
	return &Config{
		file:     file,
		Mode:     modeProduction,
		Listen:   "127.0.0.1:8000",
		DataDir:  "/var/lib/qrngd",
		LogLevel: slog.LevelInfo,
		Pool: PoolConfig{
			Policy:            entropy.PolicyFailClosed,
			MinHealthySources: 1,
			CapacityBytes:     1 << 20,
			ReseedInterval:    time.Minute,
			FullWait:          2 * time.Second,
		},
		HTTP: HTTPConfig{
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ShutdownTimeout:   10 * time.Second,
			MaxBodyBytes:      64 << 10,
			LogRequests:       "all",
		},
		Auth: AuthConfig{
			Alg:           store.AlgEdDSA,
			AccessTTL:     15 * time.Minute,
			RefreshTTL:    24 * time.Hour,
			Leeway:        30 * time.Second,
			KeyRotation:   30 * 24 * time.Hour,
			VerifiedCache: 1 << 14,
		},
		MCP: MCPConfig{
			SessionIdleTimeout: 15 * time.Minute,
			MaxBodyBytes:       1 << 20,
		},
	}
}

// ConfigError is an invalid configuration: the file, the key path (e.g.
// sources[0].rate), its line and why.
type ConfigError struct {
	File   string
	Line   int // 0 when the key is absent
	Path   string
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Path, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Path, e.Reason)
}

// decoder walks the YAML node tree, so that every error names the key path
// and line. It keeps the first error.
type decoder struct {
	file  string
	err   *ConfigError
	nodes map[string]*yaml.Node // key node of every path seen, for cross-key errors
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if d.err != nil {
		return
	}
	if n == nil {
		n = d.nodes[path]
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	if path == "" {
		path = "(top level)"
	}
	d.err = &ConfigError{File: d.file, Line: line, Path: path, Reason: fmt.Sprintf(format, args...)}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping calls fields[key] for every key of the mapping n. Unknown keys go
// to rest when it is non-nil, else they are errors; duplicates are errors.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]func(*yaml.Node, string), rest func(k, v *yaml.Node, path string)) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping of keys, got %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content) && d.err == nil; i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be plain strings")
			return
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "duplicate key (first at line %d)", first)
			return
		}
		seen[k.Value] = k.Line
		d.nodes[p] = k
		if f, ok := fields[k.Value]; ok {
			f(v, p)
			continue
		}
		if rest != nil {
			rest(k, v, p)
			continue
		}
		known := make([]string, 0, len(fields))
		for f := range fields {
			known = append(known, f)
		}
		sort.Strings(known)
		d.fail(k, p, "unknown key (known: %s)", strings.Join(known, ", "))
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (d *decoder) str(n *yaml.Node, path string, out *string) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || n.Value == "" {
		d.fail(n, path, "want a non-empty string, got %s", describe(n))
		return
	}
	*out = n.Value
}

func (d *decoder) enum(n *yaml.Node, path string, out *string, allowed ...string) {
	var s string
	d.str(n, path, &s)
	if d.err != nil {
		return
	}
	for _, a := range allowed {
		if s == a {
			*out = s
			return
		}
	}
	d.fail(n, path, "%q is not one of %s", s, strings.Join(allowed, ", "))
}

func (d *decoder) integer(n *yaml.Node, path string, out *int, lo, hi int) {
	var v int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		d.fail(n, path, "want an integer, got %s", describe(n))
		return
	}
	if v < lo || v > hi {
		d.fail(n, path, "%d is out of range %d..%d", v, lo, hi)
		return
	}
	*out = v
}

func (d *decoder) float(n *yaml.Node, path string, out *float64, lo, hi float64) {
	var v float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil || math.IsNaN(v) {
		d.fail(n, path, "want a number, got %s", describe(n))
		return
	}
	if !(v > lo) || v > hi {
		d.fail(n, path, "%v is out of range (%v, %v]", v, lo, hi)
		return
	}
	*out = v
}

func (d *decoder) duration(n *yaml.Node, path string, out *time.Duration, lo, hi time.Duration) {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || err != nil {
		d.fail(n, path, "want a duration such as \"250ms\" or \"1m\", got %s", describe(n))
		return
	}
	if v < lo || v > hi {
		d.fail(n, path, "%v is out of range %v..%v", v, lo, hi)
		return
	}
	*out = v
}

// health decodes a health section; absent keys leave hc unchanged.
func (d *decoder) health(n *yaml.Node, path string, hc *entropy.HealthConfig) {
	d.mapping(n, path, map[string]func(*yaml.Node, string){
		"alpha_log2":           func(v *yaml.Node, p string) { d.integer(v, p, &hc.AlphaLog2, 20, 40) },
		"permanent_alpha_log2": func(v *yaml.Node, p string) { d.integer(v, p, &hc.PermanentAlphaLog2, 21, 80) },
		"max_intermittent":     func(v *yaml.Node, p string) { d.integer(v, p, &hc.MaxIntermittent, 1, 1000) },
		"intermittent_window": func(v *yaml.Node, p string) {
			d.duration(v, p, &hc.IntermittentWindow, time.Second, 24*time.Hour)
		},
		"quarantine_for":  func(v *yaml.Node, p string) { d.duration(v, p, &hc.QuarantineFor, time.Second, 24*time.Hour) },
		"max_quarantines": func(v *yaml.Node, p string) { d.integer(v, p, &hc.MaxQuarantines, 1, 1000) },
		"quarantine_window": func(v *yaml.Node, p string) {
			d.duration(v, p, &hc.QuarantineWindow, time.Minute, 7*24*time.Hour)
		},
	}, nil)
}

// yamlLine splits "line N: reason" out of a yaml.v3 syntax error.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// validSourceName: names appear in metrics labels and HTTP headers.
var validSourceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// source keys handled by the daemon; every other key goes to the driver.
const (
	keyName       = "name"
	keyKind       = "kind"
	keyMinEntropy = "min_entropy"
	keyHealth     = "health"
)

func (d *decoder) sources(n *yaml.Node, path string, c *Config, overrides *[]entropy.HealthConfig) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list of sources, got %s", describe(n))
		return
	}
	names := map[string]int{}
	for i, item := range n.Content {
		item = deref(item)
		p := fmt.Sprintf("%s[%d]", path, i)
		sc := SourceConfig{index: i, line: item.Line, keyLines: map[string]int{}, Spec: drivers.Spec{Params: drivers.Params{}}}
		var hc entropy.HealthConfig
		var nameNode, kindNode *yaml.Node
		d.mapping(item, p, map[string]func(*yaml.Node, string){
			keyName: func(v *yaml.Node, kp string) {
				nameNode = v
				d.str(v, kp, &sc.Spec.Name)
				if d.err == nil && !validSourceName.MatchString(sc.Spec.Name) {
					d.fail(v, kp, "%q is not 1 to 64 characters of [A-Za-z0-9._-] starting with a letter or digit", sc.Spec.Name)
				}
			},
			keyKind: func(v *yaml.Node, kp string) {
				kindNode = v
				d.str(v, kp, &sc.Spec.Kind)
			},
			keyMinEntropy: func(v *yaml.Node, kp string) { d.float(v, kp, &sc.Spec.MinEntropy, 0, 8) },
			keyHealth:     func(v *yaml.Node, kp string) { d.health(v, kp, &hc) },
		}, func(k, v *yaml.Node, kp string) {
			var val any
			if err := v.Decode(&val); err != nil {
				d.fail(v, kp, "cannot decode: %v", err)
				return
			}
			sc.Spec.Params[k.Value] = val
			sc.keyLines[k.Value] = k.Line
		})
		if d.err != nil {
			return
		}
		switch {
		case nameNode == nil:
			d.fail(item, p+".name", "required")
		case kindNode == nil:
			d.fail(item, p+".kind", "required (known kinds: %s)", strings.Join(drivers.Kinds(), ", "))
		}
		if d.err != nil {
			return
		}
		if first, dup := names[sc.Spec.Name]; dup {
			d.fail(nameNode, p+".name", "duplicate source name %q (first at line %d)", sc.Spec.Name, first)
			return
		}
		names[sc.Spec.Name] = nameNode.Line
		if _, ok := drivers.Lookup(sc.Spec.Kind); !ok {
			d.fail(kindNode, p+".kind", "unknown source kind %q (known kinds: %s)", sc.Spec.Kind, strings.Join(drivers.Kinds(), ", "))
			return
		}
		c.Sources = append(c.Sources, sc)
		*overrides = append(*overrides, hc)
	}
}

// LoadConfig reads and validates the configuration file.
func LoadConfig(file string) (*Config, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, &ConfigError{File: file, Path: "(file)", Reason: err.Error()}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, &ConfigError{File: file, Path: "(file)", Reason: err.Error()}
	}
	if len(b) > maxConfigBytes {
		return nil, &ConfigError{File: file, Path: "(file)", Reason: fmt.Sprintf("larger than %d bytes", maxConfigBytes)}
	}
	return ParseConfig(file, b)
}

// ParseConfig validates data, the contents of file.
func ParseConfig(file string, data []byte) (*Config, error) {
	c := defaultConfig(file)
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		ce := &ConfigError{File: file, Path: "(syntax)", Reason: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(ce.Reason); m != nil {
			ce.Line, _ = strconv.Atoi(m[1])
			ce.Reason = m[2]
		}
		return nil, ce
	}
	d := &decoder{file: file, nodes: map[string]*yaml.Node{}}
	var top *yaml.Node
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		top = root.Content[0]
	} else {
		top = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: 1}
	}
	var overrides []entropy.HealthConfig
	var logLevel string
	d.mapping(top, "", map[string]func(*yaml.Node, string){
		"mode":     func(v *yaml.Node, p string) { d.enum(v, p, &c.Mode, modeDev, modeProduction) },
		"listen":   func(v *yaml.Node, p string) { d.listen(v, p, &c.Listen) },
		"data_dir": func(v *yaml.Node, p string) { d.str(v, p, &c.DataDir) },
		"log_level": func(v *yaml.Node, p string) {
			d.enum(v, p, &logLevel, "debug", "info", "warn", "error")
			if d.err == nil {
				_ = c.LogLevel.UnmarshalText([]byte(logLevel))
			}
		},
		"pool": func(v *yaml.Node, p string) {
			d.mapping(v, p, map[string]func(*yaml.Node, string){
				"policy": func(v *yaml.Node, p string) {
					var s string
					d.enum(v, p, &s, string(entropy.PolicyFailClosed), string(entropy.PolicyOS))
					c.Pool.Policy = entropy.Policy(s)
				},
				"min_healthy_sources": func(v *yaml.Node, p string) {
					d.integer(v, p, &c.Pool.MinHealthySources, 1, 64)
				},
				"capacity_bytes":  func(v *yaml.Node, p string) { d.integer(v, p, &c.Pool.CapacityBytes, 4096, 1<<30) },
				"reseed_interval": func(v *yaml.Node, p string) { d.duration(v, p, &c.Pool.ReseedInterval, time.Second, 24*time.Hour) },
				"full_wait":       func(v *yaml.Node, p string) { d.duration(v, p, &c.Pool.FullWait, time.Millisecond, time.Minute) },
			}, nil)
		},
		"health": func(v *yaml.Node, p string) { d.health(v, p, &c.Health) },
		"sources": func(v *yaml.Node, p string) {
			d.sources(v, p, c, &overrides)
		},
		"http": func(v *yaml.Node, p string) {
			h := &c.HTTP
			d.mapping(v, p, map[string]func(*yaml.Node, string){
				"read_header_timeout": func(v *yaml.Node, p string) { d.duration(v, p, &h.ReadHeaderTimeout, time.Second, time.Minute) },
				"read_timeout":        func(v *yaml.Node, p string) { d.duration(v, p, &h.ReadTimeout, time.Second, 10*time.Minute) },
				"write_timeout":       func(v *yaml.Node, p string) { d.duration(v, p, &h.WriteTimeout, time.Second, 10*time.Minute) },
				"idle_timeout":        func(v *yaml.Node, p string) { d.duration(v, p, &h.IdleTimeout, time.Second, time.Hour) },
				"shutdown_timeout":    func(v *yaml.Node, p string) { d.duration(v, p, &h.ShutdownTimeout, time.Second, 10*time.Minute) },
				"max_body_bytes": func(v *yaml.Node, p string) {
					var n int
					d.integer(v, p, &n, 1024, 16<<20)
					h.MaxBodyBytes = int64(n)
				},
				"max_in_flight_bytes": func(v *yaml.Node, p string) {
					var n int
					d.integer(v, p, &n, 3<<20, 1<<34)
					h.MaxInFlightBytes = int64(n)
				},
				"log_requests": func(v *yaml.Node, p string) { d.enum(v, p, &h.LogRequests, "all", "errors") },
			}, nil)
		},
		"auth": func(v *yaml.Node, p string) { d.auth(v, p, &c.Auth) },
		"mcp":  func(v *yaml.Node, p string) { d.mcp(v, p, &c.MCP) },
	}, nil)
	if d.err != nil {
		return nil, d.err
	}

	// Cross-key checks.
	switch {
	case len(c.Sources) == 0:
		d.fail(nil, "sources", "at least one source is required")
	case c.Pool.MinHealthySources > len(c.Sources):
		d.fail(nil, "pool.min_healthy_sources", "%d exceeds the %d configured sources: the pool could never be ready",
			c.Pool.MinHealthySources, len(c.Sources))
	}
	if c.Mode == modeProduction && c.Auth.Disabled {
		d.fail(nil, "auth.disabled", "production mode requires authentication; auth.disabled is for mode: dev only")
	}
	if c.Auth.RefreshTTL < c.Auth.AccessTTL {
		d.fail(nil, "auth.refresh_ttl", "%v is shorter than auth.access_ttl %v", c.Auth.RefreshTTL, c.Auth.AccessTTL)
	}
	// A rotated-out key stays published access_ttl + leeway + 1m
	// (auth.Options.KeyRetire); rotating faster would only pile up keys.
	if r := c.Auth.AccessTTL + c.Auth.Leeway + time.Minute; c.Auth.KeyRotation > 0 && c.Auth.KeyRotation < r {
		d.fail(nil, "auth.signing_key_rotation", "%v is shorter than auth.access_ttl + auth.leeway + 1m (%v), how long a retired key stays published", c.Auth.KeyRotation, r)
	}
	d.checkPermanent(c.Health, "health", nil)
	for i := range c.Sources {
		c.Sources[i].Health = mergeHealth(c.Health, overrides[i])
		d.checkPermanent(c.Sources[i].Health, fmt.Sprintf("sources[%d].health", i), nil)
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

// checkPermanent: the permanent-failure cutoff must be rarer than the
// intermittent one (SP 800-90B §4.4 cutoffs at a smaller alpha).
func (d *decoder) checkPermanent(hc entropy.HealthConfig, path string, n *yaml.Node) {
	if a := max(hc.AlphaLog2, 20); hc.PermanentAlphaLog2 != 0 && hc.PermanentAlphaLog2 <= a {
		d.fail(n, path+".permanent_alpha_log2", "%d must exceed alpha_log2 %d", hc.PermanentAlphaLog2, a)
	}
}

func (d *decoder) listen(n *yaml.Node, path string, out *string) {
	var s string
	d.str(n, path, &s)
	if d.err != nil {
		return
	}
	if err := checkListen(s); err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	*out = s
}

// checkListen accepts host:port with a numeric port.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("%q has no valid port", s)
	}
	return nil
}

// mergeHealth applies the non-zero fields of o over base.
func mergeHealth(base, o entropy.HealthConfig) entropy.HealthConfig {
	pick := func(b, v int) int {
		if v != 0 {
			return v
		}
		return b
	}
	pickD := func(b, v time.Duration) time.Duration {
		if v != 0 {
			return v
		}
		return b
	}
	return entropy.HealthConfig{
		AlphaLog2:          pick(base.AlphaLog2, o.AlphaLog2),
		PermanentAlphaLog2: pick(base.PermanentAlphaLog2, o.PermanentAlphaLog2),
		MaxIntermittent:    pick(base.MaxIntermittent, o.MaxIntermittent),
		IntermittentWindow: pickD(base.IntermittentWindow, o.IntermittentWindow),
		QuarantineFor:      pickD(base.QuarantineFor, o.QuarantineFor),
		MaxQuarantines:     pick(base.MaxQuarantines, o.MaxQuarantines),
		QuarantineWindow:   pickD(base.QuarantineWindow, o.QuarantineWindow),
	}
}

// paramError converts a driver's *drivers.ParamError for source sc into a
// ConfigError naming sources[i].key and its line; other errors pass through.
func (c *Config) paramError(sc SourceConfig, err error) error {
	var pe *drivers.ParamError
	if !errors.As(err, &pe) {
		return err
	}
	line, ok := sc.keyLines[pe.Key]
	if !ok {
		line = sc.line
	}
	return &ConfigError{File: c.file, Line: line, Path: fmt.Sprintf("sources[%d].%s", sc.index, pe.Key), Reason: pe.Reason}
}

func (d *decoder) boolean(n *yaml.Node, path string, out *bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(out) != nil {
		d.fail(n, path, "want true or false, got %s", describe(n))
	}
}

// strList decodes a list of non-empty strings (at most max).
func (d *decoder) strList(n *yaml.Node, path string, out *[]string, max int) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list of strings, got %s", describe(n))
		return
	}
	if len(n.Content) > max {
		d.fail(n, path, "%d entries; at most %d", len(n.Content), max)
		return
	}
	for i, item := range n.Content {
		var s string
		d.str(deref(item), fmt.Sprintf("%s[%d]", path, i), &s)
		if d.err != nil {
			return
		}
		*out = append(*out, s)
	}
}

// url decodes an absolute http(s) URL without query, fragment or trailing
// slash (an issuer or an origin).
func (d *decoder) url(n *yaml.Node, path string, out *string, originOnly bool) {
	var s string
	d.str(n, path, &s)
	if d.err != nil {
		return
	}
	u, err := neturl.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil:
		d.fail(n, path, "%q is not an absolute http(s) URL", s)
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "/"):
		d.fail(n, path, "%q must have no query, fragment or trailing slash", s)
	case originOnly && u.Path != "":
		d.fail(n, path, "%q is not an origin (scheme://host[:port], no path)", s)
	}
	*out = s
}

// authRoutes are the route names auth.limits accepts.
var authRoutes = []string{auth.RouteLogin, auth.RouteRefresh, auth.RouteLogout, auth.RouteToken, auth.RouteRevoke,
	auth.RouteIntrospect, auth.RouteKeys, auth.RouteDiscovery, auth.RouteAPI}

func (d *decoder) auth(n *yaml.Node, path string, a *AuthConfig) {
	d.mapping(n, path, map[string]func(*yaml.Node, string){
		"disabled": func(v *yaml.Node, p string) { d.boolean(v, p, &a.Disabled) },
		"issuer":   func(v *yaml.Node, p string) { d.url(v, p, &a.Issuer, false) },
		"alg":      func(v *yaml.Node, p string) { d.enum(v, p, &a.Alg, store.AlgEdDSA, store.AlgES256) },
		"access_ttl": func(v *yaml.Node, p string) {
			d.duration(v, p, &a.AccessTTL, time.Minute, 24*time.Hour)
		},
		"refresh_ttl": func(v *yaml.Node, p string) {
			d.duration(v, p, &a.RefreshTTL, time.Minute, 90*24*time.Hour)
		},
		"leeway": func(v *yaml.Node, p string) { d.duration(v, p, &a.Leeway, 0, time.Minute) },
		"verified_cache_entries": func(v *yaml.Node, p string) {
			d.integer(v, p, &a.VerifiedCache, -1, 1<<20)
			if a.VerifiedCache == 0 {
				d.fail(v, p, "0 is ambiguous: -1 turns the cache off, 1..1048576 sizes it")
			}
		},
		"signing_key_rotation": func(v *yaml.Node, p string) {
			d.duration(v, p, &a.KeyRotation, 0, 10*365*24*time.Hour)
			if a.KeyRotation > 0 && a.KeyRotation < time.Hour {
				d.fail(v, p, "%v is below 1h (0s turns scheduled rotation off)", a.KeyRotation)
			}
		},
		"users": func(v *yaml.Node, p string) { d.users(v, p, a) },
		"limits": func(v *yaml.Node, p string) {
			a.Limits = map[string]auth.RouteLimit{}
			fields := map[string]func(*yaml.Node, string){}
			for _, name := range authRoutes {
				fields[name] = func(v *yaml.Node, p string) { a.Limits[name] = d.routeLimit(v, p) }
			}
			d.mapping(v, p, fields, nil)
		},
	}, nil)
}

// routeLimit decodes {off, ip_rate, ip_burst, principal_rate, principal_burst}.
func (d *decoder) routeLimit(n *yaml.Node, path string) auth.RouteLimit {
	var rl auth.RouteLimit
	var ip, pr ratelimit.Options
	var ipSet, prSet bool
	rate := func(out *float64, set *bool) func(*yaml.Node, string) {
		return func(v *yaml.Node, p string) { d.float(v, p, out, 0, 1e6); *set = true }
	}
	burst := func(out *int, set *bool) func(*yaml.Node, string) {
		return func(v *yaml.Node, p string) { d.integer(v, p, out, 1, 1e6); *set = true }
	}
	d.mapping(n, path, map[string]func(*yaml.Node, string){
		"off":             func(v *yaml.Node, p string) { d.boolean(v, p, &rl.Off) },
		"ip_rate":         rate(&ip.Rate, &ipSet),
		"ip_burst":        burst(&ip.Burst, &ipSet),
		"principal_rate":  rate(&pr.Rate, &prSet),
		"principal_burst": burst(&pr.Burst, &prSet),
	}, nil)
	if ipSet {
		rl.IP = &ip
	}
	if prSet {
		rl.Principal = &pr
	}
	return rl
}

func (d *decoder) users(n *yaml.Node, path string, a *AuthConfig) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list of users, got %s", describe(n))
		return
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		var u UserConfig
		d.mapping(item, p, map[string]func(*yaml.Node, string){
			"username": func(v *yaml.Node, kp string) {
				d.str(v, kp, &u.Username)
				if d.err == nil {
					if err := store.ValidateUsername(u.Username); err != nil {
						d.fail(v, kp, "%v", err)
					}
				}
			},
			"password": func(v *yaml.Node, kp string) {
				// Never echo the value: it is a password, and this error
				// goes to stderr and the journal.
				if v.Kind != yaml.ScalarNode || v.Tag != "!!str" || v.Value == "" {
					d.fail(v, kp, "want a non-empty string (quote numbers and booleans); the value is not shown")
					return
				}
				u.Password = v.Value
				if a.plaintextLine == 0 {
					a.plaintextLine = v.Line
				}
				a.plaintext = append(a.plaintext, kp)
			},
			"scopes": func(v *yaml.Node, kp string) {
				d.strList(v, kp, &u.Scopes, len(auth.AllScopes))
				for _, s := range u.Scopes {
					if d.err == nil && !slices.Contains(auth.AllScopes, s) {
						d.fail(v, kp, "unknown scope %q (known: %s)", s, strings.Join(auth.AllScopes, ", "))
					}
				}
			},
		}, nil)
		if d.err != nil {
			return
		}
		if u.Username == "" || u.Password == "" {
			d.fail(item, p, "username and password are required")
			return
		}
		a.Users = append(a.Users, u)
	}
}

func (d *decoder) mcp(n *yaml.Node, path string, m *MCPConfig) {
	d.mapping(n, path, map[string]func(*yaml.Node, string){
		"allowed_origins": func(v *yaml.Node, p string) {
			var raw []string
			d.strList(v, p, &raw, 64)
			for i, o := range raw {
				var s string
				d.url(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: o, Line: v.Line}, fmt.Sprintf("%s[%d]", p, i), &s, true)
				m.AllowedOrigins = append(m.AllowedOrigins, s)
			}
		},
		"stateless": func(v *yaml.Node, p string) { d.boolean(v, p, &m.Stateless) },
		"disable_loopback_host_check": func(v *yaml.Node, p string) {
			d.boolean(v, p, &m.DisableLoopbackHostCheck)
		},
		"json_response": func(v *yaml.Node, p string) { d.boolean(v, p, &m.JSONResponse) },
		"session_idle_timeout": func(v *yaml.Node, p string) {
			d.duration(v, p, &m.SessionIdleTimeout, time.Minute, 24*time.Hour)
		},
		"max_body_bytes": func(v *yaml.Node, p string) {
			var n int
			d.integer(v, p, &n, 1024, 16<<20)
			m.MaxBodyBytes = int64(n)
		},
		"tool_limit":    func(v *yaml.Node, p string) { m.ToolLimit = d.rateBurst(v, p) },
		"session_limit": func(v *yaml.Node, p string) { m.SessionLimit = d.rateBurst(v, p) },
	}, nil)
}

// rateBurst decodes {rate, burst}: a token bucket per principal (rate in
// events per second, both required).
func (d *decoder) rateBurst(n *yaml.Node, path string) *ratelimit.Options {
	var o ratelimit.Options
	var rateSet, burstSet bool
	d.mapping(n, path, map[string]func(*yaml.Node, string){
		"rate":  func(v *yaml.Node, p string) { d.float(v, p, &o.Rate, 0.001, 1e6); rateSet = true },
		"burst": func(v *yaml.Node, p string) { d.integer(v, p, &o.Burst, 1, 1e6); burstSet = true },
	}, nil)
	if !rateSet || !burstSet {
		d.fail(n, path, "want both rate and burst")
		return nil
	}
	return &o
}
