package mcp

import (
	"context"
	"encoding/json"
	"testing"
)

// FuzzExecute feeds arbitrary argument JSON to every tool: no panic, and the
// outcome is a result that parses or a clear invalid_arguments error.
func FuzzExecute(f *testing.F) {
	for _, c := range validCalls {
		f.Add(c.tool, c.args)
	}
	f.Add("random_integers", `{"min":-9007199254740991,"max":9007199254740991,"count":3}`)
	f.Add("choose", `{"items":[1,2,3],"k":3,"k":0}`)
	f.Add("random_bytes", `{"bytes":1e3}`)
	fx := newFixture(f, func(o *Options) { o.RateLimit.Rate, o.RateLimit.Burst = 1e9, 1<<30 })
	p := principal{subject: "fuzz", scopes: []string{ScopeTools}, transport: "fuzz"}
	f.Fuzz(func(t *testing.T, tool, args string) {
		if fx.srv.tools[tool] == nil || len(args) > 4096 {
			return
		}
		res := fx.srv.execute(context.Background(), p, tool, []byte(args))
		switch res.kind {
		case outcomeOK:
			if !json.Valid(res.JSON) {
				t.Fatalf("%s %s: invalid result JSON", tool, args)
			}
		case outcomeInvalidArgs:
			if res.msg == "" {
				t.Fatal("empty error message")
			}
		default:
			t.Fatalf("%s %s: outcome %s: %s", tool, args, res.kind, res.msg)
		}
	})
}
