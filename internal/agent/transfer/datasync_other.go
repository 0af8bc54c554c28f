//go:build !linux

package transfer

import "os"

// datasync makes f durable; outside Linux it is f.Sync.
func datasync(f *os.File) error { return f.Sync() }
