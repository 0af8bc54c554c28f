package fetch

import (
	"sync"
	"time"
)

// RateLimiter is a token bucket in bytes: it fills at rate bytes per second
// up to one burst, and every byte read takes a token. A reader that took
// more tokens than the bucket held waits until the debt is paid, so over
// any long stretch the bytes read stay within rate per second, and a burst
// of at most burst bytes may go faster. It is safe for concurrent use; all
// bodies of a Client share one.
//
// Reads are paid after they return (the bytes are already in the socket's
// buffer by then): waiting before the next Read is what slows the sender,
// through TCP flow control.
type RateLimiter struct {
	rate  float64 // bytes per second
	burst int
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// minBurst keeps a very low rate from reading a byte at a time.
const minBurst = 4 << 10

// NewRateLimiter returns a limiter of bytesPerSecond (> 0), with a burst of
// an eighth of a second's worth (at least 4 KiB), starting full. now tells
// the time (nil: time.Now).
func NewRateLimiter(bytesPerSecond int64, now func() time.Time) *RateLimiter {
	if now == nil {
		now = time.Now
	}
	burst := max(int(bytesPerSecond/8), minBurst)
	return &RateLimiter{rate: float64(bytesPerSecond), burst: burst, now: now, tokens: float64(burst)}
}

// Burst is the most bytes one Read of a limited body asks for.
func (l *RateLimiter) Burst() int { return l.burst }

// take records n bytes read and returns how long the reader must wait
// before its next read.
func (l *RateLimiter) take(n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	if !l.last.IsZero() {
		if dt := t.Sub(l.last); dt > 0 {
			l.tokens = min(float64(l.burst), l.tokens+dt.Seconds()*l.rate)
		}
	}
	l.last = t
	l.tokens -= float64(n)
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}
