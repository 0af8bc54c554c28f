package agent

import (
	"math/rand/v2"
	"time"
)

// jitter draws a wait uniformly from [d/2, 3d/2), so devices that started
// together drift apart and no poll schedule fingerprints a device.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}
