package drbg_test

import (
	"crypto/rand"
	"fmt"

	"github.com/qrngd/qrngd/entropy/drbg"
)

// The engine seeds from the entropy pool; crypto/rand stands in for it here.
func Example() {
	entropy := make([]byte, drbg.MinEntropyInput)
	nonce := make([]byte, drbg.MinNonce)
	rand.Read(entropy)
	rand.Read(nonce)

	d, err := drbg.New(entropy, nonce, []byte("qrngd example"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	key := make([]byte, 32)
	if err := d.Generate(key, nil); err != nil {
		fmt.Println(err)
		return
	}

	// A request with prediction resistance: fresh entropy, reseed, generate.
	rand.Read(entropy)
	if err := d.GeneratePR(key, entropy, nil); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(key), d.ReseedCounter())
	// Output: 32 2
}
