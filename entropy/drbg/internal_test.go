package drbg

import (
	"bytes"
	"crypto/aes"
	"errors"
	"testing"
)

func seeded(t *testing.T, opts *Options) *CTR {
	t.Helper()
	ent := bytes.Repeat([]byte{0x11}, 32)
	nonce := bytes.Repeat([]byte{0x22}, 16)
	d, err := NewWithOptions(ent, nonce, []byte("internal test"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// refKeystream is the keystream loop of §10.2.1.5.2 step 4 written out:
// V = (V+1) mod 2^128, output_block = E(Key, V), for every block.
func refKeystream(t *testing.T, key [KeyLen]byte, v [BlockLen]byte, n int) ([]byte, [BlockLen]byte) {
	t.Helper()
	b, err := aes.NewCipher(key[:])
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for len(out) < n {
		for i := BlockLen - 1; i >= 0; i-- {
			v[i]++
			if v[i] != 0 {
				break
			}
		}
		var blk [BlockLen]byte
		b.Encrypt(blk[:], v[:])
		out = append(out, blk[:]...)
	}
	return out[:n], v
}

// TestCTR_keystream_MatchesReference checks both keystream paths (single blocks
// for small requests, cipher.NewCTR for bulk) against the block-by-block
// definition, including carries across the 64-bit half and the wrap at 2^128.
func TestCTR_keystream_MatchesReference(t *testing.T) {
	starts := map[string][BlockLen]byte{
		"zero":           {},
		"carry-64":       {7: 0x01, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xfd},
		"wrap-128":       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe},
		"wrap-128-early": {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	lengths := []int{0, 1, 15, 16, 17, 100, smallRequest - 1, smallRequest, smallRequest + 1, 1000, 4096 + 5, MaxRequest - 1, MaxRequest}
	for name, v0 := range starts {
		for _, n := range lengths {
			d := seeded(t, nil)
			d.v = v0
			want, wantV := refKeystream(t, d.key, v0, n)
			got := make([]byte, n)
			d.keystream(got)
			if !bytes.Equal(got, want) {
				t.Errorf("%s, %d bytes: keystream differs from the reference", name, n)
			}
			if d.v != wantV {
				t.Errorf("%s, %d bytes: V = %x, want %x", name, n, d.v, wantV)
			}
			if d.s.small != [smallRequest]byte{} || d.s.ctr != [BlockLen]byte{} {
				t.Errorf("%s, %d bytes: keystream scratch not wiped", name, n)
			}
		}
	}
}

// TestCTR_Generate_BulkEqualsSmall checks that a bulk request produces what the
// same request would produce block by block through the small-request path,
// which the CAVP vectors (64-byte requests) pin down: the same DRBG state is
// driven once with one 4096-byte Generate and once with the keystream computed
// in 128-byte pieces followed by the same final update.
func TestCTR_Generate_BulkEqualsSmall(t *testing.T) {
	a, b := seeded(t, nil), seeded(t, nil)
	bulk := make([]byte, 4096)
	if err := a.Generate(bulk, []byte("extra")); err != nil {
		t.Fatal(err)
	}
	// Replay Generate on b by hand with small pieces.
	b.s.df.derive(&b.s.seed, []byte("extra"), nil, nil)
	b.update(&b.s.seed)
	pieces := make([]byte, 4096)
	for i := 0; i < len(pieces); i += smallRequest {
		b.keystream(pieces[i : i+smallRequest])
	}
	b.update(&b.s.seed)
	b.reseedCounter++
	if !bytes.Equal(bulk, pieces) {
		t.Fatal("bulk keystream differs from the small-request path")
	}
	if a.key != b.key || a.v != b.v || a.reseedCounter != b.reseedCounter {
		t.Fatal("state after bulk Generate differs from the small-request replay")
	}
}

func TestCTR_Close_Zeroizes(t *testing.T) {
	d := seeded(t, nil)
	out := make([]byte, 1000)
	if err := d.Generate(out, []byte("additional")); err != nil {
		t.Fatal(err)
	}
	if d.key == [KeyLen]byte{} || d.v == [BlockLen]byte{} || d.block == nil {
		t.Fatal("state unexpectedly empty before Close")
	}
	d.Close()
	if d.key != ([KeyLen]byte{}) {
		t.Errorf("key not zeroized: %x", d.key)
	}
	if d.v != ([BlockLen]byte{}) {
		t.Errorf("V not zeroized: %x", d.v)
	}
	if d.s != (scratch{}) {
		t.Error("scratch not zeroized")
	}
	if d.block != nil {
		t.Error("key schedule still referenced")
	}
	if d.reseedCounter != 0 {
		t.Errorf("reseed counter %d after Close", d.reseedCounter)
	}
	d.Close() // idempotent
}

// TestCTR_ScratchWipedAfterUse checks that seed material does not linger between
// calls.
func TestCTR_ScratchWipedAfterUse(t *testing.T) {
	d := seeded(t, nil)
	out := make([]byte, 300)
	if err := d.Generate(out, []byte("additional")); err != nil {
		t.Fatal(err)
	}
	if err := d.Reseed(bytes.Repeat([]byte{0x33}, 32), []byte("more")); err != nil {
		t.Fatal(err)
	}
	if d.s != (scratch{}) {
		t.Errorf("scratch holds data between calls: %+v", d.s)
	}
}

// TestCTR_Generate_Allocations pins the allocation count: the per-Generate
// rekey (crypto/aes.NewCipher) and, above smallRequest bytes, the stream
// (crypto/cipher.NewCTR) are the only heap allocations; neither constructor
// can be inlined, so they cannot live on the stack (see doc.go). Additional
// input adds the df key schedule and the key of the extra Update (step 2.2).
func TestCTR_Generate_Allocations(t *testing.T) {
	d := seeded(t, nil)
	big := make([]byte, MaxRequest)
	small := make([]byte, 32)
	add := []byte("additional input")
	for _, tc := range []struct {
		name  string
		out   []byte
		add   []byte
		limit float64
	}{
		{"64KiB", big, nil, 2},
		{"32B", small, nil, 1},
		{"64KiB+additional", big, add, 4},
	} {
		n := testing.AllocsPerRun(50, func() {
			if err := d.Generate(tc.out, tc.add); err != nil {
				t.Fatal(err)
			}
		})
		if n > tc.limit {
			t.Errorf("%s: %.1f allocations per Generate, want at most %.0f", tc.name, n, tc.limit)
		}
	}
}

func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		v    [BlockLen]byte
		n    uint64
		want [BlockLen]byte
	}{
		{[BlockLen]byte{}, 1, [BlockLen]byte{15: 1}},
		{[BlockLen]byte{15: 0xff}, 1, [BlockLen]byte{14: 1}},
		{[BlockLen]byte{8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff}, 1, [BlockLen]byte{7: 1}},
		{[BlockLen]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 2, [BlockLen]byte{15: 1}},
		{[BlockLen]byte{15: 0x10}, 4096, [BlockLen]byte{14: 0x10, 15: 0x10}},
	} {
		v := tc.v
		add(&v, tc.n)
		if v != tc.want {
			t.Errorf("%x + %d = %x, want %x", tc.v, tc.n, v, tc.want)
		}
	}
}

func TestCTR_Generate_ErrorLeavesStateUnchanged(t *testing.T) {
	d := seeded(t, &Options{ReseedInterval: 1})
	key, v, ctr := d.key, d.v, d.reseedCounter
	if err := d.Generate(make([]byte, MaxRequest+1), nil); !errors.Is(err, ErrRequestTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if err := d.Generate(nil, make([]byte, MaxInputLen+1)); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("err = %v", err)
	}
	if d.key != key || d.v != v || d.reseedCounter != ctr {
		t.Fatal("state changed by a rejected request")
	}
}
