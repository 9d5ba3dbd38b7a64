package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/qrngd/qrngd/entropy"
)

// chiSquare returns the statistic of observed counts against equal expected
// counts, and the critical value at p = 0.001 (Wilson–Hilferty).
func chiSquare(counts []int) (stat, crit float64) {
	total := 0
	for _, c := range counts {
		total += c
	}
	exp := float64(total) / float64(len(counts))
	for _, c := range counts {
		d := float64(c) - exp
		stat += d * d / exp
	}
	df := float64(len(counts) - 1)
	const z = 3.090 // upper 0.001 quantile of N(0,1)
	crit = df * math.Pow(1-2/(9*df)+z*math.Sqrt(2/(9*df)), 3)
	return stat, crit
}

func testDrawer(seed uint64) *drawer {
	return newDrawer(context.Background(), newFakeEntropy(seed), entropy.ModeDRBG, 1<<20)
}

func TestUintn_Uniform(t *testing.T) {
	const draws = 60000
	for _, n := range []uint64{2, 3, 6, 10, 37, 200, 255, 256, 257, 1000, 65537, 3 << 62, 1<<63 + 1, math.MaxUint64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			d := testDrawer(n)
			d.budget = math.MaxInt
			bins := int(min(n, 64))
			counts := make([]int, bins)
			for i := 0; i < draws; i++ {
				v, err := d.uintn(n)
				if err != nil {
					t.Fatal(err)
				}
				if v >= n {
					t.Fatalf("uintn(%d) = %d", n, v)
				}
				counts[bucket(v, n, bins)]++
			}
			if stat, crit := chiSquareBuckets(counts, n); stat > crit {
				t.Errorf("chi-square %.1f > critical %.1f (p=0.001), counts %v", stat, crit, counts)
			}
		})
	}
}

// bucket maps v in [0,n) to floor(v*bins/n).
func bucket(v, n uint64, bins int) int {
	q := new(big.Int).Mul(new(big.Int).SetUint64(v), big.NewInt(int64(bins)))
	return int(q.Div(q, new(big.Int).SetUint64(n)).Int64())
}

// chiSquareBuckets tests counts against the exact share of [0,n) each
// bucket holds (buckets differ by one value when bins does not divide n).
func chiSquareBuckets(counts []int, n uint64) (stat, crit float64) {
	total := 0
	for _, c := range counts {
		total += c
	}
	bins := len(counts)
	N := new(big.Int).SetUint64(n)
	// first value of bucket b: ceil(b*n/bins)
	first := func(b int) *big.Int {
		x := new(big.Int).Mul(big.NewInt(int64(b)), N)
		x.Add(x, big.NewInt(int64(bins-1)))
		return x.Div(x, big.NewInt(int64(bins)))
	}
	for b, c := range counts {
		size := new(big.Int).Sub(first(b+1), first(b))
		share, _ := new(big.Float).Quo(new(big.Float).SetInt(size), new(big.Float).SetInt(N)).Float64()
		exp := share * float64(total)
		d := float64(c) - exp
		stat += d * d / exp
	}
	_, crit = chiSquare(counts)
	return stat, crit
}

// The same test rejects plain modulo reduction, so it has the power to see
// the bias rejection sampling removes.
func TestUintn_TestDetectsModuloBias(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		k    int
		bins int
	}{{3 << 62, 8, 3}, {200, 1, 200}} {
		d := testDrawer(7)
		d.budget = math.MaxInt
		counts := make([]int, tc.bins)
		for i := 0; i < 60000; i++ {
			x, err := d.next(tc.k)
			if err != nil {
				t.Fatal(err)
			}
			counts[bucket(x%tc.n, tc.n, tc.bins)]++
		}
		if stat, crit := chiSquareBuckets(counts, tc.n); stat < crit {
			t.Errorf("n=%d: naive modulo passed (%.1f < %.1f); the test has no power", tc.n, stat, crit)
		}
	}
}

func TestRandomIntegers_ChiSquareThroughTool(t *testing.T) {
	f := newFixture(t, nil)
	counts := make([]int, 6)
	p := principal{subject: "alice", scopes: []string{ScopeTools}, transport: "test"}
	for i := 0; i < 6; i++ {
		res := f.srv.execute(context.Background(), p, "random_integers", []byte(`{"min":1,"max":6,"count":10000}`))
		if res.kind != outcomeOK {
			t.Fatal(res.msg)
		}
		var out randomIntegersOut
		if err := jsonUnmarshal(res.JSON, &out); err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Values {
			counts[v-1]++
		}
	}
	if stat, crit := chiSquare(counts); stat > crit {
		t.Errorf("die chi-square %.1f > %.1f: %v", stat, crit, counts)
	}
}

func TestShuffle_AllPermutationsEquallyLikely(t *testing.T) {
	d := testDrawer(11)
	d.budget = math.MaxInt
	perms := map[string]int{}
	for i := 0; i < 24000; i++ {
		items := []byte("abcd")
		if err := shuffle(d, items); err != nil {
			t.Fatal(err)
		}
		perms[string(items)]++
	}
	if len(perms) != 24 {
		t.Fatalf("%d distinct permutations of 4, want 24", len(perms))
	}
	counts := []int{}
	for _, c := range perms {
		counts = append(counts, c)
	}
	if stat, crit := chiSquare(counts); stat > crit {
		t.Errorf("chi-square %.1f > %.1f: %v", stat, crit, perms)
	}
}

func TestChoose_AllOrderedSelectionsEquallyLikely(t *testing.T) {
	d := testDrawer(13)
	d.budget = math.MaxInt
	sel := map[string]int{}
	src := []byte("abcde")
	for i := 0; i < 20000; i++ {
		got, err := choose(d, src, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got[0] == got[1] {
			t.Fatalf("repeated item %q", got)
		}
		sel[string(got)]++
	}
	if string(src) != "abcde" {
		t.Fatalf("choose modified its input: %q", src)
	}
	if len(sel) != 20 {
		t.Fatalf("%d distinct ordered pairs, want 20", len(sel))
	}
	counts := []int{}
	for _, c := range sel {
		counts = append(counts, c)
	}
	if stat, crit := chiSquare(counts); stat > crit {
		t.Errorf("chi-square %.1f > %.1f: %v", stat, crit, sel)
	}
}

func TestPassword_UniformOverValidSet(t *testing.T) {
	classes := []passwordClass{{"ab", "ab"}, {"c", "c"}}
	d := testDrawer(17)
	d.budget = math.MaxInt
	seen := map[string]int{}
	for i := 0; i < 18000; i++ {
		pw, err := password(d, classes, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(pw, "c") || !strings.ContainsAny(pw, "ab") {
			t.Fatalf("password %q misses a class", pw)
		}
		seen[pw]++
	}
	// |S| = 3^3 - 2^3 (no c) - 1^3 (no a/b) = 18
	if len(seen) != 18 || passwordSpace([]int{2, 1}, 3).Int64() != 18 {
		t.Fatalf("%d distinct passwords, passwordSpace %v; want 18", len(seen), passwordSpace([]int{2, 1}, 3))
	}
	counts := []int{}
	for _, c := range seen {
		counts = append(counts, c)
	}
	if stat, crit := chiSquare(counts); stat > crit {
		t.Errorf("chi-square %.1f > %.1f: %v", stat, crit, seen)
	}
}

func TestPasswordSpace_BruteForce(t *testing.T) {
	for _, tc := range []struct {
		sizes  []int
		length int
	}{{[]int{2, 3}, 4}, {[]int{1, 1, 2}, 5}, {[]int{3}, 3}, {[]int{2, 2, 2, 1}, 6}} {
		n := 0
		for _, s := range tc.sizes {
			n += s
		}
		// class of symbol i: walk the sizes
		classOf := make([]int, 0, n)
		for c, s := range tc.sizes {
			for j := 0; j < s; j++ {
				classOf = append(classOf, c)
			}
		}
		count := 0
		total := int(math.Pow(float64(n), float64(tc.length)))
		for x := 0; x < total; x++ {
			var present uint
			for v, i := x, 0; i < tc.length; i, v = i+1, v/n {
				present |= 1 << classOf[v%n]
			}
			if present == 1<<len(tc.sizes)-1 {
				count++
			}
		}
		if got := passwordSpace(tc.sizes, tc.length); got.Int64() != int64(count) {
			t.Errorf("passwordSpace(%v, %d) = %v, brute force %d", tc.sizes, tc.length, got, count)
		}
	}
	// Full-size case: slightly below the unconstrained length*log2(N).
	bits := passwordEntropyBits([]int{26, 26, 10, 28}, 20)
	if u := 20 * math.Log2(90); bits >= u || bits < u-1 {
		t.Errorf("entropy %.3f, unconstrained %.3f", bits, u)
	}
}

func TestUUIDv4_Bits(t *testing.T) {
	if got := uuidV4(make([]byte, 16)); got != "00000000-0000-4000-8000-000000000000" {
		t.Errorf("zero bytes: %s", got)
	}
	ff := []byte(strings.Repeat("\xff", 16))
	if got := uuidV4(ff); got != "ffffffff-ffff-4fff-bfff-ffffffffffff" {
		t.Errorf("0xff bytes: %s", got)
	}
	// Over many UUIDs: version and variant fixed, every other bit about half set.
	d := testDrawer(19)
	const n = 4000
	ones := make([]int, 128)
	buf := make([]byte, 16)
	for i := 0; i < n; i++ {
		if err := d.read(buf); err != nil {
			t.Fatal(err)
		}
		u := uuidV4(buf)
		if !uuidRE.MatchString(u) {
			t.Fatalf("%s", u)
		}
		for bit := 0; bit < 128; bit++ {
			if buf[bit/8]&(0x80>>(bit%8)) != 0 {
				ones[bit]++
			}
		}
	}
	fixed := map[int]int{48: 0, 49: 1, 50: 0, 51: 0, 64: 1, 65: 0} // version 0100, variant 10
	random := 0
	for bit, c := range ones {
		if want, ok := fixed[bit]; ok {
			if c != want*n {
				t.Errorf("bit %d set %d times, want %d", bit, c, want*n)
			}
			continue
		}
		random++
		if math.Abs(float64(c)-n/2) > 5*math.Sqrt(n/4) {
			t.Errorf("bit %d set %d of %d times", bit, c, n)
		}
	}
	if random != 122 {
		t.Errorf("%d random bits, want 122", random)
	}
}

func TestDrawer_StuckSourceFailsInsteadOfLooping(t *testing.T) {
	d := newDrawer(context.Background(), constEntropy{0}, entropy.ModeDRBG, 16)
	for {
		_, err := d.uintn(3) // 0 is always rejected for n=3 (256 mod 3 = 1)
		if err != nil {
			if !errors.Is(err, errBudget) {
				t.Fatalf("err = %v", err)
			}
			break
		}
	}
	f := newFixture(t, func(o *Options) { o.Entropy = constEntropy{0} })
	res := f.srv.execute(context.Background(), principal{subject: "a", scopes: []string{ScopeTools}}, "generate_password", []byte(`{"length":8}`))
	if res.kind != outcomeError {
		t.Fatalf("stuck source: %s %s", res.kind, res.msg)
	}
}

func TestDrawer_MergesProvenance(t *testing.T) {
	d := newDrawer(context.Background(), constEntropy{7}, entropy.ModeFull, 0)
	d.merge(entropy.Provenance{Mode: entropy.ModeFull, Sources: []string{"a", "b"}})
	d.merge(entropy.Provenance{Mode: entropy.ModeFull, Sources: []string{"b", "c"}, Degraded: true})
	p := d.provenance()
	if strings.Join(p.Sources, ",") != "a,b,c" || !p.Degraded || p.Mode != entropy.ModeFull {
		t.Fatalf("%+v", p)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
