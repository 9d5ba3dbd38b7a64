package auth

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/qrngd/qrngd/gateway"
	"github.com/qrngd/qrngd/gateway/ratelimit"
)

// routeLimiter holds the per-IP and per-principal buckets of one route.
type routeLimiter struct {
	ip, principal *ratelimit.Limiter // nil = not limited
}

// defaultLimits are per route: {IP rate, IP burst, principal rate, burst}.
var defaultLimits = map[string][4]float64{
	RouteLogin:      {5, 10, 0, 0}, // per-user protection is the back-off
	RouteRefresh:    {10, 20, 5, 10},
	RouteLogout:     {10, 20, 5, 10},
	RouteToken:      {200, 400, 100, 200},
	RouteRevoke:     {50, 100, 20, 40},
	RouteIntrospect: {200, 400, 100, 200},
	RouteKeys:       {20, 40, 10, 20},
	RouteDiscovery:  {20, 50, 0, 0},
	RouteAPI:        {200, 400, 50, 100},
}

// LimitAPI applies the RouteAPI buckets (client IP, then the principal's
// subject) to a request the gateway has authorized, for the /v1 and MCP
// routes. It writes RateLimit-* headers, and on refusal the 429 with
// Retry-After in the gateway's error shape, and reports whether the
// request may proceed. The gateway calls it after Authorize (see the
// report: gateway needs a hook for it).
func (s *Service) LimitAPI(w http.ResponseWriter, r *http.Request, p *gateway.Principal) bool {
	if !s.allowIP(w, r, RouteAPI, false) {
		return false
	}
	if p == nil {
		return true
	}
	return s.allowPrincipal(w, RouteAPI, "sub:"+p.Subject, false)
}

func buildLimits(cfg map[string]RouteLimit, now func() time.Time) (map[string]*routeLimiter, error) {
	for name := range cfg {
		if _, ok := defaultLimits[name]; !ok {
			return nil, fmt.Errorf("%w: Limits: unknown route %q", ErrInvalidOptions, name)
		}
	}
	out := make(map[string]*routeLimiter, len(defaultLimits))
	for name, d := range defaultLimits {
		rl := &routeLimiter{}
		c := cfg[name]
		if !c.Off {
			var err error
			if rl.ip, err = limiter(c.IP, d[0], d[1], now); err != nil {
				return nil, fmt.Errorf("%w: Limits[%q].IP: %v", ErrInvalidOptions, name, err)
			}
			if d[2] > 0 || c.Principal != nil {
				if rl.principal, err = limiter(c.Principal, d[2], d[3], now); err != nil {
					return nil, fmt.Errorf("%w: Limits[%q].Principal: %v", ErrInvalidOptions, name, err)
				}
			}
		}
		out[name] = rl
	}
	return out, nil
}

func limiter(o *ratelimit.Options, rate, burst float64, now func() time.Time) (*ratelimit.Limiter, error) {
	var opts ratelimit.Options
	if o != nil {
		opts = *o
	} else {
		opts = ratelimit.Options{Rate: rate, Burst: int(burst)}
	}
	if opts.Now == nil {
		opts.Now = now
	}
	return ratelimit.New(&opts)
}

// clientIP is the peer address (no proxy is trusted, as in the gateway).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// allowIP charges one request to the client IP's bucket of route; on
// refusal it has written the 429.
func (s *Service) allowIP(w http.ResponseWriter, r *http.Request, route string, oauth bool) bool {
	l := s.limits[route]
	if l == nil || l.ip == nil {
		return true
	}
	return s.decide(w, l.ip.Allow(clientIP(r)), oauth)
}

// allowPrincipal charges one request to the principal's bucket of route.
func (s *Service) allowPrincipal(w http.ResponseWriter, route, principal string, oauth bool) bool {
	l := s.limits[route]
	if l == nil || l.principal == nil {
		return true
	}
	return s.decide(w, l.principal.Allow(principal), oauth)
}

// decide writes the RateLimit-* fields of the most restrictive bucket
// charged so far (IP, then principal) and the 429 on refusal.
func (s *Service) decide(w http.ResponseWriter, d ratelimit.Decision, oauth bool) bool {
	if prev, err := strconv.Atoi(w.Header().Get("RateLimit-Remaining")); err != nil || !d.Allowed || d.Remaining <= prev {
		d.SetHeaders(w.Header())
	}
	if d.Allowed {
		return true
	}
	msg := "too many requests; retry after " + w.Header().Get("Retry-After") + " s"
	if oauth {
		oauthError(w, http.StatusTooManyRequests, "rate_limited", msg)
	} else {
		apiError(w, http.StatusTooManyRequests, "rate_limited", msg)
	}
	return false
}

// backoff tracks failed authentications per name (username or client_id).
type backoff struct {
	cfg Backoff
	now func() time.Time

	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

func newBackoff(c Backoff, now func() time.Time) (*backoff, error) {
	if c.Free == 0 {
		c.Free = 5
	}
	if c.Base == 0 {
		c.Base = time.Second
	}
	if c.Max == 0 {
		c.Max = 15 * time.Minute
	}
	if c.Window == 0 {
		c.Window = 15 * time.Minute
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = 100000
	}
	if c.Free < 0 || c.Base < 0 || c.Max < c.Base || c.Window < 0 || c.MaxKeys < 0 {
		return nil, fmt.Errorf("%w: Backoff %+v out of range", ErrInvalidOptions, c)
	}
	return &backoff{cfg: c, now: now, m: map[string]*failures{}}, nil
}

// wait returns how long name must still wait before its next attempt.
func (b *backoff) wait(name string) time.Duration {
	if b.cfg.Off {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.m[name]
	if f == nil || now.After(f.until) {
		return 0
	}
	return f.until.Sub(now)
}

// fail records a failed attempt.
func (b *backoff) fail(name string) {
	if b.cfg.Off {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.m[name]
	if f != nil && now.Sub(f.last) > b.cfg.Window && now.After(f.until) {
		f = nil // quiet long enough: start over
	}
	if f == nil {
		if len(b.m) >= b.cfg.MaxKeys {
			b.sweepLocked(now)
		}
		if len(b.m) >= b.cfg.MaxKeys {
			// Still full of recent failures: forget the lot rather than
			// grow without bound. The per-IP buckets still apply.
			clear(b.m)
		}
		f = &failures{}
		b.m[name] = f
	}
	f.n++
	f.last = now
	if over := f.n - b.cfg.Free; over > 0 {
		d := b.cfg.Base << min(over-1, 30)
		if d > b.cfg.Max || d <= 0 {
			d = b.cfg.Max
		}
		f.until = now.Add(d)
	}
}

// ok clears name's failures after a success.
func (b *backoff) ok(name string) {
	if b.cfg.Off {
		return
	}
	b.mu.Lock()
	delete(b.m, name)
	b.mu.Unlock()
}

func (b *backoff) sweepLocked(now time.Time) {
	for k, f := range b.m {
		if now.Sub(f.last) > b.cfg.Window && now.After(f.until) {
			delete(b.m, k)
		}
	}
}

// refuseBackoff writes the 429 for a name in back-off.
func (s *Service) refuseBackoff(w http.ResponseWriter, d time.Duration, oauth bool) {
	secs := strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
	w.Header().Set("Retry-After", secs)
	msg := "too many failed attempts; retry after " + secs + " s"
	if oauth {
		oauthError(w, http.StatusTooManyRequests, "rate_limited", msg)
	} else {
		apiError(w, http.StatusTooManyRequests, "too_many_failures", msg)
	}
}
