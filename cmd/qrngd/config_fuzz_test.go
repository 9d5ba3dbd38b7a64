package main

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseConfig: any input is either a valid configuration or a
// *ConfigError naming the file and a key path; it never panics.
func FuzzParseConfig(f *testing.F) {
	f.Add(validBase)
	f.Add("mode: dev\nsources:\n  - &a {name: x, kind: sim}\n  - *a\n")
	f.Add("pool: {min_healthy_sources: 1e9}\n")
	f.Add("sources:\n  - name: a\n    kind: sim\n    health: {alpha_log2: 30, permanent_alpha_log2: 30}\n")
	f.Add("[1, 2]")
	f.Fuzz(func(t *testing.T, data string) {
		c, err := ParseConfig("f.yaml", []byte(data))
		if err == nil {
			if len(c.Sources) == 0 || c.Pool.MinHealthySources > len(c.Sources) {
				t.Fatalf("accepted %q: %+v", data, c)
			}
			return
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Path == "" || !strings.HasPrefix(err.Error(), "f.yaml") {
			t.Fatalf("%q: %v", data, err)
		}
	})
}
