//go:build !unix

package fleetsim

import "time"

// cpuTime is 0: not measured on this system.
func cpuTime() time.Duration { return 0 }
