package bolt

import (
	"sync"

	"github.com/qrngd/qrngd/store"
)

// maxCachedKeys bounds the API-key cache. Only keys that exist are
// cached, so its size is at most the number of keys in the database.
const maxCachedKeys = 4096

// keyCache holds decoded API-key records so that APIKeys.Authenticate
// need not open a read transaction and decode JSON on every token request.
// It caches the record (the SHA-256 of the secret and the revoked flag),
// never the outcome of a check: every call still hashes the presented
// secret and compares in constant time. Unknown client IDs are not cached,
// so it cannot be filled by guessing. Every write to the API-key bucket
// removes the entry after its transaction committed and bumps gen; a
// lookup that read the database before such a write cannot store what it
// read (its gen no longer matches), so once Revoke returns no caller sees
// the key unrevoked.
type keyCache struct {
	mu  sync.RWMutex
	gen uint64
	m   map[string]*cachedKey
}

type cachedKey struct {
	key  store.APIKey
	hash []byte // store.SecretHashBytes; all zero if the stored hash was malformed
}

func (c *keyCache) get(id string) *cachedKey {
	c.mu.RLock()
	e := c.m[id]
	c.mu.RUnlock()
	return e
}

// generation is read before a lookup that may fill the cache.
func (c *keyCache) generation() uint64 {
	c.mu.RLock()
	g := c.gen
	c.mu.RUnlock()
	return g
}

// put stores e unless a write happened since gen was read.
func (c *keyCache) put(id string, e *cachedKey, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.m == nil {
		c.m = make(map[string]*cachedKey)
	}
	if len(c.m) >= maxCachedKeys {
		for k := range c.m { // arbitrary eighth (map order is random)
			if len(c.m) < maxCachedKeys-maxCachedKeys/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[id] = e
}

// invalidate runs after a write to the key id has committed (or failed).
func (c *keyCache) invalidate(id string) {
	c.mu.Lock()
	c.gen++
	delete(c.m, id)
	c.mu.Unlock()
}

func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
