//go:build !unix

package devid

import (
	"fmt"
	"os"
)

// sysOf knows nothing off Unix: files compare by os.SameFile alone.
func sysOf(os.FileInfo) sysID { return sysID{} }

func number(d uint64) string { return fmt.Sprint(d) }
