package ratelimit_test

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/qrngd/qrngd/gateway/ratelimit"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newLimiter(t *testing.T, o ratelimit.Options) (*ratelimit.Limiter, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	o.Now = c.now
	l, err := ratelimit.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func TestNew_InvalidOptions(t *testing.T) {
	for _, o := range []ratelimit.Options{{Rate: -1}, {Burst: -1}, {MaxKeys: -2}, {IdleTTL: -time.Second}} {
		if _, err := ratelimit.New(&o); !errors.Is(err, ratelimit.ErrInvalidOptions) {
			t.Errorf("New(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	if _, err := ratelimit.New(nil); err != nil {
		t.Errorf("New(nil) = %v", err)
	}
}

func TestLimiter_AllowN_BurstThenRefill(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Options{Rate: 2, Burst: 3})
	for i := 0; i < 3; i++ {
		d := l.Allow("alice")
		if !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	d := l.Allow("alice")
	if d.Allowed || d.Remaining != 0 || d.RetryAfter != 500*time.Millisecond || d.Reset != 1500*time.Millisecond {
		t.Fatalf("4th call: %+v", d)
	}
	// Another principal has its own bucket.
	if d := l.Allow("bob"); !d.Allowed {
		t.Fatalf("bob refused: %+v", d)
	}
	c.advance(500 * time.Millisecond)
	if d := l.Allow("alice"); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after refill: %+v", d)
	}
	// More than the burst is never granted.
	c.advance(time.Hour)
	if d := l.AllowN("alice", 4); d.Allowed || d.RetryAfter != 0 {
		t.Fatalf("AllowN(4) over burst 3 with a full bucket: %+v", d)
	}
}

func TestLimiter_MaxKeys_EvictsLeastRecentlyUsed(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Options{Rate: 1, Burst: 1, MaxKeys: 2, IdleTTL: time.Hour})
	l.Allow("a")
	c.advance(time.Millisecond)
	l.Allow("b")
	c.advance(time.Millisecond)
	l.Allow("a") // a is now most recent; refused but touched
	c.advance(time.Millisecond)
	l.Allow("c") // evicts b
	if l.Len() != 2 {
		t.Fatalf("Len = %d, want 2", l.Len())
	}
	if d := l.Allow("a"); d.Allowed {
		t.Fatalf("a kept its empty bucket, want refused: %+v", d)
	}
	if d := l.Allow("b"); !d.Allowed {
		t.Fatalf("b was evicted and should start full: %+v", d)
	}
}

func TestLimiter_IdleKeysReclaimed(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Options{Rate: 10, Burst: 10}) // refill time 1 s
	for i := 0; i < 100; i++ {
		l.Allow(fmt.Sprint("k", i))
	}
	if l.Len() != 100 {
		t.Fatalf("Len = %d", l.Len())
	}
	c.advance(999 * time.Millisecond)
	if n := l.Sweep(); n != 0 {
		t.Fatalf("Sweep before refill time dropped %d", n)
	}
	c.advance(time.Millisecond)
	if n := l.Sweep(); n != 100 || l.Len() != 0 {
		t.Fatalf("Sweep dropped %d, Len %d", n, l.Len())
	}
	// AllowN also reclaims from the cold end as it goes.
	for i := 0; i < 10; i++ {
		l.Allow(fmt.Sprint("x", i))
	}
	c.advance(2 * time.Second)
	for i := 0; i < 10; i++ {
		l.Allow("hot")
	}
	if l.Len() != 1 {
		t.Fatalf("Len = %d after idle keys aged, want 1", l.Len())
	}
}

func TestDecision_SetHeaders(t *testing.T) {
	l, _ := newLimiter(t, ratelimit.Options{Rate: 0.5, Burst: 1})
	h := http.Header{}
	l.Allow("a").SetHeaders(h)
	if h.Get("RateLimit-Limit") != "1" || h.Get("RateLimit-Remaining") != "0" || h.Get("RateLimit-Reset") != "2" || h.Get("Retry-After") != "" {
		t.Fatalf("allowed headers: %v", h)
	}
	h = http.Header{}
	l.Allow("a").SetHeaders(h)
	if h.Get("Retry-After") != "2" || h.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("refused headers: %v", h)
	}
}

func TestLimiter_Concurrent(t *testing.T) {
	l, err := ratelimit.New(&ratelimit.Options{Rate: 1e-3, Burst: 50, MaxKeys: 8})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if l.Allow("shared").Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("allowed %d of 800 concurrent calls, want exactly the burst 50", allowed)
	}
}
