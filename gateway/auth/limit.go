package auth

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
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
	return s.decide(w, l.ip.Allow(limitKey(r.RemoteAddr)), oauth)
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

// attempt is called before checking name's credentials. It returns how
// long name must still wait (refuse the attempt), or 0 after charging the
// attempt as a failure in advance: ok clears it on success and refund
// takes it back when the credentials were never judged wrong. Charging
// first makes the limit hold for attempts in flight at the same time,
// which a check here and a fail after the (slow) password hash would let
// through all at once.
func (b *backoff) attempt(name string) time.Duration {
	if b.cfg.Off {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.m[name]; f != nil {
		if d := f.until.Sub(now); d > 0 {
			return d
		}
	}
	b.failLocked(name, now)
	return 0
}

// refund takes back an attempt charged by attempt whose credentials were
// not found wrong (a disabled account with the right password, an
// internal error), and the lock it may have started.
func (b *backoff) refund(name string) {
	if b.cfg.Off {
		return
	}
	b.mu.Lock()
	if f := b.m[name]; f != nil && f.n > 0 {
		if f.n--; f.n <= b.cfg.Free {
			f.until = time.Time{}
		}
	}
	b.mu.Unlock()
}

// wait returns how long name must still wait before its next attempt,
// without charging anything: for API clients, whose 256-bit secrets
// cannot be guessed however many attempts run at once, and which may
// legitimately send many concurrent token requests (charging those in
// advance would lock a busy client out of its own credentials).
func (b *backoff) wait(name string) time.Duration {
	if b.cfg.Off {
		return 0
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.m[name]; f != nil {
		if d := f.until.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// fail records a failed attempt (one not charged by attempt).
func (b *backoff) fail(name string) {
	if b.cfg.Off {
		return
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failLocked(name, now)
}

// failLocked records a failed attempt; b.mu is held.
func (b *backoff) failLocked(name string, now time.Time) {
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

// limitKey is the per-IP bucket key of a peer address: the IPv4 address,
// or the /64 prefix of an IPv6 address (one host or LAN is normally given
// a whole /64, so per-address buckets would let it rotate addresses past
// every per-IP limit). IPv4-mapped IPv6 addresses count as IPv4.
func limitKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}
