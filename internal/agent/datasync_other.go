//go:build !linux

package agent

import "os"

// datasync makes f durable; outside Linux it is f.Sync.
func datasync(f *os.File) error { return f.Sync() }
