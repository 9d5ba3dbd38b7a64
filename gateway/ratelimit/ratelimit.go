// Package ratelimit is a per-key token-bucket limiter with bounded memory.
//
// Each key (a principal: a token subject, a client id, an address) gets its
// own golang.org/x/time/rate bucket. Memory is bounded two ways: a key whose
// bucket has been idle long enough to refill completely is dropped (a full
// bucket is indistinguishable from a fresh one, so nothing is lost), and at
// most MaxKeys buckets are held — beyond that the least recently used key is
// evicted. Eviction under MaxKeys pressure hands the evicted key a fresh
// bucket on its next request; size MaxKeys above the number of principals
// you expect to be active at once.
//
// A Decision carries what HTTP needs: 429 with Retry-After and the
// RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset fields
// (draft-ietf-httpapi-ratelimit-headers), written by Decision.SetHeaders.
package ratelimit

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrInvalidOptions is wrapped by New when Options are out of range.
var ErrInvalidOptions = errors.New("ratelimit: invalid options")

// Defaults for zero Options fields.
const (
	DefaultRate    = 10    // tokens per second
	DefaultBurst   = 20    // bucket size
	DefaultMaxKeys = 10000 // buckets held at once
)

// Options configure a Limiter. nil or a zero field means the default.
type Options struct {
	// Rate is the refill rate in tokens per second (default 10).
	Rate float64
	// Burst is the bucket size (default 20); also the largest n AllowN grants.
	Burst int
	// MaxKeys bounds the number of buckets held (default 10000).
	MaxKeys int
	// IdleTTL drops a key not seen for this long. It is raised to at least the
	// time a bucket takes to refill from empty, so dropping never forgives debt.
	// Zero means exactly that refill time.
	IdleTTL time.Duration
	// Now is the clock; nil means time.Now. A test seam.
	Now func() time.Time
}

// Limiter holds one token bucket per key. It is safe for concurrent use.
type Limiter struct {
	rate    rate.Limit
	burst   int
	maxKeys int
	idleTTL time.Duration
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*list.Element // of *entry
	lru  list.List                // front = most recently used
}

type entry struct {
	key  string
	lim  *rate.Limiter
	seen time.Time
}

// New validates opts and returns a Limiter.
func New(opts *Options) (*Limiter, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate < 0:
		return nil, fmt.Errorf("%w: rate %v must be a finite number >= 0", ErrInvalidOptions, o.Rate)
	case o.Burst < 0:
		return nil, fmt.Errorf("%w: burst %d must be >= 0", ErrInvalidOptions, o.Burst)
	case o.MaxKeys < 0:
		return nil, fmt.Errorf("%w: max keys %d must be >= 0", ErrInvalidOptions, o.MaxKeys)
	case o.IdleTTL < 0:
		return nil, fmt.Errorf("%w: idle TTL %v must be >= 0", ErrInvalidOptions, o.IdleTTL)
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Burst == 0 {
		o.Burst = DefaultBurst
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	refill := time.Duration(float64(o.Burst) / o.Rate * float64(time.Second))
	if o.IdleTTL < refill {
		o.IdleTTL = refill
	}
	return &Limiter{
		rate:    rate.Limit(o.Rate),
		burst:   o.Burst,
		maxKeys: o.MaxKeys,
		idleTTL: o.IdleTTL,
		now:     o.Now,
		keys:    make(map[string]*list.Element),
	}, nil
}

// Decision is the outcome of one AllowN.
type Decision struct {
	Allowed    bool
	Limit      int           // bucket size (RateLimit-Limit)
	Remaining  int           // whole tokens left after this request (RateLimit-Remaining)
	RetryAfter time.Duration // when !Allowed: wait before n tokens are available; else 0
	Reset      time.Duration // until the bucket is full again (RateLimit-Reset)
}

// Allow is AllowN(key, 1).
func (l *Limiter) Allow(key string) Decision { return l.AllowN(key, 1) }

// AllowN takes n tokens from key's bucket if it holds them; otherwise it takes
// nothing and reports how long to wait. n larger than the burst is never
// allowed (RetryAfter is then how long a full bucket takes, as a lower bound).
func (l *Limiter) AllowN(key string, n int) Decision {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.getLocked(key, now)
	d := Decision{Limit: l.burst}
	if n <= 0 {
		d.Allowed = true
	} else {
		d.Allowed = e.lim.AllowN(now, n)
	}
	tokens := e.lim.TokensAt(now)
	if !d.Allowed {
		need := float64(n) - tokens
		if n > l.burst {
			need = float64(l.burst) - tokens
		}
		d.RetryAfter = l.durationFor(need)
	}
	d.Remaining = int(math.Floor(tokens))
	if d.Remaining < 0 {
		d.Remaining = 0
	}
	d.Reset = l.durationFor(float64(l.burst) - tokens)
	return d
}

func (l *Limiter) durationFor(tokens float64) time.Duration {
	if tokens <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(tokens / float64(l.rate) * float64(time.Second)))
}

// getLocked finds or creates key's entry, marks it used and reclaims idle keys.
func (l *Limiter) getLocked(key string, now time.Time) *entry {
	// Reclaim from the cold end: at most a few per call keeps the cost O(1)
	// amortized while idle keys still drain.
	for i := 0; i < 2; i++ {
		back := l.lru.Back()
		if back == nil {
			break
		}
		be := back.Value.(*entry)
		if be.key == key || now.Sub(be.seen) < l.idleTTL {
			break
		}
		l.removeLocked(back)
	}
	if el, ok := l.keys[key]; ok {
		e := el.Value.(*entry)
		e.seen = now
		l.lru.MoveToFront(el)
		return e
	}
	for len(l.keys) >= l.maxKeys {
		l.removeLocked(l.lru.Back())
	}
	e := &entry{key: key, lim: rate.NewLimiter(l.rate, l.burst), seen: now}
	l.keys[key] = l.lru.PushFront(e)
	return e
}

func (l *Limiter) removeLocked(el *list.Element) {
	delete(l.keys, el.Value.(*entry).key)
	l.lru.Remove(el)
}

// Len reports how many keys are held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// Sweep drops every key idle for at least IdleTTL. AllowN already reclaims
// idle keys as it goes; call Sweep from a ticker to reclaim them when
// traffic stops altogether.
func (l *Limiter) Sweep() int {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for el := l.lru.Back(); el != nil; el = l.lru.Back() {
		if now.Sub(el.Value.(*entry).seen) < l.idleTTL {
			break
		}
		l.removeLocked(el)
		n++
	}
	return n
}

// SetHeaders writes RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset
// (whole seconds, rounded up), and Retry-After when the request was refused.
func (d Decision) SetHeaders(h http.Header) {
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10))
	}
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
