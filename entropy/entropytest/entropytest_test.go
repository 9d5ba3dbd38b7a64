package entropytest_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/entropy/entropytest"
)

// readAll reads n samples with reads of at most chunk samples.
func readAll(t *testing.T, s entropy.Source, n, chunk int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, chunk)
	for len(out) < n {
		k, err := s.Read(t.Context(), buf[:min(chunk, n-len(out))])
		if err != nil {
			t.Fatalf("Read after %d samples: %v", len(out), err)
		}
		out = append(out, buf[:k]...)
	}
	return out
}

func TestSources_ReplayMatchesRead(t *testing.T) {
	tests := []struct {
		name  string
		src   *entropytest.Source
		check func(t *testing.T, s []byte)
	}{
		{"uniform", entropytest.NewUniform("u", 1), func(t *testing.T, s []byte) {
			var seen [256]bool
			for _, b := range s {
				seen[b] = true
			}
			for v, ok := range seen {
				if !ok {
					t.Fatalf("value %d never seen in %d uniform samples", v, len(s))
				}
			}
		}},
		{"constant", entropytest.NewConstant("c", 7), func(t *testing.T, s []byte) {
			if !bytes.Equal(s, bytes.Repeat([]byte{7}, len(s))) {
				t.Fatal("constant source varies")
			}
		}},
		{"stuck at 1000", entropytest.NewStuckAt("s", 2, 1000, 9), func(t *testing.T, s []byte) {
			if !bytes.Equal(s[:1000], entropytest.NewUniform("u", 2).Replay(1000)) {
				t.Fatal("stuck source's prefix differs from the uniform stream")
			}
			if !bytes.Equal(s[1000:], bytes.Repeat([]byte{9}, len(s)-1000)) {
				t.Fatal("stuck source not stuck from sample 1000")
			}
		}},
		{"biased 25%", entropytest.NewBiased("b", 3, 0, 0.25), func(t *testing.T, s []byte) {
			n := bytes.Count(s, []byte{0})
			want := float64(len(s)) * (0.25 + 0.75/256)
			if f := float64(n); f < want*0.9 || f > want*1.1 {
				t.Fatalf("%d zeros in %d samples, want about %.0f", n, len(s), want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.MaxRead = 333
			got := readAll(t, tt.src, 20000, 1000)
			if !bytes.Equal(got, tt.src.Replay(20000)) {
				t.Fatal("Read stream differs from Replay")
			}
			if tt.src.Reads() < 20000/333 || tt.src.Served() != 20000 {
				t.Fatalf("Reads %d, Served %d", tt.src.Reads(), tt.src.Served())
			}
			tt.check(t, got)
		})
	}
}

func TestSource_SampleBitsMask(t *testing.T) {
	s := entropytest.NewUniform("u", 1)
	s.SourceInfo.SampleBits, s.SourceInfo.MinEntropy = 1, 1
	for _, b := range readAll(t, s, 1000, 100) {
		if b > 1 {
			t.Fatalf("sample %d in a 1-bit source", b)
		}
	}
}

func TestSource_FailAtAndLimit(t *testing.T) {
	boom := errors.New("boom")
	s := entropytest.NewUniform("u", 1).FailAt(100, boom)
	s.Limit = 150
	buf := make([]byte, 1000)
	if n, err := s.Read(t.Context(), buf); n != 100 || err != nil {
		t.Fatalf("first Read = %d, %v; want 100 samples before the fault", n, err)
	}
	if n, err := s.Read(t.Context(), buf); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("second Read = %d, %v; want the fault", n, err)
	}
	if n, err := s.Read(t.Context(), buf); n != 50 || err != nil {
		t.Fatalf("third Read = %d, %v; want the 50 samples left", n, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := s.Read(ctx, buf)
		done <- err
	}()
	for !s.AtLimit() {
		runtime.Gosched()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read at the limit returned %v, want context.Canceled", err)
	}
	s.Close()
	if _, err := s.Read(t.Context(), buf); !errors.Is(err, entropy.ErrClosed) || !s.Closed() {
		t.Fatalf("Read after Close = %v, want ErrClosed", err)
	}
}

func TestScripted(t *testing.T) {
	gone := errors.New("gone")
	s := entropytest.NewScripted("s", 5,
		entropytest.Step{Data: []byte{1, 2, 3, 4, 5}},
		entropytest.Step{Err: gone},
		entropytest.Step{N: 4})
	buf := make([]byte, 3)
	want := []struct {
		data []byte
		err  error
	}{
		{[]byte{1, 2, 3}, nil}, {[]byte{4, 5}, nil}, {nil, gone},
	}
	for i, w := range want {
		n, err := s.Read(t.Context(), buf)
		if !bytes.Equal(buf[:n], w.data) || !errors.Is(err, w.err) {
			t.Fatalf("Read %d = %v, %v; want %v, %v", i, buf[:n], err, w.data, w.err)
		}
	}
	rest := readAll(t, s, 10, 10)
	// N steps and the tail continue the uniform stream of the seed.
	if !bytes.Equal(rest, entropytest.NewUniform("u", 5).Replay(10)) {
		t.Fatal("scripted tail differs from the uniform stream")
	}
}

func TestDisconnecting(t *testing.T) {
	s := entropytest.NewDisconnecting("d", 1, 10)
	s.FailReconnects = 1
	buf := make([]byte, 64)
	if n, _ := s.Read(t.Context(), buf); n != 10 {
		t.Fatalf("first Read = %d samples, want 10", n)
	}
	if _, err := s.Read(t.Context(), buf); !errors.Is(err, entropy.ErrDisconnected) {
		t.Fatalf("Read at the disconnect = %v, want ErrDisconnected", err)
	}
	if err := s.Reconnect(t.Context()); !errors.Is(err, entropytest.ErrReconnectFailed) {
		t.Fatalf("first Reconnect = %v, want ErrReconnectFailed", err)
	}
	if err := s.Reconnect(t.Context()); err != nil || s.Reconnects() != 2 {
		t.Fatalf("second Reconnect = %v (%d calls)", err, s.Reconnects())
	}
	if n, err := s.Read(t.Context(), buf); n != 64 || err != nil {
		t.Fatalf("Read after reconnect = %d, %v", n, err)
	}
}
