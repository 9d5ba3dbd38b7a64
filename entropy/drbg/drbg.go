package drbg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Sizes of CTR_DRBG with AES-256 (SP 800-90A Rev. 1, Table 3), in bytes.
const (
	KeyLen   = 32            // keylen
	BlockLen = aes.BlockSize // blocklen = outlen
	SeedLen  = KeyLen + BlockLen

	// MinEntropyInput is the least entropy input accepted by New and Reseed:
	// the 256-bit security strength.
	MinEntropyInput = 32
	// MinNonce is the least nonce accepted by New: half the security strength.
	MinNonce = 16
	// MaxInputLen bounds each of entropy input, nonce, personalization string and
	// additional input (Table 3 allows 2^35 bits; this package allows 64 KiB).
	MaxInputLen = 1 << 16

	// MaxRequest is the most bytes one Generate call returns: 2^19 bits.
	MaxRequest = 1 << 16
	// ReseedInterval is the default and largest number of Generate calls between
	// (re)seeds.
	ReseedInterval = 1 << 48
)

// smallRequest is the largest request served with single-block encryptions
// instead of a CTR stream.
const smallRequest = 8 * BlockLen

var (
	// ErrInvalidInput reports an input (or option) whose length or value is out of
	// bounds; the wrapping error names which one.
	ErrInvalidInput = errors.New("entropy/drbg: invalid input")
	// ErrRequestTooLarge reports a Generate request above MaxRequest bytes.
	ErrRequestTooLarge = errors.New("entropy/drbg: request too large")
	// ErrReseedRequired reports that the reseed counter exceeds the reseed
	// interval; call Reseed before generating again.
	ErrReseedRequired = errors.New("entropy/drbg: reseed required")
	// ErrClosed reports use of a DRBG after Close.
	ErrClosed = errors.New("entropy/drbg: closed")
)

// Options configures a CTR. The zero value and nil mean the defaults.
type Options struct {
	// ReseedInterval is how many Generate calls are allowed after instantiation
	// or a reseed before Generate returns ErrReseedRequired. 0 means
	// ReseedInterval (2^48); larger values are rejected.
	ReseedInterval uint64
}

// CTR is an instantiation of CTR_DRBG (AES-256, with derivation function).
type CTR struct {
	mu            sync.Mutex
	key           [KeyLen]byte
	v             [BlockLen]byte
	block         cipher.Block // AES-256 under key; nil once closed
	reseedCounter uint64
	interval      uint64
	closed        bool
	s             scratch
}

// scratch holds secret intermediate values. It lives inside CTR (already on the
// heap) so that passing its slices to cipher.Block methods allocates nothing,
// and so that Close can wipe it.
type scratch struct {
	seed  [SeedLen]byte  // Block_Cipher_df output
	temp  [SeedLen]byte  // Update keystream
	ctr   [BlockLen]byte // counter block
	small [smallRequest]byte
	df    dfState
}

// zeros is the plaintext of the bulk keystream. It is never written.
var zeros [MaxRequest]byte

// New instantiates CTR_DRBG (SP 800-90A Rev. 1, §10.2.1.3.2) with the default
// reseed interval. entropyInput must be 32 to MaxInputLen bytes, nonce 16 to
// MaxInputLen bytes, personalization at most MaxInputLen bytes (may be empty).
// The inputs are not retained.
func New(entropyInput, nonce, personalization []byte) (*CTR, error) {
	return NewWithOptions(entropyInput, nonce, personalization, nil)
}

// NewWithOptions is New with options; opts may be nil.
func NewWithOptions(entropyInput, nonce, personalization []byte, opts *Options) (*CTR, error) {
	interval := uint64(ReseedInterval)
	if opts != nil && opts.ReseedInterval != 0 {
		if opts.ReseedInterval > ReseedInterval {
			return nil, fmt.Errorf("%w: reseed interval %d exceeds 2^48", ErrInvalidInput, opts.ReseedInterval)
		}
		interval = opts.ReseedInterval
	}
	if err := checkLen("entropy input", entropyInput, MinEntropyInput); err != nil {
		return nil, err
	}
	if err := checkLen("nonce", nonce, MinNonce); err != nil {
		return nil, err
	}
	if err := checkLen("personalization string", personalization, 0); err != nil {
		return nil, err
	}
	d := &CTR{interval: interval}
	// Key = 0^keylen, V = 0^blocklen (zero values), then Update(seed_material).
	d.rekey()
	d.s.df.derive(&d.s.seed, entropyInput, nonce, personalization)
	d.update(&d.s.seed)
	clear(d.s.seed[:])
	d.reseedCounter = 1
	return d, nil
}

func checkLen(name string, b []byte, minLen int) error {
	if len(b) < minLen {
		return fmt.Errorf("%w: %s is %d bytes, need at least %d", ErrInvalidInput, name, len(b), minLen)
	}
	if len(b) > MaxInputLen {
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalidInput, name, len(b), MaxInputLen)
	}
	return nil
}

// Reseed reseeds the DRBG (§10.2.1.4.2) with entropyInput (32 to MaxInputLen
// bytes) and optional additional input (at most MaxInputLen bytes), and resets
// the reseed counter to 1.
func (d *CTR) Reseed(entropyInput, additional []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reseed(entropyInput, additional)
}

func (d *CTR) reseed(entropyInput, additional []byte) error {
	if d.closed {
		return ErrClosed
	}
	if err := checkLen("entropy input", entropyInput, MinEntropyInput); err != nil {
		return err
	}
	if err := checkLen("additional input", additional, 0); err != nil {
		return err
	}
	d.s.df.derive(&d.s.seed, entropyInput, additional, nil)
	d.update(&d.s.seed)
	clear(d.s.seed[:])
	d.reseedCounter = 1
	return nil
}

// Generate fills out with pseudorandom bytes (§10.2.1.5.2). len(out) may be 0 to
// MaxRequest; additional input is optional (empty means none) and at most
// MaxInputLen bytes. It returns ErrReseedRequired once the reseed counter exceeds
// the reseed interval. On error out is left untouched and the state unchanged.
func (d *CTR) Generate(out, additional []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.generate(out, additional)
}

// GeneratePR serves a request with prediction resistance (§9.3.1 step 7): it
// reseeds with entropyInput and additional, then generates into out with no
// additional input, both under one lock. entropyInput must be fresh entropy.
func (d *CTR) GeneratePR(out, entropyInput, additional []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if len(out) > MaxRequest {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrRequestTooLarge, len(out), MaxRequest)
	}
	if err := d.reseed(entropyInput, additional); err != nil {
		return err
	}
	return d.generate(out, nil)
}

func (d *CTR) generate(out, additional []byte) error {
	if d.closed {
		return ErrClosed
	}
	if len(out) > MaxRequest {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrRequestTooLarge, len(out), MaxRequest)
	}
	if err := checkLen("additional input", additional, 0); err != nil {
		return err
	}
	if d.reseedCounter > d.interval {
		return fmt.Errorf("%w: %d generate requests since the last (re)seed", ErrReseedRequired, d.reseedCounter-1)
	}
	var add *[SeedLen]byte // nil stands for 0^seedlen
	if len(additional) > 0 {
		d.s.df.derive(&d.s.seed, additional, nil, nil)
		d.update(&d.s.seed)
		add = &d.s.seed
	}
	d.keystream(out)
	d.update(add)
	if add != nil {
		clear(d.s.seed[:])
	}
	d.reseedCounter++
	return nil
}

// keystream writes E(Key, V+1) || E(Key, V+2) || … truncated to len(out) and
// advances V by the number of blocks used.
func (d *CTR) keystream(out []byte) {
	if len(out) == 0 {
		return
	}
	nblocks := (len(out) + BlockLen - 1) / BlockLen
	if len(out) <= smallRequest {
		buf := d.s.small[:nblocks*BlockLen]
		for i := 0; i < len(buf); i += BlockLen {
			increment(&d.v)
			d.block.Encrypt(buf[i:i+BlockLen], d.v[:])
		}
		copy(out, buf)
		clear(buf)
		return
	}
	d.s.ctr = d.v
	increment(&d.s.ctr)
	cipher.NewCTR(d.block, d.s.ctr[:]).XORKeyStream(out, zeros[:len(out)])
	clear(d.s.ctr[:])
	add(&d.v, uint64(nblocks))
}

// update is CTR_DRBG_Update (§10.2.1.2); provided == nil means 0^seedlen.
func (d *CTR) update(provided *[SeedLen]byte) {
	t := &d.s.temp
	for i := 0; i < SeedLen; i += BlockLen {
		increment(&d.v)
		d.block.Encrypt(t[i:i+BlockLen], d.v[:])
	}
	if provided != nil {
		subtle.XORBytes(t[:], t[:], provided[:])
	}
	copy(d.key[:], t[:KeyLen])
	copy(d.v[:], t[KeyLen:])
	clear(t[:])
	d.rekey()
}

// rekey expands the current key.
func (d *CTR) rekey() {
	b, err := aes.NewCipher(d.key[:])
	if err != nil {
		panic("entropy/drbg: " + err.Error()) // unreachable: the key is always 32 bytes
	}
	d.block = b
}

// increment sets v = (v + 1) mod 2^128, big-endian.
func increment(v *[BlockLen]byte) { add(v, 1) }

// add sets v = (v + n) mod 2^128, big-endian.
func add(v *[BlockLen]byte, n uint64) {
	lo := binary.BigEndian.Uint64(v[8:])
	hi := binary.BigEndian.Uint64(v[:8])
	nlo := lo + n
	if nlo < lo {
		hi++
	}
	binary.BigEndian.PutUint64(v[8:], nlo)
	binary.BigEndian.PutUint64(v[:8], hi)
}

// Read fills p with pseudorandom bytes, in Generate calls of at most MaxRequest
// bytes without additional input, under one lock. It returns the number of bytes
// produced before an error (ErrReseedRequired, ErrClosed).
func (d *CTR) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for n < len(p) {
		chunk := min(len(p)-n, MaxRequest)
		if err := d.generate(p[n:n+chunk], nil); err != nil {
			return n, err
		}
		n += chunk
	}
	if n == 0 && d.closed {
		return 0, ErrClosed
	}
	return n, nil
}

// ReseedCounter returns the reseed counter: 1 after New or Reseed, plus one per
// successful Generate. It is 0 after Close.
func (d *CTR) ReseedCounter() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reseedCounter
}

// Close wipes Key, V and all intermediate state. Later calls return ErrClosed;
// Close itself may be called more than once.
func (d *CTR) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.key[:])
	clear(d.v[:])
	d.s = scratch{}
	d.block = nil
	d.reseedCounter = 0
	d.closed = true
}
