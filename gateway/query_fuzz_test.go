package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/entropy"
)

// FuzzParseRandomQuery: any query either yields a request within the
// contract or a 400 naming a parameter; it never panics.
func FuzzParseRandomQuery(f *testing.F) {
	for _, s := range []string{"bytes=32", "bytes=1048576&format=binary&mode=full", "bytes=0", "bytes=+5",
		"bytes=16&bytes=32", "bytes=16&%zz", "bytes=1&format=base64&mode=pr", "x=1", "bytes=00000001", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		rq, perr := parseRandomQuery(raw)
		if perr != nil {
			if perr.param == "" || !strings.Contains(perr.Error(), fmt.Sprintf("%q", perr.param)) {
				t.Fatalf("%q: error %q names no parameter", raw, perr)
			}
			return
		}
		if rq.n < 1 || rq.n > MaxRandomBytes {
			t.Fatalf("%q: bytes %d accepted", raw, rq.n)
		}
		switch rq.format {
		case FormatHex, FormatBase64, FormatBinary:
		default:
			t.Fatalf("%q: format %q accepted", raw, rq.format)
		}
		switch rq.mode {
		case entropy.ModeDRBG, entropy.ModeFull, entropy.ModePR:
		default:
			t.Fatalf("%q: mode %q accepted", raw, rq.mode)
		}
	})
}
