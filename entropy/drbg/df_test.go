package drbg

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"testing"
)

// refDF is Block_Cipher_df (SP 800-90A Rev. 1, §10.3.2) written the plain way:
// S is built in memory and each BCC (§10.3.3) is the last block of a CBC
// encryption of IV_i || S with a zero IV.
func refDF(t testing.TB, input []byte) [SeedLen]byte {
	t.Helper()
	s := binary.BigEndian.AppendUint32(nil, uint32(len(input)))
	s = binary.BigEndian.AppendUint32(s, SeedLen)
	s = append(s, input...)
	s = append(s, 0x80)
	for len(s)%BlockLen != 0 {
		s = append(s, 0)
	}
	k := make([]byte, KeyLen)
	for i := range k {
		k[i] = byte(i)
	}
	kb, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	var temp []byte
	for i := uint32(0); len(temp) < KeyLen+BlockLen; i++ {
		iv := make([]byte, BlockLen)
		binary.BigEndian.PutUint32(iv, i)
		data := append(iv, s...)
		ct := make([]byte, len(data))
		cipher.NewCBCEncrypter(kb, make([]byte, BlockLen)).CryptBlocks(ct, data)
		temp = append(temp, ct[len(ct)-BlockLen:]...)
	}
	kb2, err := aes.NewCipher(temp[:KeyLen])
	if err != nil {
		t.Fatal(err)
	}
	x := temp[KeyLen : KeyLen+BlockLen]
	var out [SeedLen]byte
	for i := 0; i < SeedLen; i += BlockLen {
		kb2.Encrypt(out[i:i+BlockLen], x)
		x = out[i : i+BlockLen]
	}
	return out
}

func checkDerive(t testing.TB, input []byte, cut1, cut2 int) {
	t.Helper()
	want := refDF(t, input)
	var s dfState
	var got [SeedLen]byte
	s.derive(&got, input[:cut1], input[cut1:cut2], input[cut2:])
	if got != want {
		t.Fatalf("len %d split %d/%d: derive = %x, want %x", len(input), cut1, cut2, got, want)
	}
	if s != (dfState{}) {
		t.Fatalf("len %d: df state not wiped", len(input))
	}
}

// TestDerive_MatchesReference covers every padding case (8 + len mod 16 from 0
// to 15, including 0x80 landing on the last byte of a block) and splits of the
// input across the three parts.
func TestDerive_MatchesReference(t *testing.T) {
	input := make([]byte, 200)
	for i := range input {
		input[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(input); n++ {
		in := input[:n]
		for _, cuts := range [][2]int{{0, 0}, {n, n}, {n / 3, 2 * n / 3}, {n / 2, n / 2}, {min(n, 1), min(n, 17)}} {
			checkDerive(t, in, cuts[0], cuts[1])
		}
	}
}

func FuzzDerive(f *testing.F) {
	f.Add([]byte(""), 0, 0)
	f.Add(bytes.Repeat([]byte{1}, 7), 3, 5)     // 8+7 = 15: 0x80 fills the block
	f.Add(bytes.Repeat([]byte{2}, 80), 32, 48)  // instantiate with nonce and personalization
	f.Add(bytes.Repeat([]byte{3}, 300), 1, 299) // several blocks
	f.Fuzz(func(t *testing.T, input []byte, a, b int) {
		if len(input) > 4096 {
			return
		}
		n := len(input)
		a, b = clampCut(a, n), clampCut(b, n)
		if a > b {
			a, b = b, a
		}
		checkDerive(t, input, a, b)
	})
}

func clampCut(c, n int) int {
	if n == 0 {
		return 0
	}
	if c < 0 {
		c = -c
	}
	if c < 0 { // math.MinInt
		c = 0
	}
	return c % (n + 1)
}
