package fetch

import "time"

// Take exposes RateLimiter.take to the tests.
func Take(l *RateLimiter, n int) time.Duration { return l.take(n) }
