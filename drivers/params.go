package drivers

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Params are the kind-specific keys of a `sources:` entry, as decoded from
// YAML. Drivers read them through the typed getters, which record every key
// they consume, and finish with Done so that a misspelt key is an error
// naming the key rather than silently ignored.
type Params map[string]any

// ParamError names the key that was wrong.
type ParamError struct {
	Key    string
	Reason string
}

func (e *ParamError) Error() string { return fmt.Sprintf("key %q: %s", e.Key, e.Reason) }

// ParamReader reads Params with types; see Params.
type ParamReader struct {
	p    Params
	used map[string]bool
	err  error
}

// Reader returns a typed reader over p.
func (p Params) Reader() *ParamReader { return &ParamReader{p: p, used: map[string]bool{}} }

func (r *ParamReader) fail(key, reason string) {
	if r.err == nil {
		r.err = &ParamError{Key: key, Reason: reason}
	}
}

func (r *ParamReader) get(key string) (any, bool) {
	r.used[key] = true
	v, ok := r.p[key]
	return v, ok
}

// String returns key's value or def.
func (r *ParamReader) String(key, def string) string {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	switch s := v.(type) {
	case string:
		return s
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(s)
	}
	r.fail(key, fmt.Sprintf("want a string, got %T", v))
	return def
}

// Int returns key's value or def.
func (r *ParamReader) Int(key string, def int) int {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	switch n := v.(type) {
	case int:
		return n
	case int64:
		if n >= math.MinInt && n <= math.MaxInt {
			return int(n)
		}
	case uint64:
		if n <= math.MaxInt {
			return int(n)
		}
	case float64:
		// The bounds are exact powers of two; the range check comes
		// before the conversion, whose result is otherwise undefined.
		if n >= math.MinInt && n < -float64(math.MinInt) && n == math.Trunc(n) {
			return int(n)
		}
	case string:
		if i, err := strconv.ParseInt(n, 0, strconv.IntSize); err == nil {
			return int(i)
		}
	}
	r.fail(key, fmt.Sprintf("want an integer in range, got %v", v))
	return def
}

// Float returns key's value or def.
func (r *ParamReader) Float(key string, def float64) float64 {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case uint64:
		return float64(n)
	case float64:
		if !math.IsNaN(n) && !math.IsInf(n, 0) {
			return n
		}
	case string:
		if f, err := strconv.ParseFloat(n, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
	r.fail(key, fmt.Sprintf("want a finite number, got %v", v))
	return def
}

// Bool returns key's value or def.
func (r *ParamReader) Bool(key string, def bool) bool {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	if b, ok := v.(bool); ok {
		return b
	}
	r.fail(key, fmt.Sprintf("want true or false, got %v", v))
	return def
}

// Duration returns key's value (a Go duration string such as "250ms") or def.
func (r *ParamReader) Duration(key string, def time.Duration) time.Duration {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	if s, ok := v.(string); ok {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
	}
	r.fail(key, fmt.Sprintf("want a duration such as \"250ms\", got %v", v))
	return def
}

// Fail records a validation failure for key (e.g. a value out of range).
func (r *ParamReader) Fail(key, reason string) { r.fail(key, reason) }

// Done reports the first error, or an unknown key.
func (r *ParamReader) Done() error {
	if r.err != nil {
		return r.err
	}
	var unknown []string
	for k := range r.p {
		if !r.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return &ParamError{Key: unknown[0], Reason: "unknown key for this source kind"}
	}
	return nil
}
