package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qrngd/qrngd/entropy"
)

// JTIBytes is the random length of a jti: 128 bits (base64url: 22 chars).
const JTIBytes = 16

// RefreshBytes is the random length of an opaque refresh token: 256 bits.
const RefreshBytes = 32

// draw fills p from the pool in mode, bounded by EntropyTimeout. An
// unservable pool yields an error wrapping ErrEntropy (and the engine's
// entropy.ErrInsufficientEntropy).
//
// jti and refresh tokens use mode drbg: they must be unique and
// unpredictable, which the pool-seeded CTR_DRBG (AES-256, 256-bit security
// strength, reseeded from full-entropy pool blocks) provides, and drawing
// them straight from the pool would cap issuance at the hardware rate.
// The engine refuses drbg reads too when the pool cannot serve under its
// policy, so issuance is still entropy-gated. Signing-key seeds, which
// are long-lived secrets, use mode full (see NewEntropyReader).
func (s *Service) draw(ctx context.Context, p []byte, mode entropy.Mode) (entropy.Provenance, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.EntropyTimeout)
	defer cancel()
	prov, err := s.ent.Read(ctx, p, mode)
	if err != nil {
		clear(p)
		return prov, fmt.Errorf("%w: %w", ErrEntropy, err)
	}
	return prov, nil
}

// randomID draws n bytes in mode and returns them as unpadded base64url.
func (s *Service) randomID(ctx context.Context, n int) (string, entropy.Provenance, error) {
	b := make([]byte, n)
	prov, err := s.draw(ctx, b, entropy.ModeDRBG)
	if err != nil {
		return "", prov, err
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	clear(b)
	return id, prov, nil
}

// NewEntropyReader adapts the engine to io.Reader for store/bolt's
// Options.Rand, which draws password salts, API-key secrets, client IDs,
// kids and signing-key seeds. Pass entropy.ModeFull so signing keys come
// from full-entropy pool blocks. Each Read is bounded by timeout (≤ 0:
// 5 s) and fails (never falls back) when the pool cannot serve.
func NewEntropyReader(e Entropy, mode entropy.Mode, timeout time.Duration) io.Reader {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &entropyReader{e: e, mode: mode, timeout: timeout}
}

type entropyReader struct {
	e       Entropy
	mode    entropy.Mode
	timeout time.Duration
}

func (r *entropyReader) Read(p []byte) (int, error) {
	const chunk = 64 << 10
	for off := 0; off < len(p); off += chunk {
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		_, err := r.e.Read(ctx, p[off:min(off+chunk, len(p))], r.mode)
		cancel()
		if err != nil {
			clear(p)
			return 0, fmt.Errorf("gateway/auth: entropy reader: %w", err)
		}
	}
	return len(p), nil
}

// isEntropyErr reports whether err says the pool could not serve.
func isEntropyErr(err error) bool {
	return errors.Is(err, ErrEntropy) || errors.Is(err, entropy.ErrInsufficientEntropy)
}

// poolFields is the pool health snapshot every issuance audit record
// carries: policy, readiness, degradation, healthy count and the state of
// every source, plus where this token's randomness came from.
func poolFields(st entropy.Status, prov entropy.Provenance, f map[string]string) {
	f["pool.policy"] = string(st.Pool.Policy)
	f["pool.ready"] = strconv.FormatBool(st.Pool.Ready)
	f["pool.degraded"] = strconv.FormatBool(st.Pool.Degraded || prov.Degraded)
	f["pool.healthy_sources"] = strconv.Itoa(st.Pool.HealthySources)
	f["pool.min_healthy_sources"] = strconv.Itoa(st.Pool.MinSources)
	var b strings.Builder
	for i, src := range st.Sources {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(src.Name)
		b.WriteByte('=')
		b.WriteString(string(src.State))
	}
	f["pool.sources"] = truncate(b.String(), 2048)
	f["entropy.mode"] = string(prov.Mode)
	srcs := slices.Clone(prov.Sources)
	slices.Sort(srcs)
	f["entropy.sources"] = truncate(strings.Join(srcs, ","), 1024)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
