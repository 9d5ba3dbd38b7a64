package mcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway/ratelimit"
)

// Input bounds.
const (
	maxRandomBytes  = 65536
	maxIntegers     = 10000
	maxUUIDs        = 1000
	minPasswordLen  = 8
	maxPasswordLen  = 256
	maxItems        = 10000
	maxSafeInteger  = 1<<53 - 1 // integers JSON clients (JavaScript) hold exactly
	defaultPassword = 20
)

// A tool of the registry: the same definition serves MCP tools/call and the
// REST bridge.
type tool struct {
	name        string
	title       string
	description string
	scope       string
	inSchema    *jsonschema.Schema
	inResolved  *jsonschema.Resolved
	outSchema   *jsonschema.Schema
	// run decodes the validated arguments and executes.
	run func(ctx context.Context, s *Server, raw []byte) (any, entropy.Provenance, error)
}

// argError is a domain validation failure the schema cannot express
// (min > max, k > len(items)); it is reported like a schema error.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

func argErrorf(format string, a ...any) error { return &argError{fmt.Sprintf(format, a...)} }

var anySchema = map[reflect.Type]*jsonschema.Schema{reflect.TypeFor[json.RawMessage](): {}}

// defineTool infers In's and Out's schemas, lets patch tighten the input
// schema (bounds, enums, defaults), resolves it for validation, and wraps run.
func defineTool[In, Out any](name, title, description string, patch func(p map[string]*jsonschema.Schema),
	run func(ctx context.Context, s *Server, in In) (Out, entropy.Provenance, error)) *tool {
	in, err := jsonschema.For[In](&jsonschema.ForOptions{TypeSchemas: anySchema})
	if err != nil {
		panic(fmt.Sprintf("gateway/mcp: tool %s: input schema: %v", name, err))
	}
	if in.Properties == nil {
		in.Properties = map[string]*jsonschema.Schema{}
	}
	if patch != nil {
		patch(in.Properties)
	}
	resolved, err := in.Resolve(nil)
	if err != nil {
		panic(fmt.Sprintf("gateway/mcp: tool %s: resolving input schema: %v", name, err))
	}
	out, err := jsonschema.For[Out](&jsonschema.ForOptions{TypeSchemas: anySchema})
	if err != nil {
		panic(fmt.Sprintf("gateway/mcp: tool %s: output schema: %v", name, err))
	}
	return &tool{
		name: name, title: title, description: description, scope: ScopeTools,
		inSchema: in, inResolved: resolved, outSchema: out,
		run: func(ctx context.Context, s *Server, raw []byte) (any, entropy.Provenance, error) {
			var v In
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				return nil, entropy.Provenance{}, argErrorf("invalid arguments: %v", err)
			}
			o, prov, err := run(ctx, s, v)
			if err != nil {
				return nil, prov, err
			}
			return o, prov, nil
		},
	}
}

func f64(v float64) *float64 { return &v }
func intp(v int) *int        { return &v }
func rawJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

const modeDescription = "drbg (default): CTR_DRBG seeded from the quantum pool; full: full-entropy bytes straight from the pool (slower, hardware-limited); pr: DRBG with prediction resistance"

func patchMode(p map[string]*jsonschema.Schema) {
	p["mode"] = &jsonschema.Schema{Type: "string", Description: modeDescription,
		Enum: []any{string(entropy.ModeDRBG), string(entropy.ModeFull), string(entropy.ModePR)}, Default: rawJSON(entropy.ModeDRBG)}
}

func modeOf(s string) entropy.Mode {
	if s == "" {
		return entropy.ModeDRBG
	}
	return entropy.Mode(s)
}

// Tool inputs and outputs.

type randomBytesIn struct {
	Bytes  int    `json:"bytes" jsonschema:"number of random bytes (1 to 65536)"`
	Format string `json:"format,omitempty" jsonschema:"encoding of data: hex (default) or base64"`
	Mode   string `json:"mode,omitempty"`
}

type randomBytesOut struct {
	Bytes      int                `json:"bytes" jsonschema:"number of bytes"`
	Format     string             `json:"format" jsonschema:"hex or base64"`
	Data       string             `json:"data" jsonschema:"the random bytes, encoded"`
	Provenance entropy.Provenance `json:"provenance" jsonschema:"mode, contributing sources, degraded flag"`
}

type randomIntegersIn struct {
	Min   int64  `json:"min" jsonschema:"smallest value (inclusive)"`
	Max   int64  `json:"max" jsonschema:"largest value (inclusive)"`
	Count int    `json:"count,omitempty" jsonschema:"how many integers (1 to 10000, default 1)"`
	Mode  string `json:"mode,omitempty"`
}

type randomIntegersOut struct {
	Min        int64              `json:"min"`
	Max        int64              `json:"max"`
	Values     []int64            `json:"values" jsonschema:"independent uniform integers in [min, max]"`
	Provenance entropy.Provenance `json:"provenance"`
}

type randomUUIDIn struct {
	Count int    `json:"count,omitempty" jsonschema:"how many UUIDs (1 to 1000, default 1)"`
	Mode  string `json:"mode,omitempty"`
}

type randomUUIDOut struct {
	UUIDs      []string           `json:"uuids" jsonschema:"RFC 9562 version 4 UUIDs"`
	Provenance entropy.Provenance `json:"provenance"`
}

type passwordIn struct {
	Length  int      `json:"length,omitempty" jsonschema:"password length (8 to 256, default 20)"`
	Classes []string `json:"classes,omitempty" jsonschema:"character classes that must each occur at least once (default all four)"`
	Mode    string   `json:"mode,omitempty"`
}

type passwordOut struct {
	Password           string             `json:"password"`
	Length             int                `json:"length"`
	Classes            []string           `json:"classes"`
	AlphabetSize       int                `json:"alphabet_size"`
	EntropyBits        float64            `json:"entropy_bits" jsonschema:"log2 of the number of passwords of this length and classes that contain every class; the password is uniform among them"`
	UniformEntropyBits float64            `json:"uniform_entropy_bits" jsonschema:"length * log2(alphabet_size), the entropy without the every-class rule"`
	Provenance         entropy.Provenance `json:"provenance"`
}

type itemsIn struct {
	Items []json.RawMessage `json:"items" jsonschema:"the items (any JSON values, at most 10000)"`
	Mode  string            `json:"mode,omitempty"`
}

type chooseIn struct {
	Items []json.RawMessage `json:"items" jsonschema:"the items (any JSON values, 1 to 10000)"`
	K     int               `json:"k" jsonschema:"how many distinct items to choose (1 to len(items))"`
	Mode  string            `json:"mode,omitempty"`
}

type itemsOut struct {
	Items      []json.RawMessage  `json:"items"`
	Provenance entropy.Provenance `json:"provenance"`
}

type statusIn struct{}

type sourceOut struct {
	Name        string        `json:"name"`
	Kind        string        `json:"kind"`
	State       entropy.State `json:"state"`
	MinEntropy  float64       `json:"min_entropy_per_sample"`
	SampleBits  int           `json:"sample_bits"`
	Samples     uint64        `json:"samples"`
	Bytes       uint64        `json:"bytes"`
	RCTFailures uint64        `json:"rct_failures"`
	APTFailures uint64        `json:"apt_failures"`
	Quarantines uint64        `json:"quarantines"`
	LastError   string        `json:"last_error,omitempty"`
	Since       time.Time     `json:"since"`
}

type statusOut struct {
	Ready             bool               `json:"ready" jsonschema:"the pool can serve under its policy"`
	Policy            entropy.Policy     `json:"policy"`
	Degraded          bool               `json:"degraded" jsonschema:"the OS RNG is mixed in (policy os)"`
	LevelBytes        int                `json:"level_bytes"`
	CapacityBytes     int                `json:"capacity_bytes"`
	HealthySources    int                `json:"healthy_sources"`
	MinHealthySources int                `json:"min_healthy_sources"`
	DRBGReseeds       uint64             `json:"drbg_reseeds"`
	Sources           []sourceOut        `json:"sources"`
	Provenance        entropy.Provenance `json:"provenance" jsonschema:"mode none: no random bytes drawn; sources: healthy sources now"`
}

// ModeNone marks the provenance of entropy_status, which draws no bytes.
const ModeNone entropy.Mode = "none"

func newTools() []*tool {
	return []*tool{
		defineTool("random_bytes", "Random bytes",
			"Returns 1 to 65536 random bytes from qrngd's health-tested quantum entropy pool, hex or base64 encoded.",
			func(p map[string]*jsonschema.Schema) {
				p["bytes"].Minimum, p["bytes"].Maximum = f64(1), f64(maxRandomBytes)
				p["format"].Enum, p["format"].Default = []any{"hex", "base64"}, rawJSON("hex")
				patchMode(p)
			},
			func(ctx context.Context, s *Server, in randomBytesIn) (randomBytesOut, entropy.Provenance, error) {
				buf := make([]byte, in.Bytes)
				prov, err := s.cfg.Entropy.Read(ctx, buf, modeOf(in.Mode))
				if err != nil {
					return randomBytesOut{}, prov, err
				}
				d := &drawer{prov: entropy.Provenance{Mode: modeOf(in.Mode)}}
				d.merge(prov)
				out := randomBytesOut{Bytes: in.Bytes, Format: "hex", Provenance: d.provenance()}
				if in.Format == "base64" {
					out.Format, out.Data = "base64", base64.StdEncoding.EncodeToString(buf)
				} else {
					out.Data = hex.EncodeToString(buf)
				}
				clear(buf)
				return out, out.Provenance, nil
			}),
		defineTool("random_integers", "Random integers",
			"Returns count independent uniform integers in [min, max] (inclusive), unbiased by rejection sampling. |min|, |max| <= 2^53-1.",
			func(p map[string]*jsonschema.Schema) {
				p["min"].Minimum, p["min"].Maximum = f64(-maxSafeInteger), f64(maxSafeInteger)
				p["max"].Minimum, p["max"].Maximum = f64(-maxSafeInteger), f64(maxSafeInteger)
				p["count"].Minimum, p["count"].Maximum, p["count"].Default = f64(1), f64(maxIntegers), rawJSON(1)
				patchMode(p)
			},
			func(ctx context.Context, s *Server, in randomIntegersIn) (randomIntegersOut, entropy.Provenance, error) {
				if in.Min > in.Max {
					return randomIntegersOut{}, entropy.Provenance{}, argErrorf("invalid arguments: min (%d) is greater than max (%d)", in.Min, in.Max)
				}
				count := max(in.Count, 1)
				span := uint64(in.Max-in.Min) + 1
				d := newDrawer(ctx, s.cfg.Entropy, modeOf(in.Mode), count*bytesPerDraw(span)*5/4)
				out := randomIntegersOut{Min: in.Min, Max: in.Max, Values: make([]int64, count)}
				for i := range out.Values {
					v, err := d.uintn(span)
					if err != nil {
						return randomIntegersOut{}, d.provenance(), err
					}
					out.Values[i] = in.Min + int64(v)
				}
				out.Provenance = d.provenance()
				return out, out.Provenance, nil
			}),
		defineTool("random_uuid", "Random UUIDs",
			"Returns count RFC 9562 version 4 UUIDs (122 random bits each).",
			func(p map[string]*jsonschema.Schema) {
				p["count"].Minimum, p["count"].Maximum, p["count"].Default = f64(1), f64(maxUUIDs), rawJSON(1)
				patchMode(p)
			},
			func(ctx context.Context, s *Server, in randomUUIDIn) (randomUUIDOut, entropy.Provenance, error) {
				count := max(in.Count, 1)
				buf := make([]byte, 16*count)
				d := newDrawer(ctx, s.cfg.Entropy, modeOf(in.Mode), len(buf))
				if err := d.read(buf); err != nil {
					return randomUUIDOut{}, d.provenance(), err
				}
				out := randomUUIDOut{UUIDs: make([]string, count)}
				for i := range out.UUIDs {
					out.UUIDs[i] = uuidV4(buf[16*i : 16*i+16])
				}
				clear(buf)
				out.Provenance = d.provenance()
				return out, out.Provenance, nil
			}),
		defineTool("generate_password", "Generate a password",
			"Generates a password of 8 to 256 characters that contains every requested character class, uniform over all such passwords, and reports its entropy in bits.",
			func(p map[string]*jsonschema.Schema) {
				p["length"].Minimum, p["length"].Maximum, p["length"].Default = f64(minPasswordLen), f64(maxPasswordLen), rawJSON(defaultPassword)
				names := make([]any, len(passwordClasses))
				for i, c := range passwordClasses {
					names[i] = c.name
				}
				p["classes"] = &jsonschema.Schema{Type: "array", Description: p["classes"].Description,
					Items: &jsonschema.Schema{Type: "string", Enum: names}, MinItems: intp(1), MaxItems: intp(len(names)),
					UniqueItems: true, Default: rawJSON(names)}
				patchMode(p)
			},
			func(ctx context.Context, s *Server, in passwordIn) (passwordOut, entropy.Provenance, error) {
				length := in.Length
				if length == 0 {
					length = defaultPassword
				}
				var classes []passwordClass
				var sizes []int
				n := 0
				for _, c := range passwordClasses {
					if len(in.Classes) == 0 || slices.Contains(in.Classes, c.name) {
						classes = append(classes, c)
						sizes = append(sizes, len(c.chars))
						n += len(c.chars)
					}
				}
				d := newDrawer(ctx, s.cfg.Entropy, modeOf(in.Mode), 2*length)
				pw, err := password(d, classes, length)
				if err != nil {
					return passwordOut{}, d.provenance(), err
				}
				out := passwordOut{Password: pw, Length: length, AlphabetSize: n,
					EntropyBits:        math.Round(passwordEntropyBits(sizes, length)*100) / 100,
					UniformEntropyBits: math.Round(float64(length)*math.Log2(float64(n))*100) / 100,
					Provenance:         d.provenance()}
				for _, c := range classes {
					out.Classes = append(out.Classes, c.name)
				}
				return out, out.Provenance, nil
			}),
		defineTool("shuffle", "Shuffle",
			"Returns the items in a uniformly random order (Fisher–Yates with unbiased indices). At most 10000 items.",
			func(p map[string]*jsonschema.Schema) {
				p["items"] = &jsonschema.Schema{Type: "array", Description: p["items"].Description, Items: &jsonschema.Schema{}, MaxItems: intp(maxItems)}
				patchMode(p)
			},
			func(ctx context.Context, s *Server, in itemsIn) (itemsOut, entropy.Provenance, error) {
				d := newDrawer(ctx, s.cfg.Entropy, modeOf(in.Mode), len(in.Items)*bytesPerDraw(uint64(len(in.Items)))*5/4)
				items := slices.Clone(in.Items)
				if items == nil {
					items = []json.RawMessage{}
				}
				if err := shuffle(d, items); err != nil {
					return itemsOut{}, d.provenance(), err
				}
				return itemsOut{Items: items, Provenance: d.provenance()}, d.provenance(), nil
			}),
		defineTool("choose", "Choose",
			"Chooses k distinct items uniformly at random, in random order (partial Fisher–Yates). At most 10000 items.",
			func(p map[string]*jsonschema.Schema) {
				p["items"] = &jsonschema.Schema{Type: "array", Description: p["items"].Description, Items: &jsonschema.Schema{}, MinItems: intp(1), MaxItems: intp(maxItems)}
				p["k"].Minimum, p["k"].Maximum = f64(1), f64(maxItems)
				patchMode(p)
			},
			func(ctx context.Context, s *Server, in chooseIn) (itemsOut, entropy.Provenance, error) {
				if in.K > len(in.Items) {
					return itemsOut{}, entropy.Provenance{}, argErrorf("invalid arguments: k (%d) is greater than the number of items (%d)", in.K, len(in.Items))
				}
				d := newDrawer(ctx, s.cfg.Entropy, modeOf(in.Mode), in.K*bytesPerDraw(uint64(len(in.Items)))*5/4)
				chosen, err := choose(d, in.Items, in.K)
				if err != nil {
					return itemsOut{}, d.provenance(), err
				}
				return itemsOut{Items: chosen, Provenance: d.provenance()}, d.provenance(), nil
			}),
		defineTool("entropy_status", "Entropy status",
			"Reports the entropy pool: readiness, level, policy, degraded flag, and every source with its health.",
			nil,
			func(ctx context.Context, s *Server, _ statusIn) (statusOut, entropy.Provenance, error) {
				st := s.cfg.Entropy.Status()
				out := statusOut{Ready: st.Pool.Ready, Policy: st.Pool.Policy, Degraded: st.Pool.Degraded,
					LevelBytes: st.Pool.LevelBytes, CapacityBytes: st.Pool.CapacityBytes,
					HealthySources: st.Pool.HealthySources, MinHealthySources: st.Pool.MinSources,
					DRBGReseeds: st.Pool.Reseeds, Sources: []sourceOut{},
					Provenance: entropy.Provenance{Mode: ModeNone, Sources: []string{}, Degraded: st.Pool.Degraded}}
				for _, src := range st.Sources {
					out.Sources = append(out.Sources, sourceOut{Name: src.Name, Kind: src.Kind, State: src.State,
						MinEntropy: src.MinEntropy, SampleBits: src.SampleBits, Samples: src.Samples, Bytes: src.Bytes,
						RCTFailures: src.RCT.Intermittent + src.RCT.Permanent, APTFailures: src.APT.Intermittent + src.APT.Permanent,
						Quarantines: src.Quarantines, LastError: src.LastError, Since: src.Since})
					if src.State == entropy.StateHealthy {
						out.Provenance.Sources = append(out.Provenance.Sources, src.Name)
					}
				}
				return out, out.Provenance, nil
			}),
	}
}

// principal is who calls a tool, and through what.
type principal struct {
	subject, clientID, sessionID, correlationID, transport string
	scopes                                                 []string
}

// Outcome kinds of a call (also audit outcomes and REST error codes).
const (
	outcomeOK          = "ok"
	outcomeInvalidArgs = "invalid_arguments"
	outcomeForbidden   = "insufficient_scope"
	outcomeRateLimited = "rate_limited"
	outcomeUnavailable = "entropy_unavailable"
	outcomeUnknownTool = "unknown_tool"
	outcomeError       = "internal_error"
)

// callResult is the outcome of execute. On success JSON holds the structured
// result; otherwise kind and msg say what went wrong.
type callResult struct {
	JSON     []byte
	kind     string
	msg      string
	scope    string             // required scope, for insufficient_scope
	decision ratelimit.Decision // for rate_limited (and headers on success)
	limited  bool               // decision is meaningful
}

// execute runs one tool call end to end: scope, rate limit (per subject),
// schema validation, the tool, and the audit record. MCP and the REST bridge
// share it.
func (s *Server) execute(ctx context.Context, p principal, name string, raw []byte) callResult {
	start := s.cfg.Now()
	rec := AuditRecord{Time: start, Tool: name, Transport: p.transport, Subject: p.subject, ClientID: p.clientID,
		SessionID: p.sessionID, CorrelationID: p.correlationID}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	sum := sha256.Sum256(raw)
	rec.ArgsSHA256 = hex.EncodeToString(sum[:])

	res := s.executeInner(ctx, p, name, raw, &rec)
	rec.Duration = s.cfg.Now().Sub(start)
	rec.Outcome = res.kind
	rec.ResultBytes = len(res.JSON)
	if res.kind != outcomeOK {
		rec.Error = res.msg
	}
	if rec.Provenance.Sources == nil {
		rec.Provenance.Sources = []string{}
	}
	// The record outlives the request: a call the client cancelled (or
	// abandoned by disconnecting) still happened and must be audited.
	if err := s.cfg.Audit.Append(context.WithoutCancel(ctx), rec); err != nil {
		s.cfg.Logger.Error("audit append failed; withholding tool result", "tool", name, "subject", p.subject,
			"correlation_id", p.correlationID, "err", err)
		clear(res.JSON)
		return callResult{kind: outcomeError, msg: fmt.Sprintf("%v: %v", ErrAudit, err)}
	}
	return res
}

func (s *Server) executeInner(ctx context.Context, p principal, name string, raw []byte, rec *AuditRecord) callResult {
	t := s.tools[name]
	if t == nil {
		return callResult{kind: outcomeUnknownTool, msg: fmt.Sprintf("unknown tool %q", name)}
	}
	if !slices.Contains(p.scopes, t.scope) {
		return callResult{kind: outcomeForbidden, scope: t.scope, msg: fmt.Sprintf("tool %s needs scope %q", name, t.scope)}
	}
	dec := s.limiter.Allow(p.subject)
	if !dec.Allowed {
		return callResult{kind: outcomeRateLimited, decision: dec, limited: true,
			msg: fmt.Sprintf("rate limit exceeded for %s: %d calls per burst; retry after %s", p.subject, dec.Limit, dec.RetryAfter.Round(time.Millisecond))}
	}
	var inst any
	if err := json.Unmarshal(raw, &inst); err != nil {
		return callResult{kind: outcomeInvalidArgs, decision: dec, limited: true, msg: fmt.Sprintf("invalid arguments: %v", err)}
	}
	if err := t.inResolved.Validate(inst); err != nil {
		return callResult{kind: outcomeInvalidArgs, decision: dec, limited: true, msg: fmt.Sprintf("invalid arguments: %v", err)}
	}
	out, prov, err := t.run(ctx, s, raw)
	rec.Provenance = prov
	if err != nil {
		var ae *argError
		switch {
		case errors.As(err, &ae):
			return callResult{kind: outcomeInvalidArgs, decision: dec, limited: true, msg: ae.msg}
		case errors.Is(err, entropy.ErrInsufficientEntropy):
			return callResult{kind: outcomeUnavailable, decision: dec, limited: true, msg: "the entropy pool cannot serve this request now: " + err.Error()}
		case ctx.Err() != nil:
			return callResult{kind: outcomeError, decision: dec, limited: true, msg: "request cancelled: " + ctx.Err().Error()}
		}
		s.cfg.Logger.Error("tool failed", "tool", name, "subject", p.subject, "correlation_id", p.correlationID, "err", err)
		return callResult{kind: outcomeError, decision: dec, limited: true, msg: "internal error: " + err.Error()}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return callResult{kind: outcomeError, decision: dec, limited: true, msg: "internal error: encoding result: " + err.Error()}
	}
	return callResult{JSON: b, kind: outcomeOK, decision: dec, limited: true}
}

// toolScope applies ToolScopes overrides.
func (c *config) toolScope(name string) string {
	if sc, ok := c.toolScopes[name]; ok {
		return sc
	}
	return ScopeTools
}
