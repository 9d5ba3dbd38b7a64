package auth

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// verifiedCache remembers tokens whose signature and claims verified, and
// the tokens this process issued (authentic by construction), keyed by the
// SHA-256 of the exact token bytes, so that a token presented again (or
// for the first time, if issued here) skips the public-key operation
// (≈ 30–40 µs for Ed25519, 70–85 µs for P-256 here, more than the
// verification budget). A hit still checks exp against the clock (with
// leeway), the audience and the revocation list on every call; only
// successes and issued tokens are cached, so an attacker cannot fill it
// without valid tokens. Bounded: when full, expired entries go first, then
// arbitrary ones.
//
// clear starts a new epoch: a put carries the epoch read before its token
// was verified or signed, and one from an earlier epoch is dropped, so a
// token checked against (or signed with) a key unpublished meanwhile is
// not cached after the clear.
type verifiedCache struct {
	max   int
	mu    sync.RWMutex
	m     map[[32]byte]*Claims
	epoch atomic.Uint64 // changed with mu held
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, m: make(map[[32]byte]*Claims, min(max, 1024))}
}

func (c *verifiedCache) get(k [32]byte) *Claims {
	if c.max <= 0 {
		return nil
	}
	c.mu.RLock()
	v := c.m[k]
	c.mu.RUnlock()
	return v
}

// begin returns the current epoch, to pass to put; read it before the
// signing or verification key is looked up.
func (c *verifiedCache) begin() uint64 { return c.epoch.Load() }

// put caches v unless the cache was cleared since epoch was read.
func (c *verifiedCache) put(k [32]byte, v *Claims, now time.Time, epoch uint64) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch.Load() {
		return
	}
	if len(c.m) >= c.max {
		for key, e := range c.m {
			if e.ExpiresAt == nil || !now.Before(e.ExpiresAt.Time) {
				delete(c.m, key)
			}
		}
		for key := range c.m { // map order is random: evict an arbitrary eighth
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = v
}

// clear forgets every token, and every put of an epoch begun before.
func (c *verifiedCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.epoch.Add(1)
	c.mu.Unlock()
}

func (c *verifiedCache) drop(k [32]byte) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func tokenKey(tok string) [32]byte { return sha256.Sum256([]byte(tok)) }
