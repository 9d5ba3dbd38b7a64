package condition

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"testing"
)

// Reference values of Output_Entropy computed independently with mpmath at
// 20,000 bits of precision in linear space, straight from the steps of 90B
// §3.1.5.1.2 (nw capped at n_in, ψ and ω capped at 1 as the NIST tool does).
// The first three were also checked by hand:
//
//	(2,1,1,1):  P_high=1/2, P_low=1/6, ψ=2/6+1/2=5/6, ω=(2+sqrt(4 ln2))/6=0.61;
//	            h_out = log2(6/5) = 0.263034405833794
//	(4,4,4,4):  P_high=P_low=1/16, ψ=1/8, ω=(1+sqrt(8 ln2))/16=0.2097 > ψ;
//	            h_out = 4 − log2(1+sqrt(8 ln2)) = 2.25376461870253
//	(2048,256,256,256): ψ ≈ 2·2^-256 dominates; h_out = 255.
func TestOutputEntropy_Reference(t *testing.T) {
	tests := []struct {
		nIn, nOut, nw int
		hIn           float64
		want          float64
		tol           float64
	}{
		{2, 1, 1, 1, 0.2630344058337938335834195, 1e-13},
		{4, 4, 4, 4, 2.253764618702533430587832, 1e-13},
		{8, 4, 4, 6, 3.349222241601145134513116, 1e-13},
		{64, 32, 32, 20, 19.99964782285552060006572, 1e-12},
		{64, 32, 32, 32, 31.00000000016795180745388, 1e-12},
		{128, 64, 64, 63.5, 62.7284466968363880274022, 1e-12},
		{512, 256, 128, 200, 127.9999999999999999999997, 1e-12},
		{1000, 256, 256, 255.9, 254.9491337394191063439398, 1e-12},
		// 256 − 6.327940512e-9: ω's square-root term dominates at n_in = 320.
		{320, 256, 256, 320, 255.9999999936720594881075, 1e-12},
		{320, 256, 256, 300, 255.9999999936720594881075, 1e-12},
		{2048, 256, 256, 288, 255.9999999996640963850727, 1e-12},
		{2048, 256, 256, 256, 255, 1e-12},
		{512, 256, 256, 256, 255, 1e-12},
		{1024, 256, 256, 512, 256, 1e-12},
		{4096, 256, 256, 4000, 256, 1e-12},
		{2560, 256, 256, 320, 256, 1e-12}, // 256 − 7.8e-20
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_%d_%d_%g", tt.nIn, tt.nOut, tt.nw, tt.hIn), func(t *testing.T) {
			got := OutputEntropy(tt.nIn, tt.nOut, tt.nw, tt.hIn)
			if math.Abs(got-tt.want) > tt.tol {
				t.Errorf("OutputEntropy(%d, %d, %d, %g) = %.17g, want %.17g", tt.nIn, tt.nOut, tt.nw, tt.hIn, got, tt.want)
			}
		})
	}
}

// bigOutputEntropy evaluates the 90B steps in linear space with big.Float:
// an implementation independent of the log-space one under test.
func bigOutputEntropy(nIn, nOut, nw int, hIn float64) float64 {
	const prec = 8192
	nw = min(nw, nIn)
	n := min(nOut, nw)
	nf := func() *big.Float { return new(big.Float).SetPrec(prec) }
	pow2 := func(e float64) *big.Float { // 2^e = 2^floor(e) · 2^frac(e)
		fl := math.Floor(e)
		x := nf().SetFloat64(math.Exp2(e - fl))
		return x.SetMantExp(x, int(fl))
	}
	one := nf().SetInt64(1)
	pHigh := pow2(-hIn)
	denom := nf().Sub(pow2(float64(nIn)), one)
	pLow := nf().Quo(nf().Sub(one, pHigh), denom)
	pt := pow2(float64(nIn - n))
	psi := nf().Add(nf().Mul(pt, pLow), pHigh)
	u := nf().Mul(pt, nf().SetFloat64(2*float64(n)*math.Ln2))
	u.Sqrt(u)
	u.Add(u, pt)
	omega := nf().Mul(u, pLow)
	m := psi
	if omega.Cmp(psi) > 0 {
		m = omega
	}
	if m.Cmp(one) > 0 {
		m = one
	}
	mant := nf()
	exp := m.MantExp(mant) // m = mant · 2^exp, 0.5 ≤ mant < 1
	f, _ := mant.Float64()
	return -(float64(exp) + math.Log2(f))
}

func TestOutputEntropy_MatchesLinearSpace(t *testing.T) {
	for _, nIn := range []int{8, 64, 256, 320, 500, 1024, 2000, 4096} {
		for _, nw := range []int{128, 256} {
			for _, frac := range []float64{0.01, 0.3, 0.5, 0.9, 0.99, 1} {
				hIn := frac * float64(nIn)
				got := OutputEntropy(nIn, 256, nw, hIn)
				want := bigOutputEntropy(nIn, 256, nw, hIn)
				if math.Abs(got-want) > 1e-9*math.Max(1, want) {
					t.Errorf("OutputEntropy(%d, 256, %d, %g) = %.17g, linear-space %.17g", nIn, nw, hIn, got, want)
				}
			}
		}
	}
}

func TestOutputEntropy_Bounds(t *testing.T) {
	for _, nIn := range []int{1, 7, 64, 300, 320, 1000, 10000, 1 << 20} {
		prev := -1.0
		for i := 1; i <= 64; i++ {
			hIn := float64(nIn) * float64(i) / 64
			got := OutputEntropy(nIn, 256, 256, hIn)
			if got < 0 || got > hIn+1e-9 || got > 256 || got > float64(nIn) {
				t.Fatalf("OutputEntropy(%d, 256, 256, %g) = %g outside [0, min(h_in, n_out, nw)]", nIn, hIn, got)
			}
			// The formula itself is not monotone in h_in when n_in is close
			// to n (ω grows with P_low); for inputs well above n_out it is.
			if nIn >= 300 && got < prev-1e-9 {
				t.Fatalf("OutputEntropy(%d, 256, 256, ·) decreases: %g then %g at h_in %g", nIn, prev, got, hIn)
			}
			prev = got
		}
	}
}

func TestOutputEntropy_Domain(t *testing.T) {
	for _, tt := range []struct {
		nIn, nOut, nw int
		hIn           float64
	}{
		{0, 256, 256, 1}, {256, 0, 256, 1}, {256, 256, 0, 1},
		{256, 256, 256, 0}, {256, 256, 256, -1}, {256, 256, 256, 257}, {256, 256, 256, math.NaN()},
	} {
		if got := OutputEntropy(tt.nIn, tt.nOut, tt.nw, tt.hIn); !math.IsNaN(got) {
			t.Errorf("OutputEntropy(%d, %d, %d, %g) = %g, want NaN", tt.nIn, tt.nOut, tt.nw, tt.hIn, got)
		}
	}
}

func TestIsFullEntropy(t *testing.T) {
	limit := 256 - 256*math.Exp2(-32) // 256 − 2^-24
	tests := []struct {
		hOut float64
		want bool
	}{
		{256, true},
		{limit, true},
		{math.Nextafter(limit, 0), false},
		{255.9999999936720594881075, true}, // n_in = h_in = 320
		{255, false},
		{0, false},
	}
	for _, tt := range tests {
		if got := IsFullEntropy(tt.hOut, 256); got != tt.want {
			t.Errorf("IsFullEntropy(%.17g, 256) = %v, want %v", tt.hOut, got, tt.want)
		}
	}
	// The formula alone would call 300 bits in 320 full entropy; 90C's +64
	// margin does not.
	if !IsFullEntropy(OutputEntropy(320, 256, 256, 300), 256) {
		t.Error("Output_Entropy(320, 256, 256, 300) expected to pass the ε test on its own")
	}
	if BlockIsFullEntropy(320, 300) {
		t.Error("BlockIsFullEntropy(320, 300) = true, want false (needs h_in ≥ 320)")
	}
	if !BlockIsFullEntropy(320, 320) {
		t.Error("BlockIsFullEntropy(320, 320) = false, want true")
	}
}

func TestSamplesPerBlock(t *testing.T) {
	tests := []struct {
		bits int
		h    float64
		want int
	}{
		{8, 8, 40},      // 40·8 = 320
		{8, 7.5, 43},    // ceil(320/7.5 = 42.67)
		{8, 6, 54},      // ceil(53.3)
		{8, 0.5, 640},   //
		{8, 0.1, 3200},  // 3200·0.1 rounds to ≥ 320
		{1, 1, 320},     //
		{1, 0.9, 356},   // ceil(355.6)
		{4, 3.3, 97},    // ceil(96.97)
		{2, 1.999, 161}, // ceil(160.08)
	}
	for _, tt := range tests {
		got, err := SamplesPerBlock(tt.bits, tt.h)
		if err != nil || got != tt.want {
			t.Errorf("SamplesPerBlock(%d, %g) = %d, %v; want %d", tt.bits, tt.h, got, err, tt.want)
			continue
		}
		if !BlockIsFullEntropy(got*tt.bits, float64(got)*tt.h) || BlockIsFullEntropy((got-1)*tt.bits, float64(got-1)*tt.h) {
			t.Errorf("SamplesPerBlock(%d, %g) = %d is not the smallest full-entropy count", tt.bits, tt.h, got)
		}
	}
	for _, tt := range []struct {
		bits int
		h    float64
	}{{0, 1}, {9, 1}, {8, 0}, {8, 8.5}, {8, math.NaN()}, {1, 1e-6}} {
		if _, err := SamplesPerBlock(tt.bits, tt.h); !errors.Is(err, ErrBadParameter) {
			t.Errorf("SamplesPerBlock(%d, %g) error = %v, want ErrBadParameter", tt.bits, tt.h, err)
		}
	}
}

// Known answers computed with Python's hmac module (an independent HMAC
// implementation) under the documented key.
func TestConditioner_KnownAnswer(t *testing.T) {
	ramp := make([]byte, 4096)
	for i := range ramp {
		ramp[i] = byte(i)
	}
	tests := []struct {
		in   []byte
		want string
	}{
		{nil, "ebab54e38256e36b6552a29acf4cd9c95acaea26a9fd17b03e181c9b208e26eb"},
		{[]byte("abc"), "c079559b0126514830c64d279bed645891eb72b0e5c8184331633b3e3022f345"},
		{ramp, "31c657eb611d28185495ff6b8e9b3af0c31c816a381352c0b1ea4880af8d9215"},
	}
	c := New()
	for _, tt := range tests {
		var got [OutputBytes]byte
		c.Condition(&got, tt.in)
		if h := hex.EncodeToString(got[:]); h != tt.want {
			t.Errorf("Condition(%d bytes) = %s, want %s", len(tt.in), h, tt.want)
		}
		// Streaming in odd pieces gives the same block.
		for i := 0; i < len(tt.in); i += 7 {
			c.Write(tt.in[i:min(i+7, len(tt.in))])
		}
		if c.Len() != int64(len(tt.in)) {
			t.Errorf("Len = %d, want %d", c.Len(), len(tt.in))
		}
		var streamed [OutputBytes]byte
		c.Sum(&streamed)
		if streamed != got {
			t.Errorf("streamed block %x differs from one-shot %x", streamed, got)
		}
		if c.Len() != 0 {
			t.Errorf("Len after Sum = %d, want 0", c.Len())
		}
	}
}

func TestAccumulator_Absorb(t *testing.T) {
	a, err := NewAccumulator(8, 8)
	if err != nil {
		t.Fatal(err)
	}
	if a.SamplesPerBlock() != 40 {
		t.Fatalf("SamplesPerBlock = %d, want 40", a.SamplesPerBlock())
	}
	if !IsFullEntropy(a.BlockEntropy(), 256) {
		t.Fatalf("BlockEntropy = %v, not full entropy", a.BlockEntropy())
	}
	in := make([]byte, 1000)
	for i := range in {
		in[i] = byte(i * 7)
	}
	mac := hmac.New(sha256.New, []byte(KeyLabel))
	var want [][]byte
	for i := 0; i+40 <= len(in); i += 40 {
		mac.Reset()
		mac.Write(in[i : i+40])
		want = append(want, mac.Sum(nil))
	}
	// Feed in uneven pieces; a reset mid-way drops only the partial block.
	var got [][]byte
	emit := func(b *[OutputBytes]byte) { got = append(got, bytes.Clone(b[:])) }
	total := 0
	for i, step := 0, 1; i < len(in); i, step = i+step, step%97+13 {
		total += a.Absorb(in[i:min(i+step, len(in))], emit)
	}
	if total != len(want) || len(got) != len(want) {
		t.Fatalf("emitted %d (returned %d) blocks, want %d", len(got), total, len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("block %d = %x, want %x", i, got[i], want[i])
		}
	}
	if a.Pending() != len(in)%40 {
		t.Fatalf("Pending = %d, want %d", a.Pending(), len(in)%40)
	}
	a.Reset()
	got = got[:0]
	a.Absorb(in[:40], emit)
	if len(got) != 1 || !bytes.Equal(got[0], want[0]) {
		t.Fatalf("after Reset: got %x, want one block %x", got, want[0])
	}
	if _, err := NewAccumulator(8, 9); !errors.Is(err, ErrBadParameter) {
		t.Fatalf("NewAccumulator(8, 9) error = %v, want ErrBadParameter", err)
	}
}

var benchSizes = []int{1 << 10, 16 << 10, 64 << 10}

// BenchmarkCondition and BenchmarkSHA256 run over the same input sizes so the
// conditioner's cost can be read against plain SHA-256 in one run:
//
//	go test -run '^$' -bench 'Condition|SHA256' ./entropy/condition/
func BenchmarkCondition(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			in := make([]byte, size)
			c := New()
			var out [OutputBytes]byte
			b.SetBytes(int64(size))
			for b.Loop() {
				c.Condition(&out, in)
			}
		})
	}
}

func BenchmarkSHA256(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			in := make([]byte, size)
			h := sha256.New()
			var out [sha256.Size]byte
			b.SetBytes(int64(size))
			for b.Loop() {
				h.Reset()
				h.Write(in)
				h.Sum(out[:0])
			}
		})
	}
}

// BenchmarkAccumulator measures the engine's path: 8-bit samples at H = 8,
// one conditioning call per 40 samples.
func BenchmarkAccumulator(b *testing.B) {
	a, err := NewAccumulator(8, 8)
	if err != nil {
		b.Fatal(err)
	}
	in := make([]byte, 64<<10)
	var sink byte
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		a.Absorb(in, func(blk *[OutputBytes]byte) { sink ^= blk[0] })
	}
	_ = sink
}
