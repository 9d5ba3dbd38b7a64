package drbg_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/entropy/drbg"
)

// rspCase is one COUNT of a CAVP DRBGVS response file. Repeated fields
// (AdditionalInput, EntropyInputPR) keep their order.
type rspCase struct {
	section string            // e.g. "[AES-256 use df] [PredictionResistance = True] ..."
	header  map[string]string // bracketed "[Name = value]" parameters
	fields  map[string][]string
	line    int
}

func (c *rspCase) one(t *testing.T, name string) []byte {
	t.Helper()
	v := c.fields[name]
	if len(v) != 1 {
		t.Fatalf("line %d: want exactly one %s, have %d", c.line, name, len(v))
	}
	return unhex(t, c, name, v[0])
}

func (c *rspCase) two(t *testing.T, name string) [2][]byte {
	t.Helper()
	v := c.fields[name]
	if len(v) != 2 {
		t.Fatalf("line %d: want two %s, have %d", c.line, name, len(v))
	}
	return [2][]byte{unhex(t, c, name, v[0]), unhex(t, c, name, v[1])}
}

func unhex(t *testing.T, c *rspCase, name, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("line %d: %s: %v", c.line, name, err)
	}
	return b
}

// parseRSP reads a CAVP .rsp file: '#' comments, bracketed section parameters,
// "Name = value" fields (value may be empty), records separated by blank lines.
func parseRSP(t *testing.T, path string) []*rspCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var (
		cases   []*rspCase
		header  = map[string]string{}
		section []string
		cur     *rspCase
		inHdr   bool
	)
	flush := func() {
		if cur != nil {
			cases = append(cases, cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	ln := 0
	for sc.Scan() {
		ln++
		line := strings.TrimRight(sc.Text(), "\r \t")
		switch {
		case line == "":
			flush()
			inHdr = false
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			flush()
			if !inHdr { // a new parameter block starts
				header = map[string]string{}
				section = nil
				inHdr = true
			}
			section = append(section, line)
			inner := line[1 : len(line)-1]
			if k, v, ok := strings.Cut(inner, " = "); ok {
				header[k] = v
			} else {
				header["mode"] = inner
			}
		default:
			k, v, ok := strings.Cut(line, " =")
			if !ok {
				t.Fatalf("%s:%d: unparsable line %q", path, ln, line)
			}
			v = strings.TrimSpace(v)
			if k == "COUNT" {
				flush()
				cur = &rspCase{section: strings.Join(section, " "), header: header, fields: map[string][]string{}, line: ln}
			}
			if cur == nil {
				t.Fatalf("%s:%d: field %q outside a COUNT record", path, ln, k)
			}
			cur.fields[k] = append(cur.fields[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return cases
}

// katCases returns the [AES-256 use df] cases of a file with the given
// PredictionResistance, and checks the file has what the tests need: at least
// 15 cases per parameter block and every combination of empty and 256-bit
// personalization string and additional input.
func katCases(t *testing.T, path, pr string) []*rspCase {
	t.Helper()
	var out []*rspCase
	perSection := map[string]int{}
	combos := map[string]int{}
	for _, c := range parseRSP(t, path) {
		if c.header["mode"] != "AES-256 use df" || c.header["PredictionResistance"] != pr {
			continue
		}
		out = append(out, c)
		perSection[fmt.Sprintf("%s@%p", c.section, c.header)]++
		combos["P"+c.header["PersonalizationStringLen"]+"/A"+c.header["AdditionalInputLen"]]++
	}
	for s, n := range perSection {
		if n < 15 {
			t.Errorf("%s: parameter block %s has %d cases, want at least 15", path, s, n)
		}
	}
	for _, k := range []string{"P0/A0", "P0/A256", "P256/A0", "P256/A256"} {
		if combos[k] < 15 {
			t.Errorf("%s: %d cases with %s, want at least 15", path, combos[k], k)
		}
	}
	return out
}

const minKATs = 15

func TestCTR_KAT_PredictionResistanceFalse(t *testing.T) {
	cases := katCases(t, "testdata/CTR_DRBG_pr_false.rsp", "False")
	ran := 0
	for _, c := range cases {
		if c.header["ReturnedBitsLen"] != "512" {
			t.Fatalf("line %d: ReturnedBitsLen %q, want 512", c.line, c.header["ReturnedBitsLen"])
		}
		want := c.one(t, "ReturnedBits")
		d, err := drbg.New(c.one(t, "EntropyInput"), c.one(t, "Nonce"), c.one(t, "PersonalizationString"))
		if err != nil {
			t.Fatalf("line %d: New: %v", c.line, err)
		}
		// This file is the "reseed" variant: Instantiate, Reseed, Generate, Generate.
		if err := d.Reseed(c.one(t, "EntropyInputReseed"), c.one(t, "AdditionalInputReseed")); err != nil {
			t.Fatalf("line %d: Reseed: %v", c.line, err)
		}
		add := c.two(t, "AdditionalInput")
		got := make([]byte, len(want))
		for i := range add {
			if err := d.Generate(got, add[i]); err != nil {
				t.Fatalf("line %d: Generate %d: %v", c.line, i+1, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("line %d (%s COUNT %s):\n got %x\nwant %x", c.line, c.section, c.fields["COUNT"][0], got, want)
		}
		if n := d.ReseedCounter(); n != 3 {
			t.Errorf("line %d: reseed counter %d after reseed and two generates, want 3", c.line, n)
		}
		d.Close()
		ran++
	}
	t.Logf("%d [AES-256 use df] [PredictionResistance = False] known answers checked", ran)
	if ran < minKATs {
		t.Fatalf("ran %d known-answer tests, want at least %d", ran, minKATs)
	}
}

func TestCTR_KAT_PredictionResistanceTrue(t *testing.T) {
	cases := katCases(t, "testdata/CTR_DRBG_pr_true.rsp", "True")
	ran := 0
	for _, c := range cases {
		want := c.one(t, "ReturnedBits")
		ent, nonce, pers := c.one(t, "EntropyInput"), c.one(t, "Nonce"), c.one(t, "PersonalizationString")
		add := c.two(t, "AdditionalInput")
		entPR := c.two(t, "EntropyInputPR")

		// The caller-driven way: Reseed(EntropyInputPR_i, AdditionalInput_i), then
		// Generate with no additional input (SP 800-90A §9.3.1 step 7).
		d, err := drbg.New(ent, nonce, pers)
		if err != nil {
			t.Fatalf("line %d: New: %v", c.line, err)
		}
		got := make([]byte, len(want))
		for i := range 2 {
			if err := d.Reseed(entPR[i], add[i]); err != nil {
				t.Fatalf("line %d: Reseed %d: %v", c.line, i+1, err)
			}
			if err := d.Generate(got, nil); err != nil {
				t.Fatalf("line %d: Generate %d: %v", c.line, i+1, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("line %d (%s COUNT %s) Reseed+Generate:\n got %x\nwant %x", c.line, c.section, c.fields["COUNT"][0], got, want)
		}
		d.Close()

		// The same through GeneratePR.
		d, err = drbg.New(ent, nonce, pers)
		if err != nil {
			t.Fatalf("line %d: New: %v", c.line, err)
		}
		got2 := make([]byte, len(want))
		for i := range 2 {
			if err := d.GeneratePR(got2, entPR[i], add[i]); err != nil {
				t.Fatalf("line %d: GeneratePR %d: %v", c.line, i+1, err)
			}
		}
		if !bytes.Equal(got2, want) {
			t.Errorf("line %d (%s COUNT %s) GeneratePR:\n got %x\nwant %x", c.line, c.section, c.fields["COUNT"][0], got2, want)
		}
		d.Close()
		ran++
	}
	t.Logf("%d [AES-256 use df] [PredictionResistance = True] known answers checked (each twice)", ran)
	if ran < minKATs {
		t.Fatalf("ran %d known-answer tests, want at least %d", ran, minKATs)
	}
}

// TestCTR_KAT_DetectsWrongProcedure shows the known answers are sensitive: leaving
// out the AdditionalInputReseed of a case that has one must not reproduce the
// expected bits.
func TestCTR_KAT_DetectsWrongProcedure(t *testing.T) {
	for _, c := range katCases(t, "testdata/CTR_DRBG_pr_false.rsp", "False") {
		if c.header["AdditionalInputLen"] != "256" {
			continue
		}
		d, err := drbg.New(c.one(t, "EntropyInput"), c.one(t, "Nonce"), c.one(t, "PersonalizationString"))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.Reseed(c.one(t, "EntropyInputReseed"), nil); err != nil {
			t.Fatal(err)
		}
		add := c.two(t, "AdditionalInput")
		got := make([]byte, 64)
		for i := range add {
			if err := d.Generate(got, add[i]); err != nil {
				t.Fatal(err)
			}
		}
		if bytes.Equal(got, c.one(t, "ReturnedBits")) {
			t.Fatalf("line %d: output matched without AdditionalInputReseed", c.line)
		}
		return
	}
	t.Fatal("no case with additional input found")
}
