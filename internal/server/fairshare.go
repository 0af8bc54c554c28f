package server

import (
	"hash/maphash"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// DefaultReportClients bounds how many client addresses the report limiter
// tracks at once (about 100 bytes each).
const DefaultReportClients = 100_000

// reportLimiter admits reports with fair sharing between client addresses:
// each address has its own token bucket (perRate per second, at most
// perBurst at once), checked first, so a client over its share is refused
// without spending any of the total; then the total bucket bounds the sum
// of all clients. One client flooding therefore gets at most its share,
// and the rest of the total stays for everyone else.
//
// Privacy: the limiter holds, in memory only, a keyed hash of each address
// (the seed is random per process), never the address itself, and forgets
// an address once its bucket has refilled. Nothing of it is stored or
// logged.
//
// Memory: at most maxClients hashes are tracked. When the table is full,
// addresses whose buckets have refilled are dropped; if none has, a new
// address is admitted by the total bucket alone until room appears.
//
// Safe for concurrent use.
type reportLimiter struct {
	total *tokenBucket

	mu         sync.Mutex
	seed       maphash.Seed
	perRate    float64
	perBurst   float64
	maxClients int
	clients    map[uint64]*bucket
}

func newReportLimiter(rate float64, burst int, perRate float64, perBurst, maxClients int) *reportLimiter {
	return &reportLimiter{
		total:      newTokenBucket(rate, burst),
		seed:       maphash.MakeSeed(),
		perRate:    perRate,
		perBurst:   float64(perBurst),
		maxClients: maxClients,
		clients:    map[uint64]*bucket{},
	}
}

// allow takes one token from client's bucket and one from the total at
// time now, and reports whether both had one.
func (l *reportLimiter) allow(client netip.Addr, now time.Time) bool {
	if !l.allowClient(client, now) {
		return false
	}
	return l.total.allow(now)
}

func (l *reportLimiter) allowClient(client netip.Addr, now time.Time) bool {
	key := maphash.Comparable(l.seed, client)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.clients[key]
	if !ok {
		if len(l.clients) >= l.maxClients {
			l.sweep(now)
		}
		if len(l.clients) >= l.maxClients {
			return true // the total bucket alone decides
		}
		b = &bucket{tokens: l.perBurst, last: now}
		l.clients[key] = b
	}
	return b.take(now, l.perRate, l.perBurst)
}

// sweep drops the clients whose buckets are full again at now: for them a
// fresh bucket is the same. The caller holds l.mu.
func (l *reportLimiter) sweep(now time.Time) {
	for k, b := range l.clients {
		b.refill(now, l.perRate, l.perBurst)
		if b.tokens >= l.perBurst {
			delete(l.clients, k)
		}
	}
}

// tracked returns how many client hashes the limiter holds.
func (l *reportLimiter) tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// bucket is a token bucket's state; its owner holds the lock.
type bucket struct {
	tokens float64
	last   time.Time
}

// refill adds the tokens earned since the last call, up to burst. A clock
// that goes backwards adds none.
func (b *bucket) refill(now time.Time, rate, burst float64) {
	if now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * rate
		if b.tokens > burst {
			b.tokens = burst
		}
		b.last = now
	}
}

// take refills and then takes one token if there is one.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.refill(now, rate, burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// clientAddr is the address a report is limited by: the peer address of
// the connection, with an IPv6 address cut to its /64 (one subscriber's
// usual allocation, so a single host cannot take a fresh share per
// address). X-Forwarded-For is read only when the peer is one of proxies:
// then the right-most entry that is not a proxy is the client. An address
// that does not parse yields the zero Addr, one shared share.
func clientAddr(r *http.Request, proxies []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a := ap.Addr().Unmap()
	if inAny(a, proxies) {
		a = forwardedFor(r.Header.Values("X-Forwarded-For"), proxies, a)
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a
}

// forwardedFor walks the X-Forwarded-For entries from the right and returns
// the first that is not a trusted proxy; peer when there is none or an
// entry does not parse.
func forwardedFor(values []string, proxies []netip.Prefix, peer netip.Addr) netip.Addr {
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer
			}
			a = a.Unmap()
			if !inAny(a, proxies) {
				return a
			}
		}
	}
	return peer
}

func inAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
