//go:build unix

package devid

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysOf reads device, inode and device number from the stat result. The
// fields' integer types differ between platforms.
func sysOf(fi os.FileInfo) sysID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return sysID{}
	}
	return sysID{dev: uint64(st.Dev), ino: uint64(st.Ino), rdev: uint64(st.Rdev), ok: true}
}

// number formats a device number as major:minor.
func number(d uint64) string { return fmt.Sprintf("%d:%d", unix.Major(d), unix.Minor(d)) }
