package drbg_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/entropy/drbg"
)

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func newTest(t testing.TB, opts *drbg.Options) *drbg.CTR {
	t.Helper()
	d, err := drbg.NewWithOptions(fill(32, 1), fill(16, 2), []byte("qrngd test"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNew_InputBounds(t *testing.T) {
	const max = drbg.MaxInputLen
	for _, tc := range []struct {
		name                 string
		entropy, nonce, pers []byte
		opts                 *drbg.Options
		wantErr              string // substring; "" means success
	}{
		{"minimum", fill(32, 1), fill(16, 2), nil, nil, ""},
		{"maximum", fill(max, 1), fill(max, 2), fill(max, 3), nil, ""},
		{"nil entropy", nil, fill(16, 2), nil, nil, "entropy input is 0 bytes, need at least 32"},
		{"short entropy", fill(31, 1), fill(16, 2), nil, nil, "entropy input is 31 bytes"},
		{"long entropy", fill(max+1, 1), fill(16, 2), nil, nil, "entropy input is 65537 bytes, at most 65536"},
		{"short nonce", fill(32, 1), fill(15, 2), nil, nil, "nonce is 15 bytes, need at least 16"},
		{"long nonce", fill(32, 1), fill(max+1, 2), nil, nil, "nonce is 65537 bytes"},
		{"long personalization", fill(32, 1), fill(16, 2), fill(max+1, 3), nil, "personalization string is 65537 bytes"},
		{"interval 1", fill(32, 1), fill(16, 2), nil, &drbg.Options{ReseedInterval: 1}, ""},
		{"interval 2^48", fill(32, 1), fill(16, 2), nil, &drbg.Options{ReseedInterval: 1 << 48}, ""},
		{"interval above 2^48", fill(32, 1), fill(16, 2), nil, &drbg.Options{ReseedInterval: 1<<48 + 1}, "reseed interval 281474976710657 exceeds 2^48"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := drbg.NewWithOptions(tc.entropy, tc.nonce, tc.pers, tc.opts)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				d.Close()
				return
			}
			if !errors.Is(err, drbg.ErrInvalidInput) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalidInput mentioning %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "entropy/drbg: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestCTR_Reseed_InputBounds(t *testing.T) {
	d := newTest(t, nil)
	defer d.Close()
	for _, tc := range []struct {
		name              string
		entropy, addition []byte
		ok                bool
	}{
		{"minimum", fill(32, 4), nil, true},
		{"maximum", fill(drbg.MaxInputLen, 4), fill(drbg.MaxInputLen, 5), true},
		{"short entropy", fill(31, 4), nil, false},
		{"long entropy", fill(drbg.MaxInputLen+1, 4), nil, false},
		{"long additional", fill(32, 4), fill(drbg.MaxInputLen+1, 5), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Reseed(tc.entropy, tc.addition)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, drbg.ErrInvalidInput) {
				t.Fatalf("err = %v, want ErrInvalidInput", err)
			}
		})
	}
}

func TestCTR_Generate_Bounds(t *testing.T) {
	d := newTest(t, nil)
	defer d.Close()
	if err := d.Generate(make([]byte, drbg.MaxRequest), fill(drbg.MaxInputLen, 9)); err != nil {
		t.Fatalf("maximum request: %v", err)
	}
	if err := d.Generate(nil, nil); err != nil {
		t.Fatalf("empty request: %v", err)
	}
	err := d.Generate(make([]byte, drbg.MaxRequest+1), nil)
	if !errors.Is(err, drbg.ErrRequestTooLarge) {
		t.Fatalf("err = %v, want ErrRequestTooLarge", err)
	}
	if err := d.GeneratePR(make([]byte, drbg.MaxRequest+1), fill(32, 3), nil); !errors.Is(err, drbg.ErrRequestTooLarge) {
		t.Fatalf("GeneratePR err = %v, want ErrRequestTooLarge", err)
	}
	if err := d.Generate(make([]byte, 16), fill(drbg.MaxInputLen+1, 9)); !errors.Is(err, drbg.ErrInvalidInput) {
		t.Fatalf("err = %v, want ErrInvalidInput for long additional input", err)
	}
	if err := d.GeneratePR(make([]byte, 16), fill(31, 3), nil); !errors.Is(err, drbg.ErrInvalidInput) {
		t.Fatalf("GeneratePR err = %v, want ErrInvalidInput for short entropy", err)
	}
}

// TestCTR_Generate_RejectedRequestHasNoEffect: a rejected request must not
// change the output stream.
func TestCTR_Generate_RejectedRequestHasNoEffect(t *testing.T) {
	a, b := newTest(t, nil), newTest(t, nil)
	defer a.Close()
	defer b.Close()
	if err := a.Generate(make([]byte, drbg.MaxRequest+1), nil); err == nil {
		t.Fatal("oversized request accepted")
	}
	if err := a.GeneratePR(make([]byte, 32), fill(8, 1), nil); err == nil {
		t.Fatal("GeneratePR with short entropy accepted")
	}
	x, y := make([]byte, 48), make([]byte, 48)
	if err := a.Generate(x, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Generate(y, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatal("rejected request changed the state")
	}
}

func TestCTR_ReseedCounter_Interval(t *testing.T) {
	const interval = 3
	d := newTest(t, &drbg.Options{ReseedInterval: interval})
	defer d.Close()
	out := make([]byte, 32)
	if n := d.ReseedCounter(); n != 1 {
		t.Fatalf("after New: counter %d, want 1", n)
	}
	for i := 1; i <= interval; i++ {
		if err := d.Generate(out, nil); err != nil {
			t.Fatalf("generate %d: %v", i, err)
		}
		if n := d.ReseedCounter(); n != uint64(i+1) {
			t.Fatalf("after %d generates: counter %d, want %d", i, n, i+1)
		}
	}
	if err := d.Generate(out, nil); !errors.Is(err, drbg.ErrReseedRequired) {
		t.Fatalf("generate %d: err = %v, want ErrReseedRequired", interval+1, err)
	}
	if n, err := d.Read(out); n != 0 || !errors.Is(err, drbg.ErrReseedRequired) {
		t.Fatalf("Read = %d, %v, want 0, ErrReseedRequired", n, err)
	}
	if n := d.ReseedCounter(); n != interval+1 {
		t.Fatalf("failed generates moved the counter to %d", n)
	}
	if err := d.Reseed(fill(32, 7), nil); err != nil {
		t.Fatal(err)
	}
	if n := d.ReseedCounter(); n != 1 {
		t.Fatalf("after Reseed: counter %d, want 1", n)
	}
	if err := d.Generate(out, nil); err != nil {
		t.Fatalf("after Reseed: %v", err)
	}
	// GeneratePR reseeds first, so it works even when the interval is used up.
	for range interval {
		if err := d.Generate(out, nil); err != nil && !errors.Is(err, drbg.ErrReseedRequired) {
			t.Fatal(err)
		}
	}
	if err := d.GeneratePR(out, fill(32, 8), nil); err != nil {
		t.Fatalf("GeneratePR with exhausted interval: %v", err)
	}
	if n := d.ReseedCounter(); n != 2 {
		t.Fatalf("after GeneratePR: counter %d, want 2", n)
	}
}

// TestCTR_Read_SplitsLikeGenerate: Read of a long buffer equals sequential
// MaxRequest-sized Generate calls without additional input.
func TestCTR_Read_SplitsLikeGenerate(t *testing.T) {
	const total = 3*drbg.MaxRequest + 1234
	a, b := newTest(t, nil), newTest(t, nil)
	defer a.Close()
	defer b.Close()
	got := make([]byte, total)
	n, err := a.Read(got)
	if err != nil || n != total {
		t.Fatalf("Read = %d, %v", n, err)
	}
	want := make([]byte, total)
	for off := 0; off < total; off += drbg.MaxRequest {
		if err := b.Generate(want[off:min(off+drbg.MaxRequest, total)], nil); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("Read output differs from sequential Generate calls")
	}
	if a.ReseedCounter() != 5 || b.ReseedCounter() != 5 {
		t.Fatalf("counters %d, %d, want 5 (four generates)", a.ReseedCounter(), b.ReseedCounter())
	}
}

func TestCTR_Read_StopsAtReseedLimit(t *testing.T) {
	d := newTest(t, &drbg.Options{ReseedInterval: 2})
	defer d.Close()
	buf := make([]byte, 3*drbg.MaxRequest)
	n, err := d.Read(buf)
	if n != 2*drbg.MaxRequest || !errors.Is(err, drbg.ErrReseedRequired) {
		t.Fatalf("Read = %d, %v, want %d, ErrReseedRequired", n, err, 2*drbg.MaxRequest)
	}
}

func TestCTR_Closed(t *testing.T) {
	d := newTest(t, nil)
	d.Close()
	out := make([]byte, 16)
	for name, err := range map[string]error{
		"Generate":   d.Generate(out, nil),
		"GeneratePR": d.GeneratePR(out, fill(32, 1), nil),
		"Reseed":     d.Reseed(fill(32, 1), nil),
	} {
		if !errors.Is(err, drbg.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if n, err := d.Read(out); n != 0 || !errors.Is(err, drbg.ErrClosed) {
		t.Errorf("Read after Close = %d, %v", n, err)
	}
	if n, err := d.Read(nil); n != 0 || !errors.Is(err, drbg.ErrClosed) {
		t.Errorf("empty Read after Close = %d, %v", n, err)
	}
	if d.ReseedCounter() != 0 {
		t.Errorf("ReseedCounter after Close = %d", d.ReseedCounter())
	}
	if !bytes.Equal(out, make([]byte, 16)) {
		t.Error("closed DRBG wrote output")
	}
	d.Close()
}

// TestCTR_Inputs_Matter: every input changes the output (no input silently
// ignored), and the empty additional input is the same as none.
func TestCTR_Inputs_Matter(t *testing.T) {
	gen := func(ent, nonce, pers, add []byte) []byte {
		d, err := drbg.New(ent, nonce, pers)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		out := make([]byte, 32)
		if err := d.Generate(out, add); err != nil {
			t.Fatal(err)
		}
		return out
	}
	base := gen(fill(32, 1), fill(16, 2), nil, nil)
	for name, out := range map[string][]byte{
		"entropy":         gen(fill(32, 9), fill(16, 2), nil, nil),
		"nonce":           gen(fill(32, 1), fill(16, 9), nil, nil),
		"personalization": gen(fill(32, 1), fill(16, 2), []byte{0}, nil),
		"additional":      gen(fill(32, 1), fill(16, 2), nil, []byte{0}),
	} {
		if bytes.Equal(out, base) {
			t.Errorf("changing the %s did not change the output", name)
		}
	}
	if !bytes.Equal(base, gen(fill(32, 1), fill(16, 2), []byte{}, []byte{})) {
		t.Error("empty personalization/additional input differs from none")
	}
}

func TestCTR_ConcurrentUse(t *testing.T) {
	d := newTest(t, nil)
	defer d.Close()
	done := make(chan error)
	for range 4 {
		go func() {
			buf := make([]byte, 1000)
			for range 50 {
				if _, err := d.Read(buf); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := d.ReseedCounter(); n != 201 {
		t.Fatalf("counter %d after 200 generates, want 201", n)
	}
}

func BenchmarkGenerate64K(b *testing.B) {
	d := newTest(b, nil)
	defer d.Close()
	out := make([]byte, drbg.MaxRequest)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Generate(out, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerate64KAdditional(b *testing.B) {
	d := newTest(b, nil)
	defer d.Close()
	out := make([]byte, drbg.MaxRequest)
	add := fill(32, 5)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Generate(out, add); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerate32(b *testing.B) {
	d := newTest(b, nil)
	defer d.Close()
	out := make([]byte, 32)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Generate(out, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAESCTR64K is the ceiling for BenchmarkGenerate64K: raw AES-256-CTR
// keystream from crypto/cipher over 64 KiB of zeros, one stream for the run.
func BenchmarkAESCTR64K(b *testing.B) {
	block, err := aes.NewCipher(fill(32, 1))
	if err != nil {
		b.Fatal(err)
	}
	stream := cipher.NewCTR(block, make([]byte, aes.BlockSize))
	zeros := make([]byte, drbg.MaxRequest)
	out := make([]byte, drbg.MaxRequest)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		stream.XORKeyStream(out, zeros)
	}
}
