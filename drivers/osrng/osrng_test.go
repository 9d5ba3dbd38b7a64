package osrng

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/iotest"
)

func TestReader_Read(t *testing.T) {
	var r Reader
	for _, n := range []int{0, 1, 32, 4096, 1 << 20} {
		p := make([]byte, n)
		m, err := r.Read(p)
		if m != n || err != nil {
			t.Fatalf("Read(%d) = %d, %v", n, m, err)
		}
		if n >= 32 && bytes.Equal(p, make([]byte, n)) {
			t.Fatalf("Read(%d) left the buffer zero", n)
		}
	}
	if got, want := r.Bytes(), uint64(1+32+4096+1<<20); got != want {
		t.Errorf("Bytes() = %d; want %d", got, want)
	}
	a, b := make([]byte, 32), make([]byte, 32)
	r.Read(a)
	r.Read(b)
	if bytes.Equal(a, b) {
		t.Error("two 32-byte reads are equal")
	}
}

// A source that reads short is looped until p is full.
func TestReader_Read_Short(t *testing.T) {
	r := Reader{src: iotest.OneByteReader(bytes.NewReader(bytes.Repeat([]byte{7}, 100)))}
	p := make([]byte, 64)
	if n, err := r.Read(p); n != 64 || err != nil || !bytes.Equal(p, bytes.Repeat([]byte{7}, 64)) {
		t.Fatalf("Read = %d, %v, %v", n, err, p)
	}
}

// A failing source is reported, never papered over.
func TestReader_Read_Error(t *testing.T) {
	boom := errors.New("boom")
	r := Reader{src: io.MultiReader(bytes.NewReader([]byte{1, 2, 3}), iotest.ErrReader(boom))}
	n, err := r.Read(make([]byte, 10))
	if n != 3 || !errors.Is(err, boom) {
		t.Fatalf("Read = %d, %v; want 3, boom", n, err)
	}
	if r.Bytes() != 3 {
		t.Errorf("Bytes() = %d; want 3", r.Bytes())
	}
}

func TestReader_Concurrent(t *testing.T) {
	var r Reader
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			p := make([]byte, 100)
			for range 50 {
				if _, err := r.Read(p); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if r.Bytes() != 4*50*100 {
		t.Errorf("Bytes() = %d; want 20000", r.Bytes())
	}
}

func BenchmarkReader_Read(b *testing.B) {
	var r Reader
	p := make([]byte, 4096)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		r.Read(p)
	}
}
