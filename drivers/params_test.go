package drivers

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParamReader_Getters(t *testing.T) {
	p := Params{
		"s": "text", "sn": 42, "i": 7, "i64": int64(-3), "u64": uint64(9), "f": 2.5, "fi": 8.0,
		"is": "0x10", "fs": "1e3", "b": true, "d": "250ms",
	}
	r := p.Reader()
	checks := []struct {
		name      string
		got, want any
	}{
		{"String", r.String("s", "x"), "text"},
		{"String number", r.String("sn", "x"), "42"},
		{"String default", r.String("missing-s", "def"), "def"},
		{"Int", r.Int("i", 0), 7},
		{"Int int64", r.Int("i64", 0), -3},
		{"Int uint64", r.Int("u64", 0), 9},
		{"Int whole float", r.Int("fi", 0), 8},
		{"Int string", r.Int("is", 0), 16},
		{"Int default", r.Int("missing-i", 5), 5},
		{"Float", r.Float("f", 0), 2.5},
		{"Float int", r.Float("i", 0), 7.0},
		{"Float string", r.Float("fs", 0), 1000.0},
		{"Float default", r.Float("missing-f", 1.5), 1.5},
		{"Bool", r.Bool("b", false), true},
		{"Bool default", r.Bool("missing-b", true), true},
		{"Duration", r.Duration("d", 0), 250 * time.Millisecond},
		{"Duration default", r.Duration("missing-d", time.Second), time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v (%T); want %v (%T)", c.name, c.got, c.got, c.want, c.want)
		}
	}
	if err := r.Done(); err != nil {
		t.Errorf("Done = %v; every key was read", err)
	}
}

func TestParamReader_Errors(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		read func(r *ParamReader)
		key  string
		why  string
	}{
		{"string from map", Params{"k": map[string]any{}}, func(r *ParamReader) { r.String("k", "") }, "k", "string"},
		{"int from fraction", Params{"k": 1.5}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"int from word", Params{"k": "ten"}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"int from bool", Params{"k": true}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"int overflow uint64", Params{"k": uint64(math.MaxUint64)}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"int overflow float", Params{"k": 1e19}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"int overflow float 2^63", Params{"k": 9223372036854775808.0}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"int overflow string", Params{"k": "99999999999999999999"}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"int NaN", Params{"k": math.NaN()}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"float from word", Params{"k": "fast"}, func(r *ParamReader) { r.Float("k", 0) }, "k", "number"},
		{"float NaN string", Params{"k": "NaN"}, func(r *ParamReader) { r.Float("k", 0) }, "k", "finite"},
		{"float Inf string", Params{"k": "+Inf"}, func(r *ParamReader) { r.Float("k", 0) }, "k", "finite"},
		{"float Inf", Params{"k": math.Inf(-1)}, func(r *ParamReader) { r.Float("k", 0) }, "k", "finite"},
		{"bool from string", Params{"k": "yes"}, func(r *ParamReader) { r.Bool("k", false) }, "k", "true or false"},
		{"duration from int", Params{"k": 5}, func(r *ParamReader) { r.Duration("k", 0) }, "k", "duration"},
		{"duration unparsable", Params{"k": "5 parsecs"}, func(r *ParamReader) { r.Duration("k", 0) }, "k", "duration"},
		{"Fail", Params{"k": 3}, func(r *ParamReader) { r.Int("k", 0); r.Fail("k", "must be even") }, "k", "must be even"},
		{"unknown key", Params{"rate": 1, "zz": 1, "sampel_bits": 2}, func(r *ParamReader) { r.Int("rate", 0) }, "sampel_bits", "unknown key"},
		{"type error before unknown key", Params{"a_unknown": 1, "k": "x"}, func(r *ParamReader) { r.Int("k", 0) }, "k", "integer"},
		{"first error wins", Params{"k": "x", "l": "y"}, func(r *ParamReader) { r.Int("k", 0); r.Int("l", 0) }, "k", "integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.p.Reader()
			tt.read(r)
			err := r.Done()
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("Done = %v; want a *ParamError", err)
			}
			if pe.Key != tt.key || !strings.Contains(pe.Reason, tt.why) {
				t.Errorf("ParamError{%q, %q}; want key %q, reason containing %q", pe.Key, pe.Reason, tt.key, tt.why)
			}
			if !strings.Contains(err.Error(), `"`+tt.key+`"`) {
				t.Errorf("message %q does not name the key", err)
			}
		})
	}
}

func TestParamReader_BadValueKeepsDefault(t *testing.T) {
	r := Params{"k": "x"}.Reader()
	if got := r.Int("k", 12); got != 12 {
		t.Errorf("Int of a bad value = %d; want the default 12", got)
	}
}

func TestParamReader_Nil(t *testing.T) {
	var p Params
	r := p.Reader()
	if r.Int("x", 3) != 3 || r.Done() != nil {
		t.Error("nil Params: want defaults and no error")
	}
}

// Params decoded by yaml.v3, as the configuration loader produces them.
func TestParamReader_YAML(t *testing.T) {
	var p Params
	src := "sample_bits: 4\nrate: 1.5e6\nseed: 18446744073709551615\nsmall_seed: 9223372036854775807\ndelay: 250ms\nflag: true\nname: 0x1F\n"
	if err := yaml.Unmarshal([]byte(src), &p); err != nil {
		t.Fatal(err)
	}
	r := p.Reader()
	if got := r.Int("sample_bits", 0); got != 4 {
		t.Errorf("sample_bits = %d", got)
	}
	if got := r.Float("rate", 0); got != 1.5e6 {
		t.Errorf("rate = %v", got)
	}
	if got := r.Int("small_seed", 0); got != math.MaxInt64 {
		t.Errorf("small_seed = %d", got)
	}
	if got := r.Duration("delay", 0); got != 250*time.Millisecond {
		t.Errorf("delay = %v", got)
	}
	if !r.Bool("flag", false) {
		t.Error("flag = false")
	}
	if got := r.Int("name", 0); got != 31 {
		t.Errorf("name (0x1F) = %d", got)
	}
	r.Int("seed", 0) // 2^64-1 does not fit an int
	var pe *ParamError
	if err := r.Done(); !errors.As(err, &pe) || pe.Key != "seed" {
		t.Errorf("Done = %v; want the out-of-range seed named", err)
	}
}
